"""Per-job estimates and what a job asks for (aunce.resources), honest pricing and the plan's
sections (aunce.summary), against numbers worked out here from the frames, rates and sizes."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from conftest import REPO

from aunce import AunceError
from aunce.cluster import parse_allocation, parse_time_left, signal_lead
from aunce.config import load_config
from aunce.plan import jobs, make_plan
from aunce.resources import (
    BASE_BYTES,
    CUDA_HOST_BYTES,
    FRAME_BYTES,
    MB,
    STARTUP_SECONDS,
    Context,
    Estimate,
    estimate,
    job_key,
    plan_requests,
    request,
)
from aunce.summary import SECTIONS, frames_for, rates_for, render_summary, summarize

PAPER = REPO / "config" / "paper.yaml"
WCE_BP4D, AUNCE_BP4D = 0.0271, 0.0138  # baselines/published_cost.csv (Table 9, BP4D)


def default_results(folder):
    """A results folder as the default (config/config.yaml) leaves it: its synthetic BP4D's data
    and cache (2,624 frames at 36 px) and a timing of a tiny MEGraph run."""
    synthetic = load_config(REPO / "config" / "config.yaml")["datasets"]["bp4d"]["synthetic"]
    data = folder / "data" / "bp4d"
    data.mkdir(parents=True)
    (data / "dataset.json").write_text(json.dumps(dict(synthetic, n_frames=2624)))
    cache = folder / "cache" / "bp4d"
    cache.mkdir(parents=True)
    rows = "".join(f"x.png,{1 + i % 3}\n" for i in range(2624))
    (cache / "manifest.csv").write_text("image,test_fold\n" + rows)
    (cache / "cache.json").write_text(json.dumps({"reader": "synthetic", "size": 36,
                                                  "source": "results/data/bp4d"}))  # fmt: skip
    run = folder / "pretrain/bp4d/megraph/aunce/fold-1/seed-3407"
    run.mkdir(parents=True)
    (run / "timing.json").write_text(json.dumps({"frames_per_second": 180.0, "device": "cpu"}))
    (run / "settings.json").write_text(json.dumps({
        "encoder": {"name": "megraph", "size": "tiny"}, "image": {"input_size": 32},
        "pretrain": {"batch_size": 32}, "method": {"loss": "aunce"}}))  # fmt: skip
    return folder


def test_a_plan_counts_only_the_caches_built_from_its_own_datasets(tmp_path, roots):
    """config/paper.yaml planned in a folder holding the default's results prices the real
    datasets, not the synthetic stand-ins' 2,624 frames (which once made the grid 396 GPU-hours)."""
    results = default_results(tmp_path / "results")
    empty = summarize([PAPER, roots], results=tmp_path / "nothing")
    s = summarize([PAPER, roots], results=results)
    assert s["frames"]["bp4d"]["total"] == 140_000
    assert "results/cache/bp4d not counted: built at 36 px" in s["frames"]["bp4d"]["source"]
    assert s["gpu_hours"] == pytest.approx(empty["gpu_hours"]) and s["gpu_hours"] > 50_000
    assert s["price"]["measured_unpriced"] == s["runs"]  # the tiny MEGraph's timing: not comparable
    # the same folder counts for the config that built it, and not once its data are other
    mine = summarize([REPO / "config" / "config.yaml"], results=results)
    assert mine["frames"]["bp4d"]["total"] == 2624
    synthetic = json.loads((results / "data/bp4d/dataset.json").read_text())
    (results / "data/bp4d/dataset.json").write_text(json.dumps(dict(synthetic, seed=99)))
    other = summarize([REPO / "config" / "config.yaml"], results=results)["frames"]["bp4d"]
    assert other["total"] == 41 * 64 and "generated with other seed" in other["source"]


def small_config(tmp_path, **extra) -> dict:
    cfg = {
        "seeds": [1], "device": "cuda",
        "datasets": {"bp4d": {"source": "bp4d", "root": str(tmp_path)}},
        "encoders": {"megraph": {"size": "paper", "pretrained": "none"}},
        "pretrain": {"epochs": 2, "batch_size": 32},
        "methods": {"aunce": {"loss": "aunce"}, "wce": {"loss": "wce"}},
        "tables": {"table2": {"dataset": "bp4d", "encoder": "megraph",
                              "methods": ["aunce", "wce"], "folds": [1]}},
        "granularity": "run", "fuse_stages": False, **extra,
    }  # fmt: skip
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_aunce_is_priced_at_two_encoder_passes_beside_the_papers_rate(tmp_path):
    s = summarize([small_config(tmp_path)], results=tmp_path / "results")
    seen = (93_333 // 32) * 32  # BP4D's 140,000 frames, fold 1 trains on 2/3, whole batches
    hours = {"aunce": 2 * seen * 2 * WCE_BP4D / 3600, "wce": 2 * seen * WCE_BP4D / 3600}
    assert s["gpu_hours"] == pytest.approx(hours["aunce"] + hours["wce"])
    assert s["price"]["paper_hours"] == pytest.approx(2 * seen * (AUNCE_BP4D + WCE_BP4D) / 3600)
    assert s["price"]["two_view_hours"] == pytest.approx(s["gpu_hours"])
    rates = {r["method"]: r for r in s["rates"]}
    assert rates["aunce"]["seconds_per_frame"] == pytest.approx(2 * WCE_BP4D)
    assert rates["aunce"]["paper"] == AUNCE_BP4D
    assert "AUNCE at two encoder passes: 2 x WCE's 0.0271, not the 0.0138 printed" in (
        rates["aunce"]["source"])
    # a measured rate replaces the per-pass price; both stay side by side
    rates_file = tmp_path / "rates.csv"
    rates_file.write_text("encoder,size,input_size,batch_size,loss,amp,device,images_per_second,"
                          "measured_by\nmegraph,paper,224,32,aunce,none,H100,40,gpu.py\n")  # fmt: skip
    m = summarize([small_config(tmp_path)], results=tmp_path / "results", rates_file=rates_file)
    assert m["price"]["measured_hours"] == pytest.approx(2 * seen / 40 / 3600)
    assert m["price"]["measured_unpriced"] == 1  # WCE: not measured
    assert m["gpu_hours"] == pytest.approx(2 * seen / 40 / 3600 + hours["wce"])
    assert m["price"]["two_view_hours"] == pytest.approx(s["gpu_hours"])


def context(path, results) -> tuple[Context, list]:
    plan = make_plan(load_config(path))
    return Context(plan, frames_for(plan, results), rates_for(plan, results)), jobs(plan)


def test_a_jobs_estimate_is_its_frames_rate_and_sizes(tmp_path):
    ctx, all_jobs = context(small_config(tmp_path), tmp_path / "results")
    by = {(j.rule, j.meta.get("method")): j for j in all_jobs}
    seen, train, test = (93_333 // 32) * 32, 93_333, 46_667
    state = 359_584_504 + 12 * 4_214_800  # Swin-B MEGraph, 12 AUs (ENCODER_STATE_BYTES)
    pre = estimate(ctx, by[("pretrain", "aunce")])
    checkpoint = 3 * state + 4 * 12 * 1024 * 4
    assert pre.seconds == pytest.approx(STARTUP_SECONDS["cuda"] + 2 * (
        seen * 2 * WCE_BP4D + checkpoint / 200e6))  # fmt: skip
    assert pre.gpu and pre.gpu_seconds == pre.seconds and pre.temp_bytes == checkpoint
    wce = estimate(ctx, by[("pretrain", "wce")])
    assert pre.seconds - wce.seconds == pytest.approx(2 * seen * WCE_BP4D)  # one pass a frame less
    emb = estimate(ctx, by[("embed", "aunce")])
    nbytes = (train + test) * (12 * 1024 * 2 + 12 + 8)
    assert emb.seconds == pytest.approx(STARTUP_SECONDS["cuda"] + (train + test) * WCE_BP4D / 3
                                        + nbytes / 200e6)  # fmt: skip
    assert emb.disk_bytes == pytest.approx(nbytes + 64 * 1024) and emb.scratch_bytes == nbytes
    lin = estimate(ctx, by[("linear_eval", "aunce")])
    steps = math.ceil(train / 256)
    assert lin.seconds == pytest.approx(STARTUP_SECONDS["cpu"] + 100 * (
        steps * 0.002 + train * 12 * 1024 * 2 / 400e6))  # fmt: skip
    assert not lin.gpu and lin.gpu_seconds == 0
    # memory: the process, the batch and the readers' pages; per frame only FRAME_BYTES
    base = BASE_BYTES["torch"] + CUDA_HOST_BYTES
    assert base < lin.mem_bytes < base + 100 * MB + 140_000 * FRAME_BYTES
    big = load_config(small_config(tmp_path))
    big["datasets"]["bp4d"] = {"source": "affwild2", "root": str(tmp_path)}
    big["tables"]["table2"]["folds"] = ["split"]
    plan = make_plan(big)
    ctx2 = Context(plan, frames_for(plan, tmp_path / "results"), rates_for(plan, tmp_path))
    lin2 = estimate(ctx2, next(j for j in jobs(plan) if j.rule == "linear_eval"))
    assert lin2.mem_bytes - lin.mem_bytes == pytest.approx((1_830_000 - 140_000) * FRAME_BYTES)


def test_a_job_asks_for_its_estimate_within_the_caps_and_long_pretraining_is_chained(tmp_path):
    cfg = load_config(small_config(tmp_path, resources={
        "pretrain": {"runtime": 60, "mem_mb": 64000}, "embed": {"mem_mb": 2000},
        "checkpoint_lead": 600}))  # fmt: skip
    e = Estimate("pretrain", "pretrain_x", "pretrain", True, 5000 * MB, 10 * 3600, 10 * 3600,
                 0, 0)  # fmt: skip
    r = request(cfg, e)
    usable = 60 * 60 - 600 - STARTUP_SECONDS["cuda"]
    assert (r.mem_mb, r.runtime) == (6300, 60) and not r.over  # 5000 MB x 1.25, rounded up
    assert r.allocations == math.ceil(10 * 3600 * 1.25 / usable) == 16
    short = request(cfg, Estimate("pretrain", "p", "pretrain", True, 100 * MB, 1000, 1000, 0, 0))
    # at least 1000 MB; 1,250 s and the 600 s it stops before the end: 31 minutes, one allocation
    assert (short.mem_mb, short.runtime, short.allocations) == (1000, 31, 1)
    # 52 minutes (2,500 s x 1.25) fit a 60-minute limit only without the lead: two allocations
    long = request(cfg, Estimate("pretrain", "p", "pretrain", True, 100 * MB, 2500, 2500, 0, 0))
    assert (long.runtime, long.allocations) == (60, 2)
    embed = request(cfg, Estimate("embed", "embed_x", "embed", True, 3000 * MB, 10 * 3600, 0, 0, 0))
    assert embed.mem_mb == 2000 and embed.allocations == 1
    assert embed.over == ["memory 3.1 GB > resources.embed.mem_mb 2,000",
                          "time 10.0 h > resources.embed.runtime 240 min"]  # fmt: skip
    cfg["resources"]["request"] = "config"
    assert (request(cfg, e).mem_mb, request(cfg, e).runtime) == (64000, 60)
    cfg["resources"]["checkpoint_lead"] = 3600
    assert "leaves no time" in request(cfg, e).over[0]


def test_every_scheduled_job_is_priced_by_its_rule_and_wildcard(tmp_path):
    """plan_requests keys each job as rules/*.smk tells it apart; the smoke config's tiny encoders
    have no rate, so their jobs ask for their stage's runtime."""
    plan = make_plan(load_config(REPO / "config" / "smoke.yaml"))
    asked = plan_requests(plan, tmp_path / "results")
    scheduled = [j for j in jobs(plan) if j.rule in ("pretrain", "train_eval", "cross_eval",
                                                    "cache", "synthesize", "warmstart")]  # fmt: skip
    assert {job_key(j) for j in scheduled} <= set(asked)
    e, r = asked[("train_eval_bp4d_megraph_ecell0", None)]
    assert e.seconds is None and r.runtime == plan.config["resources"]["pretrain"]["runtime"]
    assert r.mem_mb < plan.config["resources"]["pretrain"]["mem_mb"]


def test_the_paper_plan_prints_memory_time_and_disk_per_stage_and_the_price(roots, tmp_path):
    s = summarize([PAPER, roots], results=tmp_path / "nothing")
    out = render_summary(s)
    for heading in ("## Per table", "## Price: GPU-hours of pretraining",
                    "## Memory, time and disk per table and stage", "## Disk",
                    "## Frames and rates"):  # fmt: skip
        assert heading in out
    assert "| all      | 24,312 " in out  # the paper's Table 9 as printed, beside ...
    assert s["price"]["two_view_hours"] == pytest.approx(s["gpu_hours"]) and s["gpu_hours"] > 60_000
    stages = s["stages"]
    assert stages["pretrain"]["allocations"] > 60  # Aff-Wild2: over 1,200 GPU-hours a run
    assert stages["embed"]["mem_gb"] < 8 and stages["linear_eval"]["mem_gb"] < 8  # bounded
    assert s["disk"]["caches_gb"] > 500 and s["disk"]["in_flight_gb"] > 45
    assert not s["over"]  # config/paper.yaml's caps hold its jobs
    # a module adds a section of its own
    extra = [*SECTIONS, lambda summary: ["## Power", "", f"{summary['runs']} runs"]]
    assert render_summary(s, extra).rstrip().endswith("## Power\n\n759 runs")


def test_a_job_the_caps_cannot_hold_is_named(roots, tmp_path):
    cfg = yaml.safe_load(PAPER.read_text())
    cfg["resources"]["linear_eval"]["runtime"] = 60
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    s = summarize([path, roots], results=tmp_path / "nothing")
    named = {o["job"] for o in s["over"]}
    assert "linear_eval_affwild2_megraph_efoldsplit_seed3407 (aunce)" in named
    assert "## Jobs the config's resources cannot hold" in render_summary(s)


def test_allocation_argument():
    assert parse_allocation("2/14") == (2, 14)
    for bad in ("2", "0/3", "a/b"):
        with pytest.raises(AunceError, match="--allocation"):
            parse_allocation(bad)


def test_time_left_and_the_fallback_signal():
    """squeue's %L in seconds; SLURM's signal 60 s after the job's own stop (it may come 60 s early),
    none when the lead leaves nothing."""
    assert parse_time_left("1:45") == 105
    assert parse_time_left("2:03:04") == 7384
    assert parse_time_left("1-00:00:10") == 86410
    assert parse_time_left("UNLIMITED") is None and parse_time_left("NOT_SET") is None
    assert signal_lead(600) == 540 and signal_lead(80) == 20
    assert signal_lead(60) is None and signal_lead(10) is None


#: A SLURM job's view of squeue and scontrol: a comment, 12 s left; scontrol records its arguments.
FAKE_SQUEUE = """#!/bin/sh
echo 'rule_train_eval_bp4d_megraph_ecell0_allocation_1_of_3|0:12'
"""
FAKE_SCONTROL = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/scontrol.args"
"""
#: A training job's stand-in: announces allocation 2 of 3 with a 10 s lead, then waits for SIGTERM.
JOB = """
import logging, signal, sys, time
from aunce.cluster import announce
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
start = time.monotonic()
signal.signal(signal.SIGTERM, lambda *a: (print(f"SIGTERM after {time.monotonic() - start:.1f} s"),
                                          sys.exit(0)))
announce("2/3", 10)
time.sleep(30)
print("no SIGTERM")
"""


def test_a_slurm_job_stops_itself_its_lead_before_the_allocation_ends(tmp_path):
    """In a SLURM job, `announce` sets the comment to allocation K of N and sends the job its
    own SIGTERM `checkpoint_lead` seconds before the end squeue reports (12 - 10 = 2 s here)."""
    import os
    import subprocess
    import sys

    for name, text in (("squeue", FAKE_SQUEUE), ("scontrol", FAKE_SCONTROL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = dict(os.environ, SLURM_JOB_ID="77", PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-c", JOB], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "allocation 2 of 3 (SLURM job 77)" in out
    assert "the allocation ends in 12 s; the job checkpoints and stops itself at" in out, out
    waited = float(out.split("SIGTERM after ")[1].split()[0])
    assert 1.5 <= waited < 10, out
    assert (tmp_path / "scontrol.args").read_text().split() == [
        "update", "JobId=77", "Comment=rule_train_eval_bp4d_megraph_ecell0_allocation_2_of_3"]

    # an allocation that ends within the lead: no timer (SLURM's signal stops the job)
    (tmp_path / "squeue").write_text(FAKE_SQUEUE.replace("0:12", "0:08"))
    proc = subprocess.run([sys.executable, "-c", JOB.replace("time.sleep(30)", "time.sleep(3)")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "ends in 8 s, within resources.checkpoint_lead 10 s" in out and "no SIGTERM" in out, out
