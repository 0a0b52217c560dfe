"""Loss timings (issue 3): forward + backward of AUNCE, WCE and WFL, and two ratios measured in one run.

    .venv/bin/python benchmarks/losses.py

- each loss at (B, K, D) = (32, 12, 1024) and (256, 12, 1024), forward + backward;
- vectorised AUNCE against the slow per-anchor reference of the tests (tests/reference.py) at B = 32
  (the reference is forward-only Python loops, so the ratio understates the gap);
- AUNCE against a forward + backward of the tiny MEGraph encoder on the same batch (two views), the
  loss must not dominate a training step.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference import reference_aunce  # noqa: E402

from aunce.encoders import create_encoder  # noqa: E402
from aunce.losses import aunce_loss, wce_loss, wfl_loss  # noqa: E402


def inputs(b, k, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, k, d, generator=g, requires_grad=True)
    z_aug = torch.randn(b, k, d, generator=g, requires_grad=True)
    labels = (torch.rand(b, k, generator=g) < 0.3).long()
    head = torch.randn(k, d, generator=g, requires_grad=True)
    return z, z_aug, labels, head


def median_seconds(fn, min_run_time=1.0) -> float:
    return (
        Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        .blocked_autorange(min_run_time=min_run_time)
        .median
    )


def loss_cases(b: int, k: int, d: int) -> dict:
    """Forward + backward of each loss on one batch, as callables."""
    z, z_aug, labels, head = inputs(b, k, d)
    gen = torch.Generator().manual_seed(0)
    return {
        "AUNCE (paper)": lambda: aunce_loss(z, z_aug, labels, generator=gen).backward(),
        "AUNCE (released)": lambda: aunce_loss(
            z, z_aug, labels, variant="released", generator=gen
        ).backward(),
        "WCE (with per-AU head)": lambda: wce_loss(
            torch.einsum("bkd,kd->bk", z, head), labels
        ).backward(),
        "WFL (with per-AU head)": lambda: wfl_loss(
            torch.einsum("bkd,kd->bk", z, head), labels
        ).backward(),
    }


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}\n")
    print("| loss | B | K | D | forward + backward (ms) |\n| --- | --- | --- | --- | --- |")
    times = {}
    for b in (32, 256):
        for name, fn in loss_cases(b, 12, 1024).items():
            times[name, b] = median_seconds(fn)
            print(f"| {name} | {b} | 12 | 1024 | {1000 * times[name, b]:.2f} |")

    z, z_aug, labels, _ = inputs(32, 12, 1024)
    kinds = torch.randint(0, 4, (64, 12), generator=torch.Generator().manual_seed(1))
    w, minority = torch.ones(12), torch.ones(12, dtype=torch.long)
    start = time.perf_counter()
    reference_aunce(z.detach(), z_aug.detach(), labels, w, 0.5, 1.2, 0.4, minority, kinds)
    slow = time.perf_counter() - start
    fast_fwd = median_seconds(
        lambda: aunce_loss(z.detach(), z_aug.detach(), labels, positive_kind=kinds)
    )
    print(
        f"\nSlow per-anchor reference, B = 32, forward only: {1000 * slow:.0f} ms; "
        f"vectorised forward {1000 * fast_fwd:.2f} ms: **{slow / fast_fwd:.0f}x faster** "
        f"(forward + backward {1000 * times['AUNCE (paper)', 32]:.2f} ms: "
        f"{slow / times['AUNCE (paper)', 32]:.0f}x)"
    )

    torch.manual_seed(0)
    enc = create_encoder("megraph", 12, size="tiny")
    x = torch.randn(64, 3, enc.input_size, enc.input_size)  # a batch of 32 images, two views

    def encoder_step():
        enc.zero_grad(set_to_none=True)
        enc(x).sum().backward()

    z_small, z_small_aug, labels_small, _ = inputs(32, 12, enc.feature_dim)
    gen = torch.Generator().manual_seed(0)
    t_enc = median_seconds(encoder_step)
    t_loss = median_seconds(
        lambda: aunce_loss(z_small, z_small_aug, labels_small, generator=gen).backward()
    )
    print(
        f"\nTiny MEGraph (D = {enc.feature_dim}), batch 32 x 2 views: encoder forward + backward "
        f"{1000 * t_enc:.1f} ms; AUNCE forward + backward on its output {1000 * t_loss:.2f} ms: "
        f"**{100 * t_loss / t_enc:.1f} %** of the encoder's step"
    )


if __name__ == "__main__":
    main()
