"""What every reader shares: strict line reading, the image index and the manifest's final form.

Errors name the file and, where there is one, the line (``path: line N: ...``), so a user can open
the file at the place that stopped the run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

import numpy as np

from aunce import AunceError
from aunce.data.catalog import au_columns

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def error(path: Path, line: int, message: str) -> AunceError:
    return AunceError(f"{path}: line {line}: {message}")


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_lines(path: Path) -> list[str]:
    """The lines of a text file without their ends; trailing blank lines are dropped, inner ones
    are an error (a blank line inside a label file means a truncated or spliced file)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise AunceError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise error(path, number, "blank line inside the file")
    return lines


def parse_int(text: str, path: Path, line: int, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise error(path, line, f"{what} '{shorten(text.strip())}' is not an integer") from None


def parse_codes(
    fields: list[str], codes: dict[str, int], path: Path, line: int, aus: list[int], expected: str
) -> list[int]:
    """The label codes of ``fields`` (one per AU in ``aus``); an unknown one names file, line, AU."""
    out = []
    for field, au in zip(fields, aus, strict=True):
        code = codes.get(field.strip())
        if code is None:
            raise error(
                path,
                line,
                f"unknown code '{shorten(field.strip())}' for AU{au} (expected {expected})",
            )
        out.append(code)
    return out


def sha256_file(path: Path, digest=None) -> str:
    """The SHA-256 of a file, read a block at a time; with ``digest`` (a hashlib object) the file
    is fed into it after what it already holds."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(root: Path, path: str | os.PathLike) -> Path:
    """A path from the config: absolute as given, relative to the dataset root otherwise."""
    path = Path(path)
    return path if path.is_absolute() else root / path


def frame_number(name: str) -> int | None:
    """The frame number of an image file name (``0012.jpg`` -> 12), or None if it has none."""
    stem = PurePosixPath(name).stem
    digits = len(stem) - len(stem.rstrip("0123456789"))
    return int(stem[len(stem) - digits :]) if digits else None


class ImageIndex:
    """The image files of each folder under ``root``, listed once (one ``os.scandir`` per folder
    instead of one ``stat`` per frame)."""

    def __init__(self, root: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS):
        self.root = root
        self.extensions = extensions
        self._names: dict[str, frozenset[str] | None] = {}
        self._numbers: dict[str, dict[int, list[str]]] = {}

    def names(self, folder: str) -> frozenset[str] | None:
        """File names in ``folder`` (relative to root), or None when the folder does not exist."""
        if folder not in self._names:
            try:
                with os.scandir(self.root / folder) as it:
                    self._names[folder] = frozenset(e.name for e in it if e.is_file())
            except (FileNotFoundError, NotADirectoryError):
                self._names[folder] = None
        return self._names[folder]

    def by_number(self, folder: str) -> dict[int, list[str]] | None:
        """Image files of ``folder`` by frame number: unpadded and zero-padded names alike."""
        if folder not in self._numbers:
            names = self.names(folder)
            if names is None:
                return None
            numbers: dict[int, list[str]] = {}
            for name in sorted(names):
                stem = PurePosixPath(name).stem
                if name.lower().endswith(self.extensions) and stem.isdigit():
                    numbers.setdefault(int(stem), []).append(name)
            self._numbers[folder] = numbers
        return self._numbers[folder]

    def find_frame(self, folder: str, number: int) -> str | None:
        """``folder/<name>`` of frame ``number`` (``12.jpg``, ``012.jpg``, ``0012.jpg``...), or None.

        Two files of the same number (``12.jpg`` and ``0012.jpg``) are an error: which one the
        labels mean cannot be told."""
        numbers = self.by_number(folder)
        found = None if numbers is None else numbers.get(number)
        if not found:
            return None
        if len(found) > 1:
            raise AunceError(
                f"{self.root / folder}: frame {number} has {len(found)} images "
                f"({', '.join(found)}); keep one"
            )
        return f"{folder}/{found[0]}"


def check_pins(files: list[Path], pins: dict[str, str] | None, report: dict) -> None:
    """SHA-256 of each file into the report; with pins, every file pinned and every pin matched."""
    digests = {path.name: sha256_file(path) for path in files}
    report["sha256"] = digests
    if not pins:
        return
    folder = files[0].parent
    for name, expected in sorted(pins.items()):
        if name not in digests:
            raise AunceError(
                f"{folder / name}: pinned by SHA-256 in the config but not one of the list files "
                f"read ({', '.join(sorted(digests))})"
            )
        if digests[name] != expected.lower():
            raise AunceError(
                f"{folder / name}: SHA-256 {digests[name]} differs from the pinned "
                f"{expected.lower()} (the file changed since it was pinned)"
            )
    for path in files:
        if path.name not in pins:
            raise AunceError(
                f"{path}: not pinned by the config's list_sha256 (its SHA-256 is "
                f"{digests[path.name]}); pin every list file or none"
            )


def to_manifest(
    images: list[str],
    subjects: list[str],
    sequences: list[str],
    frames: list[int],
    labels: np.ndarray,
    aus: list[int],
    column: str,
    values: list,
):
    """The manifest of shared spec datasets.md, sorted by subject, sequence and frame."""
    import pandas as pd

    df = pd.DataFrame(
        {
            "image": pd.Series(images, dtype=object),
            "subject": pd.Series(subjects, dtype=object),
            "sequence": pd.Series(sequences, dtype=object),
            "frame": np.asarray(frames, dtype=np.int64),
        }
    )
    labels = np.asarray(labels, dtype=np.int8).reshape(len(df), len(aus))
    for k, name in enumerate(au_columns(aus)):
        df[name] = labels[:, k]
    df[column] = np.asarray(values, dtype=np.int64) if column == "test_fold" else values
    return df.sort_values(["subject", "sequence", "frame"], kind="stable").reset_index(drop=True)
