"""Per-job overhead of profiles/slurm against a local run, on a single-node test cluster (issue 12).

    .venv/bin/python benchmarks/slurm.py                      # as root; config/smoke.yaml
    .venv/bin/python benchmarks/slurm.py --repeats 2 --parallel

Starts scripts/slurm-test-cluster.sh in a temporary folder (stopped at the end, also on failure)
and runs the config in fresh folders, alternating: locally (`snakemake all --cores 1 --resources
gpu=1`, the README's command) and through SLURM one job at a time (`--profile profiles/slurm
--jobs 1`), so that the two differ only in how each job is started and watched. `--parallel` adds a
run with the profile as it is (as many jobs at once as the node's CPUs allow; what
tests/test_slurm.py runs). Prints Markdown: wall times, (SLURM - local) / jobs sent to SLURM, and per
SLURM job, from slurmctld's records and the jobs' Snakemake benchmark files:

- queue: submission to start (slurmctld);
- in job: SLURM run time minus the command's own time (`benchmark:` files of the training and
  evaluation jobs): the two Snakemake start-ups of a job (sbatch's and srun's);
- noticed after: end of the job to Snakemake's "Finished" (the plugin's squeue polling: first look
  after 5 s, then every 15, 25, ... s while nothing finishes).

The machine may be shared: compare within one run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "slurm-test-cluster.sh"
BIN = Path(sys.executable).parent


def git_revision() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


class JobRecorder(threading.Thread):
    """Collects `scontrol show job` records every few seconds (slurmctld forgets a finished job
    after MinJobAge)."""

    def __init__(self, env: dict, every: float = 5.0):
        super().__init__(daemon=True)
        self.env, self.every, self.jobs, self.stop = env, every, {}, threading.Event()

    def poll(self) -> None:
        out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True,
                             env=self.env).stdout
        for line in out.splitlines():
            if line.startswith("JobId="):
                job = dict(re.findall(r"(\S+?)=(\S*)", line))
                self.jobs[job["JobId"]] = job

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.poll()


def snakemake_run(workdir: Path, config: Path, extra: list[str], env: dict) -> tuple[float, str]:
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "all",
           f"--configfile={config}", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def noticed(log: str) -> dict[str, float]:
    """SLURM job id -> when Snakemake logged the job as finished (the log's second resolution)."""
    slurm_id, finished, now = {}, {}, None
    for line in log.splitlines():
        if m := re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", line):
            now = datetime.datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := re.match(r"Job (\d+) has been submitted with SLURM jobid (\d+)", line):
            slurm_id[m[1]] = m[2]
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m[1] in slurm_id:
            finished[slurm_id[m[1]]] = now
    return finished


def command_seconds(workdir: Path, job: dict) -> float | None:
    """The command's own time from the job's Snakemake benchmark file (None: the rule has none)."""
    rule = job.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]
    folders = {"train_eval_": "train_eval", "pretrain_": "pretrain", "cross_eval_": "cross",
               "embed_": "embed", "linear_eval_": "eval"}
    stage = next((s for s in folders if rule.startswith(s)), None)
    if stage is None:
        return None
    folder, tail = folders[stage], rule.removeprefix(stage)
    if folder == "cross":
        src, rest = tail.split("_to_", 1)
        tgt, enc = rest.rsplit("_", 1)
        tsv = workdir / f"results/benchmarks/cross/{src}-to-{tgt}/{enc}.tsv"
    elif folder == "train_eval":
        ds, enc, tag = tail.rsplit("_", 2)
        tsv = workdir / f"results/benchmarks/train_eval/{ds}/{enc}/{tag}.tsv"
    else:  # one file per method: the job's wildcards
        ds, enc, tag = tail.rsplit("_", 2)
        method = job["Comment"].split("_wildcards_")[1]
        tsv = workdir / f"results/benchmarks/{folder}/{ds}/{enc}/{method}/{tag}.tsv"
    return float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]) if tsv.exists() else None


def slurm_breakdown(workdir: Path, log: str, jobs: dict[str, dict]) -> pd.DataFrame:
    seen = noticed(log)
    rows = []
    for jid, job in jobs.items():
        if jid not in seen or job.get("JobState") != "COMPLETED":
            continue
        submit, start, end = (parse_time(job[k]) for k in ("SubmitTime", "StartTime", "EndTime"))
        own = command_seconds(workdir, job)
        rows.append({"rule": job["Comment"].removeprefix("rule_").split("_wildcards_")[0],
                     "queue_s": start - submit, "run_s": end - start,
                     "in_job_s": None if own is None else end - start - own,
                     "noticed_after_s": seen[jid] - end})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "smoke.yaml")
    parser.add_argument("--repeats", type=int, default=1, help="local/SLURM pairs")
    parser.add_argument("--parallel", action="store_true",
                        help="also one SLURM run with the profile's parallelism")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the test cluster starts slurmd and munged")
    subprocess.run([str(SCRIPT), "install"], check=True, capture_output=True)
    folder = Path(tempfile.mkdtemp(prefix="aunce-slurm-bench-", dir="/tmp"))
    scratch = Path(tempfile.mkdtemp(prefix="aunce-slurm-runs-"))
    local_env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    try:
        subprocess.run([str(SCRIPT), "start", str(folder)], check=True, capture_output=True)
        env = dict(os.environ, SLURM_CONF=str(folder / "etc/slurm.conf"),
                   PATH=os.pathsep.join([str(folder / "bin"), str(BIN), os.environ["PATH"]]))
        recorder = JobRecorder(env)
        recorder.start()
        profile = ["--profile", str(REPO / "profiles" / "slurm")]
        walls, breakdowns, n_jobs = {"local": [], "slurm, 1 job at a time": []}, [], None
        for i in range(args.repeats):
            wall, _ = snakemake_run(scratch / f"local{i}", args.config,
                                    ["--cores", "1", "--resources", "gpu=1"], local_env)
            walls["local"].append(wall)
            wall, log = snakemake_run(scratch / f"slurm{i}", args.config,
                                      [*profile, "--jobs", "1"], env)
            walls["slurm, 1 job at a time"].append(wall)
            recorder.poll()
            breakdowns.append(slurm_breakdown(scratch / f"slurm{i}", log, recorder.jobs))
            n_jobs = len(re.findall(r"has been submitted with SLURM jobid", log))
        if args.parallel:
            wall, log = snakemake_run(scratch / "parallel", args.config, profile, env)
            walls["slurm, profile as is (2 CPUs: 2 jobs at once)"] = [wall]
        recorder.stop.set()
    finally:
        subprocess.run([str(SCRIPT), "stop", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)

    load = os.getloadavg()
    print(f"## SLURM per-job overhead ({datetime.date.today()}, git {git_revision()})\n")
    print(f"`{' '.join(sys.argv)}`; config {args.config.name}; {n_jobs} of the DAG's jobs go to "
          f"SLURM; {platform.node()}, {os.cpu_count()} CPUs; load average at the end "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine)\n")
    print("| run | wall s (each) |\n| --- | --- |")
    for name, values in walls.items():
        print(f"| {name} | {', '.join(f'{v:.0f}' for v in values)} |")
    local, slurm = (statistics.median(walls[k]) for k in ("local", "slurm, 1 job at a time"))
    print(f"\nOverhead per SLURM job, one at a time: ({slurm:.0f} - {local:.0f}) / {n_jobs} = "
          f"**{(slurm - local) / n_jobs:.1f} s**\n")
    table = pd.concat(breakdowns)
    summary = table.assign(kind=table["rule"].str.replace(r"_.*", "", regex=True).replace(
        {"train": "train_eval", "cross": "cross_eval"}))
    summary = summary.groupby("kind")[["queue_s", "run_s", "in_job_s", "noticed_after_s"]].median()
    print("Per SLURM job (median over the one-at-a-time runs), seconds:\n")
    print(summary.round(1).to_markdown())
    print(f"\nAll jobs: queue {table['queue_s'].median():.1f} s, in job (Snakemake start-ups) "
          f"{table['in_job_s'].median():.1f} s, noticed after {table['noticed_after_s'].median():.1f}"
          " s (medians)")


if __name__ == "__main__":
    main()
