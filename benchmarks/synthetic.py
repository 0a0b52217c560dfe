"""Synthetic data generation speed (issue 4): images per second at 64 px, whole datasets.

    .venv/bin/python benchmarks/synthetic.py

Times `generate()` end to end (latent processes, thresholds, rendering, PNG writing, manifest) for
the BP4D profile with 1 and 2 worker processes, and the renderer alone in this process.
"""

from __future__ import annotations

import platform
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from aunce.data.synthetic import PROFILES, deform, generate, make_identity, pose, render


def main() -> None:
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, git {rev}, {platform.machine()}\n")
    print("| what | frames | workers | seconds | images/s |\n| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            start = time.perf_counter()
            generate("bp4d", Path(tmp) / f"w{workers}", n_subjects=41, frames_per_subject=64,
                     image_size=64, workers=workers)  # fmt: skip
            seconds = time.perf_counter() - start
            print(
                f"| generate bp4d, 64 px | {41 * 64} | {workers} | {seconds:.1f} | {41 * 64 / seconds:.0f} |"
            )
    rng = np.random.default_rng(0)
    prof = PROFILES["bp4d"]
    identity = make_identity(rng, 64)
    for name, values in (
        ("neutral", {}),
        ("every AU at intensity 3", dict.fromkeys(prof.aus, 3.0)),
    ):
        pts = pose(deform(identity.shape, values), 0.05, 0.62, np.zeros(2), 0.1, 64)
        n, start = 400, time.perf_counter()
        for _ in range(n):
            render(identity, pts, values, 64, rng, prof, (1.0, np.array([0.3, 0.2])))
        seconds = time.perf_counter() - start
        print(f"| render only, {name} | {n} | 1 (in process) | {seconds:.1f} | {n / seconds:.0f} |")


if __name__ == "__main__":
    main()
