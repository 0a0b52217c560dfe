"""DISFA as distributed: one intensity file per subject and AU, frames extracted from the videos.

Mavadati et al., DISFA (IEEE Trans. Affective Computing 2013); layout and folds as in shared spec
datasets.md::

    ActionUnit_Labels/<SN>/<SN>_au<N>.txt   lines 'frame,intensity', frames 1-based, intensity 0-5
    <SN>/<f-1>.png                          label frame f is image f-1 (0-based names)

An AU is active at intensity >= 2 (the rule of JAA-Net, ME-GraphAU and AUNCE). The manifest's
``frame`` is the label file's 1-based frame; ``image`` names the 0-based file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.data.catalog import DATASET_AUS, test_fold_of_subject
from aunce.data.readers.common import ImageIndex, error, parse_int, read_lines, to_manifest

LABEL_DIR = "ActionUnit_Labels"
ACTIVE_INTENSITY = 2
_SUBJECT = re.compile(r"^SN\d{3}$")


def read_intensities(path: Path) -> tuple[list[int], np.ndarray]:
    """Frames and intensities (int8) of one ``<SN>_au<N>.txt``; strictly increasing 1-based frames."""
    frames: list[int] = []
    lines = read_lines(path)
    if not lines:
        raise AunceError(f"{path}: empty file")
    values = np.empty(len(lines), np.int8)
    for row, line in enumerate(lines):
        number = row + 1
        fields = line.split(",")
        if len(fields) != 2:
            raise error(path, number, f"expected 'frame,intensity', got {len(fields)} fields")
        frame = parse_int(fields[0], path, number, "frame")
        if frame < 1:
            raise error(path, number, f"frame {frame}: DISFA's label frames are 1-based")
        if frames and frame <= frames[-1]:
            raise error(
                path, number, f"frame {frame} after frame {frames[-1]} (frames must increase)"
            )
        intensity = fields[1].strip()
        if intensity not in ("0", "1", "2", "3", "4", "5"):
            raise error(path, number, f"unknown code '{intensity}' (intensities are 0-5)")
        frames.append(frame)
        values[row] = int(intensity)
    return frames, values


def read_disfa(root: Path, report: dict):
    """The DISFA manifest (8 AUs, positive at intensity >= 2, ``test_fold`` from the partitions)."""
    aus = DATASET_AUS["disfa"]
    folds = test_fold_of_subject("disfa")
    label_root = root / LABEL_DIR
    if not label_root.is_dir():
        raise AunceError(
            f"{label_root}: folder not found (expected {LABEL_DIR}/<SN>/<SN>_au<N>.txt)"
        )
    subject_dirs = sorted(p for p in label_root.iterdir() if p.is_dir())
    if not subject_dirs:
        raise AunceError(f"{label_root}: no subject folders <SN>")
    index = ImageIndex(root, (".png", ".jpg", ".jpeg"))
    images, subjects, frames, labels, groups = [], [], [], [], []
    for folder in subject_dirs:
        subject = folder.name
        if not _SUBJECT.match(subject) or subject not in folds:
            raise AunceError(
                f"{folder}: subject {subject} is in none of DISFA's three partitions (SN001-SN032)"
            )
        first_path, first_frames, columns = None, None, []
        for au in aus:
            path = folder / f"{subject}_au{au}.txt"
            if not path.exists():
                raise AunceError(f"{path}: file not found (the labels of AU{au} for {subject})")
            au_frames, intensities = read_intensities(path)
            if first_frames is None:
                first_path, first_frames = path, au_frames
            elif au_frames != first_frames:
                if len(au_frames) != len(first_frames):
                    raise AunceError(
                        f"{path}: {len(au_frames)} frames, {first_path.name} has "
                        f"{len(first_frames)} (label files of one subject must agree)"
                    )
                row = next(
                    i
                    for i, (a, b) in enumerate(zip(au_frames, first_frames, strict=True))
                    if a != b
                )
                raise error(
                    path,
                    row + 1,
                    f"frame {au_frames[row]} where {first_path.name} line {row + 1} has "
                    f"frame {first_frames[row]}",
                )
            columns.append(intensities >= ACTIVE_INTENSITY)
        if index.names(subject) is None:
            raise AunceError(f"{root / subject}: image folder not found (labels in {folder})")
        for row, frame in enumerate(first_frames):
            image = index.find_frame(subject, frame - 1)
            if image is None:
                raise error(
                    first_path,
                    row + 1,
                    f"frame {frame} has no image {root / subject}/{frame - 1}.png "
                    "(label frame f is image f-1)",
                )
            images.append(image)
        subjects += [subject] * len(first_frames)
        frames += first_frames
        labels.append(np.stack(columns, axis=1).astype(np.int8))
        groups += [folds[subject]] * len(first_frames)
    report["subjects"] = len(subject_dirs)
    return to_manifest(
        images, subjects, subjects, frames, np.concatenate(labels), aus, "test_fold", groups
    )
