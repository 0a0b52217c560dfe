"""Batch augmentations in plain torch, on whatever device the batch lives (protocol.md).

- Before the crop (paper Sec. 4.1): a random similarity transform of the aligned face, in-plane
  rotation, uniform scaling and translation about the image centre (:func:`random_similarity`;
  the ranges are the harness's, docs/deviations.md), landmarks moved with the pixels.
- Training crops: a random ``input_size`` crop of the aligned ``cache_size`` face plus a horizontal
  flip (Sec. 4.1; every loss); test: the centre crop. AUNCE's views may instead take a random
  resized crop (Sec. 3.3.2, SimCLR's "random cropping and flipping followed by resizing back to
  original size"): a box of random area and aspect ratio resized to ``input_size``
  (:func:`random_resized_crop`; ``pretrain.resized_crop``).
- AUNCE views (SimCLR, Chen et al. 2020): the crop and flip, then with probability ``color_jitter``
  a colour distortion (brightness, contrast, saturation and hue strengths ``jitter_strengths``,
  SimCLR's 0.8, 0.8, 0.8, 0.2, in random order as torchvision's ColorJitter, hue rotated in YIQ
  space rather than HSV), grey-scale with probability 0.2, and with probability ``blur`` a Gaussian
  blur (kernel ``blur_kernel`` pixels, by default 10 % of the side as SimCLR; sigma in [0.1, 2]).
  :class:`ViewSpec` holds these settings; :func:`augment_view` draws one view.

Every random draw comes from a ``torch.Generator`` on the CPU, so the same seed gives the same
views on any device. Crops also return their offsets and flips so landmarks can follow the pixels.
Draws and constants go to the device with ``non_blocking=True`` and nothing reads a device value
back: a plain copy from the host waits for the device's queue to drain (a host synchronisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aunce.data.align import BORDER_VALUE

MEANS = {"imagenet": (0.485, 0.456, 0.406), "cifar": (0.4914, 0.4822, 0.4465)}
# "cifar": the values of the released code's transforms (its pre_process.py), not CIFAR-10's
# per-pixel std (0.2470, 0.2435, 0.2616)
STDS = {"imagenet": (0.229, 0.224, 0.225), "cifar": (0.2023, 0.1994, 0.2010)}
#: SimCLR's colour-jitter strengths (brightness, contrast, saturation, hue) at s = 1
SIMCLR_JITTER = (0.8, 0.8, 0.8, 0.2)
#: what a similarity transform shows outside the aligned face: the alignment's grey border
BORDER_FILL = BORDER_VALUE[0] / 255.0

# 49-point landmark index each point maps to under a horizontal flip (left <-> right).
_FLIP_49 = [
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

_FLIP_49_INDEX = torch.tensor(_FLIP_49)


@dataclass
class Crop:
    """Where each image of a batch was cropped, and whether it was flipped."""

    top: Tensor  # (B,) long
    left: Tensor  # (B,) long
    flip: Tensor  # (B,) bool
    size: int


def to_float(images_uint8: Tensor) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [0, 1]."""
    return images_uint8.permute(0, 3, 1, 2).float().div_(255.0)


def _on(t: Tensor, x: Tensor) -> Tensor:
    """A tensor drawn or built on the host, on ``x``'s device without waiting for its queue."""
    return t.to(x.device, non_blocking=True)


def normalize(x: Tensor, kind: str) -> Tensor:
    mean = _on(torch.tensor(MEANS[kind], dtype=x.dtype).view(1, 3, 1, 1), x)
    std = _on(torch.tensor(STDS[kind], dtype=x.dtype).view(1, 3, 1, 1), x)
    return (x - mean) / std


def random_crop_flip(
    x: Tensor, size: int, generator: torch.Generator, flip: bool = True
) -> tuple[Tensor, Crop]:
    """A random ``size x size`` crop per image and a horizontal flip with probability 0.5."""
    b, _, h, w = x.shape
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image size {h}x{w}")
    top = torch.randint(0, h - size + 1, (b,), generator=generator)
    left = torch.randint(0, w - size + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    crop = Crop(top, left, flips, size)
    return apply_crop(x, crop), crop


def center_crop(x: Tensor, size: int) -> tuple[Tensor, Crop]:
    b, _, h, w = x.shape
    crop = Crop(
        torch.full((b,), (h - size) // 2),
        torch.full((b,), (w - size) // 2),
        torch.zeros(b, dtype=torch.bool),
        size,
    )
    return apply_crop(x, crop), crop


def apply_crop(x: Tensor, crop: Crop) -> Tensor:
    b = x.shape[0]
    ar = torch.arange(crop.size)
    rows = _on(crop.top[:, None] + ar, x)  # (B, s)
    cols = crop.left[:, None] + ar
    cols = _on(torch.where(crop.flip[:, None], cols.flip(1), cols), x)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, s, s, C)
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass
class ResizedCrop:
    """A box of each image (top-left corner and side lengths in pixels, float64) resized to
    ``size`` x ``size``, and whether it was flipped."""

    top: Tensor  # (B,)
    left: Tensor  # (B,)
    height: Tensor  # (B,)
    width: Tensor  # (B,)
    flip: Tensor  # (B,) bool
    size: int


def random_resized_crop(
    x: Tensor,
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> tuple[Tensor, ResizedCrop]:
    """SimCLR's crop: per image a box of area ``scale`` x ``size``^2 (uniform) and aspect ratio
    width / height in ``ratio`` (log-uniform), at a uniform position inside the image, resized
    bilinearly to ``size`` x ``size``, and a horizontal flip with probability 0.5.

    As torchvision's ``RandomResizedCrop.get_params`` (side lengths rounded, the first of
    ``attempts`` draws that fits, else the ``size`` x ``size`` box), except that the area is a
    fraction of the ``size`` crop's rather than of the whole image: ``scale`` (1, 1) with ``ratio``
    (1, 1) is exactly :func:`random_crop_flip`'s crop, pixel for pixel. No antialiasing when a box
    larger than ``size`` is shrunk (torchvision's resize antialiases)."""
    b, _, h, w = x.shape
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image size {h}x{w}")
    (s_lo, s_hi), (r_lo, r_hi) = scale, ratio
    if not (0 < s_lo <= s_hi and 0 < r_lo <= r_hi):
        raise ValueError(f"resized crop needs 0 < scale and ratio ranges, got {scale}, {ratio}")
    u = torch.rand(b, attempts, 2, generator=generator, dtype=torch.float64)
    area = size * size * (s_lo + (s_hi - s_lo) * u[..., 0])
    aspect = torch.exp(math.log(r_lo) + (math.log(r_hi) - math.log(r_lo)) * u[..., 1])
    bw, bh = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    fits = (bw >= 1) & (bw <= w) & (bh >= 1) & (bh <= h)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first draw that fits
    found = fits.any(1)
    bw = torch.where(found, bw.gather(1, first)[:, 0], float(size))
    bh = torch.where(found, bh.gather(1, first)[:, 0], float(size))
    where = torch.rand(b, 2, generator=generator, dtype=torch.float64)
    top = torch.floor(where[:, 0] * (h - bh + 1)).clamp(max=h - bh)
    left = torch.floor(where[:, 1] * (w - bw + 1)).clamp(max=w - bw)
    flips = torch.rand(b, generator=generator) < 0.5
    crop = ResizedCrop(top, left, bh, bw, flips, size)
    # affine_grid's normalised coordinates (align_corners=False: -1 and 1 are the outer pixel
    # edges): output pixel j samples the box at left + (j + 1/2) width / size, mirrored if flipped
    sign = torch.where(flips, -1.0, 1.0).double()
    zero = torch.zeros(b, dtype=torch.float64)
    theta = torch.stack(
        [
            torch.stack([sign * bw / w, zero, (2 * left + bw) / w - 1], -1),
            torch.stack([zero, bh / h, (2 * top + bh) / h - 1], -1),
        ],
        1,
    ).to(torch.float32)
    grid = F.affine_grid(_on(theta, x), [b, 1, size, size], align_corners=False)
    view = F.grid_sample(
        x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )
    return view, crop


def resized_crop_landmarks(landmarks: Tensor, crop: ResizedCrop) -> Tensor:
    """Move (B, 49, 2) landmarks (pixel indices of the image) into the pixels of
    :func:`random_resized_crop`'s views; a flip mirrors x and swaps left/right points."""
    pts = landmarks.clone()
    for axis, start, length in ((0, crop.left, crop.width), (1, crop.top, crop.height)):
        start = _on(start, pts).to(pts.dtype)[:, None]
        factor = _on(crop.size / length, pts).to(pts.dtype)[:, None]
        pts[..., axis] = (pts[..., axis] + 0.5 - start) * factor - 0.5
    flipped = _on(crop.flip, pts)
    mirrored = pts[:, _on(_FLIP_49_INDEX, pts)]
    mirrored[..., 0] = crop.size - 1 - mirrored[..., 0]
    return torch.where(flipped[:, None, None], mirrored, pts)


def crop_landmarks(landmarks: Tensor, crop: Crop) -> Tensor:
    """Move (B, 49, 2) landmarks into crop coordinates; a flip mirrors x and swaps left/right points."""
    pts = landmarks.clone()
    pts[..., 0] -= _on(crop.left, pts).to(pts.dtype)[:, None]
    pts[..., 1] -= _on(crop.top, pts).to(pts.dtype)[:, None]
    flipped = _on(crop.flip, pts)
    mirrored = pts[:, _on(_FLIP_49_INDEX, pts)]
    mirrored[..., 0] = crop.size - 1 - mirrored[..., 0]
    return torch.where(flipped[:, None, None], mirrored, pts)


@dataclass
class Similarity:
    """A similarity transform per image of a batch, about the image centre ``c``, in pixels (x
    right, y down; a pixel's index is its centre): ``p' = scale R(angle) (p - c) + c + shift``."""

    angle: Tensor  # (B,) radians
    scale: Tensor  # (B,)
    shift: Tensor  # (B, 2) pixels, (x, y)
    height: int
    width: int

    def matrix(self) -> Tensor:
        """(B, 2, 3) float64 forward maps ``[A | t]`` with ``p' = A p + t`` (as cv2.warpAffine's M)."""
        cos, sin = torch.cos(self.angle.double()), torch.sin(self.angle.double())
        a = self.scale.double()[:, None, None] * torch.stack(
            [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1
        )  # (B, 2, 2)
        c = torch.tensor([(self.width - 1) / 2, (self.height - 1) / 2], dtype=torch.float64)
        t = c + self.shift.double() - a @ c
        return torch.cat([a, t[:, :, None]], 2)


def random_similarity(
    b: int,
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    rotation: float,
    scale: float,
    translation: float,
) -> Similarity:
    """Per image: an angle uniform in [-rotation, rotation] degrees, a scale uniform in
    [1 - scale, 1 + scale] and a shift uniform in [-translation, translation] of the side along
    each axis (drawn on the host from ``generator``)."""
    if not (rotation >= 0 and 0 <= scale < 1 and translation >= 0):
        raise ValueError(
            f"similarity ranges must be rotation >= 0, 0 <= scale < 1, translation >= 0; got "
            f"rotation {rotation}, scale {scale}, translation {translation}"
        )
    u = 2 * torch.rand(b, 4, generator=generator, dtype=torch.float64) - 1  # (B, 4) in [-1, 1)
    return Similarity(
        angle=u[:, 0] * math.radians(rotation),
        scale=1 + u[:, 1] * scale,
        shift=u[:, 2:] * translation * torch.tensor([width, height], dtype=torch.float64),
        height=height,
        width=width,
    )


def apply_similarity(x: Tensor, sim: Similarity, fill: float = BORDER_FILL) -> Tensor:
    """Warp (B, C, H, W) images by ``sim``: each output pixel q samples the input bilinearly at
    ``A^-1 (q - t)``, outside the image ``fill`` (by default the alignment's grey border), as
    cv2.warpAffine with a constant border of that value."""
    b, _, h, w = x.shape
    if (h, w) != (sim.height, sim.width) or b != len(sim.angle):
        raise ValueError(f"images {tuple(x.shape)} do not match the transform's batch and size")
    m = sim.matrix()
    inv_a = torch.linalg.inv(m[:, :, :2])  # on the host, float64: a 2x2 per image
    # affine_grid's normalised coordinates (align_corners=True: -1 and 1 are the corner pixels'
    # centres): p = c + D u with D = diag((W - 1) / 2, (H - 1) / 2)
    d = c = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)  # c: the centre
    theta_a = inv_a / d[None, :, None] * d[None, None, :]  # D^-1 A^-1 D
    theta_t = (inv_a @ (c - m[:, :, 2])[:, :, None])[:, :, 0] / d - c / d  # D^-1 (A^-1 (c - t) - c)
    theta = torch.cat([theta_a, theta_t[:, :, None]], 2).to(torch.float32)
    grid = F.affine_grid(_on(theta, x), [b, 1, h, w], align_corners=True)
    # zero padding of x - fill: the border blends into ``fill`` exactly as a constant border
    warped = F.grid_sample(
        x - fill, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return warped + fill


def similarity_landmarks(landmarks: Tensor, sim: Similarity) -> Tensor:
    """(B, 49, 2) landmarks in image pixels moved with :func:`apply_similarity`'s pixels."""
    m = _on(sim.matrix().to(torch.float32), landmarks).to(landmarks.dtype)
    return landmarks @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]


def _grey(x: Tensor) -> Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def color_distort(
    x: Tensor,
    generator: torch.Generator,
    p: float = 0.8,
    strengths: tuple[float, float, float, float] = SIMCLR_JITTER,
    p_grey: float = 0.2,
) -> Tensor:
    """SimCLR colour distortion on (B, 3, H, W) in [0, 1]; each image draws its own factors.

    ``strengths`` (brightness, contrast, saturation, hue) as torchvision's ``ColorJitter``: factors
    uniform in [1 - s, 1 + s] for the first three, a hue shift uniform in [-h, h] turns."""
    b = x.shape[0]

    def draw(n, lo, hi):
        return _on(lo + (hi - lo) * torch.rand(n, generator=generator), x).view(-1, 1, 1, 1)

    s_bright, s_contrast, s_sat, s_hue = strengths
    apply = _on(torch.rand(b, generator=generator) < p, x).view(-1, 1, 1, 1)
    bright = draw(b, 1 - s_bright, 1 + s_bright)
    contrast = draw(b, 1 - s_contrast, 1 + s_contrast)
    sat = draw(b, 1 - s_sat, 1 + s_sat)
    hue = draw(b, -s_hue, s_hue)
    order = torch.randperm(4, generator=generator).tolist()
    y = x
    for op in order:
        if op == 0:
            y = y * bright
        elif op == 1:
            mean = _grey(y).mean(dim=(1, 2, 3), keepdim=True)
            y = (y - mean) * contrast + mean
        elif op == 2:
            g = _grey(y)
            y = (y - g) * sat + g
        else:
            y = _rotate_hue(y, hue)
        y = y.clamp(0, 1)
    y = torch.where(apply, y, x)
    grey = _on(torch.rand(b, generator=generator) < p_grey, x).view(-1, 1, 1, 1)
    return torch.where(grey, _grey(y).expand_as(y), y)


_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)  # once on the host: inv on CUDA checks its result on the host


def _rotate_hue(x: Tensor, hue: Tensor) -> Tensor:
    """Rotate the chroma plane of YIQ by ``hue`` turns (one value per image)."""
    yiq = torch.einsum("ij,bjhw->bihw", _on(_RGB2YIQ, x).to(x.dtype), x)
    theta = 2 * torch.pi * hue.view(-1)
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return torch.einsum("ij,bjhw->bihw", _on(_YIQ2RGB, x).to(x.dtype), yiq)


def blur_kernel_size(side: int) -> int:
    """SimCLR's kernel: about 10 % of the image side, odd, at least 3."""
    return max(3, int(0.1 * side) // 2 * 2 + 1)


def gaussian_blur(
    x: Tensor, generator: torch.Generator, p: float = 0.5, kernel: int | None = None
) -> Tensor:
    """Per-image Gaussian blur with probability p: sigma U[0.1, 2], a ``kernel`` x ``kernel``
    kernel (odd; None: :func:`blur_kernel_size` of the side), reflected at the borders."""
    b, c, h, _ = x.shape
    k = blur_kernel_size(h) if kernel is None else kernel
    if k < 3 or k % 2 == 0:
        raise ValueError(f"blur kernel must be odd and at least 3, got {k}")
    sigma = _on(0.1 + 1.9 * torch.rand(b, generator=generator), x).to(x.dtype)
    apply = _on(torch.rand(b, generator=generator) < p, x)
    r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
    kern = kern / kern.sum(1, keepdim=True)  # (B, k)
    weight = kern.repeat_interleave(c, 0)  # (B*C, k)
    y = x.reshape(1, b * c, h, -1)
    y = F.conv2d(
        F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect"), weight.view(b * c, 1, 1, k), groups=b * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), weight.view(b * c, 1, k, 1), groups=b * c
    )
    y = y.view_as(x)
    return torch.where(apply.view(-1, 1, 1, 1), y, x)


def simclr_view(
    x: Tensor,
    size: int,
    generator: torch.Generator,
    *,
    color_jitter: float = 0.8,
    blur: float = 0.5,
) -> tuple[Tensor, Crop]:
    """One SimCLR view of a (B, 3, S, S) batch in [0, 1]: crop + flip, colour distortion, blur."""
    view, crop = random_crop_flip(x, size, generator)
    view = color_distort(view, generator, p=color_jitter)
    view = gaussian_blur(view, generator, p=blur)
    return view, crop


@dataclass(frozen=True)
class ViewSpec:
    """How a training view is drawn: the similarity transform (rotation in degrees, scale and
    translation as fractions; all 0: none), the crop and flip (for ``colour`` views with
    ``resized_crop`` ((scale range), (ratio range)) a random resized crop, else the fixed crop),
    and for ``colour`` views (AUNCE's) the SimCLR colour distortion and blur."""

    size: int
    similarity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    colour: bool = True
    color_jitter: float = 0.8
    jitter_strengths: tuple[float, float, float, float] = SIMCLR_JITTER
    grey: float = 0.2
    blur: float = 0.5
    blur_kernel: int | None = None
    resized_crop: tuple[tuple[float, float], tuple[float, float]] | None = None

    @classmethod
    def from_settings(cls, pretrain: dict, size: int, *, colour: bool, similarity: bool = True):
        """The views of a run's ``pretrain`` settings (config/schema.yaml); ``similarity=False``
        leaves the similarity transform out. The resized crop applies to ``colour`` views only."""
        sim = pretrain.get("similarity", {})
        resized = pretrain.get("resized_crop") if colour else None
        return cls(
            size=size,
            similarity=(
                (float(sim.get("rotation", 0)), float(sim.get("scale", 0)),
                 float(sim.get("translation", 0)))
                if similarity else (0.0, 0.0, 0.0)
            ),
            colour=colour,
            color_jitter=pretrain.get("color_jitter", 0.8),
            jitter_strengths=tuple(pretrain.get("jitter_strengths", SIMCLR_JITTER)),
            blur=pretrain.get("blur", 0.5),
            blur_kernel=pretrain.get("blur_kernel"),
            resized_crop=(
                (tuple(map(float, resized["scale"])), tuple(map(float, resized["ratio"])))
                if resized else None
            ),
        )  # fmt: skip


def augment_view(
    x: Tensor, landmarks: Tensor | None, spec: ViewSpec, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """One augmented view of (B, 3, S, S) images in [0, 1] and their (B, 49, 2) landmarks (None:
    none): similarity transform, crop and flip, then colour distortion and blur for colour views.
    Returns the view and the landmarks in its pixels."""
    if any(spec.similarity):
        rotation, scale, translation = spec.similarity
        b, _, h, w = x.shape
        sim = random_similarity(
            b, h, w, generator, rotation=rotation, scale=scale, translation=translation
        )
        x = apply_similarity(x, sim)
        landmarks = None if landmarks is None else similarity_landmarks(landmarks, sim)
    if spec.resized_crop is not None:
        view, box = random_resized_crop(x, spec.size, generator, *spec.resized_crop)
        landmarks = None if landmarks is None else resized_crop_landmarks(landmarks, box)
    else:
        view, crop = random_crop_flip(x, spec.size, generator)
        landmarks = None if landmarks is None else crop_landmarks(landmarks, crop)
    if spec.colour:
        view = color_distort(
            view, generator, p=spec.color_jitter, strengths=spec.jitter_strengths, p_grey=spec.grey
        )
        view = gaussian_blur(view, generator, p=spec.blur, kernel=spec.blur_kernel)
    return view, landmarks
