"""The aligned cache: every face aligned once, stored as memory-mappable uint8 arrays.

Layout of a cache folder::

    images.npy      (N, S, S, 3) uint8, RGB, aligned faces (np.load(..., mmap_mode="r"))
    landmarks.npy   (N, 49, 2) float32, the 49 inner landmarks in aligned pixels (NaN if unknown)
    manifest.csv    the dataset's manifest, same row order
    cache.json      size, counts, AU names, source and SHA-256 checksums; written last

The folder is built under a temporary name and renamed into place when complete, so a folder with
``cache.json`` is always a whole cache. Training reads batches by index without decoding images.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.data import au_names, read_dataset, read_landmarks
from aunce.io import atomic_dir, read_json, write_json

CACHE_VERSION = 1


@dataclass
class Cache:
    """An opened cache: arrays are memory-mapped, the manifest is a DataFrame."""

    root: Path
    images: np.ndarray
    landmarks: np.ndarray
    manifest: object  # pandas.DataFrame
    aus: list[str]
    meta: dict

    @property
    def labels(self) -> np.ndarray:
        """(N, K) int8 labels used for training (noisy ones when noise was injected)."""
        return self.manifest[self.aus].to_numpy(np.int8)

    @property
    def true_labels(self) -> np.ndarray:
        """(N, K) int8 labels used for evaluation: the clean ones when noise was injected."""
        cols = [f"{a}_clean" if f"{a}_clean" in self.manifest.columns else a for a in self.aus]
        return self.manifest[cols].to_numpy(np.int8)

    def split(self, fold: str) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (train, test) of a fold: '1'..'3' (cross-validation), 'split' or 'all'."""
        df = self.manifest
        if fold == "all":
            return np.arange(len(df)), np.arange(0)
        if fold == "split":
            if "split" not in df.columns:
                raise AunceError(f"{self.root}: fold 'split' asked of a cross-validated dataset")
            train = df["split"].to_numpy() == "train"
            return np.flatnonzero(train), np.flatnonzero(~train)
        if "test_fold" not in df.columns:
            raise AunceError(f"{self.root}: fold {fold} asked of a dataset with a fixed split")
        test = df["test_fold"].to_numpy() == int(fold)
        if not test.any():
            raise AunceError(f"{self.root}: fold {fold} has no test rows")
        return np.flatnonzero(~test), np.flatnonzero(test)


def build_cache(
    reader: str,
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    size: int,
    *,
    aligned: bool = False,
    workers: int | None = None,
) -> Path:
    """Read a dataset, align every face to ``size x size`` and write the cache folder."""
    import pandas as pd

    root, out_dir = Path(root), Path(out_dir)
    manifest = read_dataset(reader, root)
    landmarks = read_landmarks(reader, root, manifest)
    n = len(manifest)
    if n == 0:
        raise AunceError(f"{root}: the dataset has no labelled frames")
    with atomic_dir(out_dir) as tmp:
        images = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3)
        )
        out_landmarks = np.full((n, 49, 2), np.nan, dtype=np.float32)
        chunks = np.array_split(np.arange(n), max(1, min(n, (workers or 1) * 4)))
        tasks = [
            (
                root,
                manifest["image"].to_numpy()[c],
                None if landmarks is None else landmarks[c],
                size,
                aligned,
            )
            for c in chunks
        ]
        if (workers or 1) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as pool:
                results = pool.map(_align_chunk, tasks)
                for idx, (imgs, pts) in zip(chunks, results, strict=True):
                    images[idx], out_landmarks[idx] = imgs, pts
        else:
            for idx, task in zip(chunks, tasks, strict=True):
                images[idx], out_landmarks[idx] = _align_chunk(task)
        images.flush()
        del images
        np.save(tmp / "landmarks.npy", out_landmarks)
        pd.DataFrame(manifest).to_csv(tmp / "manifest.csv", index=False)
        write_json(
            tmp / "cache.json",
            {
                "cache_version": CACHE_VERSION,
                "reader": reader,
                "source": str(root),
                "size": size,
                "aligned_input": aligned,
                "n_frames": n,
                "aus": au_names(manifest),
                "sha256": {
                    name: _sha256(tmp / name)
                    for name in ("images.npy", "landmarks.npy", "manifest.csv")
                },
            },
        )
    return out_dir


def _align_chunk(task) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    from aunce.data.align import align_face, resize_face

    root, paths, landmarks, size, aligned = task
    imgs = np.empty((len(paths), size, size, 3), np.uint8)
    pts = np.full((len(paths), 49, 2), np.nan, np.float32)
    for i, rel in enumerate(paths):
        bgr = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if bgr is None:
            raise AunceError(f"{root / rel}: image missing or unreadable")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        lm = None if landmarks is None else landmarks[i]
        if aligned or lm is None:
            if not aligned:
                raise AunceError(
                    f"{root / rel}: no landmarks to align this face (declare the "
                    "dataset `aligned: true` if its images are already aligned)"
                )
            imgs[i], pts[i] = resize_face(rgb, lm, size)
        else:
            imgs[i], pts[i] = align_face(rgb, lm, size)
    return imgs, pts


def open_cache(path: str | os.PathLike) -> Cache:
    """Open a cache folder written by :func:`build_cache` (arrays memory-mapped)."""
    import pandas as pd

    path = Path(path)
    meta_path = path / "cache.json"
    if not meta_path.exists():
        raise AunceError(
            f"{path}: not a complete cache (no cache.json); rebuild it with `aunce cache`"
        )
    meta = read_json(meta_path)
    images = np.load(path / "images.npy", mmap_mode="r")
    landmarks = np.load(path / "landmarks.npy")
    manifest = pd.read_csv(path / "manifest.csv")
    if not (len(manifest) == len(images) == len(landmarks) == meta["n_frames"]):
        raise AunceError(f"{path}: images, landmarks and manifest disagree in length")
    return Cache(path, images, landmarks, manifest, list(meta["aus"]), meta)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
