"""Synthetic AU datasets: procedurally rendered faces whose action units are known.

Each profile mirrors one real dataset (shared spec datasets.md): its AU list, the occurrence rates of
the paper's Table 1, its subject partitions or fixed split, and a characteristic domain (pose,
lighting). A face is a 68-point iBUG landmark template, perturbed per subject (identity), deformed
per frame by FACS-grounded AU displacements of continuous intensity 0-5 plus the appearance changes
landmarks cannot show (wrinkles, bulges, dimples), posed (roll, scale, translation, simulated yaw),
drawn with OpenCV, lit and given sensor noise.

Labels come from temporally smooth, correlated latent processes per sequence (an AR(1) process per
AU, correlated across AUs so that 1 co-occurs with 2, 6 with 12, 25 with 26, ...; a per-subject
offset varies each subject's base rates). Generation runs in two phases: first every subject's
latent processes, then one threshold per AU chosen so that the generated training set shows exactly
the occurrence rate of the paper's Table 1 (at any size), then the rendering, in parallel across
processes. An AU's intensity is ``clip(2 + 2 (latent - threshold), 0, 5)`` and it is labelled
active at intensity >= 2 (DISFA's rule), so frames just below threshold show a faint deformation
with a negative label, as in real coding.

Same seed, byte-identical output, whatever the number of worker processes: every subject draws from
its own children of ``numpy.random.SeedSequence(seed)``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.data.catalog import DATASET_AUS, OCCURRENCE_RATES, PARTITIONS, au_columns
from aunce.io import atomic_dir, read_json, write_json

GENERATOR_VERSION = 3  # 3: calibrated difficulty, coder noise, ceiling.json
#: The ceiling row of synthetic tables (``ceiling.json`` of each generated dataset).
CEILING_LABEL = "Ceiling (true AU states)"
MAX_LABEL_NOISE = 0.5  # label_noise must lie in [0, MAX_LABEL_NOISE)
LABEL_VALUES = (-1, 0, 1)  # unknown, inactive, active


@dataclass(frozen=True)
class Profile:
    """What a synthetic stand-in mirrors of its real dataset."""

    name: str
    # "cv3": three subject partitions; "fixed": train/test; "validation": train/validation;
    # "test": test only
    split: str
    n_subjects: int
    frames_per_subject: int
    sequences: tuple[str, ...]
    roll_deg: float = 4.0  # std of in-plane rotation
    yaw: float = 0.15  # std of simulated yaw (radians)
    light: tuple[float, float] = (0.85, 1.15)  # range of global gain
    light_gradient: float = 0.15  # strength of a directional illumination gradient
    noise_std: float = 3.0  # sensor noise (grey levels)
    test_fraction: float = 0.0  # fixed splits: fraction of subjects held out
    invalid_fraction: float = 0.0  # Aff-Wild2: fraction of frames coded -1 (invalid)
    aus: tuple[int, ...] = field(default=())

    @property
    def rates(self) -> dict[int, float]:
        return {au: OCCURRENCE_RATES[self.name][au] / 100.0 for au in self.aus}


PROFILES: dict[str, Profile] = {
    "bp4d": Profile("bp4d", "cv3", 41, 24, tuple(f"T{i}" for i in range(1, 9)),
                    aus=tuple(DATASET_AUS["bp4d"])),
    "disfa": Profile("disfa", "cv3", 27, 24, ("video",), roll_deg=3.0, yaw=0.1,
                     aus=tuple(DATASET_AUS["disfa"])),
    "gft": Profile("gft", "fixed", 96, 16, ("task",), roll_deg=8.0, yaw=0.35, light=(0.6, 1.0),
                   light_gradient=0.35, noise_std=5.0, test_fraction=18 / 96,
                   aus=tuple(DATASET_AUS["gft"])),
    "bp4d_plus": Profile("bp4d_plus", "test", 140, 8, ("T1", "T6", "T7", "T8"),
                         aus=tuple(DATASET_AUS["bp4d_plus"])),
    "affwild2": Profile("affwild2", "validation", 60, 24, ("clip",), roll_deg=10.0, yaw=0.4,
                        light=(0.5, 1.2), light_gradient=0.4, noise_std=6.0, test_fraction=0.3,
                        invalid_fraction=0.02, aus=tuple(DATASET_AUS["affwild2"])),
}  # fmt: skip

# Pairs of AUs whose latent processes are correlated (FACS co-occurrences seen in BP4D/DISFA).
CO_OCCURRENCE = {
    (1, 2): 0.8, (6, 12): 0.7, (6, 7): 0.5, (25, 26): 0.6, (10, 12): 0.5, (17, 24): 0.4,
    (23, 24): 0.5, (4, 7): 0.3, (9, 10): 0.4, (15, 17): 0.4, (12, 15): -0.3, (1, 4): -0.2,
    (12, 25): 0.3, (6, 10): 0.4, (7, 10): 0.3, (14, 24): 0.2,
}  # fmt: skip
TEMPORAL_CORRELATION = 0.9  # AR(1) coefficient between consecutive frames of a sequence
SUBJECT_SHARE = 0.3  # share of latent variance that is a per-subject offset (base-rate variation)
SUPERSAMPLE = 2  # faces are drawn at 2x and area-downscaled: smooth edges, sub-pixel detail
# How hard the stand-ins are (docs/synthetic.md, "Difficulty"): calibrated so that WCE at the
# default's budget learns about half to three quarters of what MEGraph + WCE learns on the real
# datasets beyond the all-positive predictor, measured on validation subjects of the training folds
# (benchmarks/standins.py; BENCHMARKS.md, "Stand-ins that carry evidence").
INTENSITY_SLOPE = 6.0  # intensity units per unit of latent: few frames sit near the threshold
CODER_NOISE = 0.3  # std of the coder's error (intensity units): a label is the coder's judgement
AU_GAIN = 2.0  # every AU's landmark displacement, x2 of its FACS size: visible on 36 px faces
SHADE_GAIN = 1.5  # every AU's appearance cue (wrinkles, bulges, lip colour)
#: Per AU, a factor on both (1 where absent): the common AUs' cues stronger, the brows' weaker, so
#: that the stand-ins' per-AU difficulty follows the real datasets' (docs/synthetic.md).
AU_VISIBILITY: dict[int, float] = {
    1: 0.8, 2: 0.8, 4: 0.8, 6: 2.0, 7: 2.2, 9: 2.0, 10: 1.5, 14: 2.2, 15: 1.3, 17: 1.6,
    23: 3.0, 24: 3.0,
}  # fmt: skip
LIP_PRESS_PALLOR = 0.6  # AU 24: share of the lips' colour lost to the skin's, per 5 shade units
LIP_TIGHTEN_SHADE = 1.5  # AU 23: depth of the dark line along the lips' margin, per shade unit


# --------------------------------------------------------------------------------------------
# Geometry: the 68-point template in face units (x right, y down; the face spans about [-1, 1]).
# --------------------------------------------------------------------------------------------
def _template() -> np.ndarray:
    pts = np.zeros((68, 2))
    t = np.linspace(0.0, 1.0, 17)
    phi = np.pi - np.pi * t
    pts[0:17, 0] = 0.9 * np.cos(phi)
    pts[0:17, 1] = -0.2 + 1.15 * np.sin(phi)
    s = np.linspace(0.0, 1.0, 5)
    pts[17:22, 0] = -0.75 + 0.55 * s
    pts[17:22, 1] = -0.47 - 0.08 * np.sin(np.pi * (0.3 + 0.7 * s))
    pts[22:27, 0] = -pts[17:22, 0][::-1]
    pts[22:27, 1] = pts[17:22, 1][::-1]
    pts[27:31] = [[0, -0.3], [0, -0.15], [0, 0.0], [0, 0.15]]
    pts[31:36] = [[-0.18, 0.25], [-0.09, 0.28], [0, 0.3], [0.09, 0.28], [0.18, 0.25]]
    pts[36:42] = [[-0.57, -0.25], [-0.47, -0.31], [-0.37, -0.31], [-0.27, -0.25],
                  [-0.37, -0.2], [-0.47, -0.2]]  # fmt: skip
    pts[42:48] = pts[36:42][[3, 2, 1, 0, 5, 4]] * [-1, 1]
    pts[48:60] = [[-0.32, 0.55], [-0.2, 0.49], [-0.08, 0.47], [0, 0.48], [0.08, 0.47],
                  [0.2, 0.49], [0.32, 0.55], [0.2, 0.63], [0.08, 0.66], [0, 0.67],
                  [-0.08, 0.66], [-0.2, 0.63]]  # fmt: skip
    pts[60:68] = [[-0.26, 0.55], [-0.08, 0.53], [0, 0.53], [0.08, 0.53], [0.26, 0.55],
                  [0.08, 0.57], [0, 0.57], [-0.08, 0.57]]  # fmt: skip
    return pts


TEMPLATE = _template()

# Depth of each landmark (face units) for the simulated yaw: the nose sticks out, the jaw does not.
DEPTH = np.concatenate([
    0.1 * np.sin(np.linspace(0, np.pi, 17)),  # jaw: edges at depth 0, chin forward
    np.full(10, 0.25), [0.3, 0.4, 0.5, 0.6], np.full(5, 0.4),  # brows, nose bridge, nostrils
    np.full(12, 0.2), np.full(12, 0.3), np.full(8, 0.28),  # eyes, outer lips, inner lips
])  # fmt: skip

_R_BROW, _L_BROW = np.arange(17, 22), np.arange(22, 27)
_UPPER_OUTER_LIP, _LOWER_OUTER_LIP = np.arange(49, 54), np.arange(55, 60)
_UPPER_INNER_LIP, _LOWER_INNER_LIP = np.array([61, 62, 63]), np.array([65, 66, 67])
_CORNERS = np.array([48, 54, 60, 64])
_LEFT_CORNERS, _RIGHT_CORNERS = np.array([48, 60]), np.array([54, 64])

#: The AUs the renderer knows (FACS names in AU_NAMES).
AU_NAMES = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 6: "cheek raiser",
    7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser", 12: "lip corner puller",
    14: "dimpler", 15: "lip corner depressor", 17: "chin raiser", 23: "lip tightener",
    24: "lip presser", 25: "lips part", 26: "jaw drop",
}  # fmt: skip


def _au_displacements() -> dict[int, np.ndarray]:
    """Landmark displacement (face units) of each AU at intensity 5; intensity scales it linearly.

    Sizes follow how far each action moves the face in FACS. AU 23 and 24 move landmarks by two to
    three hundredths of a face unit (about half a pixel at 64 px when half-active) and add no
    wrinkle: they stay hard, as they are on real data (F1 around 40-55 on BP4D).
    """
    d = {au: np.zeros((68, 2)) for au in AU_NAMES}
    for w, pair in zip([1.0, 0.65, 0.3], [(21, 22), (20, 23), (19, 24)], strict=True):
        d[1][list(pair), 1] = -0.16 * w  # inner brow ends rise most
    for w, pair in zip([1.0, 0.8, 0.4], [(17, 26), (18, 25), (19, 24)], strict=True):
        d[2][list(pair), 1] = -0.15 * w
    d[4][_R_BROW, 1] = d[4][_L_BROW, 1] = 0.1
    d[4][_R_BROW, 0], d[4][_L_BROW, 0] = 0.06, -0.06
    d[6][[40, 41, 46, 47], 1] = -0.045
    d[6][_CORNERS, 1] = -0.02
    d[7][[37, 38, 43, 44], 1] = 0.04
    d[7][[40, 41, 46, 47], 1] = -0.045
    d[9][[31, 35], 1], d[9][[32, 33, 34], 1] = -0.07, -0.05
    d[9][[21, 22], 1] = 0.05
    d[10][_UPPER_OUTER_LIP, 1] = -0.09
    d[10][_UPPER_INNER_LIP, 1] = -0.06
    d[12][_LEFT_CORNERS, 0], d[12][_RIGHT_CORNERS, 0] = -0.1, 0.1
    d[12][_CORNERS, 1] = -0.1
    d[14][_LEFT_CORNERS, 0], d[14][_RIGHT_CORNERS, 0] = -0.04, 0.04
    d[14][_CORNERS, 1] = -0.015
    d[15][_CORNERS, 1] = 0.1
    d[15][_LEFT_CORNERS, 0], d[15][_RIGHT_CORNERS, 0] = 0.015, -0.015
    d[17][_LOWER_OUTER_LIP, 1] = -0.06
    d[17][_LOWER_INNER_LIP, 1] = -0.04
    d[17][6:11, 1] = -0.06
    d[23][_UPPER_OUTER_LIP, 1] = 0.015
    d[23][_LOWER_OUTER_LIP, 1] = -0.02
    d[23][_LEFT_CORNERS, 0], d[23][_RIGHT_CORNERS, 0] = 0.03, -0.03
    d[24][_UPPER_OUTER_LIP, 1] = 0.03
    d[24][_LOWER_OUTER_LIP, 1] = -0.035
    d[25][_LOWER_INNER_LIP, 1] = 0.09
    d[25][_UPPER_INNER_LIP, 1] = -0.02
    d[25][_LOWER_OUTER_LIP, 1] = 0.04
    d[26][5:12, 1] = 0.14 * np.sin(np.linspace(0.3, np.pi - 0.3, 7))
    d[26][_LOWER_OUTER_LIP, 1] = 0.14
    d[26][_LOWER_INNER_LIP, 1] = 0.15
    return d


AU_DISPLACEMENT = _au_displacements()


@dataclass
class Identity:
    """One synthetic subject: face geometry and appearance that stay fixed across frames."""

    shape: np.ndarray  # (68, 2) subject-specific neutral landmarks
    skin: np.ndarray  # BGR
    brow: np.ndarray
    lip: np.ndarray
    iris: np.ndarray
    hair: np.ndarray
    background: np.ndarray
    brow_thickness: float
    texture: np.ndarray  # (S*ss, S*ss, 1) float32 skin texture, in grey levels


def make_identity(rng: np.random.Generator, size: int) -> Identity:
    import cv2

    shape = TEMPLATE.copy()
    shape[:, 0] *= rng.uniform(0.85, 1.12)  # face width
    shape[:, 1] *= rng.uniform(0.92, 1.08)  # face length
    eye_spread = rng.uniform(-0.05, 0.05)
    shape[36:42, 0] -= eye_spread
    shape[42:48, 0] += eye_spread
    shape[17:27, 1] += rng.uniform(-0.05, 0.05)  # brow height
    shape[48:68, 0] *= rng.uniform(0.85, 1.15)  # mouth width
    shape[48:68, 1] += rng.uniform(-0.05, 0.05)  # mouth height
    shape[27:36, 1] *= rng.uniform(0.9, 1.1)  # nose length
    shape += rng.normal(0.0, 0.01, size=shape.shape)
    tone = rng.uniform(0.25, 1.0)
    skin = np.array([90 + 100 * tone, 120 + 95 * tone, 150 + 95 * tone]) * rng.uniform(
        0.95, 1.05, 3
    )
    big = size * SUPERSAMPLE
    coarse = rng.normal(0, 3.0, (max(2, big // 8), max(2, big // 8))).astype(np.float32)
    texture = cv2.resize(coarse, (big, big), interpolation=cv2.INTER_CUBIC)[..., None]
    return Identity(
        shape=shape,
        skin=np.clip(skin, 0, 255),
        brow=np.clip(skin * rng.uniform(0.2, 0.45), 0, 255),
        lip=np.clip(skin * [0.75, 0.7, 1.0] * rng.uniform(0.8, 0.95), 0, 255),
        iris=rng.uniform(20, 110, 3),
        hair=rng.uniform(10, 120, 3),
        background=rng.uniform(40, 220, 3),
        brow_thickness=rng.uniform(0.045, 0.075),
        texture=texture,
    )


_UPPER_LIDS, _LOWER_LIDS = np.array([37, 38, 43, 44]), np.array([41, 40, 47, 46])  # pairs by x


def deform(shape: np.ndarray, intensities: dict[int, float]) -> np.ndarray:
    """Apply AU displacements (intensity 0-5) to a neutral 68-point shape. Lids and lips that the
    summed displacements would push through each other close instead (a squeezed eye, pressed
    lips)."""
    out = shape.copy()
    for au, value in intensities.items():
        if value > 0:
            out += AU_DISPLACEMENT[au] * (AU_GAIN * AU_VISIBILITY.get(au, 1.0) * value / 5.0)
    # top to bottom at the same x: the lids; the lips' outer upper, inner upper, inner lower and
    # outer lower margins (a lip pressed thin stays a thin lip)
    for upper, lower in ((_UPPER_LIDS, _LOWER_LIDS), (_UPPER_OUTER_LIP[1:4], _UPPER_INNER_LIP),
                         (_UPPER_INNER_LIP, _LOWER_INNER_LIP[::-1]),
                         (_LOWER_INNER_LIP[::-1], _LOWER_OUTER_LIP[3:0:-1])):  # fmt: skip
        out[lower, 1] = np.maximum(out[lower, 1], out[upper, 1] + 0.005)
    return out


def pose(
    points: np.ndarray, roll: float, scale: float, shift: np.ndarray, yaw: float, size: int
) -> np.ndarray:
    """Face units -> pixels: simulated yaw (rotation about the vertical axis), roll, scale, shift."""
    x = points[:, 0] * np.cos(yaw) + DEPTH * np.sin(yaw)
    y = points[:, 1]
    c, s = np.cos(roll), np.sin(roll)
    xr, yr = c * x - s * y, s * x + c * y
    half = size / 2.0
    return np.stack([half + shift[0] + scale * half * xr, half + shift[1] + scale * half * yr], 1)


class _Canvas:
    """A super-sampled BGR canvas plus a shading mask (wrinkles darken, bulges brighten)."""

    def __init__(self, size: int, background: np.ndarray):
        import cv2

        self.cv2 = cv2
        big = size * SUPERSAMPLE
        self.img = np.empty((big, big, 3), np.uint8)
        self.img[:] = background.astype(np.uint8)
        self.shade = np.zeros((big, big), np.float32)

    @staticmethod
    def fixed(points) -> np.ndarray:
        return np.round(np.asarray(points) * SUPERSAMPLE * 16).astype(np.int32)  # 4 fraction bits

    def poly(self, points, colour, closed=False, width=1.0, fill=False):
        pts = [self.fixed(points)]
        if fill:
            self.cv2.fillPoly(self.img, pts, colour.tolist(), self.cv2.LINE_AA, shift=4)
        else:
            w = max(1, int(round(width * SUPERSAMPLE)))
            self.cv2.polylines(self.img, pts, closed, colour.tolist(), w, self.cv2.LINE_AA, shift=4)

    def wrinkle(self, p0, p1, strength, width):
        """A dark line whose depth grows with the AU's intensity (0-5)."""
        if strength > 0:
            a, b = self.fixed(p0), self.fixed(p1)
            w = max(1, int(round(width * SUPERSAMPLE)))
            self.cv2.line(
                self.shade,
                tuple(a),
                tuple(b),
                min(1.0, strength / 5.0) * 0.45,
                w,
                self.cv2.LINE_AA,
                shift=4,
            )

    def bulge(self, centre, axes, strength):
        """A brighter ellipse (raised cheek)."""
        if strength > 0:
            c = tuple(self.fixed(centre))
            ax = tuple(int(v) for v in self.fixed(axes))
            self.cv2.ellipse(
                self.shade,
                c,
                ax,
                0,
                0,
                360,
                -min(1.0, strength / 5.0) * 0.12,
                -1,
                self.cv2.LINE_AA,
                shift=4,
            )


def render(
    identity: Identity,
    pts: np.ndarray,
    intensities: dict[int, float],
    size: int,
    rng: np.random.Generator,
    profile: Profile,
    light: tuple[float, np.ndarray],
) -> np.ndarray:
    """Draw one face (uint8 BGR, ``size x size``) from its posed landmarks ``pts`` (pixels)."""
    import cv2

    cv = _Canvas(size, identity.background)
    P = pts
    unit = float(np.linalg.norm(P[16] - P[0])) / 1.8  # one face unit, in output pixels
    up = (P[8] - P[27]) / np.linalg.norm(P[8] - P[27])  # face "down" direction
    right = np.array([-up[1], up[0]])
    g = {au: SHADE_GAIN * AU_VISIBILITY.get(au, 1.0) * intensities.get(au, 0.0) for au in AU_NAMES}

    # hair, face, skin texture
    top = (P[19] + P[24]) / 2 - (P[8] - P[27]) * 0.55
    cv2.ellipse(
        cv.img,
        tuple(cv.fixed(top)),
        (int(unit * 1.05 * SUPERSAMPLE * 16), int(unit * 0.7 * SUPERSAMPLE * 16)),
        0,
        0,
        360,
        identity.hair.tolist(),
        -1,
        cv2.LINE_AA,
        shift=4,
    )
    forehead = np.array(
        [
            P[26] + (P[26] - P[45]) * 0.3,
            P[24] - (P[8] - P[27]) * 0.35,
            P[19] - (P[8] - P[27]) * 0.35,
            P[17] + (P[17] - P[36]) * 0.3,
        ]
    )
    face = np.concatenate([P[0:17], forehead])
    cv.poly(face, identity.skin, fill=True)
    mask = np.zeros(cv.shade.shape, np.uint8)
    cv2.fillPoly(mask, [cv.fixed(face)], 1, cv2.LINE_8, shift=4)

    # appearance cues that landmarks cannot show, drawn into the shading mask
    for eye in (np.arange(36, 42), np.arange(42, 48)):  # raised cheeks
        cv.bulge(P[eye].mean(0) + (P[33] - P[27]) * 0.45, (0.2 * unit, 0.1 * unit), g[6])
    for corner, out in ((36, -1), (45, 1)):  # crow's feet
        for k in (-1, 0, 1):
            p0 = P[corner] + (out * 0.05 * right + k * 0.05 * up) * unit
            cv.wrinkle(
                p0, p0 + (out * 0.12 * right + k * 0.06 * up) * unit, g[6] * 0.8, 0.015 * unit
            )
    mid = (P[21] + P[22]) / 2
    if g[1] + g[2] > 0:  # forehead wrinkles: central for AU 1, across for AU 2
        for k in (0.18, 0.28):
            span = (0.25 if g[2] < 1 else 0.5) * unit
            c = mid - k * unit * up
            cv.wrinkle(c - span * right, c + span * right, max(g[1], g[2]) * 0.8, 0.02 * unit)
    for dx in (-0.05, 0.05):  # glabella lines
        c = mid + dx * unit * right
        cv.wrinkle(c - 0.08 * unit * up, c + 0.08 * unit * up, g[4], 0.02 * unit)
    for dy in (-0.08, -0.02):  # nose wrinkles
        c = P[28] + dy * unit * up
        cv.wrinkle(c - 0.08 * unit * right, c + 0.08 * unit * right, g[9], 0.02 * unit)
    nasolabial = max(g[6] * 0.4, g[9] * 0.6, g[10], g[12] * 0.8)
    for wing, corner, out in ((31, 48, -1), (35, 54, 1)):
        cv.wrinkle(
            P[wing] + out * 0.06 * unit * right,
            P[corner] + (out * 0.08 * right + 0.02 * up) * unit,
            1.0 + nasolabial * 0.9,
            0.02 * unit,
        )
    for corner, out in ((48, -1), (54, 1)):  # dimples
        c = P[corner] + out * 0.07 * unit * right
        cv.wrinkle(c - 0.05 * unit * up, c + 0.05 * unit * up, g[14] * 2.0, 0.04 * unit)
    for eye in (np.arange(40, 42), np.arange(46, 48)):  # tightened lower lids bulge
        c = P[eye].mean(0) + 0.05 * unit * up
        cv.wrinkle(c - 0.08 * unit * right, c + 0.08 * unit * right, g[7] * 1.2, 0.03 * unit)
    c = (P[57] + P[8]) / 2  # chin boss
    cv.wrinkle(c - 0.1 * unit * right, c + 0.1 * unit * right, g[17], 0.02 * unit)

    # features
    cv.poly(P[27:31], identity.skin * 0.7, width=0.025 * unit)
    cv.poly(P[31:36], identity.skin * 0.6, width=0.03 * unit)
    for eye in (np.arange(36, 42), np.arange(42, 48)):
        cv.poly(P[eye], np.array([235.0, 235.0, 235.0]), fill=True)
        r = max(1, int(0.055 * unit * SUPERSAMPLE * 16))
        cv2.circle(
            cv.img,
            tuple(cv.fixed(P[eye].mean(0))),
            r,
            identity.iris.tolist(),
            -1,
            cv2.LINE_AA,
            shift=4,
        )
        cv.poly(P[eye], identity.skin * 0.45, closed=True, width=0.02 * unit)
    for brow in (_R_BROW, _L_BROW):
        cv.poly(P[brow], identity.brow, width=identity.brow_thickness * unit)
    pressed = min(0.85, LIP_PRESS_PALLOR * g[24] / 5)  # pressed lips lose their colour
    cv.poly(P[48:60], identity.lip * (1.0 - pressed) + identity.skin * pressed, fill=True)
    for a, b in zip(range(48, 60), [*range(49, 60), 48], strict=True):  # tightened lips' margin
        cv.wrinkle(P[a], P[b], g[23] * LIP_TIGHTEN_SHADE, 0.03 * unit)
    # the inner lips' gap, point above point (65-67 run right to left)
    opening = float(np.mean(np.linalg.norm(P[_LOWER_INNER_LIP[::-1]] - P[_UPPER_INNER_LIP], axis=1)))
    if opening > 0.02 * unit:
        cv.poly(P[60:68], np.array([40.0, 30.0, 60.0]), fill=True)
        if opening > 0.06 * unit:  # teeth
            cv.poly(P[[60, 61, 62, 63, 64]], np.array([225.0, 225.0, 225.0]), fill=True)
    cv.poly(P[[60, 61, 62, 63, 64]], identity.lip * 0.55, width=0.02 * unit)

    big = cv.img.astype(np.float32)
    big += identity.texture * mask[..., None]
    big *= (1.0 - cv.shade)[..., None]
    img = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    gain, gradient = light
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
    img *= (gain * (1.0 + profile.light_gradient * (gradient[0] * xx + gradient[1] * yy)))[
        ..., None
    ]
    img += rng.normal(0.0, profile.noise_std, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Labels: temporally smooth, correlated latent processes thresholded at Table 1's rates.
# --------------------------------------------------------------------------------------------
def correlation_matrix(aus: list[int]) -> np.ndarray:
    k = len(aus)
    corr = np.eye(k)
    for (a, b), rho in CO_OCCURRENCE.items():
        if a in aus and b in aus:
            i, j = aus.index(a), aus.index(b)
            corr[i, j] = corr[j, i] = rho
    vals, vecs = np.linalg.eigh(corr)
    if vals.min() < 1e-3:  # nearest valid correlation matrix by eigenvalue clipping
        corr = vecs @ np.diag(np.clip(vals, 1e-3, None)) @ vecs.T
        d = np.sqrt(np.diag(corr))
        corr = corr / d[:, None] / d[None, :]
    return corr


def latent_processes(rng: np.random.Generator, aus: list[int], n_frames: list[int]) -> np.ndarray:
    """Unit-variance latent activations (sum(n_frames), K) for one subject's sequences.

    Per sequence an AR(1) process per AU (coefficient TEMPORAL_CORRELATION), correlated across AUs
    (CO_OCCURRENCE), plus a per-subject offset carrying SUBJECT_SHARE of the variance.
    """
    chol = np.linalg.cholesky(correlation_matrix(aus))
    offset = chol @ rng.standard_normal(len(aus))
    rho = TEMPORAL_CORRELATION
    out = []
    for n in n_frames:
        eps = rng.standard_normal((n, len(aus))) @ chol.T
        proc = np.empty_like(eps)
        proc[0] = eps[0]
        for t in range(1, n):
            proc[t] = rho * proc[t - 1] + np.sqrt(1 - rho**2) * eps[t]
        out.append(np.sqrt(1 - SUBJECT_SHARE) * proc + np.sqrt(SUBJECT_SHARE) * offset)
    return np.concatenate(out)


def intensities_from_latent(latent: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """AU intensity 0-5; at least 2 exactly when the latent reaches its threshold (label active)."""
    return np.clip(2.0 + INTENSITY_SLOPE * (latent - thresholds), 0.0, 5.0)


# --------------------------------------------------------------------------------------------
# Subjects, splits and the dataset on disk
# --------------------------------------------------------------------------------------------
def subject_ids(profile: Profile, n_subjects: int) -> list[str]:
    if profile.split == "cv3":
        parts = PARTITIONS[profile.name]
        if n_subjects > sum(map(len, parts)):
            raise AunceError(
                f"profile {profile.name} has at most {sum(map(len, parts))} subjects "
                f"(its real partitions), asked for {n_subjects}"
            )
        # round-robin over the partitions keeps the three folds balanced for small sizes
        ordered = [p[i] for i in range(max(map(len, parts))) for p in parts if i < len(p)]
        return ordered[:n_subjects]
    prefix = {"gft": "S", "bp4d_plus": "F", "affwild2": "video"}[profile.name]
    ids = [f"{prefix}{i:03d}" for i in range(1, n_subjects + 1)]
    if profile.name == "affwild2":  # some Aff-Wild2 videos hold two people
        ids = [
            f"{s}_left" if i % 7 == 3 else f"{s}_right" if i % 7 == 4 else s
            for i, s in enumerate(ids)
        ]
    return ids


def subject_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed sequence subject ``index`` of a dataset generated with ``seed`` is rendered from
    (its identity is the first draw): spawn key ``(3 + index, 3)`` of ``SeedSequence(seed)``.

    That is the second ``spawn(2)`` of the subject's child (the first gave its latent processes),
    as :func:`generate` has always drawn it, so datasets stay byte-identical. Datasets of every
    profile with the same seed share these faces; the warm-start population never does
    (:func:`population_seed`)."""
    return np.random.SeedSequence(seed, spawn_key=(3 + index, 3))


def split_columns(profile: Profile, subjects: list[str], rng: np.random.Generator) -> dict:
    """``test_fold`` (cv3, from the real partitions) or ``split`` per subject."""
    from aunce.data.catalog import test_fold_of_subject

    if profile.split == "cv3":
        mapping = test_fold_of_subject(profile.name)
        return {"test_fold": {s: mapping[s] for s in subjects}}
    if profile.split == "test":
        return {"split": dict.fromkeys(subjects, "test")}
    held_name = "validation" if profile.split == "validation" else "test"
    n_held = min(len(subjects) - 1, max(1, int(round(profile.test_fraction * len(subjects)))))
    held = set(rng.choice(len(subjects), size=n_held, replace=False).tolist())
    return {"split": {s: held_name if i in held else "train" for i, s in enumerate(subjects)}}


def training_rows(profile: Profile, split: dict, subject_of_row: np.ndarray) -> np.ndarray:
    """Rows of the training set whose rates Table 1 gives (all rows for cv3 and test-only)."""
    if "split" in split and profile.split != "test":
        return np.array([split["split"][s] == "train" for s in subject_of_row])
    return np.ones(len(subject_of_row), dtype=bool)


def _sequences(profile: Profile, frames: int) -> list[tuple[str, int]]:
    n_seq = len(profile.sequences)
    per_seq = [frames // n_seq + (1 if i < frames % n_seq else 0) for i in range(n_seq)]
    return [(name, n) for name, n in zip(profile.sequences, per_seq, strict=True) if n > 0]


def _render_subject(args) -> tuple[list[dict], np.ndarray]:
    profile_name, subject, seed_seq, image_size, seqs, intens, out_dir = args
    import cv2

    profile = PROFILES[profile_name]
    rng = np.random.default_rng(seed_seq)
    identity = make_identity(rng, image_size)
    rows, landmarks = [], []
    row = 0
    for seq, n in seqs:
        seq_roll = rng.normal(0.0, np.radians(profile.roll_deg))
        seq_yaw = rng.normal(0.0, profile.yaw)
        seq_light = (rng.uniform(*profile.light), rng.normal(0.0, 1.0, 2))
        folder = out_dir / "images" / subject / seq
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(n):
            values = dict(zip(profile.aus, intens[row], strict=True))
            roll = seq_roll + rng.normal(0.0, np.radians(1.5))
            yaw = seq_yaw + rng.normal(0.0, 0.03)
            scale = 0.62 * rng.uniform(0.92, 1.08)
            shift = rng.normal(0.0, 0.03 * image_size, 2)
            pts = pose(deform(identity.shape, values), roll, scale, shift, yaw, image_size)
            img = render(identity, pts, values, image_size, rng, profile, seq_light)
            rel = f"images/{subject}/{seq}/{frame:04d}.png"
            cv2.imwrite(str(out_dir / rel), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            rows.append({"image": rel, "subject": subject, "sequence": seq, "frame": frame})
            landmarks.append(pts)
            row += 1
    return rows, np.asarray(landmarks, np.float32)


def check_parameters(
    profile: str,
    image_size: int,
    n_subjects: int | None,
    frames_per_subject: int | None,
    label_noise: float,
    miss_ratio: float,
) -> None:
    if profile not in PROFILES:
        raise AunceError(f"unknown synthetic profile '{profile}' (known: {', '.join(PROFILES)})")
    if image_size < 32:
        raise AunceError(f"image_size must be at least 32 pixels, got {image_size}")
    if n_subjects is not None and n_subjects < 3:
        raise AunceError(f"n_subjects must be at least 3 (one per fold), got {n_subjects}")
    if frames_per_subject is not None and frames_per_subject < 1:
        raise AunceError(f"frames_per_subject must be positive, got {frames_per_subject}")
    if not 0.0 <= label_noise < MAX_LABEL_NOISE:
        raise AunceError(f"label_noise must lie in [0, {MAX_LABEL_NOISE}), got {label_noise}")
    if miss_ratio <= 0:
        raise AunceError(f"miss_ratio must be positive, got {miss_ratio}")


def generate(
    profile: str,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    image_size: int = 64,
    n_subjects: int | None = None,
    frames_per_subject: int | None = None,
    label_noise: float = 0.0,
    miss_ratio: float = 1.0,
    workers: int | None = None,
) -> Path:
    """Write a synthetic dataset (images, labels, landmarks) to ``out_dir`` and return it.

    The folder holds ``images/<subject>/<sequence>/<frame>.png``, ``labels.csv`` (the manifest of
    shared spec datasets.md; with ``label_noise`` > 0 the AU columns hold the noisy labels and
    ``AU<n>_clean`` the true ones), ``landmarks.npy`` (N, 68, 2) in image pixels,
    ``intensities.npy`` (N, K) and ``dataset.json``. It is written to a temporary folder and renamed
    into place when complete.

    ``label_noise`` flips that fraction of each AU's known labels; ``miss_ratio`` makes a positive
    label that many times more likely to be flipped (missed) than a negative one (invented).
    """
    import pandas as pd

    check_parameters(profile, image_size, n_subjects, frames_per_subject, label_noise, miss_ratio)
    prof = PROFILES[profile]
    n_subjects = n_subjects or prof.n_subjects
    frames = frames_per_subject or prof.frames_per_subject
    subjects = subject_ids(prof, n_subjects)
    split_seq, noise_seq, invalid_seq, *subject_seqs = np.random.SeedSequence(seed).spawn(
        3 + len(subjects)
    )
    seqs = _sequences(prof, frames)
    # phase 1: latent processes of every subject and the coder's view of them, then one threshold
    # per AU for Table 1's rates
    lengths = [n for _, n in seqs]
    latents, judged = [], []
    for s in subject_seqs:
        rng = np.random.default_rng(s.spawn(2)[0])
        latents.append(latent_processes(rng, list(prof.aus), lengths))
        error = CODER_NOISE / INTENSITY_SLOPE * coder_errors(rng, len(prof.aus), lengths)
        judged.append(latents[-1] + error)
    split = split_columns(prof, subjects, np.random.default_rng(split_seq))
    subject_of_row = np.repeat(subjects, [len(x) for x in latents])
    latent, judged = np.concatenate(latents), np.concatenate(judged)
    train = training_rows(prof, split, subject_of_row)
    thresholds = np.array([np.quantile(judged[train, k], 1.0 - prof.rates[au])
                           for k, au in enumerate(prof.aus)])  # fmt: skip
    intens = intensities_from_latent(latent, thresholds)
    coded = (judged >= thresholds).astype(np.int8)
    offsets = np.cumsum([0] + [len(x) for x in latents])
    # phase 2: rendering, in parallel; each subject draws from its own second seed child
    out_dir = Path(out_dir)
    workers = workers or min(len(subjects), os.cpu_count() or 1)
    with atomic_dir(out_dir) as tmp:
        jobs = [
            (
                profile,
                s,
                subject_seed(seed, i),
                image_size,
                seqs,
                intens[offsets[i] : offsets[i + 1]],
                tmp,
            )
            for i, s in enumerate(subjects)
        ]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(
                    pool.map(_render_subject, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
                )
        else:
            results = [_render_subject(job) for job in jobs]
        df = pd.DataFrame([r for res in results for r in res[0]])
        landmarks = np.concatenate([res[1] for res in results])
        for column, mapping in split.items():
            df[column] = df["subject"].map(mapping)
        labels = coded.copy()
        if prof.invalid_fraction > 0:
            invalid = np.random.default_rng(invalid_seq).random(len(df)) < prof.invalid_fraction
            labels[invalid] = -1
        noisy = flip_labels(labels, label_noise, np.random.default_rng(noise_seq), miss_ratio)
        columns = au_columns(list(prof.aus))
        for k, col in enumerate(columns):
            df[col] = noisy[:, k]
        if label_noise > 0:
            for k, col in enumerate(columns):
                df[f"{col}_clean"] = labels[:, k]
        order = df.sort_values(["subject", "sequence", "frame"], kind="stable").index.to_numpy()
        df = df.loc[order].reset_index(drop=True)
        df.to_csv(tmp / "labels.csv", index=False)
        np.save(tmp / "landmarks.npy", landmarks[order])
        np.save(tmp / "intensities.npy", intens[order].astype(np.float32))
        states = (intens[order] >= 2.0).astype(np.int8)
        write_json(tmp / "ceiling.json", ceiling(df, states, labels[order], list(prof.aus)))
        write_json(
            tmp / "dataset.json",
            {
                "generator_version": GENERATOR_VERSION,
                "profile": profile,
                "seed": seed,
                "image_size": image_size,
                "n_subjects": n_subjects,
                "frames_per_subject": frames,
                "label_noise": label_noise,
                "miss_ratio": miss_ratio,
                "aus": list(prof.aus),
                "n_frames": len(df),
                "thresholds": thresholds.tolist(),
                "difficulty": difficulty(),
            },
        )
    return out_dir


def difficulty() -> dict:
    """The calibrated knobs a dataset was generated with (its ``dataset.json`` records them)."""
    return {"intensity_slope": INTENSITY_SLOPE, "coder_noise": CODER_NOISE, "au_gain": AU_GAIN,
            "shade_gain": SHADE_GAIN, "au_visibility": {str(k): v for k, v in AU_VISIBILITY.items()},
            "lip_press_pallor": LIP_PRESS_PALLOR, "lip_tighten_shade": LIP_TIGHTEN_SHADE}  # fmt: skip


def coder_errors(rng: np.random.Generator, n_aus: int, n_frames: list[int]) -> np.ndarray:
    """Unit-variance errors (sum(n_frames), K) of the coder's judgement, smooth in time as the
    latent processes (AR(1), coefficient TEMPORAL_CORRELATION), independent across AUs: a coder
    who starts and ends an event a little early or late, or misses a faint one."""
    rho, out = TEMPORAL_CORRELATION, []
    for n in n_frames:
        eps = rng.standard_normal((n, n_aus))
        proc = np.empty_like(eps)
        proc[0] = eps[0]
        for t in range(1, n):
            proc[t] = rho * proc[t - 1] + np.sqrt(1 - rho**2) * eps[t]
        out.append(proc)
    return np.concatenate(out)


def evaluation_splits(df) -> dict[str, np.ndarray]:
    """Rows of each test split a table may score: ``'1'``-``'3'`` (cross-validation folds),
    ``'split'`` (the held-out subjects of a fixed split) and ``'all'`` (every row)."""
    splits = {"all": np.ones(len(df), dtype=bool)}
    if "test_fold" in df.columns:
        for fold in sorted(df["test_fold"].unique()):
            splits[str(int(fold))] = (df["test_fold"] == fold).to_numpy()
    elif "split" in df.columns and (df["split"] == "train").any():
        splits["split"] = (df["split"] != "train").to_numpy()
    return splits


def ceiling(df, states: np.ndarray, labels: np.ndarray, aus: list[int]) -> dict:
    """The ceiling of each test split: F1 of a detector of the true AU states (intensity >= 2, what
    the face shows) against the labels an evaluation scores (the coder's, before any injected
    noise); unknown labels left out, as in every evaluation (:func:`aunce.metrics.detection_metrics`)."""
    from aunce.metrics import detection_metrics

    names = au_columns(aus)
    out = {}
    for name, rows in evaluation_splits(df).items():
        m = detection_metrics(labels[rows], states[rows].astype(float), names)
        out[name] = {"f1": m["f1"], "f1_macro": m["f1_macro"], "f1_micro": m["f1_micro"],
                     "accuracy": m["accuracy"], "n_frames": int(rows.sum())}  # fmt: skip
    return {"what": CEILING_LABEL, "coder_noise": CODER_NOISE, "splits": out}


def flip_labels(
    labels: np.ndarray, rate: float, rng: np.random.Generator, miss_ratio: float = 1.0
) -> np.ndarray:
    """Flip ``rate`` of each AU's known labels; positives ``miss_ratio`` times as likely as negatives.

    With positive share p of an AU, a negative flips with probability ``q = rate / (p r + 1 - p)``
    and a positive with ``r q`` (r = miss_ratio), so that the expected flipped fraction is ``rate``;
    the number flipped in each class is drawn exactly (rounded), without replacement.
    """
    noisy = labels.copy()
    if rate <= 0:
        return noisy
    for k in range(labels.shape[1]):
        pos = np.flatnonzero(labels[:, k] == 1)
        neg = np.flatnonzero(labels[:, k] == 0)
        p = len(pos) / max(1, len(pos) + len(neg))
        q_neg = rate / (p * miss_ratio + 1 - p)
        q_pos = min(1.0, miss_ratio * q_neg)
        for idx, q in ((pos, q_pos), (neg, q_neg)):
            chosen = rng.choice(idx, size=min(len(idx), int(round(q * len(idx)))), replace=False)
            noisy[chosen, k] = 1 - noisy[chosen, k]
    return noisy


def read_synthetic(root: str | os.PathLike):
    """The manifest of a generated dataset (the ``synthetic`` reader of :func:`read_dataset`)."""
    import pandas as pd

    root = Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.exists():
        raise AunceError(
            f"{root}: not a synthetic dataset (no dataset.json); make one with "
            "`aunce synth --profile bp4d --out DIR`"
        )
    meta = read_json(meta_path)
    path = root / "labels.csv"
    try:  # blank lines kept: a line number in an error is the file's own
        df = pd.read_csv(path, skip_blank_lines=False)
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise AunceError(f"{path}: empty file (expected a header and one line per frame)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise AunceError(f"{path}: cannot read as CSV ({str(err).strip()})") from None
    blank = df.isna().all(axis=1).to_numpy()
    while len(df) and blank[len(df) - 1]:  # blank lines at the end are no frames
        df = df.iloc[:-1]
    if blank[: len(df)].any():
        raise AunceError(f"{path}: line {int(blank.argmax()) + 2}: blank line inside the file")
    columns = au_columns(meta["aus"])
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AunceError(f"{path}: missing AU columns {', '.join(missing)}")
    for col in df.columns:
        if col.startswith("AU"):
            df[col] = _labels(df[col], path, col)
    if len(df) != meta["n_frames"]:
        raise AunceError(
            f"{root / 'labels.csv'}: {len(df)} rows, dataset.json says {meta['n_frames']}"
        )
    return df


def _labels(column, path: Path, name: str) -> np.ndarray:
    """A label column as int8; a value other than 1, 0 or -1 names the file, line and column (an
    int8 cast would store 300 as 44)."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    bad = ~values.isin(LABEL_VALUES).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        text = "" if pd.isna(column.iloc[row]) else str(column.iloc[row]).strip()
        raise AunceError(
            f"{path}: line {row + 2}: {name} label '{text[:40]}' is not 1, 0 or -1 (unknown)"
        )
    return values.to_numpy().astype(np.int8)


def read_synthetic_landmarks(
    root: str | os.PathLike, n_rows: int, *, mmap: bool = False
) -> np.ndarray:
    """The (N, 68, 2) landmarks of a synthetic dataset, memory-mapped read-only with ``mmap``."""
    path = Path(root) / "landmarks.npy"
    try:
        landmarks = np.load(path, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except (ValueError, OSError) as err:
        raise AunceError(f"{path}: not a NumPy array file ({err})") from None
    if landmarks.shape[0] != n_rows:
        raise AunceError(f"{path}: {landmarks.shape[0]} landmark sets for {n_rows} manifest rows")
    return landmarks


# --------------------------------------------------------------------------------------------
# The warm-start population (aunce.warmstart): unlabelled faces of subjects no dataset has
# --------------------------------------------------------------------------------------------
#: First word of the spawn key of every population subject. Dataset subjects draw from keys
#: ``(3 + index, 3)`` (:func:`subject_seed`) and their labels, splits and noise from ``(0,)`` to
#: ``(3 + index, 0)``: no dataset key has three words, so no population face is a dataset's.
POPULATION_KEY = 0x5741524D  # "WARM"
POPULATION_VERSION = 2  # 2: the renderer of generator version 3
#: In the wild, like the images an ImageNet-pretrained backbone has seen: stronger pose and
#: lighting than any dataset profile, a background drawn per frame (no colour tells a subject),
#: every rendered AU at a generic rate. Nothing of it is stored but the aligned images.
POPULATION_PROFILE = Profile(
    "population", "test", 300, 8, ("clip",), roll_deg=10.0, yaw=0.4, light=(0.55, 1.25),
    light_gradient=0.4, noise_std=5.0, aus=tuple(AU_NAMES),
)  # fmt: skip
POPULATION_AU_THRESHOLD = 0.5  # each AU active (intensity >= 2) in about 31 % of frames


def population_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed sequence population subject ``index`` draws everything from (identity first)."""
    return np.random.SeedSequence(seed, spawn_key=(POPULATION_KEY, index, 0))


def population_subject_ids(n_subjects: int) -> list[str]:
    """``W0001``, ``W0002``, ...: a prefix no dataset's subject ids use."""
    return [f"W{i:04d}" for i in range(1, n_subjects + 1)]


def _render_population_subject(args) -> np.ndarray:
    """Every frame of one population subject, aligned as the cache aligns: (F, A, A, 3) RGB."""
    import dataclasses

    import cv2

    from aunce.data.align import align_face

    seed, index, frames, image_size, aligned_size = args
    prof = POPULATION_PROFILE
    rng = np.random.default_rng(population_seed(seed, index))
    identity = make_identity(rng, image_size)
    latent = latent_processes(rng, list(prof.aus), [frames])
    intens = intensities_from_latent(latent, np.full(len(prof.aus), POPULATION_AU_THRESHOLD))
    out = np.empty((frames, aligned_size, aligned_size, 3), np.uint8)
    for f in range(frames):
        values = dict(zip(prof.aus, intens[f], strict=True))
        face = dataclasses.replace(identity, background=rng.uniform(40, 220, 3))
        roll = rng.normal(0.0, np.radians(prof.roll_deg))
        yaw = rng.normal(0.0, prof.yaw)
        scale = 0.62 * rng.uniform(0.9, 1.1)
        shift = rng.normal(0.0, 0.03 * image_size, 2)
        light = (rng.uniform(*prof.light), rng.normal(0.0, 1.0, 2))
        pts = pose(deform(identity.shape, values), roll, scale, shift, yaw, image_size)
        bgr = render(face, pts, values, image_size, rng, prof, light)
        out[f] = align_face(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), pts, aligned_size)[0]
    return out


def generate_population(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_subjects: int = 300,
    frames_per_subject: int = 8,
    image_size: int = 64,
    aligned_size: int = 256,
    workers: int | None = None,
) -> Path:
    """Write the warm-start population: unlabelled synthetic faces, aligned as the cache aligns.

    The folder holds ``images.npy`` (N, A, A, 3) uint8 RGB aligned faces (A = ``aligned_size``, the
    cache size), ``manifest.csv`` (subject, frame) and ``population.json``. Subjects are drawn from
    their own seed space (:func:`population_seed`), disjoint from every dataset's; each frame shows
    a random expression, pose and lighting, and none of them is stored: the population carries no
    AU label and no target the AU deformations drive. Same seed, same bytes, whatever ``workers``.
    """
    import pandas as pd

    if n_subjects < 2:
        raise AunceError(f"the warm-start population needs at least 2 subjects, got {n_subjects}")
    if frames_per_subject < 1:
        raise AunceError(f"frames_per_subject must be positive, got {frames_per_subject}")
    if image_size < 32 or aligned_size < 16:
        raise AunceError(
            f"image_size must be at least 32 and aligned_size at least 16 pixels, got "
            f"{image_size} and {aligned_size}"
        )
    jobs = [(seed, i, frames_per_subject, image_size, aligned_size) for i in range(n_subjects)]
    workers = workers or min(n_subjects, os.cpu_count() or 1)
    with atomic_dir(out_dir) as tmp:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                chunk = max(1, len(jobs) // (4 * workers))
                images = list(pool.map(_render_population_subject, jobs, chunksize=chunk))
        else:
            images = [_render_population_subject(job) for job in jobs]
        np.save(tmp / "images.npy", np.concatenate(images))
        subjects = population_subject_ids(n_subjects)
        pd.DataFrame(
            {
                "subject": np.repeat(subjects, frames_per_subject),
                "frame": np.tile(np.arange(frames_per_subject), n_subjects),
            }
        ).to_csv(tmp / "manifest.csv", index=False)
        write_json(
            tmp / "population.json",
            {
                "population_version": POPULATION_VERSION,
                "generator_version": GENERATOR_VERSION,
                "seed": seed,
                "n_subjects": n_subjects,
                "frames_per_subject": frames_per_subject,
                "n_frames": n_subjects * frames_per_subject,
                "image_size": image_size,
                "aligned_size": aligned_size,
            },
        )
    return Path(out_dir)


def read_population(root: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The population's aligned images (memory-mapped) and its ``population.json``."""
    root = Path(root)
    meta_path = root / "population.json"
    if not meta_path.exists():
        raise AunceError(
            f"{root}: not a warm-start population (no population.json); make one with "
            "`aunce population --out DIR`"
        )
    meta = json.loads(meta_path.read_text())
    images = np.load(root / "images.npy", mmap_mode="r")
    if len(images) != meta["n_frames"]:
        raise AunceError(
            f"{root / 'images.npy'}: {len(images)} images, population.json says {meta['n_frames']}"
        )
    return images, meta
