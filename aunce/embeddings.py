"""The embeddings file of a run: written as the encoder produces it, read memory-mapped.

``embeddings.npz`` is an ordinary uncompressed ``.npz`` (``np.load`` reads it): the float16
per-AU embeddings ``train_z`` and ``test_z`` (N, K, D), the labels and cache rows of each split,
the AU names and the pretraining's settings. Two properties keep a job's memory bounded whatever
the dataset's size (Aff-Wild2's 1.83 M frames are 45 GB of float16 at K = 12, D = 1024):

- :func:`write_embeddings` streams each large member into the archive chunk by chunk as it is
  computed (zip members stored, not compressed), so no split's embeddings are ever whole in
  memory; the file is written under a temporary name and renamed when complete.
- :func:`open_embeddings` memory-maps ``train_z`` and ``test_z`` where they lie inside the archive
  (a stored member is a plain ``.npy`` at an offset), so a linear evaluation reads the rows of
  each minibatch and nothing more (:class:`aunce.data.loader.RowReader`).

No torch here: the t-SNE sample job reads these files too.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.io import atomic_path

#: The members memory-mapped by :func:`open_embeddings`; the others are read whole (small).
MAPPED = ("train_z", "test_z")
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local header (PKZIP APPNOTE 4.3.7)


def write_embeddings(
    path: str | os.PathLike,
    streams: dict[str, tuple[int, Iterable[np.ndarray]]],
    arrays: dict[str, np.ndarray],
    *,
    digest: bool = False,
) -> Path:
    """Write ``path`` (an uncompressed ``.npz``) atomically.

    ``streams`` maps a member name to ``(rows, chunks)``: ``chunks`` yields consecutive blocks of
    that member's rows (the same dtype and trailing shape), ``rows`` in all; each block is written
    when it arrives. ``arrays`` are written whole. A stream whose chunks do not add up to ``rows``
    is an error and leaves no file. ``digest``: also write its SHA-256 sidecar
    (:func:`aunce.io.atomic_path`), as every output of the workflow has."""
    path = Path(path)
    with atomic_path(path, digest=digest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, (rows, chunks) in streams.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                written, header = 0, None
                for chunk in chunks:
                    chunk = np.ascontiguousarray(chunk)
                    if header is None:
                        header = {"descr": np.lib.format.dtype_to_descr(chunk.dtype),
                                  "fortran_order": False, "shape": (rows, *chunk.shape[1:])}  # fmt: skip
                        np.lib.format.write_array_header_1_0(fh, header)
                    written += len(chunk)
                    if written > rows:
                        break
                    fh.write(chunk.tobytes())
                if header is None and rows == 0:  # no frames: an empty float16 (0, 0, 0)
                    header = {"descr": "<f2", "fortran_order": False, "shape": (0, 0, 0)}
                    np.lib.format.write_array_header_1_0(fh, header)
                if written != rows:
                    raise AunceError(f"{path}: {name} has {written} rows where {rows} were announced")
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    return path


@dataclass
class Embeddings:
    """An opened embeddings file: ``train_z`` and ``test_z`` memory-mapped (N, K, D) float16,
    the rest in memory."""

    path: Path
    train_z: np.ndarray
    train_labels: np.ndarray
    train_index: np.ndarray
    test_z: np.ndarray
    test_labels: np.ndarray
    test_index: np.ndarray
    aus: list[str]
    pretrain_settings: dict
    test_subjects: np.ndarray | None = None  # the test frames' subjects (older files: none)


def open_embeddings(path: str | os.PathLike) -> Embeddings:
    """Open an embeddings file of :func:`write_embeddings` (or ``np.savez`` with the same keys)."""
    path = Path(path)
    try:
        with np.load(path) as data:
            small = {k: data[k] for k in data.files if k not in MAPPED}
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise AunceError(f"{path}: not an embeddings file ({err})") from None
    try:
        return Embeddings(
            path=path,
            train_z=mapped_member(path, "train_z"),
            train_labels=small["train_labels"],
            train_index=small["train_index"],
            test_z=mapped_member(path, "test_z"),
            test_labels=small["test_labels"],
            test_index=small["test_index"],
            aus=[str(a) for a in small["aus"]],
            pretrain_settings=json.loads(str(small["pretrain_settings"])),
            test_subjects=small.get("test_subjects"),
        )
    except KeyError as err:
        raise AunceError(f"{path}: no array {err} (not written by aunce.evaluate.embed?)") from None


def mapped_member(path: str | os.PathLike, name: str) -> np.ndarray:
    """The array ``name`` of an uncompressed ``.npz``, memory-mapped read-only where it lies in
    the archive (nothing is read but its header)."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(f"{name}.npy")
        except KeyError:
            raise KeyError(name) from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise AunceError(f"{path}: {name} is compressed and cannot be memory-mapped")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
        if fields[0] != zipfile.stringFileHeader:
            raise AunceError(f"{path}: {name}: not a zip member header")
        fh.seek(info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        if read_header is None:
            raise AunceError(f"{path}: {name}: .npy format {version} is not supported")
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if fortran or dtype.hasobject:
        raise AunceError(f"{path}: {name} is not a C-ordered numeric array")
    if 0 in shape:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
