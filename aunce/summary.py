"""The planning summary (``aunce plan``): what a config will run and cost, before it runs.

Plain Python over :mod:`aunce.plan` (no torch, no Snakemake), for a cluster user about to spend
GPU-days: per table the jobs it needs as a single target, its pretraining runs and cross-dataset
evaluations, which of them other tables share, an estimate of GPU-hours, and the disk its kept
outputs take; then the totals, what is kept, and the caches.

Where the numbers come from (docs/tables.md, "Planning"):

- **Frames.** A cache built by this results folder (``results/cache/<dataset>/manifest.csv``)
  gives each fold's training and test frames exactly; otherwise a real dataset has the sizes the
  paper states (Sec. 4.1, :data:`PAPER_FRAMES`, cross-validated folds taken as 2/3 training), and a
  synthetic one its configured subjects x frames. A pretraining epoch sees the training frames in
  whole batches (the last partial batch is dropped).
- **Seconds per frame.** Measured: the ``timing.json`` of this results folder's pretraining runs
  (Table 9's own output) with the same encoder, size, crop, batch size, loss, mixed precision and
  device type (cpu or cuda, as the config's ``device``), this run's first; else a rates file
  (``aunce plan --rates``, written by ``benchmarks/gpu.py --rates-out``: :func:`load_rates`) with
  the same encoder, size, crop, batch size, loss and mixed precision; else the paper's Table 9
  (baselines/published_cost.csv: MEGraph with Swin-B on one RTX 3090, batch 32; its "Frame Rate"
  column is seconds per frame), BP4D's figure for datasets the paper did not time, and the same
  figure for every paper-size encoder (the paper times MEGraph only); a tiny encoder has no
  default and its runs are counted apart until measured. GPU-hours count
  pretraining epochs; embedding (one forward pass over each frame) and linear evaluation add about
  1 % at 60 epochs and are left out.
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
from aunce.data.catalog import DATASET_AUS
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

#: Frames of the real datasets as the paper states them (Sec. 4.1): total, or (training, test).
PAPER_FRAMES = {
    "bp4d": 140_000,  # "approximately 140,000 frames", 3 subject-independent folds
    "disfa": 130_788,
    "bp4d_plus": 197_875,  # test only
    "gft": (108_000, 24_600),  # 78 / 18 participants
    "affwild2": (1_390_000, 440_000),  # training / validation videos
}
#: Bytes of an encoder's state dict at its size preset's feature_dim: a + b * K (K AUs). Measured
#: with ``create_encoder`` (tests/test_summary.py checks the tiny sizes, the paper-size workflow
#: test the paper sizes' encoder.pt files).
ENCODER_STATE_BYTES = {
    ("resnet50", "paper"): (94_245_040, 4_204_544),
    ("roi", "paper"): (361_104_360, 4_204_544),
    ("jaanet", "paper"): (46_010_616, 5_776_900),
    ("megraph", "paper"): (359_584_504, 4_214_800),
    ("resnet50", "tiny"): (529_488, 66_816),
    ("roi", "tiny"): (937_368, 34_048),
    ("jaanet", "tiny"): (182_360, 78_660),
    ("megraph", "tiny"): (342_024, 17_680),
}
#: Per-AU embedding size D of each size preset (docs/encoders.md), when feature_dim is not set.
PRESET_FEATURE_DIM = {"paper": {"megraph": 1024}, "tiny": {}}
DEFAULT_FEATURE_DIM = {"paper": 512, "tiny": 64}
#: settings.json, history.csv, timing.json, metrics.json, a log and a benchmark file of one run
#: (the smoke workflow test checks its runs stay within this).
SMALL_FILES_PER_RUN = 64 * 1024
GB = 1e9
PUBLISHED_COST = "baselines/published_cost.csv"


# --- inputs -------------------------------------------------------------------------------------
def dataset_frames(plan: Plan, name: str, results: Path) -> dict:
    """Training and test frames of each fold of a dataset: ``{"folds": {fold: (train, test)},
    "total", "source"}``; fold 'all' trains on every frame."""
    ds = plan.datasets[name]
    manifest = results / "cache" / name / "manifest.csv"
    folds = dataset_folds(ds)
    if manifest.is_file():
        return _frames_from_manifest(manifest, folds)
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
        return {"folds": {}, "total": None, "source": "unknown (build its cache to count)"}
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


def _frames_from_manifest(path: Path, folds: list[str]) -> dict:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    total = len(rows)
    out = {"all": (total, 0)}
    if rows and "test_fold" in rows[0]:
        counts = Counter(str(int(float(r["test_fold"]))) for r in rows if r["test_fold"] != "")
        for f in folds:
            out[f] = (total - counts.get(f, 0), counts.get(f, 0))
    elif rows and "split" in rows[0]:
        counts = Counter(r["split"] for r in rows)
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
    runs, else the paper's Table 9."""

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
        cache_key = (ds, enc, method)
        if cache_key not in self.used:
            self.used[cache_key] = self._rate(ds, enc, method)
        return self.used[cache_key]["seconds_per_frame"]

    def _rate(self, ds: str, enc: str, method: str) -> dict:
        key = self.key(ds, enc, method)
        device = self.plan.config.get("device", "auto")  # cpu or cuda: runs timed there only
        same = [m for m in self.measured
                if m["key"] == key and device in ("auto", m["device_type"])]  # fmt: skip
        own = [m for m in same if (m["dataset"], m["encoder"], m["method"]) == (ds, enc, method)]
        found = own or same
        if found:
            devices = sorted({str(m["device"]) for m in found})
            return {"seconds_per_frame": sum(m["seconds_per_frame"] for m in found) / len(found),
                    "source": f"measured: {len(found)} timing.json "
                              f"({'this run' if own else 'same encoder and loss'}; "
                              f"{', '.join(devices)})"}  # fmt: skip
        bench = [b for b in self.benchmarked if b["key"] == key]
        if bench:  # the last row of the file wins, as a later measurement
            return {"seconds_per_frame": bench[-1]["seconds_per_frame"],
                    "source": f"benchmarked: {bench[-1]['source']}"}  # fmt: skip
        if key[1] != "paper":
            return {"seconds_per_frame": None,
                    "source": f"not measured: the paper times paper-size encoders only ({key[1]} "
                              "here); run a pretraining job to measure"}  # fmt: skip
        kind = dataset_kind(self.plan.datasets[ds])
        loss = self.plan.methods[method]["loss"]
        if loss not in ("aunce", "wce", "wfl"):  # a loss by import path: by its kind
            loss = "aunce" if loss_cost(self.plan.methods[method])["views"] == 2 else "wce"
        timed = kind if (kind, loss) in self.paper else "bp4d"
        notes = [] if enc == "megraph" else ["timed for MEGraph only"]
        notes += [] if timed == kind else [f"{kind} not timed: BP4D's figure"]
        return {"seconds_per_frame": self.paper[(timed, loss)],
                "source": "paper Table 9 (RTX 3090, MEGraph Swin-B, batch 32"
                          + "".join(f"; {n}" for n in notes) + ")"}  # fmt: skip


# --- sizes --------------------------------------------------------------------------------------
def feature_dim(config: dict, enc: str) -> int:
    spec = config["encoders"][enc]
    size = spec.get("size", "paper")
    return spec.get("feature_dim") or PRESET_FEATURE_DIM[size].get(enc, DEFAULT_FEATURE_DIM[size])


def encoder_bytes(config: dict, enc: str, num_aus: int) -> int | None:
    """Bytes of encoder.pt (state at the preset's feature_dim); None for an unknown encoder."""
    found = ENCODER_STATE_BYTES.get((enc, config["encoders"][enc].get("size", "paper")))
    return None if found is None else found[0] + found[1] * num_aus


def num_aus(plan: Plan, ds: str) -> int:
    spec = plan.datasets[ds]
    if spec.get("aus"):
        return len(spec["aus"])
    return len(DATASET_AUS.get(dataset_kind(spec), DATASET_AUS["bp4d"]))


# --- the summary --------------------------------------------------------------------------------
def summarize(
    configfiles, results: str | Path = "results", schema_path: str | Path | None = None,
    published_cost: str | Path | None = None, rates_file: str | Path | None = None,
) -> dict:  # fmt: skip
    """The numbers ``aunce plan`` prints, as a dict (``--json``); see the module docstring."""
    paths = [Path(p) for p in ([configfiles] if isinstance(configfiles, (str, Path))
                               else configfiles)]  # fmt: skip
    config = load_config(*paths, schema_path=schema_path or SCHEMA_PATH)
    plan = make_plan(config)
    results = Path(results)
    cost_file = Path(published_cost or Path(__file__).resolve().parent.parent / PUBLISHED_COST)
    rates = Rates(plan, results, cost_file, load_rates(rates_file) if rates_file else ())
    frames = {ds: dataset_frames(plan, ds, results) for ds in _datasets_used(plan)}
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
            rate = rates(ds, enc, m)
            hours = None if seen is None or rate is None else epochs * seen * rate / 3600
            enc_bytes = encoder_bytes(config, enc, k)
            evaluated = f != "all" and test is not None
            emb = (train + test) * (k * d * 2 + k + 8) if evaluated else 0
            pred = test * (k * 5 + 8) if evaluated else 0
            is_kept = (ds, enc, m, f, s) in kept
            run_cost[(ds, enc, m, f, s)] = {
                "gpu_hours": hours,
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
            "kept_gb": (sum(c["kept_bytes"] for c in mine)
                        + sum(samples.get(p, 0) for p in spec["inputs"].get("embeddings", []))) / GB,
        })  # fmt: skip

    everything = needed_jobs(all_jobs, ["all"])
    costs = list(run_cost.values())
    enc_all = sum(c["encoder_bytes"] or 0 for c in costs)
    enc_kept = sum(c["encoder_bytes"] or 0 for c in costs if c["encoder_kept"])
    emb_all = sum(c["embedding_bytes"] for c in costs)
    kept_total = sum(c["kept_bytes"] for c in costs) + sum(samples.values())
    caches = {}
    for job in everything:
        if job.rule == "cache":
            path = job.outputs[0]
            name = path.removeprefix("results/cache/")
            ds = name if name in plan.datasets else name.rsplit("-", 1)[0]
            size = int(name.rsplit("-", 1)[1][:-2]) if name != ds else config["image"]["cache_size"]
            n = frames.get(ds, {}).get("total") or dataset_frames(plan, ds, results)["total"]
            caches[path] = None if n is None else n * (size * size * 3 + 49 * 2 * 4 + 64) / GB
    largest = max(costs, key=lambda c: c["embedding_bytes"], default=None)
    return {
        "configs": [str(p) for p in paths],
        "results": str(results),
        "jobs": len(everything),
        "jobs_per_rule": dict(Counter(j.rule for j in everything)),
        "runs": len(run_cost),
        "cross_evaluations": sum(len(c) for c in plan.cross.values()),
        "gpu_hours": _sum(c["gpu_hours"] for c in costs),
        "runs_without_rate": sum(c["gpu_hours"] is None for c in costs),
        "tables": tables,
        "frames": {ds: {"total": f["total"], "source": f["source"],
                        "folds": {k: list(v) for k, v in f["folds"].items()}}
                   for ds, f in frames.items()},  # fmt: skip
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
            "caches_gb": _sum(caches.values()),
            "caches": caches,
        },
        "warnings": list(plan.warnings),
    }


def _datasets_used(plan: Plan) -> list[str]:
    return sorted({ds for ds, _, _ in plan.runs} | {t for _, t, _, _ in plan.cross})


def _sum(values) -> float:
    """The sum of the known values (a run without a rate or frame count is counted apart)."""
    return float(sum(v for v in values if v is not None))


# --- rendering ----------------------------------------------------------------------------------
def _num(value, digits=0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    return f"{value:,.{digits}f}"


def _hours(value: float, unrated: int) -> str:
    """GPU-hours to a sensible precision; '?' when no run has a rate, '+' when some lack one."""
    if unrated and not value:
        return "?"
    return _num(value, 0 if value >= 10 else 2) + ("+" if unrated else "")


def render_summary(s: dict) -> str:
    """The summary as Markdown (what ``aunce plan`` prints)."""
    from tabulate import tabulate

    d = s["disk"]
    lines = [
        f"# Plan of {' + '.join(s['configs'])}",
        "",
        f"{s['jobs']:,} jobs (`snakemake all`), {s['runs']:,} pretraining runs, "
        f"{s['cross_evaluations']:,} cross-dataset evaluations; about "
        f"**{_hours(s['gpu_hours'], s['runs_without_rate'])} GPU-hours** of pretraining"
        + (f" ({s['runs_without_rate']:,} runs without a rate, not counted: '?' or '+' below)"
           if s["runs_without_rate"] else "")
        + f"; kept outputs **{_num(d['kept_gb'], 1)} GB** (caches aside: "
        f"{_num(d['caches_gb'], 1)} GB).",
        "",
        "Jobs per rule: " + ", ".join(f"{r} {n:,}" for r, n in sorted(s["jobs_per_rule"].items())),
        "",
        "## Per table (each as a single target)",
        "",
    ]
    rows = [
        [t["id"], t["kind"], t["jobs"], t["runs"], t["shared_runs"],
         ", ".join(t["shared_with"]) or "-", t["cross_evaluations"],
         _hours(t["gpu_hours"], t["runs_without_rate"]),
         _hours(t["own_gpu_hours"], t["own_runs_without_rate"]),
         _num(t["kept_gb"], 2)]
        for t in s["tables"]
    ]  # fmt: skip
    lines.append(tabulate(rows, ["table", "kind", "jobs", "runs", "shared runs", "shares with",
                                 "cross evals", "GPU-h", "GPU-h own runs", "kept GB"],
                          tablefmt="github", disable_numparse=True))  # fmt: skip
    lines += [
        "",
        "runs: pretraining runs (dataset, encoder, method, fold, seed) the table needs; shared "
        "runs: those another table needs too (one job serves both); GPU-h: all its runs; "
        "GPU-h own runs: the runs no other table needs.",
        "",
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
        f"- largest temporary file (one run's embeddings, until its linear evaluation has read "
        f"it): {_num(d['largest_temporary_gb'], 1)} GB; each GPU job running at once may hold one",
        "- caches: " + "; ".join(f"{p} {_num(g, 1)} GB" for p, g in d["caches"].items()),
        "",
        "## Frames and rates",
        "",
    ]
    for ds, f in s["frames"].items():
        folds = ", ".join(f"{'split' if k == 'split' else f'fold {k}'} {a:,} / {b:,}"
                          for k, (a, b) in f["folds"].items()
                          if k != "all") or "test only"  # fmt: skip
        lines.append(f"- {ds}: {_num(f['total'])} frames ({f['source']}); training / test: {folds}")
    lines += ["", "Seconds per pretraining frame (frames of every method with that loss):", ""]
    groups: dict[tuple, set] = {}
    for r in s["rates"]:
        spf = r["seconds_per_frame"]
        key = (r["encoder"], r["loss"], None if spf is None else round(spf, 6), r["source"])
        groups.setdefault(key, set()).add(r["dataset"])
    rows = [[enc, loss, "?" if spf is None else f"{spf:.4g}", ", ".join(sorted(ds)), source]
            for (enc, loss, spf, source), ds in sorted(groups.items(),
                                                       key=lambda g: (*g[0][:2], g[0][2] or 0))]
    lines.append(tabulate(rows, ["encoder", "loss", "s/frame", "datasets", "from"],
                          tablefmt="github", disable_numparse=True))  # fmt: skip
    if s["warnings"]:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in s["warnings"])]
    return "\n".join(lines) + "\n"
