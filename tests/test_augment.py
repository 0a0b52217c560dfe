import numpy as np
import pytest
import torch

from aunce.data.align import to_49
from aunce.data.augment import (
    center_crop,
    color_distort,
    crop_landmarks,
    gaussian_blur,
    random_crop_flip,
    simclr_view,
)
from aunce.data.synthetic import TEMPLATE

FLIP = [
    9,
    8,
    7,
    6,
    5,
    4,
    3,
    2,
    1,
    0,
    10,
    11,
    12,
    13,
    18,
    17,
    16,
    15,
    14,
    28,
    27,
    26,
    25,
    30,
    29,
    22,
    21,
    20,
    19,
    24,
    23,
    37,
    36,
    35,
    34,
    33,
    32,
    31,
    42,
    41,
    40,
    39,
    38,
    45,
    44,
    43,
    48,
    47,
    46,
]


def test_flip_table_is_an_involution_that_mirrors_the_template():
    assert sorted(FLIP) == list(range(49)) and all(FLIP[FLIP[i]] == i for i in range(49))
    pts = to_49(TEMPLATE)
    mirrored = pts[FLIP] * [-1, 1]
    assert np.allclose(mirrored, pts, atol=0.05)  # the template is left-right symmetric


def test_crop_and_flip_move_landmarks_with_pixels():
    size, crop = 64, 48
    pts = (
        torch.tensor(to_49(TEMPLATE) * 20 + 32, dtype=torch.float32).round()[None].repeat(16, 1, 1)
    )
    img = torch.zeros(16, 1, size, size)
    pixels = [tuple(p) for p in pts[0].round().long().tolist()]
    unique = {i for i, p in enumerate(pixels) if pixels.count(p) == 1}
    for i in unique:
        x, y = pixels[i]
        img[:, 0, y, x] = float(i + 1)  # each landmark paints its own index
    out, where = random_crop_flip(img.expand(-1, 3, -1, -1), crop, torch.Generator().manual_seed(0))
    moved = crop_landmarks(pts, where)
    assert where.flip.any() and (~where.flip).any()
    for b in range(16):
        for i, (x, y) in enumerate(moved[b].round().long().tolist()):
            # a flip swaps left and right points, so the pixel holds the mirrored point's paint
            expected = i if not where.flip[b] else FLIP[i]
            if 0 <= x < crop and 0 <= y < crop and expected in unique:
                assert int(out[b, 0, y, x].item()) - 1 == expected


def test_center_crop():
    x = torch.arange(64.0).view(1, 1, 8, 8).expand(1, 3, 8, 8)
    out, where = center_crop(x, 4)
    assert out.shape == (1, 3, 4, 4) and out[0, 0, 0, 0] == 2 * 8 + 2


def test_views_are_seeded_and_in_range():
    x = torch.rand(8, 3, 32, 32)
    a, _ = simclr_view(x, 28, torch.Generator().manual_seed(5))
    b, _ = simclr_view(x, 28, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (8, 3, 28, 28)
    assert a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="exceeds"):
        random_crop_flip(x, 40, torch.Generator())


def test_color_and_blur_probabilities():
    x = torch.rand(64, 3, 16, 16)
    same = color_distort(x, torch.Generator().manual_seed(0), p=0.0, p_grey=0.0)
    assert torch.equal(same, x)
    blurred = gaussian_blur(x, torch.Generator().manual_seed(0), p=1.0)
    assert blurred.std() < x.std()  # blur removes high-frequency noise
    assert torch.equal(gaussian_blur(x, torch.Generator(), p=0.0), x)
    grey = color_distort(x, torch.Generator().manual_seed(0), p=0.0, p_grey=1.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and np.isclose(
        grey[0, 0, 0, 0].item(),
        (0.299 * x[0, 0, 0, 0] + 0.587 * x[0, 1, 0, 0] + 0.114 * x[0, 2, 0, 0]).item(),
        atol=1e-6,
    )
