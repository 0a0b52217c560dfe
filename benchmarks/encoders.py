"""Encoder timings (issue 5): forward + backward images/s of the four encoders of Table 8.

    .venv/bin/python benchmarks/encoders.py                  # tiny encoders on the CPU
    .venv/bin/python benchmarks/encoders.py --device cuda    # and paper sizes on the GPU

- Tiny encoders, on the CPU, at their input size (56 px), batch 32: one training step's encoder work,
  through ``aunce.train.encode`` (crop landmarks for ROI and JA-Net, JA-Net's alignment loss added).
- With ``--device cuda`` and a visible GPU: each paper-size encoder at 224 px (JA-Net too, its input
  being any multiple of 16), batch 32, float32 against bf16 autocast with channels_last. Without a
  GPU that part says so and is skipped.

Prints Markdown with the date, git revision, torch version, threads and device, so each figure can
be traced to what produced it. Compare ratios within one run: the CPU is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

from aunce.data.align import alignment_matrix, to_49
from aunce.data.synthetic import TEMPLATE
from aunce.encoders import create_encoder, list_encoders
from aunce.train import encode

REPO = Path(__file__).resolve().parent.parent


def git_revision() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def face_landmarks(batch: int, crop: int, aligned: int) -> torch.Tensor:
    """(B, 49, 2) landmarks of the synthetic template, aligned to ``aligned`` px and centre-cropped."""
    pts = to_49(TEMPLATE)
    m = alignment_matrix(pts, aligned)
    face = torch.tensor(pts @ m[:, :2].T + m[:, 2], dtype=torch.float32) - (aligned - crop) // 2
    return face.expand(batch, -1, -1).contiguous()


def step_seconds(enc, images, landmarks, dtype: torch.dtype | None, min_run_time: float) -> float:
    """Median seconds of one forward + backward (the alignment loss included for JA-Net)."""
    device = images.device

    def step():
        enc.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            z, align = encode(enc, images, landmarks if enc.needs_landmarks else None)
            loss = z.float().square().mean()
            if align is not None:
                loss = loss + enc.alignment_weight * align
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: allocations, cuDNN/oneDNN choices
    # Timer runs on one thread unless told otherwise
    timer = Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def tiny_table(batch: int, min_run_time: float) -> None:
    print(f"Tiny encoders, CPU, batch {batch}, forward + backward, float32:\n")
    print("| encoder | input | parameters | ms / batch | images / s | vs MEGraph |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = {}
    for name in list_encoders():
        torch.manual_seed(0)
        enc = create_encoder(name, 12, size="tiny").train()
        s = enc.input_size
        x = torch.randn(batch, 3, s, s)
        lm = face_landmarks(batch, s, round(s * 64 / 56))
        seconds = step_seconds(enc, x, lm, None, min_run_time)
        rows[name] = (s, sum(p.numel() for p in enc.parameters()), seconds)
    for name, (s, n, seconds) in rows.items():
        ratio = rows["megraph"][2] / seconds
        print(
            f"| {name} | {s} px | {n / 1e3:.0f} k | {1000 * seconds:.1f} | "
            f"{batch / seconds:.0f} | {ratio:.2f}x |"
        )


def paper_gpu_table(batch: int, min_run_time: float) -> None:
    device = torch.device("cuda")
    print(f"\nPaper sizes, {torch.cuda.get_device_name(device)}, 224 px, batch {batch}:\n")
    print(
        "| encoder | parameters | float32 images / s | bf16 + channels_last images / s | speed-up |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name in list_encoders():
        torch.manual_seed(0)
        overrides = {"input_size": 224} if name == "jaanet" else {}
        enc = create_encoder(name, 12, size="paper", **overrides).to(device).train()
        x = torch.randn(batch, 3, 224, 224, device=device)
        lm = face_landmarks(batch, 224, 256).to(device)
        fp32 = step_seconds(enc, x, lm, None, min_run_time)
        enc = enc.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        bf16 = step_seconds(enc, x, lm, torch.bfloat16, min_run_time)
        n = sum(p.numel() for p in enc.parameters())
        print(
            f"| {name} | {n / 1e6:.1f} M | {batch / fp32:.0f} | {batch / bf16:.0f} | "
            f"{fp32 / bf16:.2f}x |"
        )
        del enc, x
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds per timing")
    args = parser.parse_args(argv)
    print(
        f"{datetime.date.today().isoformat()}, git {git_revision()}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads\n"
    )
    tiny_table(args.batch, args.min_run_time)
    if args.device == "cuda":
        if torch.cuda.is_available():
            paper_gpu_table(args.batch, args.min_run_time)
        else:
            print(
                "\n--device cuda: no CUDA device is visible (torch.cuda.is_available() is False); "
                "the paper-size bf16/channels_last timings need a GPU and were skipped.",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
