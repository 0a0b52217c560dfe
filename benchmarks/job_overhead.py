"""Fixed cost per Snakemake job (process start + imports + setup) against the job's useful work.

Run after a workflow run (e.g. `make run`):

    .venv/bin/python benchmarks/job_overhead.py --results results

It reads each training job's Snakemake benchmark (wall time) and its runs' history.csv (seconds spent
in training epochs), and times the imports each kind of job pays in fresh processes. All figures come
from one machine in one session; ratios, not absolute times, are what carry over.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

IMPORTS = {
    "tables job (aunce.tables)": "import aunce.tables",
    "data job (aunce.data.cache)": "import aunce.data.cache",
    "pretrain / embed job (aunce.train)": "import aunce.train",
    "linear-eval job (aunce.evaluate + sklearn metrics)": "import aunce.evaluate, aunce.metrics",
    "for comparison: torch + timm + torchvision + sklearn": "import torch, timm, torchvision, sklearn",
}


def time_import(statement: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def job_table(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks" / "pretrain").rglob("*.tsv")):
        cell = tsv.relative_to(results / "benchmarks" / "pretrain").with_suffix("")
        dataset, encoder, method, _ = cell.parts
        wall = pd.read_csv(tsv, sep="\t")["s"].iloc[-1]
        runs = sorted(
            (results / "pretrain" / dataset / encoder / method).glob("fold-*/seed-*/history.csv")
        )
        useful = sum(pd.read_csv(h)["seconds"].sum() for h in runs)
        rows.append(
            {
                "job": f"pretrain {dataset}/{encoder}/{method}",
                "runs": len(runs),
                "wall_s": wall,
                "training_s": useful,
                "fixed_s": wall - useful,
                "fixed_share": (wall - useful) / wall,
            }
        )
    for stage in ("embed", "eval"):
        for tsv in sorted((results / "benchmarks" / stage).rglob("*.tsv")):
            wall = pd.read_csv(tsv, sep="\t")["s"].iloc[-1]
            rows.append(
                {
                    "job": f"{stage} {tsv.parent.relative_to(results / 'benchmarks' / stage)}",
                    "runs": None,
                    "wall_s": wall,
                    "training_s": None,
                    "fixed_s": None,
                    "fixed_share": None,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    import torch

    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; git {rev}; {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores; Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )
    print("\nImports per job (median of fresh processes):\n")
    print("| job kind | seconds |\n| --- | --- |")
    for name, stmt in IMPORTS.items():
        print(f"| {name} | {time_import(stmt, args.repeats):.2f} |")
    jobs = job_table(args.results)
    if len(jobs):
        print("\nJobs of the run in", args.results, "\n")
        print(jobs.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
