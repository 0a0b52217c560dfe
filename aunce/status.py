"""``aunce status``: where a run is, job by job, and when it should end.

Read-only, from what a run leaves in its folder (the folder Snakemake runs in, results/ below it):

- the jobs: the plan (:func:`aunce.plan.jobs`, every job of target ``all``) of the configuration
  recorded in ``results/run.json`` when the run started (:mod:`aunce.folder`);
- each job's state: *done* when its outputs are there (the files :func:`aunce.plan.jobs` names, less
  the encoders and embeddings the workflow deletes once read), *running* when Snakemake has marked
  them incomplete (``.snakemake/incomplete``) and a Snakemake or a job of it works in the folder,
  *interrupted* when they are marked but nothing works there (``make run`` goes on), *failed* when
  the latest Snakemake log (``.snakemake/log``) says so, else *waiting*;
- a running job's progress and ETA: the last epoch line of its log (``run i/N  epoch e/E ... ETA
  run H:MM:SS, job H:MM:SS``, :mod:`aunce.progress`), counted from the time the log was written;
- how long a waiting job should take: a training job's epochs x training frames x seconds per frame
  (:class:`aunce.summary.Rates`: this folder's timing.json files, else the paper's Table 9), scaled
  by how long this folder's finished jobs of its kind took against the same estimate (which counts
  embedding, evaluation and start-up); any other job as long as this folder's finished jobs of its
  kind took on average (Snakemake's records, ``.snakemake/metadata``); unknown until one has run;
- the expected end: now, plus the work left (the running jobs' ETAs, the waiting jobs' estimates)
  shared over the cores Snakemake was given (its log's ``Provided cores``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from aunce import AunceError
from aunce.folder import RECORD, RESOLVED, read_record
from aunce.progress import EPOCH_LINE, clock, seconds_of

#: outputs the workflow may delete once read (config ``keep``): not needed for a job to be done
TEMPORARY = ("encoder.pt", "embeddings.npz")
TRAINING = ("pretrain", "train_eval")
RUN_FILE = re.compile(r"^results/pretrain/(?P<ds>[^/]+)/(?P<enc>[^/]+)/(?P<method>[^/]+)/"
                      r"fold-(?P<fold>[^/]+)/seed-(?P<seed>-?\d+)/timing\.json$")  # fmt: skip
STATES = ("running", "interrupted", "failed", "waiting", "done")


@dataclass
class JobState:
    rule: str  # the rule family (train_eval, table, ...)
    name: str  # the Snakemake job's name as its log shows it (train_eval_bp4d_megraph_ecell1)
    what: str  # what it makes, in words
    outputs: list[str]
    state: str = "waiting"
    progress: str = ""
    log: str | None = None
    seconds: float | None = None  # done: how long it took; running: left; waiting: estimated
    started: float | None = None
    ended: float | None = None
    estimate_source: str = ""
    extra: dict = field(default_factory=dict)


# --- the folder --------------------------------------------------------------------------------
def run_folder(path: str | Path) -> Path:
    """The folder a run works in, given it or its results folder."""
    path = Path(path)
    if (path / "results").is_dir():
        return path
    if path.name == "results" or (path / Path(RECORD).name).is_file():
        return path.parent
    raise AunceError(f"{path}: no results folder here (give the folder a run works in, or its "
                     "results/ folder)")  # fmt: skip


def folder_config(workdir: Path) -> tuple[dict, list[str], str]:
    """The configuration of the folder's run: (validated config, config files, where from)."""
    from aunce.config import check_config, load_yaml

    record = read_record(workdir)
    if record is not None:
        return record["config"], list(record.get("configfiles") or []), RECORD
    if (workdir / RESOLVED).is_file():  # a run from before the record: resolved datasets
        from aunce.plan import make_plan

        config = check_config(load_yaml(workdir / RESOLVED))
        for name in list(config["datasets"]):  # drop those the plan derives (noise tables')
            trial = copy.deepcopy(config)
            del trial["datasets"][name]
            try:
                if name in make_plan(trial).datasets:
                    del config["datasets"][name]
            except (AunceError, KeyError):  # a dataset the config itself names
                continue
        return config, [], RESOLVED
    raise AunceError(f"{workdir / 'results'}: no run recorded here ({RECORD} is written when a run "
                     "starts: make run, or snakemake all ...)")  # fmt: skip


def _record_path(root: Path, path: str) -> Path:
    """Where Snakemake keeps its record of an output (snakemake.persistence: URL-safe base64 of
    the path, split into names of at most 254 characters, all but the last prefixed with '@')."""
    b64 = urlsafe_b64encode(path.encode()).decode()
    parts = [b64[i : i + 254] for i in range(0, len(b64), 254)]
    return root.joinpath(*(["@" + p for p in parts[:-1]] + [parts[-1]]))


def incomplete_outputs(workdir: Path) -> set[str]:
    """Outputs Snakemake has marked incomplete: of jobs running, or killed while they ran."""
    root = workdir / ".snakemake" / "incomplete"
    out = set()
    for dirpath, _, names in os.walk(root):
        prefix = "".join(p.removeprefix("@") for p in Path(dirpath).relative_to(root).parts)
        for name in names:
            try:
                out.add(urlsafe_b64decode(prefix + name).decode())
            except (ValueError, UnicodeDecodeError):
                continue  # Snakemake's own files there (migration_underway)
    return out


def metadata_times(workdir: Path, path: str) -> tuple[float, float] | None:
    """(start, end) of the job that made ``path``, from Snakemake's record of it."""
    record = _record_path(workdir / ".snakemake" / "metadata", path)
    try:
        meta = json.loads(record.read_text())
        return float(meta["starttime"]), float(meta["endtime"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class SnakemakeLog:
    """What the latest Snakemake log of the folder says: its start, cores, jobs and steps."""

    path: Path | None = None
    started: float | None = None
    cores: int | None = None
    jobs: dict = field(default_factory=dict)  # jobid -> {rule, outputs, log, started, ended}
    failed: set = field(default_factory=set)  # jobids
    steps: tuple[int, int] | None = None
    ended: bool = False


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def read_snakemake_log(workdir: Path) -> SnakemakeLog:
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return SnakemakeLog()
    out = SnakemakeLog(path=logs[-1])
    stamp, block, error = None, None, False
    for line in logs[-1].read_text(errors="replace").splitlines():
        m = _STAMP.match(line)
        if m:
            stamp = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"))
            out.started = out.started or stamp
            continue
        if line.startswith("Provided cores:"):
            out.cores = int(line.split()[2])
        elif m := re.match(r"^(?:local)?rule (\S+):$", line):
            block, error = {"rule": m.group(1), "outputs": [], "log": None, "started": stamp}, False
        elif m := re.match(r"^Error in rule (\S+):$", line):
            block, error = {"rule": m.group(1), "outputs": [], "log": None}, True
        elif block is not None and (m := re.match(r"^\s+output: (.*)$", line)):
            block["outputs"] = [p.strip() for p in m.group(1).split(",")]
        elif block is not None and (m := re.match(r"^\s+log: (\S+)", line)):
            block["log"] = m.group(1)
        elif block is not None and (m := re.match(r"^\s+jobid: (\d+)$", line)):
            jobid = int(m.group(1))
            if error:
                out.failed.add(jobid)
                out.jobs.setdefault(jobid, block)
            else:
                out.jobs[jobid] = block
            block = None
        elif m := re.match(r"^Finished jobid: (\d+)", line):
            if int(m.group(1)) in out.jobs:
                out.jobs[int(m.group(1))]["ended"] = stamp
        elif m := re.match(r"^(\d+) of (\d+) steps", line):
            out.steps = (int(m.group(1)), int(m.group(2)))
        elif line.startswith("Complete log(s):") or line.startswith("Nothing to be done"):
            out.ended = True
    return out


# --- the jobs ----------------------------------------------------------------------------------
def _what(job) -> str:
    """A job in words: what it makes (a training job: its cell, methods, folds and seeds)."""
    runs = defaultdict(set)
    for path in job.outputs:
        if m := RUN_FILE.match(path):
            runs[(m["ds"], m["enc"])].add((m["method"], m["fold"], m["seed"]))
    if runs:
        (ds, enc), items = next(iter(runs.items()))
        methods = sorted({m for m, _, _ in items})
        shown = ",".join(methods[:2]) + (f" +{len(methods) - 2}" if len(methods) > 2 else "")
        folds = ",".join(sorted({f for _, f, _ in items}))
        seeds = ",".join(sorted({s for _, _, s in items}, key=int))
        return f"{ds}/{enc} {shown}; fold {folds} x seed {seeds}"
    first = job.outputs[0] if job.outputs else ""
    if job.rule == "cross_eval":  # results/cross/<src>-to-<tgt>/<enc>/...
        parts = Path(first).parts
        return f"{parts[2].replace('-to-', ' -> ')}, {parts[3]}" if len(parts) > 3 else job.name
    if job.rule == "tsne_sample":
        return "/".join(Path(first).parts[2:5])
    if job.rule in ("synthesize", "cache", "warm_population", "warmstart"):
        return str(Path(first).relative_to("results").parent if job.rule == "warmstart"
                   else Path(first).relative_to("results"))  # fmt: skip
    return Path(first).name or job.name


def _name(job) -> str:
    """The job as Snakemake's log names it (a pretraining rule's {method} in brackets)."""
    if job.rule == "pretrain":
        m = RUN_FILE.match(next(p for p in job.outputs if p.endswith("timing.json")))
        return f"{job.name}[{m['method']}]" if m else job.name
    return job.name


def _done_files(outputs: list[str]) -> list[str]:
    kept = [p for p in outputs if Path(p).name not in TEMPORARY]
    return kept or outputs


def collect(folder: str | Path, now: float | None = None) -> dict:
    """Everything ``aunce status`` prints, as a dict (``--json``)."""
    from aunce.lock import workflow_processes
    from aunce.plan import jobs, make_plan, needed_jobs

    now = time.time() if now is None else now
    workdir = run_folder(folder)
    config, configfiles, source = folder_config(workdir)
    plan = make_plan(copy.deepcopy(config))
    planned = [j for j in needed_jobs(jobs(plan), ["all"]) if j.rule != "all"]
    incomplete = incomplete_outputs(workdir)
    try:
        processes = workflow_processes(workdir)
    except AunceError:
        processes = []
    smk = read_snakemake_log(workdir)
    by_output = {p: jobid for jobid, j in smk.jobs.items() for p in j["outputs"]}

    states = []
    for job in planned:
        st = JobState(job.rule, _name(job), _what(job), job.outputs)
        jobid = next((by_output[p] for p in job.outputs if p in by_output), None)
        entry = smk.jobs.get(jobid) if jobid is not None else None
        st.log = entry["log"] if entry else None
        marked = any(p in incomplete for p in job.outputs)
        there = all((workdir / p).exists() for p in _done_files(job.outputs))
        if marked:
            st.state = "running" if processes else "interrupted"
        elif there:
            st.state = "done"
        elif jobid in smk.failed:
            st.state = "failed"
        if st.state == "done":
            times = next(filter(None, (metadata_times(workdir, p) for p in job.outputs)), None)
            if times:
                st.started, st.ended = times
                st.seconds = times[1] - times[0]
        elif st.state == "running" and entry is not None:
            st.started = entry.get("started")
        states.append(st)

    _progress(states, workdir, now)
    _estimate(states, plan, workdir, now)
    counts = Counter(s.state for s in states)
    left = [s for s in states if s.state in ("running", "waiting", "interrupted")]
    unknown = sum(s.seconds is None for s in left)
    work = sum(s.seconds or 0.0 for s in left)
    cores = smk.cores or 1
    running_left = max((s.seconds or 0.0 for s in states if s.state == "running"), default=0.0)
    remaining = max(running_left, work / cores) if left else 0.0
    active = bool(processes)
    ended = max((s.ended for s in states if s.ended), default=None)
    return {
        "folder": str(workdir),
        "configfiles": configfiles,
        "config_source": source,
        "now": now,
        "snakemake": {
            "running": active,
            "pids": [pid for pid, _ in processes],
            "log": str(smk.path) if smk.path else None,
            "started": smk.started,
            "cores": smk.cores,
            "steps": list(smk.steps) if smk.steps else None,
        },
        "jobs": [
            {"state": s.state, "name": s.name, "rule": s.rule, "what": s.what,
             "progress": s.progress, "seconds": s.seconds, "estimate": s.estimate_source,
             "log": s.log, "started": s.started, "ended": s.ended}
            for s in states
        ],  # fmt: skip
        "counts": {k: counts.get(k, 0) for k in STATES},
        "left_seconds": remaining,
        "unknown_estimates": unknown,
        "expected_end": now + remaining if left else ended,
        "finished": not left and not counts.get("failed"),
    }


def _progress(states: list[JobState], workdir: Path, now: float) -> None:
    """A running job's progress and time left, from the last epoch line of its log."""
    for st in states:
        if st.state != "running" or not st.log:
            continue
        path = workdir / st.log
        try:
            lines = path.read_text(errors="replace").splitlines()
            written = path.stat().st_mtime
        except OSError:
            st.progress = "started"
            continue
        epoch = next((m for line in reversed(lines) if (m := EPOCH_LINE.search(line))), None)
        last = lines[-1].split(" ", 2)[-1].strip() if lines else "started"
        if epoch is None:
            st.progress = last[:60]
            continue
        since = max(0.0, now - written)
        st.progress = f"run {epoch['run']}/{epoch['runs']}  epoch {epoch['epoch']}/{epoch['epochs']}"
        st.seconds = max(0.0, seconds_of(epoch["eta_job"]) - since)
        st.estimate_source = "its log's ETA"
        if int(epoch["run"]) == int(epoch["runs"]) and epoch["epoch"] == epoch["epochs"]:
            st.progress += ", trained"


def _training_work(job: JobState, plan, rates, frames,
                   fallback: float | None = None) -> tuple[float | None, str]:  # fmt: skip
    """Seconds of pretraining a job's runs need at the known rates (None: no rate or frames);
    ``fallback``: seconds per frame for a run without a rate of its own."""
    bsz = plan.config["pretrain"]["batch_size"]
    total, sources = 0.0, set()
    for path in job.outputs:
        m = RUN_FILE.match(path)
        if not m:
            continue
        train = frames[m["ds"]]["folds"].get(m["fold"], (None, None))[0]
        rate = rates(m["ds"], m["enc"], m["method"])
        source = rates.used[(m["ds"], m["enc"], m["method"])]["source"].split(":")[0]
        if rate is None and fallback is not None:
            rate, source = fallback, "rough: other runs' frames/s in this folder"
        if train is None or rate is None:
            return None, source
        epochs = plan.epochs.get(m["method"], plan.config["pretrain"]["epochs"])
        total += epochs * (train // bsz) * bsz * rate
        sources.add(source)
    return total, ", ".join(sorted(sources))


def _fallback_rate(states: list[JobState], rates, workdir: Path) -> float | None:
    """Seconds per frame of any run of this folder: its timing.json files, else the frames/s of
    the running jobs' last epoch lines."""
    measured = [m["seconds_per_frame"] for m in rates.measured]
    if measured:
        return sum(measured) / len(measured)
    fps = []
    for st in states:
        if st.state == "running" and st.log:
            try:
                text = (workdir / st.log).read_text(errors="replace")
            except OSError:
                continue
            fps += [float(x) for x in re.findall(r"\s([\d.]+) frames/s", text)]
    fps = [f for f in fps if f > 0]
    return sum(1 / f for f in fps) / len(fps) if fps else None


def _estimate(states: list[JobState], plan, workdir: Path, now: float) -> None:
    """Seconds each waiting job should take (module docstring); None where nothing tells."""
    from aunce.summary import PUBLISHED_COST, Rates, dataset_frames

    results = workdir / "results"
    project = Path(__file__).resolve().parent.parent
    rates = Rates(plan, results, project / PUBLISHED_COST)
    names = {m["ds"] for s in states for p in s.outputs if (m := RUN_FILE.match(p))}
    frames = {ds: dataset_frames(plan, ds, results) for ds in names}
    took = defaultdict(list)  # rule -> seconds of its finished jobs
    scale = defaultdict(list)  # training rule -> actual / estimated seconds
    for st in states:
        if st.state == "done" and st.seconds is not None:
            took[st.rule].append(st.seconds)
            if st.rule in TRAINING:
                work, _ = _training_work(st, plan, rates, frames)
                if work:
                    scale[st.rule].append(st.seconds / work)
    fallback = _fallback_rate(states, rates, workdir)
    for st in states:
        if st.state not in ("waiting", "interrupted", "running") or st.seconds is not None:
            continue
        _estimate_job(st, plan, rates, frames, fallback, took, scale)
        if st.state == "running" and st.seconds is not None and st.started is not None:
            st.seconds = max(0.0, st.seconds - (now - st.started))


def _estimate_job(st: JobState, plan, rates, frames, fallback, took, scale) -> None:
    """One job's estimate (seconds, and where it comes from): see :func:`_estimate`."""
    if st.rule in TRAINING:
        work, source = _training_work(st, plan, rates, frames, fallback)
        if work is not None:
            factor = sum(scale[st.rule]) / len(scale[st.rule]) if scale[st.rule] else 1.0
            st.seconds = work * factor
            st.estimate_source = source + (
                f" x {factor:.2g} (this folder's finished {st.rule} jobs)" if scale[st.rule]
                else "")  # fmt: skip
            return
    if took[st.rule]:
        st.seconds = sum(took[st.rule]) / len(took[st.rule])
        st.estimate_source = f"mean of {len(took[st.rule])} finished {st.rule} job(s)"


# --- rendering ---------------------------------------------------------------------------------
def _clock_or(seconds: float | None, unknown: str = "?") -> str:
    return unknown if seconds is None or not math.isfinite(seconds) else clock(seconds)


def _at(t: float | None) -> str:
    return "?" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def render(s: dict, every: bool = True) -> str:
    """The status as text: a header, one row per job (``every``; else the jobs not done and a
    count of the others), the counts and the expected end."""
    from tabulate import tabulate

    smk = s["snakemake"]
    config = " + ".join(s["configfiles"]) or s["config_source"]
    head = [f"Run in {s['folder']} (config {config})"]
    if smk["running"]:
        steps = f", {smk['steps'][0]} of {smk['steps'][1]} steps done" if smk["steps"] else ""
        head.append(f"Snakemake is running (pid {', '.join(map(str, smk['pids'][:3]))}), started "
                    f"{_at(smk['started'])}{steps}; cores: {smk['cores'] or '?'}")  # fmt: skip
    elif s["finished"]:
        head.append("Finished: every job is done.")
    else:
        head.append("Snakemake is not running in this folder: `make run` (or the same snakemake "
                    "command) goes on where it stopped.")  # fmt: skip
    order = {k: i for i, k in enumerate(STATES)}
    rows = []
    shown = [j for j in s["jobs"] if every or j["state"] != "done"]
    for j in sorted(shown, key=lambda j: order[j["state"]]) if not every else shown:
        if j["state"] == "done":
            time_col = f"took {_clock_or(j['seconds'], '-')}"
        elif j["state"] == "running":
            time_col = f"ETA {_clock_or(j['seconds'])}"
        elif j["state"] == "failed":
            time_col = f"see {j['log']}" if j["log"] else ""
        else:
            time_col = f"~{_clock_or(j['seconds'])}"
        rows.append([j["state"], j["name"], j["what"], j["progress"], time_col])
    table = tabulate(rows, headers=["state", "job", "what", "progress", "time"], tablefmt="plain")
    c = s["counts"]
    total = sum(c.values())
    counts = ", ".join(f"{c[k]} {k}" for k in STATES if c[k])
    lines = [*head, "", table, "", f"{total} jobs: {counts}."]
    if s["finished"]:
        lines.append(f"Ended {_at(s['expected_end'])}.")
    elif c["running"] + c["waiting"] + c["interrupted"]:
        unknown = s["unknown_estimates"]
        when = "Expected end" if smk["running"] else "Time left if started now"
        about = "not before" if unknown else "about"
        caveat = (f"; {unknown} job(s) have no estimate until a job of their kind has run here"
                  if unknown else "")  # fmt: skip
        lines.append(f"{when}: {about} {_at(s['now'] + s['left_seconds'])} (in "
                     f"{clock(s['left_seconds'])}, over {smk['cores'] or 1} core(s){caveat}).")  # fmt: skip
    if c["failed"]:
        lines.append("Failed jobs: their logs say why; fix, then `make run` again.")
    return "\n".join(lines) + "\n"
