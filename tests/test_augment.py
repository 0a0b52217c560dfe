import numpy as np
import pytest
import torch

from aunce.data.align import to_49
from aunce.data.augment import (
    BORDER_FILL,
    Crop,
    ViewSpec,
    apply_crop,
    apply_similarity,
    augment_view,
    center_crop,
    color_distort,
    crop_landmarks,
    gaussian_blur,
    normalize,
    random_crop_flip,
    random_resized_crop,
    random_similarity,
    resized_crop_landmarks,
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


# --- the similarity transform before the crop (paper Sec. 4.1) ----------------------------------
def bilinear_reference(img: np.ndarray, matrix: np.ndarray, fill: float) -> np.ndarray:
    """Each output pixel q of an (H, W, C) image samples the input at p = A^-1 (q - t), bilinear
    over its four neighbours, a neighbour outside the image counting as ``fill``: pixel by pixel."""
    h, w, _ = img.shape
    inv, t = np.linalg.inv(matrix[:, :2]), matrix[:, 2]
    out = np.zeros_like(img)
    for qy in range(h):
        for qx in range(w):
            px, py = inv @ (np.array([qx, qy]) - t)
            x0, y0 = int(np.floor(px)), int(np.floor(py))
            fx, fy = px - x0, py - y0
            for yy, xx, weight in ((y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
                                   (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)):  # fmt: skip
                inside = 0 <= yy < h and 0 <= xx < w
                out[qy, qx] += weight * (img[yy, xx] if inside else fill)
    return out


@pytest.mark.parametrize(("h", "w"), [(20, 20), (16, 24)])
def test_similarity_against_the_per_pixel_formula_and_cv2(h, w):
    import cv2

    g = torch.Generator().manual_seed(h + w)
    x = torch.rand(3, 3, h, w, generator=g)
    sim = random_similarity(3, h, w, g, rotation=30, scale=0.2, translation=0.1)
    matrices = sim.matrix().numpy()
    for fill in (BORDER_FILL, 0.0):  # the alignment's grey border (default), black
        out = apply_similarity(x, sim, fill).permute(0, 2, 3, 1).numpy()
        for i in range(3):
            img = x[i].permute(1, 2, 0).numpy()
            assert np.allclose(out[i], bilinear_reference(img, matrices[i], fill), atol=1e-5)
            warped = cv2.warpAffine(img, matrices[i], (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 3)  # fmt: skip
            assert np.allclose(out[i], warped, atol=1e-4)
    assert BORDER_FILL == 128 / 255


def test_similarity_draws_within_its_ranges():
    sim = random_similarity(
        4096, 36, 36, torch.Generator().manual_seed(0), rotation=10, scale=0.1, translation=0.05
    )
    degrees = torch.rad2deg(sim.angle)
    assert -10 <= degrees.min() < -9.9 and 9.9 < degrees.max() <= 10
    assert 0.9 <= sim.scale.min() < 0.901 and 1.099 < sim.scale.max() <= 1.1
    assert -1.8 <= sim.shift.min() < -1.79 and 1.79 < sim.shift.max() <= 1.8  # 5 % of 36 px
    zero = random_similarity(2, 8, 8, torch.Generator(), rotation=0, scale=0, translation=0)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(apply_similarity(x, zero), x, atol=1e-6)
    with pytest.raises(ValueError, match="scale 1.0"):
        random_similarity(1, 8, 8, torch.Generator(), rotation=0, scale=1.0, translation=0)


def test_landmarks_follow_the_pixels_through_similarity_crop_and_flip():
    """Images whose two channels hold each pixel's own x and y: bilinear sampling reproduces a
    linear ramp exactly, so the view read at a moved landmark gives the landmark's original place
    (its mirrored twin's for a flipped view)."""
    size, crop, b = 64, 48, 32
    ys, xs = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)),
                            indexing="ij")  # fmt: skip
    x = torch.stack([xs, ys, torch.zeros_like(xs)])[None].repeat(b, 1, 1, 1)
    pts = torch.tensor(to_49(TEMPLATE) * 14 + 32, dtype=torch.float32)[None].repeat(b, 1, 1)
    spec = ViewSpec(crop, similarity=(15.0, 0.1, 0.05), colour=False)
    view, moved = augment_view(x, pts, spec, torch.Generator().manual_seed(1))
    sampled = torch.nn.functional.grid_sample(
        view[:, :2], (moved * 2 / (crop - 1) - 1)[:, :, None], align_corners=True
    )[:, :, :, 0].transpose(1, 2)  # (B, 49, 2): the view's value at each moved landmark
    inside = ((moved >= 0) & (moved <= crop - 1)).all(-1)  # (B, 49)
    assert inside.float().mean() > 0.95
    errors = [
        torch.where(inside[..., None], (sampled - want).abs(), 0).flatten(1).amax(1)
        for want in (pts, pts[:, FLIP])
    ]  # (B,) each: as if not flipped, as if flipped
    flipped = errors[1] < errors[0]
    assert flipped.any() and (~flipped).any()
    assert torch.minimum(*errors).max() < 1e-3 and torch.maximum(*errors).min() > 1


def test_no_similarity_draws_nothing_and_crops_as_before():
    x = torch.rand(4, 3, 36, 36)
    off = ViewSpec(32, colour=False)
    a, _ = augment_view(x, None, off, torch.Generator().manual_seed(3))
    b, _ = random_crop_flip(x, 32, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    simclr, _ = augment_view(x, None, ViewSpec(32), g1)
    before, _ = simclr_view(x, 32, g2)
    assert torch.equal(simclr, before) and torch.equal(g1.get_state(), g2.get_state())


# --- the released code's colour distortion, blur and normalisation ------------------------------
def test_jitter_strengths_bound_each_factor():
    x = torch.rand(256, 3, 8, 8) * 0.45 + 0.25  # x 1.4 stays below 1: no clamping
    same = color_distort(x, torch.Generator(), p=1.0, strengths=(0, 0, 0, 0), p_grey=0.0)
    assert torch.allclose(same, x, atol=1e-6)  # a hue rotation by 0 in YIQ: float round-off only
    bright = color_distort(x, torch.Generator().manual_seed(0), p=1.0, strengths=(0.4, 0, 0, 0),
                           p_grey=0.0)  # fmt: skip
    factor = (bright / x).flatten(1)
    assert torch.allclose(factor, factor[:, :1], atol=1e-5)  # one factor per image
    assert 0.6 <= factor.min() < 0.62 and 1.38 < factor.max() <= 1.4


def test_blur_kernel_against_cv2():
    import cv2

    x = torch.rand(4, 3, 20, 20)
    out = gaussian_blur(x, torch.Generator().manual_seed(7), p=1.0, kernel=3)
    sigma = 0.1 + 1.9 * torch.rand(4, generator=torch.Generator().manual_seed(7))  # the first draw
    for i in range(4):
        ref = cv2.GaussianBlur(x[i].permute(1, 2, 0).numpy(), (3, 3), float(sigma[i]),
                               borderType=cv2.BORDER_REFLECT_101)  # fmt: skip
        assert np.allclose(out[i].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(x, torch.Generator(), p=1.0, kernel=4)


def test_cifar_normalisation_is_the_released_codes():
    """pre_process.py of the release: Normalize([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])."""
    x = torch.full((1, 3, 2, 2), 0.5)
    want = (0.5 - torch.tensor([0.4914, 0.4822, 0.4465])) / torch.tensor([0.2023, 0.1994, 0.2010])
    assert torch.allclose(normalize(x, "cifar")[0, :, 0, 0], want)


# --- the random resized crop of AUNCE's views (Sec. 3.3.2, SimCLR) --------------------------------
def test_resized_crop_of_the_crop_size_is_the_fixed_crop():
    """scale (1, 1), ratio (1, 1): a size x size box at integer offsets, pixel for pixel."""
    x = torch.rand(16, 3, 36, 36)
    view, box = random_resized_crop(x, 32, torch.Generator().manual_seed(1), (1, 1), (1, 1))
    assert torch.equal(box.width, torch.full((16,), 32.0)) and box.flip.any() and (~box.flip).any()
    fixed = apply_crop(x, Crop(box.top.long(), box.left.long(), box.flip, 32))
    torch.testing.assert_close(view, fixed, atol=1e-5, rtol=0)


def test_resized_crop_boxes_follow_scale_and_ratio():
    x = torch.rand(2000, 1, 36, 36)
    _, box = random_resized_crop(x, 32, torch.Generator().manual_seed(2), (0.08, 1.0), (3 / 4, 4 / 3))
    area, aspect = box.width * box.height / 32**2, box.width / box.height
    assert area.min() >= 0.07 and area.max() <= 1.05  # rounding of the sides
    assert aspect.min() >= 0.7 and aspect.max() <= 1.42
    assert area.mean() == pytest.approx(0.54, abs=0.04)  # uniform in [0.08, 1]
    assert (box.left >= 0).all() and (box.left + box.width <= 36).all()
    assert (box.top >= 0).all() and (box.top + box.height <= 36).all()
    assert box.left.max() > 20 and box.top.max() > 20  # anywhere in the face, not only the centre


def test_resized_crop_landmarks_follow_the_pixels():
    """On an image whose channels are affine in x and y (bilinear sampling is exact there), each
    output pixel's value gives the input point it sampled; that point, moved as a landmark, lands
    on the output pixel (flipped views mirror it and swap left and right points)."""
    b, side, size = 64, 36, 32
    grid = torch.arange(side, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    x = torch.stack([xx / 100, yy / 100, 0.5 + 0 * xx])[None].repeat(b, 1, 1, 1)
    view, box = random_resized_crop(x, size, torch.Generator().manual_seed(3), (0.1, 1.0), (0.6, 1.6))
    g = torch.Generator().manual_seed(4)
    j = torch.randint(2, size - 2, (b, 49, 2), generator=g)  # away from the border clamp
    sampled = view[torch.arange(b)[:, None], :2, j[..., 1], j[..., 0]] * 100  # (b, 49, 2): x, y
    flipped = box.flip[:, None, None]
    points = torch.where(flipped, sampled[:, torch.tensor(FLIP)], sampled)  # undo the swap
    moved = resized_crop_landmarks(points, box)
    torch.testing.assert_close(moved, j.float(), atol=2e-3, rtol=0)


def test_views_take_the_resized_crop_only_when_asked():
    x = torch.rand(4, 3, 36, 36)
    fixed = ViewSpec.from_settings({"resized_crop": None}, 32, colour=True)
    simclr = ViewSpec.from_settings(
        {"resized_crop": {"scale": [0.08, 1], "ratio": [0.75, 4 / 3]}}, 32, colour=True
    )
    one_view = ViewSpec.from_settings(
        {"resized_crop": {"scale": [0.08, 1], "ratio": [0.75, 4 / 3]}}, 32, colour=False
    )
    assert fixed.resized_crop is None and one_view.resized_crop is None  # WCE, WFL: Sec. 4.1's crop
    assert simclr.resized_crop == ((0.08, 1.0), (0.75, 4 / 3))
    a, _ = augment_view(x, None, simclr, torch.Generator().manual_seed(0))
    b, _ = augment_view(x, None, fixed, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (4, 3, 32, 32) and not torch.equal(a, b)
