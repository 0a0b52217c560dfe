"""BP4D and BP4D+ as distributed: FACS occurrence codes per task, frames as JPEG files.

Zhang et al., BP4D-Spontaneous (Image and Vision Computing 2014) and BP4D+ (CVPR 2016); layout
and folds as in shared spec datasets.md::

    AUCoding/AU_OCC/<subject>_<task>.csv    header 0,1,...,99 (BP4D) or frame, AU numbers (BP4D+);
                                            codes 0 absent, 1 present, 9 unknown (-> -1)
    <subject>/<task>/<frame>.jpg            unpadded or zero-padded frame numbers

BP4D rows carry ``test_fold`` from the subject partitions shared by JAA-Net, ME-GraphAU and AUNCE;
BP4D+ is evaluation only, every row ``split = test``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.data.catalog import DATASET_AUS, test_fold_of_subject
from aunce.data.readers.common import (
    ImageIndex,
    error,
    parse_codes,
    parse_int,
    read_lines,
    shorten,
    to_manifest,
)

LABEL_DIR = "AUCoding/AU_OCC"
OCCURRENCE_CODES = {"0": 0, "1": 1, "9": -1}
BP4D_HEADER = [str(i) for i in range(100)]
_LABEL_FILE = re.compile(r"^(?P<subject>[^_]+)_(?P<task>[^_]+)\.csv$")


def label_files(root: Path) -> list[tuple[Path, str, str]]:
    """(path, subject, task) of every ``AUCoding/AU_OCC/<subject>_<task>.csv``, sorted."""
    folder = root / LABEL_DIR
    if not folder.is_dir():
        raise AunceError(
            f"{folder}: folder not found (expected the occurrence labels "
            f"{LABEL_DIR}/<subject>_<task>.csv)"
        )
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".csv":
            continue
        match = _LABEL_FILE.match(path.name)
        if match is None:
            raise AunceError(f"{path}: file name is not <subject>_<task>.csv")
        found.append((path, match["subject"], match["task"]))
    if not found:
        raise AunceError(f"{folder}: no label files <subject>_<task>.csv")
    return found


def read_occurrence_rows(
    path: Path, lines: list[str], columns: list[int], aus: list[int]
) -> tuple[list[int], np.ndarray]:
    """Frames and (n, K) int8 labels of the data lines of an AU_OCC file (line 1 is its header)."""
    width = lines[0].count(",") + 1
    frames: list[int] = []
    labels = np.empty((len(lines) - 1, len(aus)), np.int8)
    seen: dict[int, int] = {}
    for row, line in enumerate(lines[1:]):
        number = row + 2
        fields = line.split(",")
        if len(fields) != width:
            raise error(
                path,
                number,
                f"{len(fields)} fields where the header has {width} (truncated or malformed line)",
            )
        frame = parse_int(fields[0], path, number, "frame")
        if frame in seen:
            raise error(path, number, f"frame {frame} repeats line {seen[frame]}")
        seen[frame] = number
        fields_at = [fields[column] for column in columns]
        labels[row] = parse_codes(fields_at, OCCURRENCE_CODES, path, number, aus, "0, 1 or 9")
        frames.append(frame)
    return frames, labels


def _au_columns_bp4d(path: Path, header: list[str], aus: list[int]) -> list[int]:
    if header != BP4D_HEADER:
        raise error(
            path,
            1,
            f"wrong header '{shorten(','.join(header))}': expected 0,1,2,...,99 (column 0 the "
            "frame, column N AU N)",
        )
    return aus


def _au_columns_bp4d_plus(path: Path, header: list[str], aus: list[int]) -> list[int]:
    position: dict[int, int] = {}
    for column, name in enumerate(header[1:], start=1):
        try:
            au = int(name)
        except ValueError:
            raise error(
                path,
                1,
                f"wrong header: column {column + 1} '{shorten(name)}' is not an AU number "
                "(expected the frame column, then AU numbers)",
            ) from None
        if au in position:
            raise error(path, 1, f"wrong header: AU {au} appears twice")
        position[au] = column
    missing = [au for au in aus if au not in position]
    if missing:
        raise error(
            path, 1, f"missing AU column(s) {', '.join(f'AU{au}' for au in missing)} in the header"
        )
    return [position[au] for au in aus]


def _read(root: Path, report: dict, dataset: str) -> object:
    aus = DATASET_AUS[dataset]
    folds = test_fold_of_subject("bp4d") if dataset == "bp4d" else None
    columns_of = _au_columns_bp4d if dataset == "bp4d" else _au_columns_bp4d_plus
    index = ImageIndex(root, (".jpg", ".jpeg"))
    images, subjects, sequences, frames, labels, groups = [], [], [], [], [], []
    files = label_files(root)
    for path, subject, task in files:
        if folds is not None and subject not in folds:
            raise AunceError(
                f"{path}: subject {subject} is in none of BP4D's three partitions "
                "(F001-F023, M001-M018)"
            )
        lines = read_lines(path)
        if not lines:
            raise AunceError(f"{path}: empty file (no header)")
        header = [h.strip() for h in lines[0].split(",")]
        columns = columns_of(path, header, aus)
        seq_frames, seq_labels = read_occurrence_rows(path, lines, columns, aus)
        folder = f"{subject}/{task}"
        if index.names(folder) is None:
            raise AunceError(f"{root / folder}: image folder not found (labels in {path})")
        for row, frame in enumerate(seq_frames):
            image = index.find_frame(folder, frame)
            if image is None:
                raise error(
                    path,
                    row + 2,
                    f"frame {frame} has no image {root / folder}/{frame}.jpg "
                    "(unpadded or zero-padded)",
                )
            images.append(image)
        subjects += [subject] * len(seq_frames)
        sequences += [task] * len(seq_frames)
        frames += seq_frames
        labels.append(seq_labels)
        groups += [folds[subject] if folds else "test"] * len(seq_frames)
    report["label_files"] = len(files)
    all_labels = np.concatenate(labels) if labels else np.empty((0, len(aus)), np.int8)
    report["unknown_labels"] = int((all_labels == -1).sum())
    column = "test_fold" if folds else "split"
    return to_manifest(images, subjects, sequences, frames, all_labels, aus, column, groups)


def read_bp4d(root: Path, report: dict):
    """The BP4D manifest (12 AUs, ``test_fold`` from the built-in partitions)."""
    return _read(root, report, "bp4d")


def read_bp4d_plus(root: Path, report: dict):
    """The BP4D+ manifest (the 12 BP4D AUs, every row ``split = test``)."""
    return _read(root, report, "bp4d_plus")
