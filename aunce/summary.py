"""The planning summary (``aunce plan``): what a config will run and cost, before it runs.

Plain Python over :mod:`aunce.plan` (no torch, no Snakemake), for a cluster user about to spend
GPU-days: per table the jobs it needs as a single target, its pretraining runs and cross-dataset
evaluations, which of them other tables share, GPU-hours, and the disk its kept outputs take; per
table and stage each job's memory, wall time and disk (:mod:`aunce.resources`) and what exceeds
the config's ``resources``; the price at the paper's rates and at measured ones side by side; the
caches and the disk of the jobs in flight.

The printout is a list of sections (:data:`SECTIONS`), each a function of the summary dict: a
module adds its own section by appending to it.

Where the numbers come from (docs/tables.md, "Planning"; docs/cluster.md, "Estimates"):

- **Frames.** A cache built by this results folder from this config's dataset
  (``results/cache/<dataset>``: its ``cache.json`` names the same reader and root, or a synthetic
  dataset generated with the same settings, at the config's cache size) gives each fold's
  training and test frames exactly; a cache of other data in the folder (the default's stand-in
  beside a real dataset of the same name, say) is not used. Otherwise a real dataset has the sizes
  the paper states (Sec. 4.1, :data:`PAPER_FRAMES`, cross-validated folds taken as 2/3 training),
  and a synthetic one its configured subjects x frames. A pretraining epoch sees the training
  frames in whole batches (the last partial batch is dropped).
- **Seconds per frame.** Measured: the ``timing.json`` of this results folder's pretraining runs
  (Table 9's own output) with the same encoder, size, crop, batch size, loss, mixed precision and
  device type (cpu or cuda, as the config's ``device``), this run's first; else a rates file
  (``aunce plan --rates`` or config ``resources.rates``, written by ``benchmarks/gpu.py
  --rates-out``: :func:`load_rates`) with the same encoder, size, crop, batch size, loss and mixed
  precision; else the paper's Table 9 (baselines/published_cost.csv: MEGraph with Swin-B on one
  RTX 3090, batch 32; its "Frame Rate" column is seconds per frame) **per encoder pass**: this
  harness encodes two views of every AUNCE frame, so AUNCE is priced at twice the paper's WCE
  figure (one pass), not at the 0.0138 s the paper prints for it, which is a claim under test
  (Table 9), not a budget. BP4D's figures stand for datasets the paper did not time, MEGraph's for
  every paper-size encoder (the paper times MEGraph only); a tiny encoder has no default and its
  runs are counted apart until measured. The price section gives the GPU-hours at the paper's
  rates as printed, at two passes, and at the measured rates side by side.
- **Bytes.** encoder.pt: the encoder's state (:data:`ENCODER_STATE_BYTES`, measured with
  ``create_encoder``, linear in the number of AUs K); embeddings: float16 (N, K, D); predictions,
  t-SNE samples and caches from their array shapes; logs, settings, history and metrics files
  within :data:`SMALL_FILES_PER_RUN`.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

from aunce import AunceError
from aunce.baselines import load_published_cost
from aunce.config import SCHEMA_PATH, dataset_folds, dataset_kind, load_config
from aunce.plan import (
    Plan,
    encoder_image,
    jobs,
    keeps_embeddings,
    kept_encoders,
    loss_cost,
    make_plan,
    needed_jobs,
)
from aunce.resources import (  # noqa: F401 - sizes, re-exported for their older users
    DEFAULT_FEATURE_DIM,
    ENCODER_STATE_BYTES,
    PRESET_FEATURE_DIM,
    SMALL_FILES_PER_RUN,
    Context,
    encoder_bytes,
    estimates,
    feature_dim,
    num_aus,
    request,
)

#: Frames of the real datasets as the paper states them (Sec. 4.1): total, or (training, test).
PAPER_FRAMES = {
    "bp4d": 140_000,  # "approximately 140,000 frames", 3 subject-independent folds
    "disfa": 130_788,
    "bp4d_plus": 197_875,  # test only
    "gft": (108_000, 24_600),  # 78 / 18 participants
    "affwild2": (1_390_000, 440_000),  # training / validation videos
}
GB = 1e9
PUBLISHED_COST = "baselines/published_cost.csv"
#: Jobs a cluster runs at once (profiles/slurm ``jobs``), for the disk of the jobs in flight.
JOBS_AT_ONCE = 50


# --- inputs -------------------------------------------------------------------------------------
def dataset_frames(plan: Plan, name: str, results: Path) -> dict:
    """Training and test frames of each fold of a dataset: ``{"folds": {fold: (train, test)},
    "total", "source"}``; fold 'all' trains on every frame. A cache of the results folder counts
    only when it was built from this config's dataset (:func:`cache_belongs`)."""
    ds = plan.datasets[name]
    folds = dataset_folds(ds)
    cache = results / "cache" / name
    other = ""
    if (cache / "manifest.csv").is_file():
        mine, why = cache_belongs(plan, name, results)
        if mine:
            return _frames_from_manifest(cache / "manifest.csv", folds)
        other = f"; {cache} not counted: {why}"
    kind = dataset_kind(ds)
    if ds["source"] == "synthetic":
        from aunce.data.synthetic import PROFILES

        profile = PROFILES[ds["synthetic"]["profile"]]
        total = (ds["synthetic"]["n_subjects"] or profile.n_subjects) * (
            ds["synthetic"]["frames_per_subject"] or profile.frames_per_subject
        )
        source = "synthetic config (subjects x frames; folds estimated)"
    elif kind in PAPER_FRAMES:
        total, source = PAPER_FRAMES[kind], "the paper's dataset size (Sec. 4.1)"
    else:
        return {"folds": {}, "total": None, "source": "unknown (build its cache to count)" + other}
    source += other
    if isinstance(total, tuple):  # (training, test) of a fixed split
        train, test = total
        return {"folds": {"split": (train, test), "all": (train + test, 0)},
                "total": train + test, "source": source}  # fmt: skip
    if not folds:  # test only
        return {"folds": {"all": (total, 0)}, "total": total, "source": source}
    if folds == ["split"]:  # a synthetic fixed split: the paper's GFT ratio
        train = round(total * 78 / 96)
        return {"folds": {"split": (train, total - train), "all": (total, 0)},
                "total": total, "source": source}  # fmt: skip
    test = round(total / len(folds))
    split = {f: (total - test, test) for f in folds}
    return {"folds": {**split, "all": (total, 0)}, "total": total, "source": source}


#: The generator settings a synthetic cache's dataset.json must share with the config.
SYNTHETIC_KEYS = ("profile", "seed", "image_size", "n_subjects", "frames_per_subject",
                  "label_noise", "miss_ratio")  # fmt: skip


def cache_belongs(plan: Plan, name: str, results: Path) -> tuple[bool, str]:
    """Whether ``results/cache/<name>`` was built from the dataset the config names ``name``: the
    same reader and root (a real dataset) or a synthetic dataset generated with the same settings
    (its ``results/data/<name>/dataset.json``), at the config's ``image.cache_size``. (False, why)
    otherwise."""
    ds = plan.datasets[name]
    try:
        meta = json.loads((results / "cache" / name / "cache.json").read_text())
    except (OSError, ValueError):
        return False, "no cache.json (an incomplete or foreign cache)"
    if meta.get("size") != plan.config["image"]["cache_size"]:
        return False, f"built at {meta.get('size')} px, the config's cache is " \
                      f"{plan.config['image']['cache_size']} px"  # fmt: skip
    reader = "synthetic" if ds["source"] == "synthetic" else ds["source"]
    if meta.get("reader") != reader:
        return False, f"built by the {meta.get('reader')} reader, the config's {name} is {reader}"
    if reader != "synthetic":
        root = ds.get("root")
        if not root or Path(meta.get("source", "")).resolve() != Path(root).resolve():
            return False, f"built from {meta.get('source')}, the config's root is {root}"
        return True, ""
    try:
        made = json.loads((results / "data" / name / "dataset.json").read_text())
    except (OSError, ValueError):
        return False, "its synthetic data (results/data) are gone: their settings are unknown"
    from aunce.data.synthetic import PROFILES

    want = dict(ds["synthetic"])
    profile = PROFILES[want["profile"]]
    want["n_subjects"] = want.get("n_subjects") or profile.n_subjects
    want["frames_per_subject"] = want.get("frames_per_subject") or profile.frames_per_subject
    differ = [k for k in SYNTHETIC_KEYS if made.get(k) != want.get(k)]
    if differ:
        return False, "generated with other " + ", ".join(differ)
    return True, ""


def _frames_from_manifest(path: Path, folds: list[str]) -> dict:
    import pandas as pd

    df = pd.read_csv(path, usecols=lambda c: c in ("test_fold", "split"), dtype=str,
                     keep_default_na=False)  # only the split columns: a manifest has 1.8 M rows
    total = len(df)
    out = {"all": (total, 0)}
    if "test_fold" in df.columns:
        counts = Counter(str(int(float(v))) for v in df["test_fold"] if v != "")
        for f in folds:
            out[f] = (total - counts.get(f, 0), counts.get(f, 0))
    elif "split" in df.columns:
        counts = Counter(df["split"])
        out["split"] = (counts.get("train", 0), total - counts.get("train", 0))
    return {"folds": out, "total": total, "source": f"cache manifest ({path})"}


def measured_rates(results: Path) -> list[dict]:
    """Seconds per frame of every pretraining run of ``results`` with its timing.json and
    settings.json: ``{dataset, encoder, method, key, seconds_per_frame, device}``."""
    out = []
    for timing in sorted(results.glob("pretrain/*/*/*/fold-*/seed-*/timing.json")):
        settings = timing.with_name("settings.json")
        try:
            t = json.loads(timing.read_text())
            s = json.loads(settings.read_text())
            fps = float(t["frames_per_second"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a run without its settings, or an old format: not comparable
        if not fps > 0:
            continue
        ds, enc, method = timing.parts[-6:-3]
        out.append({
            "dataset": ds, "encoder": enc, "method": method,
            "key": _rate_key(s["encoder"]["name"], s["encoder"].get("size"),
                             s["image"]["input_size"], s["pretrain"]["batch_size"],
                             s["method"]["loss"], s.get("amp", "none")),
            "device_type": str(t.get("device", "")).split(":")[0],
            "seconds_per_frame": 1.0 / fps, "device": t.get("device_name") or t.get("device"),
        })  # fmt: skip
    return out


def _rate_key(encoder, size, input_size, batch_size, loss, amp) -> tuple:
    return (encoder, size or "paper", int(input_size), int(batch_size), loss, amp)


#: Columns of a rates file (``benchmarks/gpu.py --rates-out``, ``aunce plan --rates``).
RATES_HEADER = ["encoder", "size", "input_size", "batch_size", "loss", "amp", "device",
                "images_per_second", "measured_by"]  # fmt: skip


def load_rates(path: str | Path) -> list[dict]:
    """Measured training rates from a CSV with :data:`RATES_HEADER`: one row per encoder, size,
    crop, batch size, loss and mixed precision, as ``{key, seconds_per_frame, device, source}``.
    A malformed file is an error naming the line and value."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            if next(reader, None) != RATES_HEADER:
                raise AunceError(f"{path}: line 1: header must be '{','.join(RATES_HEADER)}'")
            out = []
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(RATES_HEADER):
                    raise AunceError(f"{path}: line {reader.line_num}: expected "
                                     f"{len(RATES_HEADER)} fields, found {len(fields)}")  # fmt: skip
                row = dict(zip(RATES_HEADER, fields, strict=True))
                for name in ("input_size", "batch_size", "images_per_second"):
                    try:
                        value = float(row[name])
                    except ValueError:
                        value = float("nan")
                    if not value > 0:
                        raise AunceError(f"{path}: line {reader.line_num}: {name} "
                                         f"'{row[name]}' is not a positive number")  # fmt: skip
                out.append({
                    "key": _rate_key(row["encoder"], row["size"], float(row["input_size"]),
                                     float(row["batch_size"]), row["loss"], row["amp"]),
                    "seconds_per_frame": 1.0 / float(row["images_per_second"]),
                    "device": row["device"],
                    "source": f"{path.name}: {row['device']}, {row['measured_by']}",
                })  # fmt: skip
    except FileNotFoundError:
        raise AunceError(f"{path}: rates file not found") from None
    return out


class Rates:
    """Seconds per pretraining frame of a run: measured where this results folder has comparable
    runs, else a rates file, else the paper's Table 9 per encoder pass (see the module docstring).
    ``used`` records, per (dataset, encoder, method), the plan's rate and its source, and the
    paper's figure as printed and per pass beside it."""

    def __init__(self, plan: Plan, results: Path, published_cost: Path,
                 benchmarked: list[dict] = ()):  # fmt: skip
        self.plan = plan
        self.measured = measured_rates(results)
        self.benchmarked = list(benchmarked)
        self.paper = {(r["dataset"], r["method"].lower()): r["seconds_per_frame"]
                      for r in load_published_cost(published_cost)}  # fmt: skip
        self.used: dict[tuple, dict] = {}

    def key(self, ds: str, enc: str, method: str) -> tuple:
        cfg = self.plan.config
        return _rate_key(enc, cfg["encoders"][enc].get("size"),
                         encoder_image(cfg, enc)["input_size"], cfg["pretrain"]["batch_size"],
                         self.plan.methods[method]["loss"], cfg.get("amp", "none"))  # fmt: skip

    def __call__(self, ds: str, enc: str, method: str) -> float | None:
        return self.rate(ds, enc, method)["seconds_per_frame"]

    def rate(self, ds: str, enc: str, method: str) -> dict:
        cache_key = (ds, enc, method)
        if cache_key not in self.used:
            self.used[cache_key] = self._rate(ds, enc, method)
        return self.used[cache_key]

    def _rate(self, ds: str, enc: str, method: str) -> dict:
        paper = self._paper(ds, enc, method)
        key = self.key(ds, enc, method)
        device = self.plan.config.get("device", "auto")  # cpu or cuda: runs timed there only
        same = [m for m in self.measured
                if m["key"] == key and device in ("auto", m["device_type"])]  # fmt: skip
        own = [m for m in same if (m["dataset"], m["encoder"], m["method"]) == (ds, enc, method)]
        found = own or same
        if found:
            devices = sorted({str(m["device"]) for m in found})
            spf = sum(m["seconds_per_frame"] for m in found) / len(found)
            return {"seconds_per_frame": spf, "measured": spf, **paper,
                    "source": f"measured: {len(found)} timing.json "
                              f"({'this run' if own else 'same encoder and loss'}; "
                              f"{', '.join(devices)})"}  # fmt: skip
        bench = [b for b in self.benchmarked if b["key"] == key]
        if bench:  # the last row of the file wins, as a later measurement
            spf = bench[-1]["seconds_per_frame"]
            return {"seconds_per_frame": spf, "measured": spf, **paper,
                    "source": f"benchmarked: {bench[-1]['source']}"}  # fmt: skip
        if paper["two_views"] is None:
            return {"seconds_per_frame": None, "measured": None, **paper,
                    "source": f"not measured: the paper times paper-size encoders only ({key[1]} "
                              "here); run a pretraining job to measure"}  # fmt: skip
        return {"seconds_per_frame": paper["two_views"], "measured": None, **paper,
                "source": paper["paper_source"]}

    def _paper(self, ds: str, enc: str, method: str) -> dict:
        """The paper's Table 9 for a run: ``paper`` as printed for its loss, ``two_views`` per
        encoder pass (the loss's views x the paper's WCE figure, one pass a frame; WFL its own)."""
        none = {"paper": None, "two_views": None, "paper_source": ""}
        if self.plan.config["encoders"][enc].get("size", "paper") != "paper":
            return none
        kind = dataset_kind(self.plan.datasets[ds])
        loss = self.plan.methods[method]["loss"]
        views = loss_cost(self.plan.methods[method])["views"]
        if loss not in ("aunce", "wce", "wfl"):  # a loss by import path: by its kind
            loss = "aunce" if views == 2 else "wce"
        timed = kind if (kind, loss) in self.paper else "bp4d"
        per_pass = self.paper[(timed, "wfl" if loss == "wfl" else "wce")]
        notes = [] if enc == "megraph" else ["timed for MEGraph only"]
        notes += [] if timed == kind else [f"{kind} not timed: BP4D's figure"]
        if views == 2:
            notes.append(f"AUNCE at two encoder passes: 2 x WCE's {per_pass:g}, not the "
                         f"{self.paper[(timed, 'aunce')]:g} printed")  # fmt: skip
        return {"paper": self.paper[(timed, loss)], "two_views": views * per_pass,
                "paper_source": "paper Table 9 (RTX 3090, MEGraph Swin-B, batch 32"
                                + "".join(f"; {n}" for n in notes) + ")"}  # fmt: skip


# --- the summary --------------------------------------------------------------------------------
def summarize(
    configfiles, results: str | Path = "results", schema_path: str | Path | None = None,
    published_cost: str | Path | None = None, rates_file: str | Path | None = None,
    jobs_at_once: int = JOBS_AT_ONCE,
) -> dict:  # fmt: skip
    """The numbers ``aunce plan`` prints, as a dict (``--json``); see the module docstring.
    ``jobs_at_once``: how many jobs a cluster runs at once (the disk of the jobs in flight)."""
    paths = [Path(p) for p in ([configfiles] if isinstance(configfiles, (str, Path))
                               else configfiles)]  # fmt: skip
    config = load_config(*paths, schema_path=schema_path or SCHEMA_PATH)
    plan = make_plan(config)
    results = Path(results)
    rates_file = rates_file or config["resources"].get("rates")
    rates = rates_for(plan, results, rates_file, published_cost)
    frames = frames_for(plan, results)
    all_jobs = jobs(plan)
    kept = kept_encoders(plan)
    keep_embeddings = keeps_embeddings(plan)
    bsz = config["pretrain"]["batch_size"]

    run_cost = {}
    for (ds, enc, m), runs in sorted(plan.runs.items()):
        for f, s in sorted(runs):
            train, test = frames[ds]["folds"].get(f, (None, None))
            k, d = num_aus(plan, ds), feature_dim(config, enc)
            epochs = plan.epochs.get(m, config["pretrain"]["epochs"])
            seen = None if train is None else (train // bsz) * bsz
            rate = rates.rate(ds, enc, m)

            def hours(spf, seen=seen, epochs=epochs):
                return None if seen is None or spf is None else epochs * seen * spf / 3600

            enc_bytes = encoder_bytes(config, enc, k)
            evaluated = f != "all" and test is not None
            emb = (train + test) * (k * d * 2 + k + 8) if evaluated else 0
            pred = test * (k * 5 + 8) if evaluated else 0
            is_kept = (ds, enc, m, f, s) in kept
            run_cost[(ds, enc, m, f, s)] = {
                "gpu_hours": hours(rate["seconds_per_frame"]),
                "paper_hours": hours(rate["paper"]),
                "two_view_hours": hours(rate["two_views"]),
                "measured_hours": hours(rate["measured"]),
                "encoder_bytes": enc_bytes,
                "embedding_bytes": emb,
                "kept_bytes": SMALL_FILES_PER_RUN + pred + (enc_bytes or 0) * is_kept
                + emb * keep_embeddings,
                "encoder_kept": is_kept,
            }
    samples = {}
    for spec in plan.tables.values():
        for panel in spec.get("panels", []) if spec["kind"] == "tsne" else []:
            parts = Path(panel["embeddings"]).parts  # results/embed/ds/enc/...
            k, d = num_aus(plan, parts[2]), feature_dim(config, parts[3])
            samples[panel["embeddings"]] = spec["n_points"] * (k * d * 2 + k + 8)

    # every job a scheduler runs: its estimate and what it asks for
    everything = needed_jobs(all_jobs, ["all"])
    ctx = Context(plan, frames, rates)
    priced = {id(job): (e, request(config, e)) for job, e in estimates(ctx, everything)}

    tables = []
    users = Counter(r for runs in plan.table_runs.values() for r in runs)
    for table, spec in plan.tables.items():
        runs = plan.table_runs[table]
        shared = {r for r in runs if users[r] > 1}
        others = sorted(t for t, rs in plan.table_runs.items() if t != table and rs & runs)
        needed = needed_jobs(all_jobs, [spec["outputs"]["md"]])
        mine = [run_cost[r] for r in runs]
        tables.append({
            "id": table, "kind": spec["kind"],
            "jobs": len(needed), "jobs_per_rule": dict(Counter(j.rule for j in needed)),
            "runs": len(runs), "shared_runs": len(shared), "own_runs": len(runs) - len(shared),
            "shared_with": others, "cross_evaluations": len(plan.table_cross[table]),
            "gpu_hours": _sum(c["gpu_hours"] for c in mine),
            "own_gpu_hours": _sum(run_cost[r]["gpu_hours"] for r in runs - shared),
            "runs_without_rate": sum(c["gpu_hours"] is None for c in mine),
            "own_runs_without_rate": sum(run_cost[r]["gpu_hours"] is None for r in runs - shared),
            "price": _price(mine),
            "stages": _stages([priced[id(j)] for j in needed if id(j) in priced]),
            "kept_gb": (sum(c["kept_bytes"] for c in mine)
                        + sum(samples.get(p, 0) for p in spec["inputs"].get("embeddings", []))) / GB,
        })  # fmt: skip

    costs = list(run_cost.values())
    enc_all = sum(c["encoder_bytes"] or 0 for c in costs)
    enc_kept = sum(c["encoder_bytes"] or 0 for c in costs if c["encoder_kept"])
    emb_all = sum(c["embedding_bytes"] for c in costs)
    kept_total = sum(c["kept_bytes"] for c in costs) + sum(samples.values())
    caches = {}
    for job in everything:
        if job.rule == "cache":
            n = frames[job.meta["dataset"]]["total"]
            size = job.meta["size"]
            caches[job.outputs[0]] = None if n is None else n * (size * size * 3 + 49 * 2 * 4 + 64) / GB
    largest = max(costs, key=lambda c: c["embedding_bytes"], default=None)
    # the disk jobs hold while they run (checkpoints, embeddings until evaluated), the largest
    # `jobs_at_once` of them at once
    transient = sorted((e.temp_bytes + e.scratch_bytes for e, _ in priced.values()), reverse=True)
    over = [{"job": e.name + (f" ({e.method})" if e.method else ""), "stage": e.stage,
             "reasons": r.over} for e, r in priced.values() if r.over]  # fmt: skip
    return {
        "configs": [str(p) for p in paths],
        "results": str(results),
        "jobs": len(everything),
        "jobs_per_rule": dict(Counter(j.rule for j in everything)),
        "runs": len(run_cost),
        "cross_evaluations": sum(len(c) for c in plan.cross.values()),
        "gpu_hours": _sum(c["gpu_hours"] for c in costs),
        "runs_without_rate": sum(c["gpu_hours"] is None for c in costs),
        "price": _price(costs),
        "tables": tables,
        "stages": _stages(list(priced.values())),
        "over": over,
        "device": ctx.device,
        "frames": {ds: {"total": f["total"], "source": f["source"],
                        "folds": {k: list(v) for k, v in f["folds"].items()}}
                   for ds, f in frames.items() if ds in _datasets_used(plan)},  # fmt: skip
        "rates": [{"dataset": ds, "encoder": enc, "method": m,
                   "loss": plan.methods[m]["loss"], **r}
                  for (ds, enc, m), r in sorted(rates.used.items())],  # fmt: skip
        "keep": {"encoders": (config.get("keep") or {}).get("encoders", "needed"),
                 "embeddings": (config.get("keep") or {}).get("embeddings", "needed")},  # fmt: skip
        "disk": {
            "kept_gb": kept_total / GB,
            "encoders_kept": sum(c["encoder_kept"] for c in costs),
            "encoders_kept_gb": enc_kept / GB,
            "encoders_all_gb": enc_all / GB,
            "embeddings_kept_gb": emb_all * keep_embeddings / GB,
            "embeddings_all_gb": emb_all / GB,
            "tsne_samples": len(samples),
            "tsne_samples_gb": sum(samples.values()) / GB,
            "predictions_and_small_files_gb": sum(c["kept_bytes"] for c in costs) / GB
            - (enc_kept + emb_all * keep_embeddings) / GB,
            "everything_gb": (kept_total + (enc_all - enc_kept)
                              + emb_all * (not keep_embeddings)) / GB,  # fmt: skip
            "largest_temporary_gb": (largest["embedding_bytes"] / GB) if largest else 0.0,
            "jobs_at_once": jobs_at_once,
            "in_flight_gb": sum(transient[:jobs_at_once]) / GB,
            "largest_job_gb": (transient[0] / GB) if transient else 0.0,
            "caches_gb": _sum(caches.values()),
            "caches": caches,
        },
        "warnings": list(plan.warnings),
    }


def rates_for(plan: Plan, results: Path, rates_file=None, published_cost=None) -> Rates:
    """The :class:`Rates` of a plan: this results folder's timings, a rates file, the paper."""
    cost_file = Path(published_cost or Path(__file__).resolve().parent.parent / PUBLISHED_COST)
    return Rates(plan, results, cost_file, load_rates(rates_file) if rates_file else ())


def frames_for(plan: Plan, results: Path) -> dict:
    """:func:`dataset_frames` of every dataset of the plan."""
    return {ds: dataset_frames(plan, ds, results) for ds in plan.datasets}


def _price(costs: list[dict]) -> dict:
    """GPU-hours of pretraining at each pricing, and how many runs each leaves unpriced."""
    out = {}
    for key in ("gpu_hours", "paper_hours", "two_view_hours", "measured_hours"):
        out[key] = _sum(c[key] for c in costs)
        out[key.replace("hours", "unpriced")] = sum(c[key] is None for c in costs)
    out["runs"] = len(costs)
    return out


def _stages(priced: list) -> dict:
    """Per rule family: jobs, the largest memory of one, hours in all and of the longest, GPU-hours,
    allocations of the longest, disk written and the requests."""
    out: dict = {}
    for e, r in priced:
        st = out.setdefault(e.rule, {"stage": e.stage, "jobs": 0, "mem_gb": 0.0, "hours": 0.0,
                                     "longest_hours": 0.0, "unpriced": 0, "gpu_hours": 0.0,
                                     "allocations": 1, "disk_gb": 0.0, "temp_gb": 0.0,
                                     "request_mem_mb": 0, "request_runtime": 0})  # fmt: skip
        st["jobs"] += 1
        st["mem_gb"] = max(st["mem_gb"], e.mem_bytes / GB)
        st["disk_gb"] += e.disk_bytes / GB
        st["temp_gb"] = max(st["temp_gb"], (e.temp_bytes + e.scratch_bytes) / GB)
        st["request_mem_mb"] = max(st["request_mem_mb"], r.mem_mb)
        st["request_runtime"] = max(st["request_runtime"], r.runtime)
        st["allocations"] = max(st["allocations"], r.allocations)
        if e.seconds is None:
            st["unpriced"] += 1
            continue
        st["hours"] += e.seconds / 3600
        st["gpu_hours"] += (e.gpu_seconds or 0) / 3600
        st["longest_hours"] = max(st["longest_hours"], e.seconds / 3600)
    return out


def _datasets_used(plan: Plan) -> list[str]:
    return sorted({ds for ds, _, _ in plan.runs} | {t for _, t, _, _ in plan.cross})


def _sum(values) -> float:
    """The sum of the known values (a run without a rate or frame count is counted apart)."""
    return float(sum(v for v in values if v is not None))


# --- rendering: a list of sections --------------------------------------------------------------
def _num(value, digits=0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    return f"{value:,.{digits}f}"


def _hours(value: float, unrated: int) -> str:
    """GPU-hours to a sensible precision; '?' when no run has a rate, '+' when some lack one."""
    if unrated and not value:
        return "?"
    return _num(value, 0 if value >= 10 else 2) + ("+" if unrated else "")


def _table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def section_overview(s: dict) -> list[str]:
    d = s["disk"]
    return [
        f"# Plan of {' + '.join(s['configs'])}",
        "",
        f"{s['jobs']:,} jobs (`snakemake all`), {s['runs']:,} pretraining runs, "
        f"{s['cross_evaluations']:,} cross-dataset evaluations; about "
        f"**{_hours(s['gpu_hours'], s['runs_without_rate'])} GPU-hours** of pretraining"
        + (f" ({s['runs_without_rate']:,} runs without a rate, not counted: '?' or '+' below)"
           if s["runs_without_rate"] else "")
        + f"; kept outputs **{_num(d['kept_gb'], 1)} GB**, caches **{_num(d['caches_gb'], 1)} GB**, "
        f"up to {_num(d['in_flight_gb'], 1)} GB more while {d['jobs_at_once']} jobs run at once.",
        "",
        "Jobs per rule: " + ", ".join(f"{r} {n:,}" for r, n in sorted(s["jobs_per_rule"].items())),
    ]


def section_tables(s: dict) -> list[str]:
    rows = [
        [t["id"], t["kind"], t["jobs"], t["runs"], t["shared_runs"],
         ", ".join(t["shared_with"]) or "-", t["cross_evaluations"],
         _hours(t["gpu_hours"], t["runs_without_rate"]),
         _hours(t["own_gpu_hours"], t["own_runs_without_rate"]),
         _num(t["kept_gb"], 2)]
        for t in s["tables"]
    ]  # fmt: skip
    return [
        "## Per table (each as a single target)",
        "",
        _table(rows, ["table", "kind", "jobs", "runs", "shared runs", "shares with",
                      "cross evals", "GPU-h", "GPU-h own runs", "kept GB"]),  # fmt: skip
        "",
        "runs: pretraining runs (dataset, encoder, method, fold, seed) the table needs; shared "
        "runs: those another table needs too (one job serves both); GPU-h: pretraining, all its "
        "runs; GPU-h own runs: the runs no other table needs.",
    ]


PRICE_COLUMNS = [("paper_hours", "paper's Table 9 as printed"),
                 ("two_view_hours", "Table 9 per encoder pass (AUNCE two)"),
                 ("measured_hours", "measured"), ("gpu_hours", "this plan")]  # fmt: skip


def section_price(s: dict) -> list[str]:
    def cells(p):
        out = []
        for key, _ in PRICE_COLUMNS:
            unpriced = p[key.replace("hours", "unpriced")]
            if key == "measured_hours" and unpriced == p["runs"]:
                out.append("-")
            else:
                out.append(_hours(p[key], unpriced))
        return out

    p = s["price"]
    rows = [["all", *cells(p)]] + [[t["id"], *cells(t["price"])] for t in s["tables"]]
    measured = p["runs"] - p["measured_unpriced"]
    return [
        "## Price: GPU-hours of pretraining",
        "",
        _table(rows, ["target", *(label for _, label in PRICE_COLUMNS)]),
        "",
        "The paper's Table 9 prints 0.0138 s per AUNCE frame, half its 0.0271 for WCE, but this "
        "harness encodes two views of every AUNCE frame: at the paper's rates per encoder pass "
        "an AUNCE frame costs twice WCE's. Table 9 is a claim under test, not a budget. "
        f"Measured: {measured:,} of {p['runs']:,} runs have a measured rate (this results "
        "folder's timing.json, or `--rates` / config `resources.rates`: benchmarks/gpu.py "
        "--rates-out); this plan uses the measured rate where there is one, else the rate per "
        "encoder pass. '+': runs without a rate left out; '?': none has one.",
    ]


STAGE_ORDER = ["synthesize", "cache", "warm_population", "warmstart", "pretrain", "train_eval",
               "embed", "linear_eval", "cross_eval"]  # fmt: skip


def _stage_rows(name: str, stages: dict) -> list[list]:
    rows = []
    for rule in sorted(stages, key=lambda r: STAGE_ORDER.index(r) if r in STAGE_ORDER else 99):
        st = stages[rule]
        hours = "?" if st["unpriced"] == st["jobs"] else (
            _num(st["hours"], 1) + ("+" if st["unpriced"] else ""))  # fmt: skip
        longest = "?" if st["unpriced"] == st["jobs"] else _num(st["longest_hours"], 2)
        rows.append([name, rule, f"{st['jobs']:,}", _num(st["mem_gb"], 1), longest, hours,
                     _num(st["gpu_hours"], 0 if st["gpu_hours"] >= 10 else 1),
                     st["allocations"], _num(st["disk_gb"], 1), _num(st["temp_gb"], 1),
                     f"{st['request_mem_mb']:,} MB, {st['request_runtime']:,} min"])  # fmt: skip
    return rows


def section_stages(s: dict) -> list[str]:
    rows = _stage_rows("all", s["stages"])
    for t in s["tables"]:
        rows += _stage_rows(t["id"], t["stages"])
    return [
        "## Memory, time and disk per table and stage",
        "",
        _table(rows, ["target", "stage", "jobs", "peak memory GB (largest job)", "longest job h",
                      "hours (all jobs)", "GPU-h", "allocations", "writes GB", "holds GB",
                      "asks for (largest)"]),  # fmt: skip
        "",
        f"Per job (device {s['device']}): peak resident host memory, wall time and the disk it "
        "writes and holds while it runs (checkpoints, embeddings until evaluated), from the frames, "
        "the encoder, the stage and the rates above (docs/cluster.md, \"Estimates\"). "
        "allocations: how many time limits (config `resources.<stage>.runtime`) the longest job "
        "spans; a pretraining job longer than one checkpoints and goes on in the next. asks for: "
        "the largest request of a job of the stage (SLURM --mem and -t), at most the config's "
        "`resources`; '?': no rate to estimate the time (it asks for the config's runtime).",
    ]


def section_over(s: dict) -> list[str]:
    if not s["over"]:
        return []
    lines = ["## Jobs the config's resources cannot hold", "",
             f"{len(s['over']):,} jobs; raise `resources.<stage>` or split them:", ""]  # fmt: skip
    for o in s["over"][:20]:
        lines.append(f"- {o['job']}: {'; '.join(o['reasons'])}")
    if len(s["over"]) > 20:
        lines.append(f"- ... and {len(s['over']) - 20:,} more (`aunce plan --json`)")
    return lines


def section_disk(s: dict) -> list[str]:
    d = s["disk"]
    return [
        "## Disk",
        "",
        f"- kept: encoders `{s['keep']['encoders']}`, embeddings `{s['keep']['embeddings']}` "
        "(config `keep`; `snakemake --notemp` keeps everything)",
        f"- encoder.pt kept: {d['encoders_kept']:,} = {_num(d['encoders_kept_gb'], 1)} GB "
        f"(all {s['runs']:,}: {_num(d['encoders_all_gb'], 1)} GB)",
        f"- embeddings.npz kept: {_num(d['embeddings_kept_gb'], 1)} GB (all: "
        f"{_num(d['embeddings_all_gb'], 1)} GB); t-SNE samples: {d['tsne_samples']} = "
        f"{_num(d['tsne_samples_gb'], 3)} GB",
        f"- predictions, metrics, settings, logs: {_num(d['predictions_and_small_files_gb'], 1)} GB",
        f"- **kept in all: {_num(d['kept_gb'], 1)} GB**; keeping everything: "
        f"{_num(d['everything_gb'], 1)} GB",
        f"- **caches: {_num(d['caches_gb'], 1)} GB**: "
        + "; ".join(f"{p} {_num(g, 1)} GB" for p, g in d["caches"].items()),
        f"- **in flight: up to {_num(d['in_flight_gb'], 1)} GB** while {d['jobs_at_once']} jobs "
        f"run at once (`--jobs`; the largest job holds {_num(d['largest_job_gb'], 1)} GB: its "
        "checkpoints, or embeddings until their linear evaluation has read them; the largest "
        f"embeddings file: {_num(d['largest_temporary_gb'], 1)} GB)",
    ]


def section_frames_rates(s: dict) -> list[str]:
    lines = ["## Frames and rates", ""]
    for ds, f in s["frames"].items():
        folds = ", ".join(f"{'split' if k == 'split' else f'fold {k}'} {a:,} / {b:,}"
                          for k, (a, b) in f["folds"].items()
                          if k != "all") or "test only"  # fmt: skip
        lines.append(f"- {ds}: {_num(f['total'])} frames ({f['source']}); training / test: {folds}")
    lines += ["", "Seconds per pretraining frame (frames of every method with that loss):", ""]
    groups: dict[tuple, set] = {}
    for r in s["rates"]:
        spf = r["seconds_per_frame"]
        key = (r["encoder"], r["loss"], None if spf is None else round(spf, 6),
               None if r["paper"] is None else r["paper"], r["source"])  # fmt: skip
        groups.setdefault(key, set()).add(r["dataset"])
    rows = [[enc, loss, "?" if spf is None else f"{spf:.4g}",
             "-" if paper is None else f"{paper:.4g}", ", ".join(sorted(ds)), source]
            for (enc, loss, spf, paper, source), ds in sorted(
                groups.items(), key=lambda g: (*g[0][:2], g[0][2] or 0))]  # fmt: skip
    lines.append(_table(rows, ["encoder", "loss", "s/frame", "paper prints", "datasets", "from"]))
    return lines


def section_warnings(s: dict) -> list[str]:
    return ["## Warnings", "", *(f"- {w}" for w in s["warnings"])] if s["warnings"] else []


#: The sections ``aunce plan`` prints, in order: each a function of the summary dict returning its
#: lines (none to leave it out). A module adds its own by inserting a function here.
SECTIONS = [section_overview, section_tables, section_price, section_stages, section_over,
            section_disk, section_frames_rates, section_warnings]  # fmt: skip


def render_summary(s: dict, sections=None) -> str:
    """The summary as Markdown (what ``aunce plan`` prints): its :data:`SECTIONS`."""
    blocks = [lines for section in (sections or SECTIONS) if (lines := section(s))]
    return "\n\n".join("\n".join(lines) for lines in blocks) + "\n"
