"""The aligned cache: every face aligned once, stored as memory-mappable uint8 arrays.

Layout of a cache folder::

    images.npy      (N, S, S, 3) uint8, RGB, aligned faces (np.load(..., mmap_mode="r"))
    landmarks.npy   (N, 49, 2) float32, the 49 inner landmarks in aligned pixels (NaN if unknown)
    manifest.csv    the dataset's manifest, same row order
    report.json     what the reader counted: frames, label files, and every drop the spec allows
    cache.json      size, counts, AU names, source, and each file's size and SHA-256; written last

The folder is built under ``.<name>.partial`` beside it and renamed into place when complete, so a
folder with ``cache.json`` is always a whole cache as built; whether it is still whole is checked
on every open (:func:`open_cache`): the sizes of its files always (:func:`cache_problem`, cheap:
a truncated or extended file), their SHA-256 against ``cache.json`` once per process (a byte
changed in place). A damaged cache is marked so (:func:`mark_damaged`: ``<folder>.damaged.txt``
beside it says why), and the workflow, whose cache job reads that note once it exists, sees an
input newer than the cache's ``cache.json``: it builds the cache again and reruns everything made
from it.

The build is resumable: faces are aligned in chunks of ``chunk_size`` frames written straight
into the partial arrays, and ``progress.json`` records the chunks done; a rerun with the same
inputs (same manifest, landmarks, size and alignment) skips them, anything else starts afresh.
Training reads batches by index without decoding images.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aunce import AunceError
from aunce.data import aligned_by_default, au_names, read_dataset, read_landmarks
from aunce.data.readers.common import sha256_file
from aunce.io import read_json, write_json, write_text

CACHE_VERSION = 2
MIN_SIZE = 16  # pixels, the schema's smallest image.cache_size
CHUNK_SIZE = 256  # frames per unit of work and of resumption
HASH_ROWS = 4096  # landmark rows hashed at a time
PROGRESS_SECONDS = 10.0  # a progress line at most this often
#: the files of a cache that cache.json records by size and SHA-256
FILES = ("images.npy", "landmarks.npy", "manifest.csv", "report.json")
META = "cache.json"
DAMAGED_SUFFIX = ".damaged.txt"  # <cache folder>.damaged.txt: why a cache was marked damaged

log = logging.getLogger("aunce")


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
    aligned: bool | None = None,
    workers: int | None = None,
    landmarks: str = "landmarks",
    options: dict | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Path:
    """Read a dataset, align every face to ``size x size`` and write the cache folder.

    ``aligned`` None takes the layout's usual case (:func:`aunce.data.aligned_by_default`: aligned
    for the list layout, and for Aff-Wild2 unless it has a landmark folder);
    ``landmarks`` is the folder of the per-sequence landmark files (relative to ``root`` unless
    absolute); ``options`` go to the reader (:func:`aunce.data.read_dataset`).
    """
    root, out_dir = Path(root), Path(out_dir)
    if size < MIN_SIZE:
        raise AunceError(f"cache size must be at least {MIN_SIZE} pixels, got {size}")
    if out_dir.exists() and not out_dir.is_dir():
        raise AunceError(
            f"{out_dir}: a file is in the way (a cache is a folder); move it away or choose "
            "another output"
        )
    if aligned is None:
        aligned = aligned_by_default(reader, root, landmarks)
        if reader == "affwild2":
            log.info(
                "%s: %s", root,
                "only resizing the cropped_aligned faces (no landmark folder)" if aligned
                else f"aligning the faces from the landmark files in '{landmarks}'",
            )  # fmt: skip
    report: dict = {}
    manifest = read_dataset(reader, root, report=report, **(options or {}))
    for reason, count in report["dropped"].items():
        if count:
            log.warning("%s: dropped %d frame(s): %s (see report.json)", root, count, reason)
    n = len(manifest)
    if n == 0:
        raise AunceError(f"{root}: the dataset has no labelled frames")
    points = read_landmarks(
        reader, root, manifest, folder=landmarks, required=not aligned, mmap=True
    )
    settings = {
        "cache_version": CACHE_VERSION,
        "reader": reader,
        "source": str(root.resolve()),
        "size": size,
        "aligned_input": aligned,
        "chunk_size": chunk_size,
    }
    # The manifest is written once, to a file beside the cache, and hashed from there; the
    # landmarks are hashed (and later aligned) a slice at a time: what the build holds grows with
    # the manifest's rows, never with a copy of them or with the landmark file (BENCHMARKS.md,
    # "Scale"). The fingerprint is the SHA-256 of the settings, the manifest's CSV and the
    # float32 landmarks, in that order, as when they were hashed whole.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = out_dir.parent / f".{out_dir.name}.manifest.csv"
    try:
        manifest.to_csv(staged, index=False)
    except OSError as err:
        staged.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(staged)) from None
    try:
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        sha256_file(staged, digest)
        for start in range(0, n if points is not None else 0, HASH_ROWS):
            rows = _landmark_rows(points, start, min(start + HASH_ROWS, n))
            digest.update(np.ascontiguousarray(rows, np.float32).tobytes())
        partial = out_dir.parent / f".{out_dir.name}.partial"
        done = _open_partial(partial, digest.hexdigest(), n, size, staged, report)
    finally:
        staged.unlink(missing_ok=True)
    chunks = [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]
    pending = [c for c in chunks if c[0] not in done]
    if done:
        log.info("%s: resuming, %d of %d chunks already aligned", partial, len(done), len(chunks))
    paths = manifest["image"].to_numpy()
    tasks = [
        (root, partial, start, stop, paths[start:stop], _landmark_task(points, start, stop),
         size, aligned)
        for start, stop in pending
    ]  # fmt: skip
    progress = _Progress(n, n - sum(stop - start for start, stop in pending))

    def finished(start: int, stop: int) -> None:
        done.add(start)
        write_json(
            partial / "progress.json", {"fingerprint": digest.hexdigest(), "done": sorted(done)}
        )
        progress.update(stop - start)

    if (workers or 1) > 1 and len(tasks) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            futures = [pool.submit(_align_chunk, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    finished(*future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    else:
        for task in tasks:
            finished(*_align_chunk(task))
    progress.close()
    (partial / "progress.json").unlink()
    write_json(
        partial / "cache.json",
        {
            **settings,
            "source": str(root),
            "n_frames": n,
            "aus": au_names(manifest),
            "sha256": {name: sha256_file(partial / name) for name in FILES},
            "bytes": {name: (partial / name).stat().st_size for name in FILES},
        },
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(partial, out_dir)
    return out_dir


def _landmark_rows(points: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the landmarks in memory. A memory-mapped file (the synthetic
    stand-ins' ``landmarks.npy``) is read through a map of those rows alone, dropped on return:
    the process never keeps the pages of the whole file."""
    if isinstance(points, np.memmap):
        return _read_rows(Path(points.filename), start, stop)
    return points[start:stop]


def _read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a ``.npy`` file copied into memory, their map dropped."""
    return np.array(_rows(path, start, stop, mode="r"))


def _landmark_task(points: np.ndarray | None, start: int, stop: int):
    """What a worker gets to find its chunk's landmarks: None, a memory-mapped file's path (the
    worker reads its rows itself) or the rows of an array held in memory."""
    if points is None:
        return None
    if isinstance(points, np.memmap):
        return Path(points.filename)
    return points[start:stop]


def _open_partial(
    partial: Path, fingerprint: str, n: int, size: int, manifest_csv: Path, report: dict
) -> set[int]:
    """The chunks already done in ``partial`` when it was started with the same inputs; otherwise
    a fresh partial folder (and no chunk done)."""
    progress = partial / "progress.json"
    if progress.exists():
        try:
            record = json.loads(progress.read_text())
        except json.JSONDecodeError:
            record = {}
        if record.get("fingerprint") == fingerprint:
            return set(record["done"])
        log.info("%s: inputs changed since the interrupted build; starting afresh", partial)
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _new_partial(partial, n, size, manifest_csv, report)
    except OSError:  # a full disk: leave nothing behind, the space is the user's to free
        shutil.rmtree(partial, ignore_errors=True)
        raise
    write_json(progress, {"fingerprint": fingerprint, "done": []})
    return set()


def _new_partial(partial: Path, n: int, size: int, manifest_csv: Path, report: dict) -> None:
    """A partial folder: the arrays, their space reserved on disk, the manifest (copied from the
    file ``manifest_csv``) and the report."""
    partial.mkdir(parents=True)
    np.lib.format.open_memmap(
        partial / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3)
    ).flush()
    _reserve(partial / "images.npy")
    lm = np.lib.format.open_memmap(
        partial / "landmarks.npy", mode="w+", dtype=np.float32, shape=(n, 49, 2)
    )
    lm.flush()
    _reserve(partial / "landmarks.npy")
    lm[:] = np.nan
    lm.flush()
    del lm
    try:
        shutil.copyfile(manifest_csv, partial / "manifest.csv")
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(partial / "manifest.csv")) from None
    write_json(partial / "report.json", report)


def _reserve(path: Path) -> None:
    """Allocate a memory-mapped array's file on disk now: a full disk is then an ``OSError`` naming
    the file here, not a ``SIGBUS`` that kills a worker when it first writes to a page."""
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return  # a file system that cannot reserve space: writes find out instead
            raise OSError(err.errno, err.strerror, str(path)) from None


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8. A missing, unreadable or truncated file is an error naming it
    (OpenCV decodes a truncated JPEG with a warning on stderr only, and grey where data is missing)."""
    import cv2

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AunceError(f"{path}: image missing") from None
    except OSError as err:
        raise AunceError(f"{path}: cannot read the image ({err.strerror})") from None
    problem = truncation(raw)
    if problem:
        raise AunceError(f"{path}: {problem}; the file is damaged, copy or extract it again")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # as before: EXIF orientation applied
    if bgr is None:
        raise AunceError(f"{path}: not an image OpenCV can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def truncation(raw: bytes) -> str | None:
    """Why the bytes of a JPEG or PNG file are a truncated image, or None.

    JPEG: after the start of the last scan (marker FFDA) an end-of-image marker (FFD9) must follow;
    inside a scan a byte FF is always followed by 00 or a restart marker, so FFD9 appears there only
    at the end. PNG: the file ends with the IEND chunk and its CRC."""
    if raw[:2] == b"\xff\xd8":
        if raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda"):
            return f"truncated JPEG ({len(raw)} bytes, no end-of-image marker after its last scan)"
    elif raw[:8] == b"\x89PNG\r\n\x1a\n":
        end = raw.rfind(b"IEND")
        if end < 0 or end + 8 > len(raw):  # the chunk type, then its 4-byte CRC
            return f"truncated PNG ({len(raw)} bytes, no complete IEND chunk)"
    return None


def _rows(path: Path, start: int, stop: int, mode: str = "r+") -> np.memmap:
    """Rows ``start:stop`` of a ``.npy`` file as a memory map of only those pages (writable by
    default; ``mode="r"`` to read)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, _, dtype = read_header(fh)
        offset = fh.tell()
    row_bytes = dtype.itemsize * int(np.prod(shape[1:]))
    return np.memmap(
        path, dtype, mode, offset=offset + start * row_bytes, shape=(stop - start, *shape[1:])
    )


def _align_chunk(task) -> tuple[int, int]:
    """Align frames ``start:stop`` into the partial arrays; runs in a worker process."""
    from aunce.data.align import align_face, resize_face

    root, partial, start, stop, paths, landmarks, size, aligned = task
    if isinstance(landmarks, Path):
        landmarks = _read_rows(landmarks, start, stop)
    images = _rows(partial / "images.npy", start, stop)
    points = _rows(partial / "landmarks.npy", start, stop)
    for i, rel in enumerate(paths):
        rgb = read_image(root / rel)
        lm = None if landmarks is None else landmarks[i]
        if aligned:
            images[i], points[i] = resize_face(rgb, lm, size)
        elif lm is None or not np.isfinite(lm).all():
            raise AunceError(
                f"{root / rel}: no landmarks to align this face (declare the "
                "dataset `aligned: true` if its images are already aligned)"
            )
        else:
            images[i], points[i] = align_face(rgb, lm, size)
    images.flush()
    points.flush()
    return start, stop


class _Progress:
    """Progress lines on the log (stderr): frames done, rate and time left, every few seconds."""

    def __init__(self, total: int, done: int, every: float = PROGRESS_SECONDS):
        self.total, self.done, self.every = total, done, every
        self.start_done = done
        self.start = self.last = time.perf_counter()

    def update(self, frames: int) -> None:
        self.done += frames
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def close(self) -> None:
        self._line(time.perf_counter())

    def _line(self, now: float) -> None:
        seconds = max(now - self.start, 1e-9)
        rate = (self.done - self.start_done) / seconds
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        log.info(
            "aligned %d/%d frames (%.0f %%), %.0f frames/s, %.0f s elapsed, about %.0f s left",
            self.done,
            self.total,
            100.0 * self.done / self.total,
            rate,
            seconds,
            left,
        )


def cache_folder(path: str | os.PathLike) -> Path:
    """A cache's folder, given the folder or its ``cache.json`` (the file the workflow declares)."""
    path = Path(path)
    return path.parent if path.name == META else path


def damage_note(path: str | os.PathLike) -> Path:
    """Where a damaged cache's note goes: ``<name>.damaged.txt`` beside its folder (an input of
    the workflow's cache job once it exists: a note newer than ``cache.json`` reruns the job)."""
    path = cache_folder(path)
    return path.with_name(f"{path.name}{DAMAGED_SUFFIX}")


def cache_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a cache folder that cheap checks find, or None: no ``cache.json``, a note
    newer than it (:func:`mark_damaged`), a file missing or of another size than ``cache.json``
    records (for a cache without sizes, the arrays against their ``.npy`` headers). Reads only
    ``cache.json`` and the arrays' headers."""
    path = cache_folder(path)
    meta_path = path / META
    if not meta_path.is_file():
        return f"not a complete cache (no {META})"
    note = damage_note(path)
    if note.is_file() and note.stat().st_mtime_ns >= meta_path.stat().st_mtime_ns:
        return f"marked damaged ({note.read_text().strip()})"
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"{META} is unreadable ({err})"
    if not isinstance(meta, dict) or not isinstance(meta.get("n_frames"), int):
        return f"{META} is not a cache's description (no n_frames)"
    sizes = meta.get("bytes") or {}
    for name in FILES:
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if name in sizes and size != sizes[name]:
            return f"{name} has {size} bytes, {sizes[name]} when it was built"
    for name, rows in (("images.npy", meta["n_frames"]), ("landmarks.npy", meta["n_frames"])):
        problem = _npy_problem(path / name, rows)
        if problem:
            return f"{name}: {problem}"
    return None


def _npy_problem(path: Path, rows: int) -> str | None:
    """Whether a ``.npy`` file's size is what its header says, with ``rows`` rows."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }[version]
            shape, _, dtype = read_header(fh)
            offset = fh.tell()
    except (ValueError, OSError, KeyError) as err:
        return f"not a readable array ({err})"
    expected = offset + dtype.itemsize * int(np.prod(shape))
    size = path.stat().st_size
    if size != expected:
        return f"{size} bytes, {expected} expected for an array of shape {shape}"
    if not shape or shape[0] != rows:
        return f"shape {shape}, {rows} rows expected"
    return None


def mark_damaged(path: str | os.PathLike, problem: str) -> Path:
    """Mark a cache damaged: write why to its note (:func:`damage_note`), newer than its
    ``cache.json``. The note is an input of the workflow's cache job, so the next run builds the
    cache again and reruns everything made from it; until then :func:`open_cache` refuses it."""
    note = damage_note(path)
    write_text(note, problem + "\n")
    return note


#: caches whose SHA-256 this process has checked: folder -> the (size, mtime) of their files then
_VERIFIED: dict[Path, tuple] = {}


def _stamp(path: Path) -> tuple:
    return tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in (path / n for n in [*FILES, META]))


def verify_cache(
    path: str | os.PathLike, meta: dict | None = None, *, full: bool = True, mark: bool = True
) -> None:
    """Check a cache: :func:`cache_problem`, then (``full``) every file's SHA-256 against
    ``cache.json``, once per process while the files are unchanged. A damaged cache raises
    :class:`AunceError` naming the file and what to do, and (``mark``) is marked damaged
    (:func:`mark_damaged`) first."""
    path = cache_folder(path)
    problem = cache_problem(path)
    if problem and (problem.startswith("marked damaged") or not (path / META).is_file()):
        raise AunceError(
            f"{path}: {problem}; run the workflow again (make run), which builds it again and "
            "reruns everything made from it"
        )
    if problem is None and full:
        meta = meta if meta is not None else read_json(path / META)
        stamp = _stamp(path)
        if _VERIFIED.get(path.resolve()) != stamp:
            recorded = meta.get("sha256") or {}
            for name in FILES:
                if name not in recorded:
                    problem = f"{META} records no SHA-256 of {name}"
                elif sha256_file(path / name) != recorded[name]:
                    problem = (
                        f"{name} does not match its SHA-256 in {META} (changed after the cache "
                        "was built)"
                    )
                if problem:
                    break
            else:
                _VERIFIED[path.resolve()] = stamp
    if problem:
        if mark:
            note = mark_damaged(path, problem)
            raise AunceError(
                f"{path}: damaged, {problem}; marked so ({note}): run the workflow again (make "
                "run), which builds it again and reruns everything made from it"
            )
        raise AunceError(
            f"{path}: damaged, {problem}; mark it (aunce verify --fix) and run the workflow "
            "again (make run)"
        )


def open_cache(path: str | os.PathLike, *, verify: bool = True) -> Cache:
    """Open a cache folder written by :func:`build_cache`; ``path`` may also be its ``cache.json``.
    Checked first (:func:`verify_cache`; ``verify`` False: sizes only).

    Images and landmarks are memory-mapped (read by rows). The manifest is read without its
    ``image`` column (the source paths, needed only to build the cache), the identifiers as
    categories and the AU labels as int8: about 40 bytes a frame in memory, where the whole
    manifest as text took some 400 (700 MB for Aff-Wild2's 1.83 M frames)."""
    import pandas as pd

    path = cache_folder(path)
    meta_path = path / META
    if not meta_path.exists():
        raise AunceError(
            f"{path}: not a complete cache (no cache.json); rebuild it with `aunce cache`"
        )
    meta = read_json(meta_path)
    verify_cache(path, meta, full=verify)
    images = np.load(path / "images.npy", mmap_mode="r")
    landmarks = np.load(path / "landmarks.npy", mmap_mode="r")
    with open(path / "manifest.csv", newline="") as fh:
        columns = next(csv.reader(fh), [])
    labels = set(meta["aus"]) | {f"{au}_clean" for au in meta["aus"]}
    # identifiers stay text (subject '007' must not become the number 7), as categories
    dtype = {c: "category" if c in ("subject", "sequence", "split") else "int8"
             for c in columns if c in labels or c in ("subject", "sequence", "split")}  # fmt: skip
    manifest = pd.read_csv(
        path / "manifest.csv", usecols=[c for c in columns if c != "image"], dtype=dtype
    )
    if not (len(manifest) == len(images) == len(landmarks) == meta["n_frames"]):
        raise AunceError(f"{path}: images, landmarks and manifest disagree in length")
    return Cache(path, images, landmarks, manifest, list(meta["aus"]), meta)
