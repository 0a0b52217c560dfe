"""Landmark geometry shared by ROI Nets and JA-Net: the 49-point layout, AU centres, eye distances.

The 49 inner landmarks (the 68-point iBUG layout without the jaw and the inner-mouth corners, see
aunce/data/align.py), 0-based: 0-4 right brow (outer to inner), 5-9 left brow (inner to outer),
10-13 nose bridge (13 the tip), 14-18 nostrils, 19-24 right eye (19 outer corner, 20-21 upper lid,
22 inner corner, 23-24 lower lid), 25-30 left eye (25 inner corner, 26-27 upper lid, 28 outer corner,
29-30 lower lid), 31-42 outer lips (31 and 37 the corners, 34 the top of the upper lip, 40 the bottom
of the lower lip), 43-48 inner lips. "Right" is the subject's right, on the left of the image; a flip
swaps the points (``aunce.data.augment.crop_landmarks``), so the layout holds in every crop.

Each AU has two centres, one per side (or upper and lower lip): a landmark, or the mean of several,
shifted by a multiple of the inner-eye distance (points 22 and 25), the "scale" of EAC-Net and ROI Nets
(Li et al., 2017) and the "ruler" of JAA-Net (Shao et al., ECCV 2018, IJCV 2021). y grows downwards.

Sources: AUs 1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24 (BP4D) and 9, 25, 26 (DISFA) follow JAA-Net's
code (PyTorch-JAANet, ``AlignNet``), which follows EAC-Net's table; AUs 5 and 20, used by no published
rule we know, are the harness's: AU5 (upper lid raiser) at the centres of the upper lids, AU20 (lip
stretcher) a third of the scale outside each lip corner, where the stretch shows. JAA-Net measures the
scale as the horizontal distance of points 22 and 25; the harness takes their Euclidean distance,
the same on an aligned face and unchanged by a residual roll.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aunce.data.catalog import DATASET_AUS

NUM_LANDMARKS = 49
RIGHT_EYE, LEFT_EYE = tuple(range(19, 25)), tuple(range(25, 31))
INNER_EYE_CORNERS = (22, 25)

# AU -> two centres, each (landmarks averaged, dx, dy) with the shifts in inner-eye distances
AU_CENTRES: dict[int, tuple[tuple[tuple[int, ...], float, float], ...]] = {
    1: (((4,), 0.0, -1 / 2), ((5,), 0.0, -1 / 2)),  # half a scale above the inner brows
    2: (((1,), 0.0, -1 / 3), ((8,), 0.0, -1 / 3)),  # a third above the outer brows
    4: (((2,), 0.0, 1 / 3), ((7,), 0.0, 1 / 3)),  # a third below the brow centres
    5: (((20, 21), 0.0, 0.0), ((26, 27), 0.0, 0.0)),  # upper-lid centres (harness)
    6: (((24,), 0.0, 1.0), ((29,), 0.0, 1.0)),  # one scale below the lower lids: the cheeks
    7: (((21,), 0.0, 0.0), ((26,), 0.0, 0.0)),  # upper lids, inner half
    9: (((15,), 0.0, -1 / 2), ((17,), 0.0, -1 / 2)),  # half a scale above the nostrils
    10: (((43,), 0.0, 0.0), ((45,), 0.0, 0.0)),  # upper lip, inner contour
    12: (((31,), 0.0, 0.0), ((37,), 0.0, 0.0)),  # lip corners
    14: (((31,), 0.0, 0.0), ((37,), 0.0, 0.0)),
    15: (((31,), 0.0, 0.0), ((37,), 0.0, 0.0)),
    17: (((39,), 0.0, 1 / 2), ((41,), 0.0, 1 / 2)),  # half a scale below the lower lip: the chin
    20: (((31,), -1 / 3, 0.0), ((37,), 1 / 3, 0.0)),  # outside the lip corners (harness)
    23: (((34,), 0.0, 0.0), ((40,), 0.0, 0.0)),  # upper and lower lip centres
    24: (((34,), 0.0, 0.0), ((40,), 0.0, 0.0)),
    25: (((34,), 0.0, 0.0), ((40,), 0.0, 0.0)),
    26: (((39,), 0.0, 1 / 2), ((41,), 0.0, 1 / 2)),  # as AU17 (JAA-Net's DISFA rule)
}

#: The AU lists assumed when an AU-specific encoder is given only K (BP4D, DISFA, GFT order).
DEFAULT_AUS: dict[int, tuple[int, ...]] = {
    len(DATASET_AUS[name]): tuple(DATASET_AUS[name]) for name in ("bp4d", "disfa", "gft")
}


def default_aus(num_aus: int) -> tuple[int, ...]:
    """BP4D's 12, DISFA's 8 or GFT's 10 AUs by count; other counts must name their AUs."""
    if num_aus not in DEFAULT_AUS:
        raise ValueError(
            f"no default AU list for {num_aus} AUs (defaults: "
            + ", ".join(f"{k}: {list(v)}" for k, v in DEFAULT_AUS.items())
            + "); pass aus=[...]"
        )
    return DEFAULT_AUS[num_aus]


def check_landmarks(landmarks: Tensor | None, batch: int, what: str) -> None:
    """A ``ValueError`` unless ``landmarks`` is (batch, 49, 2)."""
    if landmarks is None:
        raise ValueError(
            f"{what} needs landmarks: call it as enc(images, landmarks) with (B, 49, 2) landmarks "
            "in crop pixels (the cache stores them; aunce.data.augment.crop_landmarks moves them)"
        )
    if landmarks.shape != (batch, NUM_LANDMARKS, 2):
        raise ValueError(
            f"{what} expects landmarks ({batch}, {NUM_LANDMARKS}, 2), got {tuple(landmarks.shape)}"
        )


def inner_eye_distance(landmarks: Tensor) -> Tensor:
    """(B, 49, 2) -> (B,): the distance of the inner eye corners, the scale of the AU-centre rules."""
    a, b = INNER_EYE_CORNERS
    return (landmarks[:, a] - landmarks[:, b]).norm(dim=-1)


def inter_ocular_distance(landmarks: Tensor) -> Tensor:
    """(B, 49, 2) -> (B,): the distance of the eye centres (means of points 19-24 and 25-30)."""
    right = landmarks[:, list(RIGHT_EYE)].mean(1)
    left = landmarks[:, list(LEFT_EYE)].mean(1)
    return (right - left).norm(dim=-1)


class AUCentres(nn.Module):
    """(B, 49, 2) landmarks -> (B, K, 2, 2) AU centres (two per AU, x and y), in the same pixels.

    The rules of :data:`AU_CENTRES` as one matrix product: each centre is a fixed average of
    landmarks plus a fixed shift times the inner-eye distance.
    """

    def __init__(self, aus: Sequence[int]):
        super().__init__()
        unknown = [au for au in aus if au not in AU_CENTRES]
        if unknown:
            raise ValueError(f"no centre rule for AU {unknown} (known: {sorted(AU_CENTRES)})")
        self.aus = tuple(aus)
        average = torch.zeros(2 * len(aus), NUM_LANDMARKS)
        shift = torch.zeros(2 * len(aus), 2)
        for k, au in enumerate(aus):
            for side, (points, dx, dy) in enumerate(AU_CENTRES[au]):
                average[2 * k + side, list(points)] = 1.0 / len(points)
                shift[2 * k + side] = torch.tensor([dx, dy])
        # not saved with the weights: they follow from ``aus``
        self.register_buffer("average", average, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, landmarks: Tensor) -> Tensor:
        scale = inner_eye_distance(landmarks)  # (B,)
        centres = torch.einsum("cp,bpx->bcx", self.average.to(landmarks), landmarks)
        centres = centres + self.shift.to(landmarks) * scale[:, None, None]  # (B, 2K, 2)
        return centres.view(len(landmarks), len(self.aus), 2, 2)
