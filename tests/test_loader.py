"""The prefetching reader of the training loop (aunce.data.loader, issue 13)."""

import contextlib
import threading
import time

import numpy as np
import pytest
import torch

from aunce.data.loader import Batch, CacheReader, Prefetcher, epoch_batches


def slow_double(item: int) -> int:
    time.sleep(0.001 * (item % 3))  # uneven read times: order must not depend on them
    return 2 * item


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aunce-prefetch"]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_batches_arrive_in_the_order_given(depth):
    with Prefetcher(slow_double, range(40), depth) as stream:
        assert list(stream) == [2 * i for i in range(40)]
    assert not prefetch_threads()


def test_a_prefetcher_reads_ahead_while_the_consumer_works():
    read = []

    def record(item):
        read.append(item)
        return item

    with Prefetcher(record, range(10), depth=3) as stream:
        first = next(iter(stream))
        deadline = time.monotonic() + 5
        while len(read) < 4 and time.monotonic() < deadline:  # 1 handed out + 3 queued
            time.sleep(0.001)
        assert first == 0 and read == [0, 1, 2, 3]


def test_same_seed_same_batches_with_and_without_prefetch(bp4d_cache):
    from aunce.data.cache import open_cache

    cache = open_cache(bp4d_cache)
    rows = cache.split("1")[0]
    reader = CacheReader(cache.images, cache.labels, cache.landmarks)

    def epoch(seed: int, depth: int) -> list[Batch]:
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).numpy()
        with Prefetcher(reader, epoch_batches(rows, perm, 8), depth) as stream:
            return list(stream)

    a, b, plain, other = epoch(7, 2), epoch(7, 2), epoch(7, 0), epoch(8, 2)
    assert len(a) == len(rows) // 8
    for x, y, z in zip(a, b, plain, strict=True):
        assert np.array_equal(x.rows, y.rows) and np.array_equal(x.rows, z.rows)
        assert np.all(np.diff(x.rows) > 0)  # sorted: sequential memmap reads
        assert torch.equal(x.images, torch.from_numpy(cache.images[x.rows]))
        assert torch.equal(x.labels, torch.from_numpy(cache.labels[x.rows]))
        assert torch.equal(x.landmarks, torch.from_numpy(cache.landmarks[x.rows]))
        assert torch.equal(x.images, y.images) and torch.equal(x.images, z.images)
    assert any(not np.array_equal(x.rows, y.rows) for x, y in zip(a, other, strict=True))
    # every frame of the epoch once (the partial last batch is dropped)
    assert len(np.unique(np.concatenate([x.rows for x in a]))) == len(a) * 8


def test_epoch_batches_keep_a_short_split_whole():
    rows = np.arange(100, 105)
    (only,) = epoch_batches(rows, np.array([4, 0, 3, 1, 2]), batch_size=8)
    assert only.tolist() == [100, 101, 102, 103, 104]


def test_an_error_in_the_reader_reaches_the_consumer_and_stops_the_thread():
    def read(item):
        if item == 5:
            raise OSError(f"cannot read row {item}")
        return item

    got = []
    with pytest.raises(OSError, match="cannot read row 5"):
        with Prefetcher(read, range(20), depth=2) as stream:
            for value in stream:
                got.append(value)
    assert got == [0, 1, 2, 3, 4]  # every batch before the bad one, in order
    assert not prefetch_threads()


@pytest.mark.parametrize("how", ["error", "break"])
def test_the_thread_stops_when_the_consumer_leaves_early(how):
    started = time.monotonic()
    with pytest.raises(ValueError) if how == "error" else contextlib.nullcontext():
        with Prefetcher(slow_double, range(10_000), depth=2) as stream:
            for i, _ in enumerate(stream):
                if i == 3:
                    if how == "error":
                        raise ValueError("a failed step")
                    break
    assert not prefetch_threads()  # joined: nothing keeps reading after the epoch ended
    assert time.monotonic() - started < 10


def test_a_prefetcher_is_iterated_once_and_refuses_a_negative_depth():
    with Prefetcher(slow_double, range(3)) as stream:
        assert list(stream) == [0, 2, 4]
        with pytest.raises(RuntimeError, match="iterated once"):
            list(stream)
    with pytest.raises(ValueError, match="depth must be >= 0, got -1"):
        Prefetcher(slow_double, range(3), depth=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_batches_are_pinned_for_cuda(bp4d_cache):
    from aunce.data.cache import open_cache

    cache = open_cache(bp4d_cache)
    batch = CacheReader(cache.images, cache.labels, pin=True)(np.arange(4))
    assert batch.images.is_pinned() and batch.labels.is_pinned() and batch.landmarks is None
    on_gpu = batch.to(torch.device("cuda"))
    assert torch.equal(on_gpu.images.cpu(), batch.images)


def test_epoch_batches_keep_or_drop_the_last_partial_batch():
    rows, perm = np.arange(100, 110), np.arange(10)
    assert [len(b) for b in epoch_batches(rows, perm, 4)] == [4, 4]
    assert [len(b) for b in epoch_batches(rows, perm, 4, drop_last=False)] == [4, 4, 2]
    # a last batch of one frame is dropped either way: batch norm cannot train on it
    assert [len(b) for b in epoch_batches(rows, perm, 3, drop_last=False)] == [3, 3, 3]
    assert sorted(np.concatenate(epoch_batches(rows, perm, 4, drop_last=False))) == list(rows)
