"""Progress you can read: the epoch lines of a job's log (run i of N, ETA of the run and the job)
and `aunce status` on a finished and on a running smoke run."""

import os
import re
import subprocess
import time

import pytest
import yaml
from conftest import BIN, REPO, SMOKE

from aunce.plan import jobs, make_plan, needed_jobs
from aunce.progress import EPOCH_LINE, JobProgress, clock, seconds_of


def test_eta_counts_the_epochs_left_of_the_run_and_the_job():
    job = JobProgress()
    job.expect([3, 3, 2])  # three runs: 8 epochs
    assert job.start_run(3, now=100.0) == "run 1/3"
    head, eta = job.epoch_line(1, 10.0, now=112.0)  # 10 s of training, 12 s of wall clock
    assert head == "run 1/3  epoch 1/3"
    assert eta == f"ETA run {clock(20)}, job {clock(20 + 5 * 12)}"  # 2 + 5 epochs
    job.epoch_line(2, 20.0, now=132.0)
    head, eta = job.epoch_line(3, 30.0, now=163.0)  # the run's mean 20 s; the job's 21 s
    assert eta == f"ETA run {clock(0)}, job {clock(5 * 21)}"
    assert job.start_run(3, done=1, now=165.0) == "run 2/3"  # a resumed run
    head, eta = job.epoch_line(2, 4.0, now=168.0)  # its own mean 4 s; the job's 68 s / 4 epochs
    assert head == "run 2/3  epoch 2/3"
    assert eta == f"ETA run {clock(4)}, job {clock(4 + 2 * 17)}"
    line = f"12:00:00 INFO   {head}  loss 0.5  similarity 0.3  4.0 s  12 frames/s  {eta}"
    m = EPOCH_LINE.search(line)
    assert (m["run"], m["runs"], m["epoch"], m["epochs"]) == ("2", "3", "2", "3")
    assert seconds_of(m["eta_job"]) == 38 and seconds_of(clock(3725)) == 3725
    assert job.start_run(5) == "run 3/3" and job.start_run(1) == "run 4/4"  # an unannounced run


def aunce(*args, **kwargs):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([str(BIN / "aunce"), *args], capture_output=True, text=True, env=env,
                          **kwargs)  # fmt: skip


@pytest.mark.workflow
def test_status_of_a_finished_run(smoke_run):
    proc = aunce("status", str(smoke_run))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    cfg = yaml.safe_load(SMOKE.read_text())
    planned = [j for j in needed_jobs(jobs(make_plan(_checked(cfg))), ["all"]) if j.rule != "all"]
    rows = [line for line in out.splitlines() if line.startswith(("done ", "waiting ", "running "))]
    assert len(rows) == len(planned) and all(r.startswith("done ") for r in rows), out
    assert "Finished: every job is done." in out and re.search(r"^Ended \d{4}-\d\d-\d\d ", out, re.M)
    assert f"{len(planned)} jobs: {len(planned)} done." in out
    # the job names explain themselves: a training job's cell, methods, folds and seeds
    assert re.search(r"train_eval_bp4d_megraph_ecell\d\s+bp4d/megraph aunce,aunce_released \+1; "
                     r"fold 1,2,3 x seed 1,2\s+took \d:\d\d:\d\d", out), out  # fmt: skip
    # the results folder itself works too, and --json has every job
    import json

    data = json.loads(aunce("status", str(smoke_run / "results"), "--json").stdout)
    assert data["finished"] and data["counts"]["done"] == len(planned)
    logs = "".join(p.read_text() for p in (smoke_run / "results/logs/train_eval").rglob("*.log"))
    assert re.search(r"run (\d+)/\1  epoch 1/1  loss \S+ .* frames/s  ETA run 0:00:00, job 0:00:00",
                     logs), logs[-2000:]  # fmt: skip


def _checked(cfg):
    from aunce.config import check_config

    return check_config(cfg)


@pytest.mark.workflow
def test_status_of_a_running_run(tmp_path):
    """A smoke job of 4 runs x 2 epochs in the background: `aunce status` shows it running with
    run i of N, its epoch and an ETA, and the expected end; once it ends, the job is done and
    Snakemake is no longer running (the rest of `all` waits)."""
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["pretrain"]["epochs"] = 2
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    target = "results/eval/bp4d/roi/wce/fold-1/seed-2/metrics.json"  # table 8's ROI: 4 runs
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
           f"--configfile={config}", "--cores", "1", target]  # fmt: skip
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    try:
        deadline = time.monotonic() + 300
        while seen is None and run.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
            if not (work / "results" / "run.json").is_file():
                continue
            proc = aunce("status", str(work), "--brief")
            assert proc.returncode == 0, proc.stderr
            if re.search(r"^running\s+train_eval_bp4d_roi_ecell0 .* run \d/4  epoch \d/2\s+ETA "
                         r"\d:\d\d:\d\d$", proc.stdout, re.M):  # fmt: skip
                seen = proc.stdout
        assert run.wait(timeout=300) == 0
    finally:
        if run.poll() is None:
            run.kill()
    assert seen is not None, "the job was never seen running with its progress"
    assert "Snakemake is running (pid" in seen
    assert re.search(r"^Expected end: (about|not before) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in ", seen,
                     re.M), seen  # fmt: skip
    after = aunce("status", str(work)).stdout
    assert re.search(r"^done\s+train_eval_bp4d_roi_ecell0 .* took \d:\d\d:\d\d$", after, re.M)
    assert "Snakemake is not running in this folder" in after
    assert re.search(r"^waiting\s+table\s+table8\.md\s+~", after, re.M), after


def test_status_of_a_folder_without_a_run(tmp_path):
    (tmp_path / "results").mkdir()
    proc = aunce("status", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"aunce status: error: {tmp_path / 'results'}: no run recorded "
                                   "here (results/run.json is written when a run starts: make "
                                   "run, or snakemake all ...)")  # fmt: skip
