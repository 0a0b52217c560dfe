"""The list layout of ME-GraphAU (Luo et al., IJCAI 2022) and AUNCE's released code.

As those repositories ship it (shared spec datasets.md)::

    <root>/list/<DS>_{train,test}_img_path_fold<k>.txt   one image path per line, relative to img/
    <root>/list/<DS>_{train,test}_label_fold<k>.txt      one row of space-separated 0/1 per path
    <root>/list/<DS>_weight_fold<k>.txt                  optional; read for comparison only
    <root>/img/<subject>/.../<frame>.<ext>

for folds k = 1..n (three, or a single fold). Each image becomes one manifest row: ``image`` is
``img/<path>``, ``subject`` the path's first component, ``sequence`` its folder, ``frame`` the
number at the end of the file name, and ``test_fold`` the fold whose test list holds it (0 for an
image no test list holds: with a single fold, the training rows). Every fold must list every image
once, in its train or its test list, with the same labels everywhere, and no subject may be in both
lists of a fold. -1 in a label file means unknown.

The AU columns come from the dataset's known AU list when ``<DS>`` names one (BP4D, DISFA, GFT,
BP4D+, Aff-Wild2) and from the ``aus`` option otherwise. The list files can be pinned by SHA-256
(``list_sha256``): a changed split is then an error, not a silently different experiment.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import numpy as np

from aunce import AunceError
from aunce.data.catalog import DATASET_AUS
from aunce.data.readers.common import (
    ImageIndex,
    check_pins,
    error,
    frame_number,
    parse_codes,
    read_lines,
    shorten,
    to_manifest,
)

_LIST_FILE = re.compile(
    r"^(?P<ds>.+)_(?P<split>train|test)_(?P<kind>img_path|label)_fold(?P<fold>\d+)\.txt$"
)
_CODES = {"0": 0, "1": 1, "-1": -1}


def known_aus(name: str) -> list[int] | None:
    """The AU list of a dataset named as list files name it (``BP4D``, ``BP4D+``, ``Aff-Wild2``)."""
    key = re.sub(r"[^a-z0-9+]", "", name.lower()).replace("+", "plus")
    key = {"bp4dplus": "bp4d_plus", "affwild2": "affwild2"}.get(key, key)
    return DATASET_AUS.get(key)


def _list_name(folder: Path, list_name: str | None) -> tuple[str, set[int]]:
    found: dict[str, set[int]] = {}
    for path in folder.iterdir():
        match = _LIST_FILE.match(path.name)
        if match:
            found.setdefault(match["ds"], set()).add(int(match["fold"]))
    if list_name is None:
        if not found:
            raise AunceError(f"{folder}: no list files <DS>_train_img_path_fold<k>.txt")
        if len(found) > 1:
            raise AunceError(
                f"{folder}: holds the lists of several datasets ({', '.join(sorted(found))}); "
                "choose one with datasets.<name>.list_name"
            )
        list_name = next(iter(found))
    elif list_name not in found:
        raise AunceError(
            f"{folder}: no list files {list_name}_train_img_path_fold<k>.txt "
            f"(lists found: {', '.join(sorted(found)) or 'none'})"
        )
    return list_name, found[list_name]


def _labels(path: Path, lines: list[str], aus: list[int]) -> list[tuple[int, ...]]:
    rows = []
    for row, line in enumerate(lines):
        fields = line.split()
        if len(fields) != len(aus):
            raise error(
                path,
                row + 1,
                f"{len(fields)} labels, expected {len(aus)} "
                f"({', '.join(f'AU{a}' for a in aus)}): truncated or malformed line",
            )
        codes = tuple(parse_codes(fields, _CODES, path, row + 1, aus, "0, 1 or -1"))
        rows.append(codes)
    return rows


def read_list(
    root: Path,
    report: dict,
    list_name: str | None = None,
    list_sha256: dict[str, str] | None = None,
    aus: list[int] | None = None,
    folds: int | None = None,
):
    """The manifest of a list-layout dataset (``test_fold`` from its test lists)."""
    folder = root / "list"
    if not folder.is_dir():
        raise AunceError(f"{folder}: folder not found (expected list/<DS>_*_fold<k>.txt)")
    name, present = _list_name(folder, list_name)
    expected = set(range(1, (folds or max(present)) + 1))
    if present != expected:
        raise AunceError(
            f"{folder}: {name} lists hold fold(s) {', '.join(map(str, sorted(present)))}, "
            f"expected {', '.join(map(str, sorted(expected)))}"
            + ("" if folds is None else f" (datasets.<name>.folds is {folds})")
        )
    if aus is None:
        aus = known_aus(name)
        if aus is None:
            raise AunceError(
                f"{folder}: {name} is not a dataset the harness knows; set its AU numbers with "
                "datasets.<name>.aus (in the label files' column order)"
            )
    aus = list(aus)
    files = {
        (k, split, kind): folder / f"{name}_{split}_{kind}_fold{k}.txt"
        for k in sorted(expected)
        for split in ("train", "test")
        for kind in ("img_path", "label")
    }
    for path in files.values():
        if not path.exists():
            raise AunceError(f"{path}: file not found")
    weights = {k: folder / f"{name}_weight_fold{k}.txt" for k in sorted(expected)}
    weights = {k: p for k, p in weights.items() if p.exists()}
    check_pins(list(files.values()) + list(weights.values()), list_sha256, report)
    report["list_name"] = name
    report["aus"] = aus

    index = ImageIndex(root)
    label_of: dict[str, tuple[tuple[int, ...], Path, int]] = {}
    test_fold: dict[str, int] = {}
    test_where: dict[str, tuple[Path, int]] = {}
    members: dict[int, set[str]] = {}
    for k in sorted(expected):
        subjects_in: dict[str, dict[str, tuple[Path, int]]] = {"train": {}, "test": {}}
        members[k] = set()
        for split in ("train", "test"):
            path_file = files[(k, split, "img_path")]
            label_file = files[(k, split, "label")]
            paths = read_lines(path_file)
            labels = _labels(label_file, read_lines(label_file), aus)
            if len(labels) != len(paths):
                raise AunceError(
                    f"{label_file}: {len(labels)} label rows for the {len(paths)} image paths "
                    f"of {path_file.name}"
                )
            seen: dict[str, int] = {}
            for row, (text, codes) in enumerate(zip(paths, labels, strict=True)):
                number = row + 1
                image = text.strip()
                if image in seen:
                    raise error(path_file, number, f"{image} repeats line {seen[image]}")
                seen[image] = number
                if image in label_of:
                    first, where, line = label_of[image]
                    if first != codes:
                        raise error(
                            label_file,
                            number,
                            f"labels of {image} differ from {where.name} line {line}",
                        )
                else:
                    _check_image(index, image, path_file, number)
                    label_of[image] = (codes, label_file, number)
                subject = PurePosixPath(image).parts[0]
                subjects_in[split].setdefault(subject, (path_file, number))
                members[k].add(image)
                if split == "test":
                    if image in test_fold:
                        where, line = test_where[image]
                        raise error(
                            path_file,
                            number,
                            f"{image} is also in the test list of fold {test_fold[image]} "
                            f"({where.name} line {line})",
                        )
                    test_fold[image], test_where[image] = k, (path_file, number)
        both = sorted(set(subjects_in["train"]) & set(subjects_in["test"]))
        if both:
            path, line = subjects_in["test"][both[0]]
            train_path, train_line = subjects_in["train"][both[0]]
            raise error(
                path,
                line,
                f"subject {both[0]} is in both the train list ({train_path.name} line "
                f"{train_line}) and the test list of fold {k}",
            )
    for k in sorted(expected):
        left_out = sorted(set(label_of) - members[k])
        if left_out:
            raise AunceError(
                f"{files[(k, 'train', 'img_path')]}: fold {k}'s train and test lists leave out "
                f"{len(left_out)} image(s) of the other folds (first: {left_out[0]}); each fold "
                "must list every image"
            )
    report["list_weights"] = {
        str(k): _weights(path, len(aus)) for k, path in weights.items()
    }  # the published weights, for comparison: training recomputes them from its split
    images = sorted(label_of)
    parts = [PurePosixPath(image) for image in images]
    return to_manifest(
        [f"img/{image}" for image in images],
        [p.parts[0] for p in parts],
        [str(p.parent) for p in parts],
        [frame_number(p.name) for p in parts],
        np.asarray([label_of[image][0] for image in images], np.int8).reshape(-1, len(aus)),
        aus,
        "test_fold",
        [test_fold.get(image, 0) for image in images],
    )


def _check_image(index: ImageIndex, image: str, path_file: Path, number: int) -> None:
    path = PurePosixPath(image)
    if path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
        raise error(
            path_file,
            number,
            f"'{shorten(image)}' is not a path <subject>/.../<frame>.<ext> relative to img/",
        )
    if frame_number(path.name) is None:
        raise error(path_file, number, f"{image}: the file name ends in no frame number")
    names = index.names(f"img/{path.parent}")
    if names is None or path.name not in names:
        raise error(path_file, number, f"image {index.root / 'img' / image} not found")


def _weights(path: Path, count: int) -> list[float]:
    values = []
    for row, line in enumerate(read_lines(path)):
        for field in line.split():
            try:
                values.append(float(field))
            except ValueError:
                raise error(path, row + 1, f"'{shorten(field)}' is not a number") from None
    if len(values) != count:
        raise AunceError(f"{path}: {len(values)} weights for {count} AUs")
    return values
