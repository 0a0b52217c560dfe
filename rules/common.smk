# Helpers and input functions of the workflow. All logic worth testing lives in the aunce package.
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
from pathlib import Path

from snakemake.exceptions import WorkflowError

import aunce
from aunce import AunceError
from aunce.config import check_config, dataset_folds, dataset_kind

try:
    check_config(config, Path(workflow.basedir) / "config" / "schema.yaml")
except AunceError as err:
    raise WorkflowError(f"{err}\n(config files: {', '.join(map(str, workflow.configfiles)) or 'none'})")

def noisy_name(dataset, rate):
    """The derived dataset of a noise table: the same synthetic data with rate of its labels flipped."""
    return dataset if rate == 0 else f"{dataset}_noise{round(100 * rate):g}"


for _spec in config["tables"].values():
    if _spec["kind"] == "noise":
        for _rate in _spec["rates"]:
            _base = config["datasets"][_spec["dataset"]]
            if _rate > 0 and noisy_name(_spec["dataset"], _rate) not in config["datasets"]:
                _derived = json.loads(json.dumps(_base))
                _derived["synthetic"]["label_noise"] = _rate
                config["datasets"][noisy_name(_spec["dataset"], _rate)] = _derived


# Every job calls the `aunce` command; it must be the one installed beside this Snakemake.
if shutil.which("aunce") is None:
    raise WorkflowError(
        "the `aunce` command is not on PATH: run through `make run`, or activate the environment "
        "first (source .venv/bin/activate), or install the package (pip install -e .)"
    )
TORCH_THREADS = config["threads"]
SEEDS = config["seeds"]
TABLES = list(config["tables"])
# --configfile replaces the Snakefile's default; a file given twice is named once
CONFIG_FILES = list(dict.fromkeys(os.path.relpath(Path(f).resolve()) for f in workflow.configfiles))


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
    "tables": code_version(*_COMMON, "tables.py", "stats.py"),
}


# --- datasets, runs and units of work ----------------------------------------------------------
DATASETS = list(config["datasets"])
TRAINABLE = [ds for ds in DATASETS if dataset_folds(config["datasets"][ds])]
# contact sheets of the synthetic datasets the tables use
CONTACT_SHEETS = sorted(
    f"results/figures/contact_{name}.png"
    for spec in config["tables"].values()
    for name in ([spec["dataset"]] if "dataset" in spec else spec.get("datasets", []))
    if config["datasets"][name]["source"] == "synthetic"
)


wildcard_constraints:
    dataset="|".join(DATASETS) or "no-dataset",
    encoder="|".join(config["encoders"]) or "no-encoder",
    method="|".join(config["methods"]) or "no-method",
    table="|".join(TABLES) or "no-table",


def units(dataset):
    """Jobs of a cell: one per fold and seed ('run'), or one for all of them ('cell')."""
    folds = dataset_folds(config["datasets"][dataset])
    if config["granularity"] == "run":
        return [(f"fold{f}_seed{s}", [f], [s]) for f in folds for s in SEEDS]
    return [("all", folds, SEEDS)]


def run_files(stage, dataset, folds, seeds, name):
    """Per-run paths of a stage, keeping {encoder} and {method} as wildcards."""
    return [f"results/{stage}/{dataset}/{{encoder}}/{{method}}/fold-{f}/seed-{s}/{name}"
            for f in folds for s in seeds]


def stage_root(stage, dataset):
    return lambda wc: f"results/{stage}/{dataset}/{wc.encoder}/{wc.method}"


def as_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def encoder_settings(name):
    return dict(config["encoders"][name], name=name)


def pretrain_settings(dataset, encoder, method):
    return {"dataset": dataset, "encoder": encoder_settings(encoder), "method": config["methods"][method],
            "method_name": method, "pretrain": config["pretrain"], "image": config["image"],
            "device": config["device"], "amp": config["amp"], "threads": TORCH_THREADS}


def embed_settings(dataset, encoder, method):
    return {"dataset": dataset, "image": config["image"], "device": config["device"],
            "amp": config["amp"], "threads": TORCH_THREADS}


def linear_eval_settings(dataset, encoder, method):
    return {"dataset": dataset, "encoder": encoder_settings(encoder), "method_name": method,
            "linear_eval": config["linear_eval"], "device": config["device"], "threads": TORCH_THREADS}


def dataset_label(name):
    ds = config["datasets"][name]
    if ds["source"] == "synthetic":
        return f"{name} (synthetic stand-in, profile {ds['synthetic']['profile']})"
    return f"{name} ({ds['source']} at {ds['root']})"


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
    aligned = " --aligned" if ds["aligned"] else ""
    return f"--reader {reader} --root {shlex.quote(root)} --size {config['image']['cache_size']}{aligned}"


# --- tables --------------------------------------------------------------------------------------
def metrics_files(dataset, encoder, methods):
    folds = dataset_folds(config["datasets"][dataset])
    return [f"results/eval/{dataset}/{encoder}/{m}/fold-{f}/seed-{s}/metrics.json"
            for m in methods for f in folds for s in SEEDS]


def table_spec(table):
    """What the table job needs: kind, title, rows, notes and its input files by role."""
    spec = config["tables"][table]
    kind = spec["kind"]
    provenance = f"Config: {', '.join(CONFIG_FILES)}; code {CODE['tables']}."
    methods = [[m, config["methods"][m].get("label", m)] for m in spec.get("methods", [])]
    if kind == "occurrence":
        from aunce.data.catalog import OCCURRENCE_RATES

        names = spec["datasets"]
        kinds = {n: dataset_kind(config["datasets"][n]) for n in names}
        return {
            "kind": kind,
            "title": f"{table}: AU occurrence rates (%) of the training sets",
            "inputs": {"caches": {n: f"results/cache/{n}" for n in names}},
            "paper_rates": {n: OCCURRENCE_RATES[kinds[n]] for n in names if kinds[n] in OCCURRENCE_RATES},
            "notes": [f"{n}: {dataset_label(n)}" for n in names] + [provenance],
        }
    ds, enc = spec["dataset"], spec["encoder"]
    enc_cfg = config["encoders"][enc]
    folds = dataset_folds(config["datasets"][ds])
    averaging = (f"Each cell: mean over {len(folds)} fold(s) of the per-fold F1, then mean ± sample std "
                 f"over {len(SEEDS)} seed(s) ({', '.join(map(str, SEEDS))}); linear evaluation of the frozen encoder.")
    if kind == "noise":
        rates = spec["rates"]
        return {
            "kind": kind,
            "title": f"{table}: F1-macro (%) against label noise on {dataset_label(ds)}, encoder {enc} ({enc_cfg['size']})",
            "methods": methods,
            "inputs": {
                "metrics": {str(r): metrics_files(noisy_name(ds, r), enc, spec["methods"]) for r in rates},
                "caches": {str(r): f"results/cache/{noisy_name(ds, r)}" for r in rates},
            },
            "notes": [averaging, "Training (pretraining and linear head) uses the noisy labels; every "
                      "evaluation uses the true labels.", provenance],
        }
    return {
        "kind": kind,
        "title": f"{table}: F1 (%) per AU on {dataset_label(ds)}, encoder {enc} ({enc_cfg['size']})",
        "methods": methods,
        "inputs": {"metrics": metrics_files(ds, enc, spec["methods"])},
        "notes": [averaging, provenance],
    }


def table_inputs(wildcards):
    def flatten(value):
        if isinstance(value, dict):
            return [p for v in value.values() for p in flatten(v)]
        return value if isinstance(value, list) else [value]

    return flatten(table_spec(wildcards.table)["inputs"])
