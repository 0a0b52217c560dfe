"""Aff-Wild2, the AU detection track of the ABAW challenges (Kollias and Zafeiriou, BMVC 2019).

Layout as distributed to challenge participants (shared spec datasets.md)::

    annotations/AU_Detection_Challenge/Train_Set/<video>.txt       first line the 12 AU names,
    annotations/AU_Detection_Challenge/Validation_Set/<video>.txt  then one line per frame of
                                                                   0/1, or -1 (invalid frame)
    cropped_aligned/<video>/<j+1:05d>.jpg                          image of data row j (0-based)

Two drops are allowed, and counted in the report saved with the cache: rows coded -1 (invalid
frames) and rows whose image is missing (the face detector found no face there). Videos with two
people carry ``_left`` / ``_right`` suffixes; each is its own subject. Rows carry ``split`` train or
validation (the paper trains on Train_Set and evaluates on Validation_Set). The faces are cropped
and aligned by the challenge; the paper aligns every dataset from 49 inner landmarks (Sec. 4.1.2),
so with landmark files (``<root>/landmarks/cropped_aligned/<video>.csv``, docs/datasets.md) the
cache aligns them again as it aligns BP4D, and without them only resizes them (``aligned`` in the
config decides either way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.data.catalog import DATASET_AUS
from aunce.data.readers.common import (
    ImageIndex,
    error,
    parse_codes,
    read_lines,
    shorten,
    to_manifest,
)

LABEL_DIR = "annotations/AU_Detection_Challenge"
IMAGE_DIR = "cropped_aligned"
SETS = {"Train_Set": "train", "Validation_Set": "validation"}
HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
_CODES = {"0": 0, "1": 1, "-1": -1}


def read_affwild2(root: Path, report: dict):
    """The Aff-Wild2 manifest (12 AUs, ``split`` train/validation), invalid rows and rows without
    an image dropped and counted in ``report``."""
    aus = DATASET_AUS["affwild2"]
    width = len(aus)
    index = ImageIndex(root, (".jpg",))
    split_of: dict[str, tuple[str, Path]] = {}
    images, subjects, frames, labels, splits = [], [], [], [], []
    dropped = {"invalid": 0, "missing_image": 0}
    by_set: dict[str, dict[str, int]] = {}
    without_images = []
    for set_dir, split in SETS.items():
        folder = root / LABEL_DIR / set_dir
        if not folder.is_dir():
            raise AunceError(
                f"{folder}: folder not found (expected {LABEL_DIR}/{set_dir}/<video>.txt)"
            )
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise AunceError(f"{folder}: no annotation files <video>.txt")
        counts = {"videos": len(files), "frames": 0, "invalid": 0, "missing_image": 0}
        for path in files:
            video = path.stem
            if video in split_of:
                other, other_path = split_of[video]
                raise AunceError(
                    f"{path}: video {video} is in both {other} ({other_path}) and {split}"
                )
            split_of[video] = (split, path)
            lines = read_lines(path)
            if not lines or lines[0].replace(" ", "") != HEADER:
                got = shorten(lines[0]) if lines else "an empty file"
                raise error(path, 1, f"wrong header: expected '{HEADER}', got '{got}'")
            names = index.names(f"{IMAGE_DIR}/{video}")
            if names is None:
                without_images.append(video)
                names = frozenset()
            for row, line in enumerate(lines[1:]):
                number = row + 2
                fields = line.split(",")
                if len(fields) != width:
                    raise error(
                        path,
                        number,
                        f"{len(fields)} values, expected {width} (truncated or malformed line)",
                    )
                codes = parse_codes(fields, _CODES, path, number, aus, "0, 1 or -1")
                if -1 in codes:
                    if any(c != -1 for c in codes):
                        raise error(
                            path, number, "-1 (invalid frame) mixed with 0/1 codes on one line"
                        )
                    counts["invalid"] += 1
                    continue
                name = f"{row + 1:05d}.jpg"
                if name not in names:
                    counts["missing_image"] += 1
                    continue
                images.append(f"{IMAGE_DIR}/{video}/{name}")
                subjects.append(video)
                frames.append(row + 1)
                labels.append(codes)
                splits.append(split)
                counts["frames"] += 1
        by_set[set_dir] = counts
        dropped["invalid"] += counts["invalid"]
        dropped["missing_image"] += counts["missing_image"]
    report["dropped"] = dropped
    report["by_set"] = by_set
    report["videos_without_images"] = without_images
    return to_manifest(
        images,
        subjects,
        subjects,
        frames,
        np.asarray(labels, np.int8).reshape(-1, width),
        aus,
        "split",
        splits,
    )
