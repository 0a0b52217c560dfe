"""Datasets: readers that return the common manifest, alignment, the aligned cache and augmentation.

>>> from aunce.data import read_dataset
>>> df = read_dataset("synthetic", "results/data/bp4d")     # pandas.DataFrame, one row per frame
"""

from __future__ import annotations

import os

import numpy as np

from aunce import AunceError

READERS = ("synthetic",)


def read_dataset(name: str, root: str | os.PathLike):
    """Read a dataset's manifest (shared spec datasets.md): one row per labelled frame.

    Columns: ``image`` (relative to ``root``), ``subject``, ``sequence``, ``frame``, one int8 column
    per AU (1 active, 0 inactive, -1 unknown), and ``test_fold`` or ``split``.
    """
    if name == "synthetic":
        from aunce.data.synthetic import read_synthetic

        return read_synthetic(root)
    raise AunceError(f"unknown dataset reader '{name}' (known: {', '.join(READERS)})")


def read_landmarks(name: str, root: str | os.PathLike, manifest) -> np.ndarray | None:
    """Landmarks (N, P, 2) in image pixels for the manifest's rows, or None when the dataset has none."""
    if name == "synthetic":
        from aunce.data.synthetic import read_synthetic_landmarks

        return read_synthetic_landmarks(root, len(manifest))
    raise AunceError(f"unknown dataset reader '{name}' (known: {', '.join(READERS)})")


def au_names(manifest) -> list[str]:
    """The AU label columns of a manifest, in order (``AU1``, ``AU2``, ...; not ``*_clean``)."""
    return [c for c in manifest.columns if c.startswith("AU") and c[2:].isdigit()]
