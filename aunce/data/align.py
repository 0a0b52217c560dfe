"""Face alignment by JAA-Net's similarity transform from 49 inner landmarks (shared spec datasets.md).

Procedure (Shao et al., JAA-Net, as used for BP4D/DISFA in this literature):
eye centres are the means of 49-point indices 19-24 and 25-30; the face is rotated so that the eyes are
level; the bounding box of both eye centres, the nose tip (13) and the mouth corners (31, 37) gives the
centre and, with ``half = 0.5 * 2.9 * max(width, height)``, the extent; that square is scaled onto an
``S x S`` output (256 for the 224-crop protocol, 200 for JA-Net's) with a bilinear warp and a grey (128)
border. The landmarks go through the same matrix and are kept.
"""

from __future__ import annotations

import numpy as np

BOX_ENLARGE = 2.9
BORDER_VALUE = (128, 128, 128)

# 68-point layout (iBUG): drop the 17 jaw points and the inner-mouth corners 60 and 64.
_IDX_68_TO_49 = np.array([i for i in range(17, 68) if i not in (60, 64)])
# 66-point layout (DISFA): drop the 17 jaw points (its inner mouth has no corner points).
_IDX_66_TO_49 = np.arange(17, 66)


def to_49(landmarks: np.ndarray) -> np.ndarray:
    """Map (68, 2), (66, 2) or (49, 2) landmarks to the 49 inner points, shape (49, 2)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    n = landmarks.shape[-2]
    if n == 68:
        return landmarks[..., _IDX_68_TO_49, :]
    if n == 66:
        return landmarks[..., _IDX_66_TO_49, :]
    if n == 49:
        return landmarks
    raise ValueError(f"landmarks must have 68, 66 or 49 points, got {n}")


def alignment_matrix(landmarks49: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform that maps a face with these 49 landmarks onto ``size x size``."""
    pts = np.asarray(landmarks49, dtype=np.float64)
    if pts.shape != (49, 2):
        raise ValueError(f"expected (49, 2) landmarks, got {pts.shape}")
    left_eye = pts[19:25].mean(axis=0)
    right_eye = pts[25:31].mean(axis=0)
    dx, dy = right_eye - left_eye
    dist = float(np.hypot(dx, dy))
    if dist == 0.0:
        raise ValueError("degenerate landmarks: both eye centres coincide")
    cos, sin = dx / dist, dy / dist
    rotate = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    anchors = np.stack([left_eye, right_eye, pts[13], pts[31], pts[37]])
    rotated = anchors @ rotate[:2, :2].T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    cx, cy = (lo + hi) / 2.0
    half = 0.5 * BOX_ENLARGE * float(np.max(hi - lo))
    scale = (size - 1) / 2.0 / half
    place = np.array(
        [[scale, 0.0, scale * (half - cx)], [0.0, scale, scale * (half - cy)], [0.0, 0.0, 1.0]]
    )
    return (place @ rotate)[:2]


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Align one face. Returns the ``size x size`` image and its 49 landmarks in output pixels."""
    import cv2

    pts49 = to_49(landmarks)
    matrix = alignment_matrix(pts49, size)
    aligned = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BORDER_VALUE,
    )
    return aligned, apply_matrix(matrix, pts49).astype(np.float32)


def resize_face(
    image: np.ndarray, landmarks: np.ndarray | None, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """For already-aligned datasets: resize to ``size`` and scale the landmarks (NaN if none)."""
    import cv2

    h, w = image.shape[:2]
    out = cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    )
    if landmarks is None:
        return out, np.full((49, 2), np.nan, dtype=np.float32)
    pts49 = to_49(landmarks) * np.array([size / w, size / h])
    return out, pts49.astype(np.float32)
