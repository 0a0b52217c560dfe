"""Datasets: readers that return the common manifest, alignment, the aligned cache and augmentation.

>>> from aunce.data import read_dataset
>>> df = read_dataset("synthetic", "results/data/bp4d")     # pandas.DataFrame, one row per frame
>>> df = read_dataset("bp4d", "/data/BP4D", report=report)  # report: counts and allowed drops

The real layouts and the landmark file layout are described in docs/datasets.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aunce import AunceError

READERS = ("synthetic", "bp4d", "disfa", "gft", "bp4d_plus", "affwild2", "list")


def read_dataset(name: str, root: str | os.PathLike, *, report: dict | None = None, **options):
    """Read a dataset's manifest (shared spec datasets.md): one row per labelled frame.

    Columns: ``image`` (relative to ``root``), ``subject``, ``sequence``, ``frame``, one int8 column
    per AU (1 active, 0 inactive, -1 unknown), and ``test_fold`` or ``split``. ``report``, when
    given, receives the reader's counts and every drop the spec allows. ``options`` are the
    reader's own (``split_file`` for gft; ``list_name``, ``list_sha256``, ``aus``, ``folds`` for
    list); a ``None`` value counts as not given.
    """
    report = {} if report is None else report
    options = {k: v for k, v in options.items() if v is not None}
    root = Path(root)
    if name == "synthetic":
        from aunce.data.synthetic import read_synthetic

        if options:
            raise AunceError(
                f"reader 'synthetic' takes no option {', '.join(sorted(options))} "
                "(its options: none)"
            )
        manifest = read_synthetic(root)
    elif name in READERS:
        from aunce.data.readers import read_real

        manifest = read_real(name, root, report, **options)
    else:
        raise AunceError(f"unknown dataset reader '{name}' (known: {', '.join(READERS)})")
    report.setdefault("dropped", {})
    report.update(reader=name, root=str(root), frames=len(manifest))
    return manifest


def read_landmarks(
    name: str,
    root: str | os.PathLike,
    manifest,
    *,
    folder: str = "landmarks",
    required: bool = True,
    mmap: bool = False,
) -> np.ndarray | None:
    """Landmarks of the manifest's rows in image pixels, or None when the dataset has none.

    Synthetic data keeps its (N, 68, 2) array (memory-mapped with ``mmap``, as the cache build
    reads it: a slice at a time); real datasets read their per-sequence landmark files under
    ``root/folder`` into (N, 49, 2) float32 in memory, NaN where a file is absent and not
    ``required``.
    """
    if name == "synthetic":
        from aunce.data.synthetic import read_synthetic_landmarks

        return read_synthetic_landmarks(root, len(manifest), mmap=mmap)
    if name in READERS:
        from aunce.data.readers.landmarks import read_sequence_landmarks

        return read_sequence_landmarks(Path(root), manifest, folder, required)
    raise AunceError(f"unknown dataset reader '{name}' (known: {', '.join(READERS)})")


def aligned_by_default(
    name: str, root: str | os.PathLike | None = None, landmarks: str = "landmarks"
) -> bool:
    """Whether a layout's images are taken as aligned faces (only resized) when the config leaves
    ``aligned`` null: the list layout's always; Aff-Wild2's ``cropped_aligned`` faces only when
    ``root`` has no landmark folder (``landmarks``, relative to ``root`` unless absolute). The
    paper aligns every dataset from its 49 inner landmarks (Sec. 4.1.2); the challenge's crops are
    aligned by its own procedure, so a landmark folder next to them is used to align them again."""
    from aunce.data.readers import ALIGN_WHEN_LANDMARKS, ALIGNED_BY_DEFAULT

    if name in ALIGN_WHEN_LANDMARKS and root is not None:
        folder = Path(landmarks) if Path(landmarks).is_absolute() else Path(root) / landmarks
        if folder.is_dir():
            return False
    return name in ALIGNED_BY_DEFAULT


def au_names(manifest) -> list[str]:
    """The AU label columns of a manifest, in order (``AU1``, ``AU2``, ...; not ``*_clean``)."""
    return [c for c in manifest.columns if c.startswith("AU") and c[2:].isdigit()]
