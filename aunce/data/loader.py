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
"""

from __future__ import annotations

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

    def __call__(self, rows: np.ndarray) -> Batch:
        """The cache's rows ``rows`` (pass them sorted: the memmap is then read sequentially)."""
        return Batch(
            rows,
            self._host(self.images[rows]),
            None if self.labels is None else self._host(self.labels[rows]),
            None if self.landmarks is None else self._host(self.landmarks[rows]),
        )

    def _host(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.pin_memory() if self.pin else tensor


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
