"""Data loading (issue 6): the training batch path from the cache against the tiny encoder's
training step, and the cache build rate per core.

    .venv/bin/python benchmarks/loader.py

1. Loader against encoder, at the embedded default's geometry (36 px cache, 32 px crops, batch
   32): the loader is what the training loop does per batch before the encoder (``aunce.train``):
   sorted random rows read from the memory-mapped ``images.npy``, converted to float, then the crop
   and flip (WCE) or two SimCLR views (AUNCE) of ``aunce.data.augment``, normalised. The encoder is
   the tiny MEGraph at 32 px (``create_encoder("megraph", 12, size="tiny", input_size=32)``),
   forward plus backward on the same batch (two views for AUNCE), timed like
   ``benchmarks/encoders.py``. Target: loader at least 5x the encoder's images/s.
2. Memory-mapped reads of a 256 px cache (the paper's protocol), batch 32: how fast the cache can
   feed a GPU when the augmentation runs on the GPU, as it does in training.
3. Cache build (``build_cache``) at 224 and 256 px from fake trees at the real datasets'
   resolutions: BP4D (1392 x 1040 JPEG, aligned from 68 landmarks), DISFA (1024 x 768 PNG,
   aligned from 66 landmarks) and the list layout (256 x 256 aligned JPEG, resized only); with 1
   worker (images/s per core) and with one worker per core. The wall time covers everything
   ``build_cache`` does: reading labels and landmarks, decoding, warping, writing, checksums.

Prints Markdown with the date, git revision, torch version, threads and CPU, so each figure can be
traced to what produced it. The CPU is shared: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.benchmark import Timer

from aunce.data.augment import normalize, random_crop_flip, simclr_view, to_float
from aunce.data.cache import build_cache, open_cache
from aunce.data.synthetic import TEMPLATE
from aunce.encoders import create_encoder

REPO = Path(__file__).resolve().parent.parent
HEADER_68 = ["file"] + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]


def git_revision() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_seconds(fn, min_run_time: float) -> float:
    fn()  # warm-up
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def face_image(width: int, height: int, rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    """A camera-like frame: smooth background, a drawn face, sensor noise (so JPEG/PNG decoding
    costs what it costs on real frames, not on flat colour)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = 90 + 60 * np.sin(xx / 97.0) * np.cos(yy / 131.0)
    img = np.repeat(base[..., None], 3, axis=2).astype(np.float32)
    cv2.fillConvexPoly(img, cv2.convexHull(points[:17].astype(np.int32)), (150, 170, 200))
    for x, y in points.astype(int):
        cv2.circle(img, (int(x), int(y)), 3, (40, 40, 60), -1)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def fake_tree(kind: str, root: Path, frames: int) -> str:
    """Write a small tree of ``kind`` (bp4d, disfa or list); return the reader name."""
    rng = np.random.default_rng(0)
    if kind == "list":
        (root / "list").mkdir(parents=True)
        paths = []
        for f in range(frames):
            rel = f"F00{1 + f % 3}/T1/{f}.jpg"
            pts = TEMPLATE * 70 + 128 + rng.normal(0, 2, 2)
            (root / "img" / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "img" / rel), face_image(256, 256, rng, pts))
            paths.append(rel)
        for k, test in ((1, "F003"), (2, "F002"), (3, "F001")):
            for split in ("train", "test"):
                chosen = [p for p in paths if p.startswith(test) == (split == "test")]
                (root / f"list/X_{split}_img_path_fold{k}.txt").write_text("\n".join(chosen))
                (root / f"list/X_{split}_label_fold{k}.txt").write_text(
                    "\n".join("0 1 0 1" for _ in chosen)
                )
        return "list"
    width, height, folder, ext = {
        "bp4d": (1040, 1392, "F001/T1", ".jpg"),
        "disfa": (1024, 768, "SN001", ".png"),
    }[kind]
    (root / folder).mkdir(parents=True)
    rows = [",".join(HEADER_68)]
    for f in range(frames):
        pts = TEMPLATE * (0.22 * width) + [width / 2, height / 2] + rng.normal(0, 5, 2)
        name = f"{f + 1:04d}{ext}" if kind == "bp4d" else f"{f}{ext}"
        cv2.imwrite(str(root / folder / name), face_image(width, height, rng, pts))
        lm = pts if kind == "bp4d" else np.delete(pts, [60, 64], axis=0)
        rows.append(",".join([name, *(f"{v:.2f}" for v in np.concatenate([lm[:, 0], lm[:, 1]]))]))
    if kind == "disfa":
        rows[0] = ",".join(["file"] + [f"x_{i}" for i in range(66)] + [f"y_{i}" for i in range(66)])
        labels = root / "ActionUnit_Labels/SN001"
        labels.mkdir(parents=True)
        for au in (1, 2, 4, 6, 9, 12, 25, 26):
            text = "\n".join(f"{f},{f % 4}" for f in range(1, frames + 1))
            (labels / f"SN001_au{au}.txt").write_text(text)
        landmarks = root / "landmarks/SN001.csv"
    else:
        labels = root / "AUCoding/AU_OCC"
        labels.mkdir(parents=True)
        lines = [",".join(str(i) for i in range(100))]
        lines += [",".join([str(f + 1)] + ["0"] * 99) for f in range(frames)]
        (labels / "F001_T1.csv").write_text("\n".join(lines))
        landmarks = root / "landmarks/F001/T1.csv"
    landmarks.parent.mkdir(parents=True, exist_ok=True)
    landmarks.write_text("\n".join(rows))
    return kind


def loader_table(frames: int, batch: int, min_run_time: float, tmp: Path) -> None:
    cache_size, crop = 36, 32
    src = tmp / "loader_src"
    (src / "list").mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for f in range(frames):
        rel = f"F00{1 + f % 3}/T1/{f}.png"
        (src / "img" / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(
            str(src / "img" / rel), rng.integers(0, 256, (cache_size, cache_size, 3), np.uint8)
        )
        paths.append(rel)
    for k, test in ((1, "F003"), (2, "F002"), (3, "F001")):
        for split in ("train", "test"):
            chosen = [p for p in paths if p.startswith(test) == (split == "test")]
            (src / f"list/X_{split}_img_path_fold{k}.txt").write_text("\n".join(chosen))
            (src / f"list/X_{split}_label_fold{k}.txt").write_text("\n".join("0 1" for _ in chosen))
    cache = open_cache(
        build_cache("list", src, tmp / "loader_cache", cache_size, options={"aus": [1, 2]})
    )
    images = cache.images
    gen = torch.Generator().manual_seed(0)
    order = np.random.default_rng(1)

    def rows() -> torch.Tensor:
        idx = np.sort(order.choice(len(images), batch, replace=False))
        return to_float(torch.from_numpy(np.ascontiguousarray(images[idx])))

    def load_wce():
        v, _ = random_crop_flip(rows(), crop, gen)
        return normalize(v, "imagenet")

    def load_aunce():
        x = rows()
        v1, _ = simclr_view(x, crop, gen)
        v2, _ = simclr_view(x, crop, gen)
        return normalize(torch.cat([v1, v2]), "imagenet")

    torch.manual_seed(0)
    enc = create_encoder("megraph", 12, size="tiny", input_size=crop).train()

    def train_step(x):
        def step():
            enc.zero_grad(set_to_none=True)
            enc(x).square().mean().backward()

        return step

    one_view = torch.randn(batch, 3, crop, crop)
    two_views = torch.randn(2 * batch, 3, crop, crop)
    timings = {
        "WCE (crop + flip)": (
            median_seconds(load_wce, min_run_time),
            median_seconds(train_step(one_view), min_run_time),
        ),
        "AUNCE (two SimCLR views)": (
            median_seconds(load_aunce, min_run_time),
            median_seconds(train_step(two_views), min_run_time),
        ),
    }
    print(
        f"Loader against the tiny MEGraph encoder: cache {cache_size} px memory-mapped "
        f"({frames} frames), {crop} px crops, batch {batch} frames, float32:\n"
    )
    print(
        "| batch path | loader ms / batch | loader frames / s | encoder fwd + bwd ms / batch | "
        "encoder frames / s | loader / encoder | loader share of a step |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (load, step) in timings.items():
        print(
            f"| {name} | {1000 * load:.2f} | {batch / load:.0f} | {1000 * step:.1f} | "
            f"{batch / step:.0f} | **{step / load:.1f}x** | {100 * load / (load + step):.0f} % |"
        )


def memmap_table(frames: int, batch: int, min_run_time: float, tmp: Path) -> None:
    size = 256
    path = tmp / "images256.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(frames, size, size, 3))
    arr[:] = np.random.default_rng(0).integers(0, 256, arr.shape, np.uint8)
    arr.flush()
    del arr
    images = np.load(path, mmap_mode="r")
    order = np.random.default_rng(1)

    def read():
        idx = np.sort(order.choice(len(images), batch, replace=False))
        return torch.from_numpy(np.ascontiguousarray(images[idx]))

    seconds = median_seconds(read, min_run_time)
    gib = frames * size * size * 3 / 2**30
    print(
        f"\nMemory-mapped reads of a {size} px cache ({frames} frames, {gib:.2f} "
        f"GiB, in the page cache), batch {batch}: {1000 * seconds:.2f} ms / batch, "
        f"**{batch / seconds:.0f} images / s** (uint8 rows to a torch tensor; the augmentation "
        "then runs on the training device)."
    )


def build_table(frames: int, sizes: list[int], tmp: Path) -> None:
    cores = os.cpu_count() or 1
    print(
        f"\nCache build (`build_cache`), {frames} frames per tree, wall time of the whole build; "
        f"per core = with 1 worker; {cores} cores:\n"
    )
    print(
        "| source | output | 1 worker: images / s (per core) | "
        f"{cores} workers: images / s | time per 10,000 frames ({cores} workers) |"
    )
    print("| --- | --- | --- | --- | --- |")
    labels = {
        "bp4d": "BP4D-like, 1392 x 1040 JPEG, aligned from 68 landmarks",
        "disfa": "DISFA-like, 1024 x 768 PNG, aligned from 66 landmarks",
        "list": "list layout, 256 x 256 aligned JPEG, resized",
    }
    for kind, label in labels.items():
        root = tmp / f"tree_{kind}"
        reader = fake_tree(kind, root, frames)
        options = {"aus": [1, 2, 4, 6]} if kind == "list" else None
        for size in sizes:
            rates = []
            for workers in (1, cores):
                start = time.perf_counter()
                build_cache(
                    reader, root, tmp / f"cache_{kind}_{size}_{workers}", size,
                    workers=workers, options=options, chunk_size=32,
                )  # fmt: skip
                rates.append(frames / (time.perf_counter() - start))
            print(
                f"| {label} | {size} px | {rates[0]:.0f} | {rates[1]:.0f} | "
                f"{10000 / rates[1] / 60:.1f} min |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds per timing")
    parser.add_argument("--loader-frames", type=int, default=2048)
    parser.add_argument("--build-frames", type=int, default=96)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 256])
    args = parser.parse_args(argv)
    print(
        f"{datetime.date.today().isoformat()}, git {git_revision()}, torch {torch.__version__}, "
        f"OpenCV {cv2.__version__}, Python {platform.python_version()}, {cpu_name()}, "
        f"{torch.get_num_threads()} torch threads\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        loader_table(args.loader_frames, args.batch, args.min_run_time, tmp)
        memmap_table(args.loader_frames, args.batch, args.min_run_time, tmp)
        build_table(args.build_frames, args.sizes, tmp)


if __name__ == "__main__":
    main()
