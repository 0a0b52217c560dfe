"""Per-sequence landmark files next to a real dataset (the harness's own layout, docs/datasets.md).

For every folder of images there is one CSV file at the same relative path under the landmark
folder (``<root>/landmarks`` unless the config's ``landmarks`` key says otherwise)::

    <root>/<seq folder>/<file>              e.g. F001/T1/0001.jpg, SN001/0.png, img/F001/T1/12.jpg
    <root>/landmarks/<seq folder>.csv       e.g. landmarks/F001/T1.csv, landmarks/SN001.csv

    file,x_0,x_1,...,x_{P-1},y_0,y_1,...,y_{P-1}
    0001.jpg,312.4,313.9,...

one line per image, keyed by the image's file name, P = 68 (iBUG), 66 (DISFA, no inner-mouth
corners) or 49 points, in pixels of that image (x right, y down; the column order is OpenFace's).
Every image of the manifest must have its line when the faces are to be aligned; for a dataset
declared ``aligned: true`` a missing file leaves its frames' landmarks unknown (NaN), and a present
file must still cover its frames.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import numpy as np

from aunce import AunceError
from aunce.data.align import to_49
from aunce.data.readers.common import error, read_lines, resolve, shorten

POINT_COUNTS = (68, 66, 49)


def header_for(points: int) -> list[str]:
    return ["file"] + [f"x_{i}" for i in range(points)] + [f"y_{i}" for i in range(points)]


def read_landmark_file(path: Path) -> dict[str, np.ndarray]:
    """Landmarks (P, 2) by image file name, from one per-sequence CSV file."""
    lines = read_lines(path)
    if not lines:
        raise AunceError(f"{path}: empty file (no header)")
    header = [h.strip() for h in lines[0].split(",")]
    points = (len(header) - 1) // 2
    if points not in POINT_COUNTS or header != header_for(points):
        raise error(
            path,
            1,
            f"wrong header '{shorten(lines[0])}': expected file,x_0,...,x_{{P-1}},y_0,...,"
            "y_{P-1} with P = 68, 66 or 49",
        )
    names, rows, first = [], [], {}
    for row, line in enumerate(lines[1:]):
        fields = line.split(",")
        if len(fields) != len(header):
            raise error(
                path,
                row + 2,
                f"{len(fields)} fields where the header has {len(header)} "
                "(truncated or malformed line)",
            )
        name = fields[0].strip()
        if name in first:
            raise error(path, row + 2, f"{name} repeats line {first[name]}")
        first[name] = row + 2
        names.append(name)
        rows.append(fields[1:])
    try:
        values = np.array(rows, dtype=np.float64).reshape(len(rows), 2, points)
        finite = np.isfinite(values).all()
    except ValueError:
        finite = False
    if not finite:
        for row, fields in enumerate(rows):
            for field in fields:
                try:
                    ok = math.isfinite(float(field))
                except ValueError:
                    ok = False
                if not ok:
                    raise error(path, row + 2, f"'{shorten(field.strip())}' is not a finite number")
    xy = values.transpose(0, 2, 1)  # (n, P, 2)
    return dict(zip(names, xy, strict=True))


def read_sequence_landmarks(
    root: Path, manifest, folder: str = "landmarks", required: bool = True
) -> np.ndarray:
    """(N, 49, 2) float32 landmarks of the manifest's rows (NaN where unknown and not required)."""
    base = resolve(root, folder)
    images = manifest["image"].to_numpy()
    out = np.full((len(images), 49, 2), np.nan, np.float32)
    groups: dict[str, list[int]] = {}
    for row, image in enumerate(images):
        groups.setdefault(str(PurePosixPath(image).parent), []).append(row)
    for sequence, rows in groups.items():
        path = base / f"{sequence}.csv"
        if not path.exists():
            if required:
                raise AunceError(
                    f"{path}: landmark file not found, needed to align the {len(rows)} frame(s) "
                    f"of {root / sequence} (layout in docs/datasets.md; a dataset whose images are "
                    "already aligned is declared `aligned: true`)"
                )
            continue
        table = read_landmark_file(path)
        for row in rows:
            name = PurePosixPath(images[row]).name
            points = table.get(name)
            if points is None:
                raise AunceError(f"{path}: no line for {name} ({root / images[row]})")
            out[row] = to_49(points)
    return out
