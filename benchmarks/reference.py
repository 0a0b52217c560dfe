"""A fixed reference workload: how fast this machine is today, in seconds.

    python benchmarks/reference.py [--repeats 3] [--threads 1] [--json FILE]

The same work every time: forward and backward passes of a small convolutional network on a fixed
batch (torch, the kind of work a CPU `make run` spends its time on) and a NumPy kernel (matrix
products and FFTs, the kind the data and table jobs do). Each part is timed ``--repeats`` times;
the minimum is the machine's speed (the runs another process slowed are the others), the median
says how steady it was. A few seconds in all.

BENCHMARKS.md prints this figure beside every `make run` time: a time divided by the reference
seconds measured the same day compares across days whose speed differs (this shared machine's
speed varies by a third from day to day). The 15-minute budget of `make run` is judged at the
reference speed of the day it was set: a run of T seconds on a day whose reference took R seconds
stands for T * R0 / R on the budget's day (reference R0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

#: What the workload is; a change to it makes old reference times incomparable.
VERSION = 1
TORCH_STEPS = 24  # forward + backward passes of the network per timing
NUMPY_ROUNDS = 80  # rounds of the NumPy kernel per timing


def _torch_work(threads: int) -> float:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers, width = [], 3
    for out in (32, 64, 128):  # three stride-2 stages, as the tiny encoders
        layers += [torch.nn.Conv2d(width, out, 3, 2, 1), torch.nn.BatchNorm2d(out),
                   torch.nn.ReLU(), torch.nn.Conv2d(out, out, 3, 1, 1), torch.nn.ReLU()]  # fmt: skip
        width = out
    net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(width, 12))  # fmt: skip
    x = torch.randn(32, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    y = torch.randn(32, 12, generator=torch.Generator().manual_seed(1))
    optim = torch.optim.SGD(net.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(TORCH_STEPS):
        loss = torch.nn.functional.mse_loss(net(x), y)
        optim.zero_grad()
        loss.backward()
        optim.step()
    return time.perf_counter() - start


def _numpy_work() -> float:
    from threadpoolctl import threadpool_limits  # BLAS threads pinned: same work, one core

    with threadpool_limits(1):
        return _numpy_kernel()


def _numpy_kernel() -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((384, 384))
    signal = rng.standard_normal((64, 4096))
    start = time.perf_counter()
    for _ in range(NUMPY_ROUNDS):
        b = a
        for _ in range(4):
            b = np.tanh(b @ a / 20.0)
        np.fft.irfft(np.fft.rfft(signal, axis=1) * 0.5, axis=1)
    return time.perf_counter() - start


def measure(repeats: int = 3, threads: int = 1) -> dict:
    """Seconds of each part (minimum and median over ``repeats``) and their sum, with the machine."""
    _torch_work(threads), _numpy_work()  # warm-up: imports, allocator, oneDNN kernels
    torch_s = [_torch_work(threads) for _ in range(repeats)]
    numpy_s = [_numpy_work() for _ in range(repeats)]
    import torch

    return {
        "version": VERSION,
        "seconds": min(torch_s) + min(numpy_s),
        "torch_seconds": min(torch_s),
        "numpy_seconds": min(numpy_s),
        "torch_median": statistics.median(torch_s),
        "numpy_median": statistics.median(numpy_s),
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="also write the record to this file")
    args = p.parse_args(argv)
    rec = measure(args.repeats, args.threads)
    print(
        f"reference workload v{VERSION}: {rec['seconds']:.2f} s (torch {rec['torch_seconds']:.2f} s, "
        f"median {rec['torch_median']:.2f}; NumPy {rec['numpy_seconds']:.2f} s, median "
        f"{rec['numpy_median']:.2f}); {rec['torch_threads']} torch thread(s), load "
        f"{' '.join(map(str, rec['load']))}, {rec['date']}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rec, fh, indent=1)


if __name__ == "__main__":
    main()
