# Helpers and input functions of the workflow. All logic worth testing lives in the aunce package.
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

import aunce
from aunce import AunceError
from aunce.config import check_config
from aunce.plan import FIGURE_KINDS, input_files, make_plan

try:
    check_config(config, Path(workflow.basedir) / "config" / "schema.yaml")
except AunceError as err:
    raise WorkflowError(f"{err}\n(config files: {', '.join(map(str, workflow.configfiles)) or 'none'})")

# Every job calls the `aunce` command; it must be the one installed beside this Snakemake.
if shutil.which("aunce") is None:
    raise WorkflowError(
        "the `aunce` command is not on PATH: run through `make run`, or activate the environment "
        "first (source .venv/bin/activate), or install the package (pip install -e .)"
    )
TORCH_THREADS = config["threads"]
# processes of a data job: `threads`, or every core (Snakemake scales a rule's `threads` down to
# --cores, which is 1 in the documented command; the data jobs run one at a time anyway)
WORKERS = config["threads"] or len(os.sched_getaffinity(0))
SEEDS = config["seeds"]
# --configfile replaces the Snakefile's default; a file given twice is named once
def _shown(path):
    """A config file as the tables name it: relative to the project when inside it."""
    path, base = Path(path).resolve(), Path(workflow.basedir).resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


CONFIG_FILES = list(dict.fromkeys(_shown(f) for f in workflow.configfiles))


def check_writable(folder="results"):
    """Fail before any job starts if the results folder cannot be written."""
    path = Path(folder).resolve()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if probe == path and not path.is_dir():
        raise WorkflowError(f"results folder '{path}' is not writable: a file of that name is in the way")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise WorkflowError(
            f"results folder '{path}' is not writable (checked '{probe}'); fix its permissions "
            "or run from a folder you own (snakemake --directory DIR)"
        )


check_writable()


# --- code versions: Snakemake reruns a job when the code its step runs changes -----------------
PACKAGE_DIR = Path(importlib.util.find_spec("aunce").origin).parent


def code_version(*parts):
    digest = hashlib.sha256()
    for part in parts:
        path = PACKAGE_DIR / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            digest.update(f.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(f.read_bytes())
    return f"{aunce.__version__}+{digest.hexdigest()[:12]}"


_COMMON = ("__init__.py", "io.py", "config.py", "cli.py")
CODE = {
    "data": code_version(*_COMMON, "data"),
    "pretrain": code_version(*_COMMON, "data", "encoders", "losses.py", "methods.py", "train.py", "device.py"),
    "embed": code_version(*_COMMON, "data", "encoders", "train.py", "evaluate.py", "device.py"),
    "linear_eval": code_version(*_COMMON, "evaluate.py", "losses.py", "metrics.py", "encoders/blocks.py"),
    "tables": code_version(*_COMMON, "tables.py", "stats.py", "plan.py", "baselines.py"),
    "figures": code_version(*_COMMON, "figures.py", "stats.py", "plan.py"),
    "report": code_version(*_COMMON, "report.py", "stats.py", "baselines.py"),
    "warmstart": code_version(*_COMMON, "data", "encoders", "warmstart.py", "device.py"),
}


# --- the plan: every run, cross-evaluation and table the config asks for ------------------------
PUBLISHED = os.path.relpath(Path(workflow.basedir) / "baselines" / "published.csv")
PLAN = make_plan(config, provenance=f"Config: {', '.join(CONFIG_FILES)}; code {CODE['tables']}.",
                 published=PUBLISHED)
# contact sheets of the synthetic datasets the config names (not the noise tables' copies)
CONTACT_SHEETS = sorted(
    f"results/figures/contact_{name}.png"
    for name, ds in config["datasets"].items()
    if ds["source"] == "synthetic"
)
config["datasets"] = PLAN.datasets  # with the noise tables' derived datasets (saved resolved)
DATASETS = list(PLAN.datasets)
TABLES = [t for t, spec in PLAN.tables.items() if spec["kind"] not in FIGURE_KINDS]
FIGURES = [t for t, spec in PLAN.tables.items() if spec["kind"] in FIGURE_KINDS]
REPORT_INPUTS = [
    "results/config.yaml",
    *(PLAN.tables[t]["outputs"][k] for t in TABLES for k in ("md", "csv", "significance")),
    *(PLAN.tables[f]["outputs"][k] for f in FIGURES for k in ("png", "md")),
]


def alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names)) or "no-name"


# --- warm start (rules/warmstart.smk): `pretrained: warm` names the warm-start job's weights -----
WARM_ENCODERS = sorted(n for n, e in config["encoders"].items() if e["pretrained"] == "warm")


def warm_start_file(encoder):
    return f"results/warmstart/{encoder}/backbone.pt"


def warm_input(encoder):
    """The warm-start weights a pretraining job of ``encoder`` starts from ([] from scratch)."""
    return [warm_start_file(encoder)] if encoder in WARM_ENCODERS else []


def warm_population_args():
    w = config["warm_start"]
    return (f"--seed {w['seed']} --n-subjects {w['n_subjects']} "
            f"--frames-per-subject {w['frames_per_subject']} --image-size {w['image_size']} "
            f"--aligned-size {config['image']['cache_size']}")


def warm_start_settings(encoder):
    return {"encoder": dict(config["encoders"][encoder], name=encoder), "image": config["image"],
            "warm_start": config["warm_start"], "device": config["device"], "threads": TORCH_THREADS}


wildcard_constraints:
    dataset=alternatives(DATASETS),
    method=alternatives(PLAN.methods),
    table=alternatives(TABLES),
    figure=alternatives(FIGURES),


def units(ds, enc, which="all"):
    """Jobs of a (dataset, encoder): [(tag, runs, methods)] for the runs ``which`` selects:
    "all", "evaluated" (runs with a test split) or "pretrain_only" (fold 'all': trained on the
    whole dataset for cross-dataset tests only).

    granularity 'cell': one job per group of methods that need the same runs (all their folds and
    seeds in one process); 'run': one job per fold and seed, for the methods that need it."""
    keep = {"all": lambda f: True, "evaluated": lambda f: f != "all",
            "pretrain_only": lambda f: f == "all"}[which]
    needs = {m: {r for r in runs if keep(r[0])}
             for (d, e, m), runs in PLAN.runs.items() if (d, e) == (ds, enc)}
    needs = {m: runs for m, runs in needs.items() if runs}
    prefix = {"all": "", "evaluated": "e", "pretrain_only": "p"}[which]
    out = []
    if config["granularity"] == "run":
        for f, s in sorted({r for runs in needs.values() for r in runs}):
            methods = sorted(m for m, r in needs.items() if (f, s) in r)
            out.append((f"{prefix}fold{f}_seed{s}", [(f, s)], methods))
        return out
    groups = {}
    for m, runs in needs.items():
        groups.setdefault(tuple(sorted(runs)), []).append(m)
    for i, (runs, methods) in enumerate(sorted(groups.items())):
        out.append((f"{prefix}cell{i}", list(runs), sorted(methods)))
    return out


CELLS = sorted({(ds, enc) for ds, enc, _ in PLAN.runs})


def run_files(stage, ds, enc, runs, name, methods):
    """Per-run paths of a stage with {method} a wildcard limited to ``methods``."""
    return [f"results/{stage}/{ds}/{enc}/{{method,{alternatives(methods)}}}/fold-{f}/seed-{s}/{name}"
            for f, s in runs]


def loss_code(method):
    """A hash of the file of a method's own loss (``loss: module:function``), so that editing it
    reruns that method's jobs; '' for the built-in losses (covered by CODE)."""
    loss = PLAN.methods[method]["loss"]
    if ":" not in loss:
        return ""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(loss.split(":")[0])
    except ImportError:
        spec = None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return "loss-missing"  # the job itself stops with a clear error
    return f"loss-{hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:12]}"


def fused_files(stage, ds, enc, runs, name, methods):
    """Per-run paths of a stage for every method of a fused unit (no wildcards)."""
    return [f"results/{stage}/{ds}/{enc}/{m}/fold-{f}/seed-{s}/{name}" for m in methods for f, s in runs]


def as_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def encoder_settings(name):
    spec = dict(config["encoders"][name], name=name)
    if spec["pretrained"] == "warm":
        spec["pretrained"] = warm_start_file(name)
    return spec


def pretrain_settings(dataset, encoder, method):
    pretrain = dict(config["pretrain"], epochs=PLAN.epochs.get(method, config["pretrain"]["epochs"]))
    return {"dataset": dataset, "encoder": encoder_settings(encoder), "method": PLAN.methods[method],
            "method_name": method, "pretrain": pretrain, "image": config["image"],
            "device": config["device"], "amp": config["amp"], "threads": TORCH_THREADS}


def embed_settings(dataset, encoder, method):
    return {"dataset": dataset, "image": config["image"], "device": config["device"],
            "amp": config["amp"], "threads": TORCH_THREADS}


def linear_eval_settings(dataset, encoder, method):
    return {"dataset": dataset, "encoder": encoder_settings(encoder), "method_name": method,
            "linear_eval": config["linear_eval"], "device": config["device"], "threads": TORCH_THREADS}


def cross_settings(src, tgt, encoder, method):
    return dict(linear_eval_settings(src, encoder, method), target=tgt, image=config["image"],
                amp=config["amp"])


def runs_arg(runs):
    return ",".join(f"{f}:{s}" for f, s in runs)


# --- data ---------------------------------------------------------------------------------------
def synth_args(dataset):
    s = config["datasets"][dataset]["synthetic"]
    args = [f"--profile {s['profile']}", f"--seed {s['seed']}", f"--image-size {s['image_size']}",
            f"--label-noise {s['label_noise']}", f"--miss-ratio {s['miss_ratio']}"]
    if s["n_subjects"]:
        args.append(f"--n-subjects {s['n_subjects']}")
    if s["frames_per_subject"]:
        args.append(f"--frames-per-subject {s['frames_per_subject']}")
    return " ".join(args)


def cache_source(wildcards):
    ds = config["datasets"][wildcards.dataset]
    return f"results/data/{wildcards.dataset}" if ds["source"] == "synthetic" else []


def cache_args(wildcards):
    ds = config["datasets"][wildcards.dataset]
    if ds["source"] == "synthetic":
        root, reader = f"results/data/{wildcards.dataset}", "synthetic"
    else:
        root, reader = ds["root"], ds["source"]
    args = [f"--reader {reader}", f"--root {shlex.quote(root)}", f"--size {config['image']['cache_size']}"]
    if ds.get("aligned") is not None:
        args.append("--aligned" if ds["aligned"] else "--no-aligned")
    if reader != "synthetic":
        args.append(f"--landmarks {shlex.quote(ds.get('landmarks', 'landmarks'))}")
    if ds.get("split_file"):
        args.append(f"--split-file {shlex.quote(ds['split_file'])}")
    if reader == "list":
        args.append(f"--folds {ds.get('folds', 3)}")
        if ds.get("list_name"):
            args.append(f"--list-name {shlex.quote(ds['list_name'])}")
        pins = sorted(ds.get("list_sha256", {}).items())
        args.extend(f"--list-sha256 {shlex.quote(f'{name}={digest}')}" for name, digest in pins)
    if ds.get("aus"):
        args.append(f"--aus {','.join(map(str, ds['aus']))}")
    return " ".join(args)


# --- tables and figures ------------------------------------------------------------------------
def table_spec(name):
    return PLAN.tables[name]


def table_inputs(wildcards):
    return input_files(PLAN.tables[getattr(wildcards, "table", None) or wildcards.figure])


def report_spec():
    from aunce.config import dataset_kind

    tables = []
    for t in TABLES:
        spec = PLAN.tables[t]
        pub = spec.get("published") or {}
        entry = {"id": t, "md": spec["outputs"]["md"], "csv": spec["outputs"]["csv"],
                 "significance": spec["outputs"]["significance"],
                 "paper_table": pub.get("table"), "dataset": pub.get("dataset")}
        if spec["kind"] == "cross":  # rows name their direction; published rows are keyed by it
            entry["row_datasets"] = {f"{label} (this run), {d['label']}": d["name"]
                                     for d in spec["directions"] for _, label in spec["methods"]}
        tables.append(entry)
    figures = [{"id": f, "png": f"figures/{f}.png", "md": PLAN.tables[f]["outputs"]["md"]}
               for f in FIGURES]
    return {
        "title": "Reproduction report: Learning Contrastive Feature Representations for Facial "
                 "Action Unit Detection (AUNCE)",
        "tables": tables,
        "figures": figures,
        "published": PUBLISHED,
        "resolved_config": "results/config.yaml",
        "paper_config": str(Path(workflow.basedir) / "config" / "paper.yaml"),
        "provenance": {"code": CODE["tables"], "configs": CONFIG_FILES, "seeds": SEEDS,
                       "created": None},
    }
