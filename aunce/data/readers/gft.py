"""GFT (Girard et al., Sayette Group Formation Task, FG 2017) from a manifest-shaped CSV.

No public code documents GFT's label layout or its official split (shared spec datasets.md), so the
harness reads GFT either through the list layout (``source: list``) or, here, from::

    <root>/labels.csv     columns image, subject, sequence, frame, AU1, AU2, AU4, AU6, AU10, AU12,
                          AU14, AU15, AU23, AU24 (more AU columns are ignored); codes 1, 0, and
                          -1 or 9 for unknown; ``image`` relative to the root
    <split_file>          the split the user supplies: header 'subject,split', then one line per
                          participant, split train, test or validation (78 train / 18 test in the
                          paper)

``split_file`` is a config key (``datasets.<name>.split_file``), relative to the root unless absolute.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import numpy as np

from aunce import AunceError
from aunce.data.catalog import DATASET_AUS, au_columns
from aunce.data.readers.common import (
    ImageIndex,
    error,
    parse_codes,
    parse_int,
    read_lines,
    resolve,
    sha256_file,
    shorten,
    to_manifest,
)

LABELS = "labels.csv"
ID_COLUMNS = ["image", "subject", "sequence", "frame"]
CODES = {"0": 0, "1": 1, "-1": -1, "9": -1}
SPLITS = ("train", "test", "validation")


def read_split_file(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Split and line of each subject of a ``subject,split`` file; a subject twice is an error."""
    lines = read_lines(path)
    if not lines or [h.strip() for h in lines[0].split(",")] != ["subject", "split"]:
        got = shorten(lines[0]) if lines else "an empty file"
        raise error(path, 1, f"wrong header: expected 'subject,split', got '{got}'")
    split, where = {}, {}
    for row, line in enumerate(lines[1:]):
        number = row + 2
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not fields[0]:
            raise error(path, number, f"expected 'subject,split', got '{shorten(line)}'")
        subject, name = fields
        if name not in SPLITS:
            raise error(path, number, f"unknown split '{name}' (expected {', '.join(SPLITS)})")
        if subject in split:
            if split[subject] != name:
                raise error(
                    path,
                    number,
                    f"subject {subject} is in both {split[subject]} (line {where[subject]}) "
                    f"and {name}",
                )
            raise error(path, number, f"subject {subject} repeats line {where[subject]}")
        split[subject], where[subject] = name, number
    return split, where


def read_gft(root: Path, report: dict, split_file: str | None = None):
    """The GFT manifest (10 AUs) from ``labels.csv``, ``split`` from the user's split file."""
    if split_file is None:
        raise AunceError(
            f"{root}: GFT has no official split; name the file that holds it with "
            "datasets.<name>.split_file (header 'subject,split')"
        )
    aus = DATASET_AUS["gft"]
    path = root / LABELS
    split_path = resolve(root, split_file)
    split, split_line = read_split_file(split_path)
    index = ImageIndex(root)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found (GFT is read from labels.csv)") from None
    with fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        for name in header:
            if name not in ID_COLUMNS and not (name.startswith("AU") and name[2:].isdigit()):
                raise error(
                    path,
                    1,
                    f"wrong header: unknown column '{shorten(name)}' (expected "
                    f"{', '.join(ID_COLUMNS)} and AU<n> columns)",
                )
        missing_ids = [c for c in ID_COLUMNS if c not in header]
        if missing_ids:
            raise error(path, 1, f"wrong header: no column {', '.join(missing_ids)}")
        missing = [c for c in au_columns(aus) if c not in header]
        if missing:
            raise error(path, 1, f"missing AU column(s) {', '.join(missing)} in the header")
        if len(set(header)) != len(header):
            raise error(path, 1, "wrong header: a column name appears twice")
        at = {name: k for k, name in enumerate(header)}
        au_at = [at[c] for c in au_columns(aus)]
        images, subjects, sequences, frames, labels, seen = [], [], [], [], [], {}
        for fields in reader:
            number = reader.line_num
            if not fields or not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise error(
                    path,
                    number,
                    f"{len(fields)} fields where the header has {len(header)} "
                    "(truncated or malformed line)",
                )
            image = fields[at["image"]].strip()
            if image in seen:
                raise error(path, number, f"image {image} repeats line {seen[image]}")
            seen[image] = number
            rel = PurePosixPath(image)
            names = index.names(str(rel.parent))
            if rel.is_absolute() or names is None or rel.name not in names:
                raise error(path, number, f"image {root / image} not found")
            at_aus = [fields[column] for column in au_at]
            row = parse_codes(at_aus, CODES, path, number, aus, "1, 0, -1 or 9")
            images.append(image)
            subjects.append(fields[at["subject"]].strip())
            sequences.append(fields[at["sequence"]].strip())
            frames.append(parse_int(fields[at["frame"]], path, number, "frame"))
            labels.append(row)
    if not images:
        raise AunceError(f"{path}: no labelled frames")
    present = set(subjects)
    unsplit = sorted(present - set(split))
    if unsplit:
        raise AunceError(
            f"{split_path}: no split for subject(s) {', '.join(unsplit[:5])}"
            f"{' ...' if len(unsplit) > 5 else ''} of {path}"
        )
    absent = sorted(set(split) - present, key=split_line.get)
    if absent:
        raise error(
            split_path, split_line[absent[0]], f"subject {absent[0]} has no frames in {path}"
        )
    report["split_file"] = {"path": str(split_path), "sha256": sha256_file(split_path)}
    report["subjects"] = {name: sum(1 for s in split.values() if s == name) for name in SPLITS}
    values = [split[s] for s in subjects]
    return to_manifest(
        images, subjects, sequences, frames, np.asarray(labels), aus, "split", values
    )
