"""profiles/slurm on a real single-node SLURM cluster (issue 12, item 4).

The cluster is the project's own (scripts/slurm-test-cluster.sh): the test installs Debian's
slurm-wlm and munge when they are missing, starts munged, slurmctld and slurmd from a temporary
folder, and stops them by PID at the end, also on failure. It is skipped only when it cannot be
started at all: not root, or the packages cannot be installed. Two tables of the smoke config
run through the SLURM executor (:data:`THROUGH_SLURM`: every kind of job that goes to SLURM); one
training job is cancelled with scancel; the README's recovery command (the same command again)
finishes the run; tables and metrics equal the local run's (tests/conftest.py, `smoke_run`). The
resource requests are read back from slurmctld (`scontrol show job`). A training job under a
1-minute time limit is chained over three or more allocations."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from conftest import REPO, SMOKE

pytestmark = pytest.mark.slurm
BIN = Path(sys.executable).parent
SCRIPT = REPO / "scripts" / "slurm-test-cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel")
#: What runs through the cluster: Table 4 (a separate pretraining job, a cross-dataset evaluation on
#: BP4D+) and Table 7 (fused training jobs on BP4D and GFT, evaluations across them), with their data,
#: caches and warm start: 14 SLURM jobs, each kind of job of `all`'s 19 (the smoke config's other
#: jobs are more of the same kinds, and its tables, figures and report run on the submitting
#: machine: the workflow tests run them).
THROUGH_SLURM = ("results/tables/table4.md", "results/tables/table7.md")
STAGE = {"synthesize": "data", "cache": "data", "warm_population": "data", "warmstart": "pretrain",
         "pretrain": "pretrain", "train_eval": "pretrain", "embed": "embed",
         "linear_eval": "linear_eval", "cross_eval": "cross_eval"}


def snakemake(workdir, *args, configfile=SMOKE, env=None, **kwargs):
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           f"--configfile={configfile}", *args]
    env = env or dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kwargs)


class Resources(dict):
    """A job's resources as the SLURM plugin reads them (``.get`` and attributes)."""

    __getattr__ = dict.__getitem__


def job_stats(log: str) -> dict[str, int]:
    """Rule -> number of jobs from Snakemake's "Job stats" table."""
    block = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+(\d+)$", block, re.M)}


# --- without a cluster: what the rules ask for -----------------------------------------------------
@pytest.mark.parametrize(("device", "ask"), [("cpu", "estimate"), ("cuda", "estimate"),
                                           ("cpu", "config")])  # fmt: skip
def test_jobs_ask_for_their_estimates_within_the_configs_resources(tmp_path, device, ask):
    """A dry run through the SLURM profile: each job asks for its own estimate of memory and wall
    time (aunce.resources), the config's values as caps (`request: config`: the config's values),
    the data jobs' processes from their threads, and a GPU for training only when the device is
    not the CPU (a node without GPUs refuses a GPU request)."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    from aunce.config import load_config
    from aunce.plan import make_plan
    from aunce.resources import plan_requests

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["device"] = device
    cfg["resources"]["gpu_model"] = "h100"
    cfg["resources"]["request"] = ask
    cfg["resources"]["data"] = {"threads": 3, "mem_mb": 1234, "runtime": 17}
    cfg["resources"]["pretrain"] = {"threads": 5, "mem_mb": 4321, "runtime": 71,
                                    "partition": "gpu"}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    requests = plan_requests(make_plan(load_config(config)), tmp_path / "results")
    proc = snakemake(tmp_path, "-n", "--profile", str(PROFILE), "--cores", "64", "all",
                     configfile=config)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(.*?)(?=^\[|\Z)", out, re.M | re.S)
    seen, below = set(), 0
    for rule, body in jobs:
        kind = next((k for k in STAGE if rule == k or rule.startswith(k + "_")), None)
        res = dict(re.findall(r"(\w+)=([^,\n]+)", re.search(r"resources: (.*)", body)[1]))
        if kind is None:  # tables, figures, report: run on the submitting machine
            assert "gpu" not in res, rule
            continue
        seen.add(kind)
        spec = cfg["resources"][STAGE[kind]]
        wildcards = re.search(r"wildcards: (.*)", body)
        wc = dict(re.findall(r"(\w+)=([^,\n]+)", wildcards[1])) if wildcards else {}
        _, want = requests[(rule, wc.get("method") or wc.get("dataset") or wc.get("encoder"))]
        if ask == "config":
            assert (want.mem_mb, want.runtime) == (spec["mem_mb"], spec["runtime"]), rule
        assert int(res["mem_mb"]) == want.mem_mb <= spec["mem_mb"], (rule, res)
        assert int(res["runtime"]) == want.runtime <= spec["runtime"], (rule, res)
        below += want.mem_mb < spec["mem_mb"]
        gpu = kind in ("warmstart", "pretrain", "train_eval", "embed", "cross_eval") and device != "cpu"
        assert int(res.get("gpu", 0)) == int(gpu), (rule, res)
        # what the plugin adds to sbatch for these resources (a node without GPUs refuses --gpus)
        job = SimpleNamespace(resources=Resources({k: int(v) if v.isdigit() else v
                                                   for k, v in res.items()}))
        assert set_gres_string(job) == (" --gpus=h100:1" if gpu else ""), (rule, res)
        assert res.get("slurm_partition") == spec.get("partition"), (rule, res)
        if kind in ("pretrain", "train_eval"):  # the chain over time limits (docs/cluster.md)
            # the job stops itself 600 s before the end; SLURM's signal, up to 60 s early, later
            assert res["slurm_extra"] == "--signal=TERM@540" and res["allocation"] == "1", res
            assert res["checkpoint_lead"] == "600" and "--checkpoint-lead 600 " in body, body
        if kind in ("synthesize", "cache"):
            assert "--workers 3 " in body, body  # {threads}, not the machine's core count
    assert seen == {"synthesize", "cache", "warm_population", "warmstart", "pretrain", "train_eval",
                    "cross_eval"}
    if ask == "config":
        assert not below
    elif device == "cpu":  # the smoke jobs' estimates on the CPU are below these caps
        assert below


def test_a_node_with_another_core_count_reruns_nothing(smoke_run):
    """Results made where the job had every core are up to date where it has one core (a SLURM
    node with another core count): nothing in a job's params depends on the machine."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to pin to one")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(smoke_run),
           f"--configfile={SMOKE}", "all", "-n", "--cores", "1"]
    core = min(os.sched_getaffinity(0))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, (
        proc.stdout[-3000:]
    )


# --- a real cluster --------------------------------------------------------------------------------
def _installed() -> bool:
    return all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in PROGRAMS)


@pytest.fixture(scope="module")
def cluster():
    """A running single-node cluster: SimpleNamespace(folder, env); stopped by PID at the end."""
    if os.geteuid() != 0:
        pytest.skip("a SLURM test cluster needs root (slurmd and munged); run the tests as root")
    if not _installed():
        proc = subprocess.run([str(SCRIPT), "install"], capture_output=True, text=True,
                              timeout=1200)
        if proc.returncode != 0 or not _installed():
            pytest.skip("Debian packages slurm-wlm and munge not installable here: "
                        + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    # under /tmp: the munge user must be able to enter the folder (pytest's folders are 0700)
    folder = Path(tempfile.mkdtemp(prefix="aunce-slurm-", dir="/tmp"))
    try:
        # 4 CPUs on this 2-core machine: the cancel-and-recover run's one-CPU jobs and the
        # chained job run side by side (they mostly wait on start-up and the scheduler)
        proc = subprocess.run([str(SCRIPT), "start", str(folder), "--cpus", "4"],
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}"
                         for p in sorted((folder / "log").glob("*")) if p.is_file())
        assert proc.returncode == 0, proc.stdout + proc.stderr + logs
        env = dict(os.environ, SLURM_CONF=str(folder / "etc" / "slurm.conf"),
                   PATH=os.pathsep.join([str(folder / "bin"), str(BIN), os.environ["PATH"]]))
        yield SimpleNamespace(folder=folder, env=env)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
        for pidfile in (folder / "pids").glob("*.pid"):  # the script failed to stop one
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        shutil.rmtree(folder, ignore_errors=True)


def slurm(cluster, *args) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, env=cluster.env,
                          check=True).stdout


def slurm_jobs(cluster, workdir=None) -> list[dict]:
    """Every job slurmctld still knows (finished ones for the test cluster's MinJobAge, an hour),
    as key=value dicts; with ``workdir``, those of the Snakemake run in that folder."""
    out = slurm(cluster, "scontrol", "show", "job", "-o")
    jobs = [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines()
            if line.startswith("JobId=")]
    return [j for j in jobs if workdir is None or j.get("WorkDir") == str(workdir)]


def cancel_a_running_training_job(cluster, workdir, run, timeout=300) -> str:
    """Wait until a train_eval job runs its command (its log exists), scancel it; its rule name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        for job in slurm_jobs(cluster, workdir):
            rule = job.get("Comment", "").removeprefix("rule_")
            if job.get("JobState") != "RUNNING" or not rule.startswith("train_eval_"):
                continue
            ds, enc, tag = rule.removeprefix("train_eval_").rsplit("_", 2)
            log = workdir / f"results/logs/train_eval/{ds}/{enc}/{tag}.log"
            if log.exists():
                slurm(cluster, "scancel", job["JobId"])
                return rule
        time.sleep(0.5)
    raise AssertionError(f"no training job ran within {timeout} s (snakemake exit {run.poll()})")


def test_smoke_config_through_slurm_cancel_and_recover(cluster, chain, tmp_path, request):
    """(`chain`: the time-limited job, through SLURM and its local reference, runs beside it and
    is checked in its own test below. The local run this test compares with, `smoke_run`, is
    asked for last: under `pytest -n` another worker makes it meanwhile.)"""
    workdir = tmp_path / "work"
    workdir.mkdir()
    # the README's command (with a status check 1 s after a job ends instead of the profile's 5 s:
    # a shorter test); --retries 0: the workflow stops on the cancelled job, as when the profile's
    # retries are used up, so that the recovery command has something to do
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               *THROUGH_SLURM, "--profile", str(PROFILE), f"--configfile={SMOKE}",
               "--slurm-init-seconds-before-status-checks", "1"]
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        run = subprocess.Popen([*command, "--retries", "0"], stdout=log, stderr=subprocess.STDOUT,
                               env=cluster.env, start_new_session=True)
    try:
        cancelled = cancel_a_running_training_job(cluster, workdir, run)
        assert run.wait(timeout=600) != 0
    finally:
        if run.poll() is None:  # snakemake cancels its own jobs on SIGTERM
            os.killpg(run.pid, signal.SIGTERM)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
    first = first_log.read_text()
    assert "SLURM status is: 'CANCELLED'" in first, first[-3000:]
    assert f"Error in rule {cancelled}" in first
    # outputs of the jobs that finished (Snakemake deleted the cancelled job's outputs); encoders
    # and embeddings are temp() files (config `keep`), deleted once read, so they are not compared
    outputs = {"timing.json", "metrics.json", "predictions.npz"}
    kept = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()
            and (p.name in outputs or p.parts[len(workdir.parts) + 1] in ("data", "cache"))}
    assert kept
    # what each job should ask for, as the plan priced it when its run started: without caches or
    # timings for the first run; for the recovery, from the caches and the timing.json of the jobs
    # that finished (the cancelled job's rate is then the other runs', not its own), so priced now
    from aunce.config import load_config
    from aunce.plan import make_plan
    from aunce.resources import plan_requests

    plan = make_plan(load_config(SMOKE))
    asked = [plan_requests(plan, folder) for folder in (tmp_path / "none", workdir / "results")]

    recovery = subprocess.run(command, capture_output=True, text=True, env=cluster.env,
                              timeout=900)
    out = recovery.stdout + recovery.stderr
    assert recovery.returncode == 0, out[-4000:]
    assert job_stats(out).get(cancelled) == 1, out[-4000:]  # the cancelled job runs again ...
    rewritten = [p for p, mtime in kept.items() if p.stat().st_mtime_ns != mtime]
    assert not rewritten, rewritten  # ... what finished before is kept as it was

    # every job asked for its estimate (`asked`) within its stage's resources and for no GPU
    # (device cpu)
    cfg = yaml.safe_load(SMOKE.read_text())
    jobs = [j for j in slurm_jobs(cluster, workdir) if j.get("Comment", "").startswith("rule_")]
    kinds = set()
    for job in jobs:
        comment = re.sub(r"_allocation_\d+_of_\d+$", "", job["Comment"])  # aunce.cluster's
        rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
        kind = next(k for k in STAGE if rule == k or rule.startswith(k + "_"))
        kinds.add(kind)
        spec = cfg["resources"][STAGE[kind]]
        # the wildcards' values joined by '_', the one telling the rule's jobs apart first
        wants = {(r.mem_mb, r.runtime) for a in asked for (name, by), (_, r) in a.items()
                 if name == rule and (by is None or wildcards == by
                                      or wildcards.startswith(f"{by}_"))}  # fmt: skip
        assert job["NumCPUs"] == str(spec["threads"]), job
        hours, minutes, seconds = map(int, job["TimeLimit"].split(":"))
        assert (int(job["MinMemoryNode"].removesuffix("M")), hours * 60 + minutes) in wants, job
        assert seconds == 0 and "gpu" not in job["TRES"], job
    assert kinds == set(STAGE) - {"embed", "linear_eval"}, kinds  # fused into train_eval here

    # the same numbers as the local run of the whole smoke config: every metrics file and table
    smoke_run = request.getfixturevalue("smoke_run")
    results, local = workdir / "results", smoke_run / "results"
    metrics = sorted(p.relative_to(results) for p in results.rglob("metrics.json"))
    assert len(metrics) >= 6, metrics  # Table 7's four trained runs, the two evaluations across
    for rel in metrics:
        assert (results / rel).read_bytes() == (local / rel).read_bytes(), rel
    for target in THROUGH_SLURM:
        table = Path(target).with_suffix(".csv")
        pd.testing.assert_frame_equal(pd.read_csv(workdir / table), pd.read_csv(smoke_run / table),
                                      obj=str(table))  # fmt: skip

    again = snakemake(workdir, *THROUGH_SLURM, "-n", "--profile", str(PROFILE), env=cluster.env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


# --- a job longer than its time limit -------------------------------------------------------------
#: One training job of about 55 s of training on an idle 2-core machine (170 epochs of 640
#: frames, 0.3-0.35 s each; 0.7-1 s beside the other tests on a slow day) under a 1-minute time
#: limit: the job stops itself 35 s before the end (`checkpoint_lead`, aunce.cluster), 25 s into
#: each allocation, and after its start-up (two Snakemake starts, the imports, opening the cache
#: and the checkpoint: 4-5 s on an idle machine, 9 s on a slow day) each allocation trains at most
#: about 21 s: the job needs three or more (two train at most 140 epochs at 0.3 s), nine or ten
#: beside the other tests on a slow day. The SLURM plugin looks at a running job 10 s less often
#: each time until one succeeds, so after the first few a chain's allocations are its polls apart,
#: 10 s more each time (BENCHMARKS.md, "The test suite"). With a lead of 60 s or less no SLURM
#: signal is asked for; SLURM's SIGTERM at the limit is the fallback.
CHAIN = {
    "seeds": [1], "device": "cpu", "threads": 1, "granularity": "cell", "fuse_stages": True,
    "resources": {"data": {"threads": 1, "mem_mb": 2000, "runtime": 10},
                  "pretrain": {"threads": 1, "mem_mb": 3000, "runtime": 1},
                  "checkpoint_lead": 35},
    "datasets": {"bp4d": {"source": "synthetic", "synthetic": {
        "profile": "bp4d", "n_subjects": 41, "frames_per_subject": 24, "image_size": 64}}},
    "image": {"cache_size": 36, "input_size": 32},
    "encoders": {"megraph": {"size": "tiny", "feature_dim": 16, "pretrained": None}},
    "pretrain": {"epochs": 170, "batch_size": 16, "lr": 1.0e-3},
    "linear_eval": {"epochs": 5, "batch_size": 64, "lr": 1.0e-2},
    "methods": {"wce": {"loss": "wce", "label": "WCE"}},
    "tables": {"table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["wce"],
                          "folds": [1]}},
}  # fmt: skip
CHAIN_TARGET = "results/eval/bp4d/megraph/wce/fold-1/seed-1/metrics.json"
#: What prices the chained job (config `resources.rates`): a slow bound, a sixteenth of the tiny
#: MEGraph's WCE rate at this geometry on an idle 2-core machine (about 1,600 frames/s), so that the
#: estimate, and the retries it allows, cover a shared machine where a job's start-up can take most
#: of an allocation.
CHAIN_RATES = ("encoder,size,input_size,batch_size,loss,amp,device,images_per_second,measured_by\n"
               "megraph,tiny,32,16,wce,none,cpu,100,tests/test_slurm.py (a slow bound)\n")


#: The chained job's CPU share: the autogroup nice value (sched(7)) given to its local reference and
#: to every process of its SLURM allocations, against 0 for the other tests. Each session is an
#: autogroup that the kernel gives an equal share of the cores: beside the other tests, the SLURM
#: jobs and Snakemake runs of the suite, the job got less than half a core on a slow day (1.4 s
#: an epoch against 0.6 s once the others were done) and needed 13 allocations, each one poll
#: further apart than the last. At -10 (nine times a default session's weight) it trains nearly
#: as fast as on its own, so it needs about the allocations its sizing above assumes (8 on that
#: day), and the suite's other work fills the rest of the cores.
CHAIN_NICE = -10


def prioritise(pids) -> None:
    """Give the autogroups of ``pids`` the nice value :data:`CHAIN_NICE` (as root; best effort:
    a kernel without autogroups, or a process that has ended, is left as it is)."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(CHAIN_NICE))
        except OSError:
            pass


def job_processes(jobs: set[str]) -> list[int]:
    """PIDs of the processes this node runs for the SLURM jobs ``jobs`` (by the SLURM_JOB_ID in
    their environment: each step of a job is a session of its own)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            found = re.search(rb"(?:^|\0)SLURM_JOB_ID=(\d+)\0", environ.read_bytes())
        except OSError:
            continue
        if found and found[1].decode() in jobs:
            pids.append(int(environ.parent.name))
    return pids


@pytest.fixture(scope="module")
def chain(cluster, tmp_path_factory):
    """The time-limited training job through profiles/slurm and the same target run locally (the
    reference); a thread records the comments squeue shows for the SLURM run's jobs. Both start at
    once, beside the cancel-and-recover run's SLURM jobs, at the autogroup nice :data:`CHAIN_NICE`
    (the thread gives it to each allocation's processes): each allocation ends 25 s in whatever
    else runs (the job keeps its own clock), so sharing the cores costs allocations, not the
    minutes of running one test after the other. SimpleNamespace(root, config, rates, procs,
    comments, done); waited for by its test."""
    root = tmp_path_factory.mktemp("chain")
    rates = root / "rates.csv"
    rates.write_text(CHAIN_RATES)
    config = root / "chain.yaml"
    config.write_text(yaml.safe_dump(dict(CHAIN, resources=dict(CHAIN["resources"],
                                                                rates=str(rates)))))  # fmt: skip
    for name in ("slurm", "local"):
        (root / name).mkdir()
    base = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), f"--configfile={config}"]
    runs = {
        "slurm": base + ["-d", str(root / "slurm"), "--profile", str(PROFILE), CHAIN_TARGET,
                         "--slurm-init-seconds-before-status-checks", "1"],  # as above
        "local": base + ["-d", str(root / "local"), "--cores", "1", CHAIN_TARGET],
    }  # fmt: skip
    procs, comments, done = {}, set(), threading.Event()

    def watch():
        while not done.is_set():
            try:
                out = slurm(cluster, "squeue", "-h", "-o", "%i|%k|%Z")
            except subprocess.CalledProcessError:
                out = ""
            mine = set()
            for line in out.splitlines():
                job, comment, workdir = line.split("|")
                if workdir == str(root / "slurm"):
                    comments.add((int(job), comment))
                    mine.add(job)
            prioritise(job_processes(mine))
            done.wait(1.0)

    watcher = threading.Thread(target=watch, daemon=True)

    def run(name):
        with open(root / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(runs[name], stdout=log, stderr=subprocess.STDOUT,
                                           env=cluster.env, start_new_session=True)  # fmt: skip
        prioritise([procs[name].pid])  # a session of its own: what it starts shares its share

    try:
        run("local")
        run("slurm")
        watcher.start()
        yield SimpleNamespace(root=root, config=config, rates=rates, procs=procs,
                              comments=comments, done=done)  # fmt: skip
    finally:
        done.set()
        for proc in procs.values():
            if proc.poll() is None:  # snakemake cancels its own SLURM jobs on SIGTERM
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def test_a_job_longer_than_its_time_limit_is_chained_over_allocations(cluster, chain):
    """The training job checkpoints and stops itself `checkpoint_lead` seconds before its time
    limit (read from squeue), the workflow submits it again (retries from its estimate) until it
    is done, squeue's comment says which allocation of how many each is, and its metrics equal
    the uninterrupted local run's."""
    from aunce.config import load_config
    from aunce.plan import make_plan
    from aunce.resources import plan_requests

    for name in ("local", "slurm"):
        try:
            rc = chain.procs[name].wait(timeout=3600)  # a few minutes on an idle machine
        except subprocess.TimeoutExpired:
            rc = None
        log = (chain.root / f"{name}.log").read_text()
        assert rc == 0, f"{name}: {log[-4000:]}"
    chain.done.set()
    rule = "train_eval_bp4d_megraph_ecell0"
    # the estimate as the job's own Snakemake saw it: the cache built, no timing yet
    seen = chain.root / "seen" / "results"
    seen.mkdir(parents=True)
    for part in ("cache", "data"):
        (seen / part).symlink_to(chain.root / "slurm" / "results" / part)
    _, want = plan_requests(make_plan(load_config(chain.config)), seen, chain.rates)[(rule, None)]
    assert want.allocations >= 3 and want.runtime == 1  # the estimate: a chain of 1-minute jobs
    allocations = {}
    for job, comment in chain.comments:
        found = re.fullmatch(rf"rule_{rule}_allocation_(\d+)_of_(\d+)", comment)
        if found:
            assert int(found[2]) == want.allocations, comment
            allocations[int(found[1])] = job
    assert len(allocations) >= 3 and sorted(allocations) == list(range(1, len(allocations) + 1))
    assert len(set(allocations.values())) == len(allocations)  # one SLURM job per allocation
    log = (chain.root / "slurm" / "results/logs/train_eval/bp4d/megraph/ecell0.log").read_text()
    assert f"allocation {len(allocations)} of {want.allocations}" in log
    assert "resumed from epoch" in log or "run already finished, restored" in log, log[-3000:]
    assert re.search(r"the allocation ends in \d+ s; the job checkpoints and stops itself at "
                     r"[\d:]+, 35 s before", log), log[:3000]  # fmt: skip
    # nothing of the interruptions shows in the results
    for name in ("metrics.json", "predictions.npz"):
        local = chain.root / "local" / CHAIN_TARGET.replace("metrics.json", name)
        assert (chain.root / "slurm" / local.relative_to(chain.root / "local")).read_bytes() == (
            local.read_bytes()), name
    assert not list((chain.root / "slurm" / "results").glob("checkpoints/**/*.pt"))
