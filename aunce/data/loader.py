"""Batches of the aligned cache read on a background thread while the previous step runs.

A training step needs its batch in memory before it starts: rows of the memory-mapped
``images.npy`` gathered (page faults when the cache is cold), and on CUDA copied into page-locked
(pinned) memory so that the copy to the device is asynchronous (``non_blocking=True``). The
:class:`Prefetcher` does that for the next ``depth`` batches on one thread while the main thread
trains: numpy and torch release the GIL while they copy, and the accelerator is fed without waiting
for the disk. A thread rather than ``DataLoader`` worker processes: the work is a copy, not a
decode, and a process would pay torch's imports (seconds on a small machine, BENCHMARKS.md).

The batches arrive in the order given, so training is deterministic whatever the thread's timing.
An error in the reader reaches the consumer at the batch it concerns; leaving the ``with`` block
(normally, by an error or a break) stops the thread.

Resident memory stays bounded by the batch, not by the dataset. Every page of a memory-mapped
file a process has touched counts in its resident set (what ``/usr/bin/time``, Snakemake's
benchmark files and a cluster's memory accounting see) until the kernel wants the memory back, and
the kernel maps a whole page-cache folio, up to 2 MB, around a read: a pass over a 360 GB cache
would look like a 360 GB process, and one minibatch of random rows like a few hundred MB.
:class:`CacheReader` therefore hands the cache's pages back to the page cache
(``madvise(MADV_DONTNEED)`` on the read-only mapping: the data stay cached, the next read maps
them again) once the rows it read may have mapped :data:`MAPPED_BUDGET` bytes
(:class:`PageBudget`), and :class:`RowReader`, which reads an embeddings file's rows at random for
many epochs, reads a file larger than that budget with ``pread`` into the batch's own buffer
(nothing mapped) and a smaller one (:data:`MAPPED_BUDGET`) into memory once.
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

Item = TypeVar("Item")
Out = TypeVar("Out")

_DONE = object()
_POLL_SECONDS = 0.05  # how often a blocked worker looks whether it was stopped
#: Bytes of memory-mapped files a reader lets stay mapped into the process before it releases them;
#: also the size up to which :class:`RowReader` reads a file into memory once rather than by rows.
MAPPED_BUDGET = 16 * 2**20
#: Bytes the kernel may map around one read of a file mapping: a page-cache folio (large folios
#: of up to 2 MB on recent Linux; ``fault_around_bytes``, 64 KB, for small pages).
FOLIO_BYTES = 2 * 2**20


def release_pages(array) -> bool:
    """Unmap from this process the pages of the read-only file mapping behind ``array`` (an array
    of ``np.load(..., mmap_mode="r")``, :func:`np.memmap` in mode ``r`` or a view of one). The
    file's pages stay in the page cache; the next read of them maps them again. False (nothing
    done) for an array in memory or a writable mapping."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        if isinstance(base, np.memmap) and base.mode != "r":
            return False  # a writable or copy-on-write mapping would lose its changes
        base = getattr(base, "base", None)
    if base is None or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    base.madvise(mmap.MADV_DONTNEED)
    return True


class PageBudget:
    """Counts the bytes reads of ``arrays`` may have mapped (``rows`` x the larger of a row and
    :data:`FOLIO_BYTES`, at most the array) and releases their pages (:func:`release_pages`) each
    time ``budget`` is reached."""

    def __init__(self, arrays: Iterable, budget: int = MAPPED_BUDGET):
        self.arrays = [a for a in arrays if a is not None and _mapped(a)]
        self.budget, self.mapped = budget, 0

    def read(self, array: np.ndarray, rows: int) -> None:
        """``rows`` rows of ``array`` were read."""
        if not self.arrays:
            return
        row = array.strides[0] if array.ndim else array.nbytes
        self.mapped += min(rows * max(row, FOLIO_BYTES), array.nbytes)
        if self.mapped >= self.budget:
            for a in self.arrays:
                release_pages(a)
            self.mapped = 0


def _mapped(array) -> bool:
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


class Prefetcher(Generic[Item, Out]):
    """``read(item)`` for each of ``items`` in order, up to ``depth`` reads ahead on a thread.

    ``depth=0`` reads on the consumer's thread (no thread): the plain loop, for comparison.
    Use as a context manager::

        with Prefetcher(read, items) as batches:
            for batch in batches:
                ...
    """

    def __init__(self, read: Callable[[Item], Out], items: Iterable[Item], depth: int = 2):
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self._read, self._items, self.depth = read, items, depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def __enter__(self) -> Prefetcher[Item, Out]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Out]:
        if self._started:
            raise RuntimeError("a Prefetcher is iterated once")
        self._started = True
        if self.depth == 0:
            for item in self._items:
                yield self._read(item)
            return
        self._thread = threading.Thread(target=self._work, name="aunce-prefetch", daemon=True)
        self._thread.start()
        while True:
            kind, value = self._queue.get()
            if kind is _DONE:
                return
            if kind is BaseException:
                self.close()
                raise value
            yield value

    def _work(self) -> None:
        try:
            for item in self._items:
                if self._stop.is_set():
                    return
                if not self._put((None, self._read(item))):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            self._put((BaseException, err))
            return
        self._put((_DONE, None))

    def _put(self, entry) -> bool:
        """Queue ``entry`` unless the consumer stopped meanwhile (then False)."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the reading thread and wait for it (it finishes the read in progress)."""
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:  # unblock a worker waiting on a full queue
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=_POLL_SECONDS)
            self._thread = None


@dataclass
class Batch:
    """Rows of the cache: ``images`` (B, S, S, 3) uint8, ``labels`` (B, K) int8 or None,
    ``landmarks`` (B, 49, 2) float32 or None, and the row indices."""

    rows: np.ndarray
    images: torch.Tensor
    labels: torch.Tensor | None
    landmarks: torch.Tensor | None

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``; asynchronous from pinned memory (``non_blocking``)."""
        return Batch(
            self.rows,
            self.images.to(device, non_blocking=True),
            None if self.labels is None else self.labels.to(device, non_blocking=True),
            None if self.landmarks is None else self.landmarks.to(device, non_blocking=True),
        )


class CacheReader:
    """Reads :class:`Batch` es of rows from a cache's arrays; pins them when ``pin`` (CUDA).

    ``labels`` and ``landmarks`` may be None (not read)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        landmarks: np.ndarray | None = None,
        pin: bool = False,
    ):
        self.images, self.labels, self.landmarks, self.pin = images, labels, landmarks, pin
        self.pages = PageBudget([images, landmarks])

    def __call__(self, rows: np.ndarray) -> Batch:
        """The cache's rows ``rows`` (pass them sorted: the memmap is then read sequentially)."""
        batch = Batch(
            rows,
            self._host(self.images[rows]),
            None if self.labels is None else self._host(self.labels[rows]),
            None if self.landmarks is None else self._host(self.landmarks[rows]),
        )
        self.pages.read(self.images, len(rows))
        if self.landmarks is not None:
            self.pages.read(self.landmarks, len(rows))
        return batch

    def _host(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.pin_memory() if self.pin else tensor


class RowReader:
    """Rows of an (N, ...) array as float32 tensors: ``reader(rows)`` copies ``array[rows]`` in the
    order given (pinned when ``pin``).

    An array memory-mapped from a file larger than :data:`MAPPED_BUDGET` is read with ``pread``,
    row by row in file order into the batch's buffer, so that no page of the file is mapped; a
    smaller one, or one in memory, is indexed in memory (read once)."""

    def __init__(self, array: np.ndarray, pin: bool = False):
        self.pin, self.shape, self.dtype = pin, array.shape, array.dtype
        self.fd = None
        # a whole file mapping (np.memmap, np.load(mmap_mode="r")), not a view of one
        whole = isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
        if whole and array.nbytes > MAPPED_BUDGET and array.flags.c_contiguous:
            self.fd = os.open(array.filename, os.O_RDONLY)
            self.offset, self.row = array.offset, array.strides[0]
            self.array = None
        else:
            self.array = np.array(array) if isinstance(array, np.memmap) else array

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None

    def __call__(self, rows: np.ndarray | slice) -> torch.Tensor:
        # the rows in their stored dtype, converted by torch (numpy's float16 -> float32 is slow)
        block = self._read(rows) if self.fd is not None else np.ascontiguousarray(self.array[rows])
        out = torch.from_numpy(block).float()
        return out.pin_memory() if self.pin else out

    def _read(self, rows: np.ndarray | slice) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(self.shape[0])
            block = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
            self._pread(memoryview(block).cast("B"), self.offset + start * self.row)
            return block
        rows = np.asarray(rows)
        block = np.empty((len(rows), *self.shape[1:]), self.dtype)
        view = memoryview(block).cast("B")
        for i in np.argsort(rows, kind="stable"):  # in file order
            self._pread(view[i * self.row : (i + 1) * self.row], self.offset + int(rows[i]) * self.row)
        return block

    def _pread(self, buffer: memoryview, offset: int) -> None:
        while len(buffer):
            n = os.preadv(self.fd, [buffer], offset)
            if n <= 0:
                raise OSError(f"unexpected end of file reading {len(buffer)} bytes at {offset}")
            buffer, offset = buffer[n:], offset + n

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive blocks of ``size`` rows, in order."""
        for start in range(0, self.shape[0], size):
            yield self(slice(start, start + size))


def epoch_batches(
    rows: np.ndarray, perm: np.ndarray, batch_size: int, drop_last: bool = True
) -> list[np.ndarray]:
    """The batches of an epoch: ``rows[perm]`` cut into batches of ``batch_size``, each sorted for
    sequential reads. ``drop_last``: the last partial batch is dropped (contrastive batches stay
    full); otherwise it is kept (as torch's DataLoader by default, the released code) unless it
    holds a single frame, which batch norm cannot normalise in training mode."""
    n = len(perm)
    n_batches = max(1, n // batch_size)
    if not drop_last and n % batch_size >= 2 and n > batch_size:
        n_batches += 1
    return [np.sort(rows[perm[i * batch_size : (i + 1) * batch_size]]) for i in range(n_batches)]
