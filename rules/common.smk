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
from snakemake.logging import logger

import aunce
from aunce import AunceError
from aunce.config import check_config, resolved_linear_eval, resolved_warm_start
from aunce.claims import data_kind, load_claims
from aunce.claims import inputs as claim_inputs
from aunce.plan import (
    FIGURE_KINDS,
    all_targets,
    cache_path,
    cells,
    contact_sheets,
    cross_jobs,
    encoder_image,
    figure_ids,
    input_files,
    keeps_embeddings,
    kept_encoders,
    pretrain_groups,
    report_inputs,
    table_ids,
    warm_start_files,
)
from aunce.plan import units as plan_units
from aunce.validate import validate

SCHEMA = Path(workflow.basedir) / "config" / "schema.yaml"


def config_error(err):
    """An error of the config or its plan as Snakemake prints it: the message, no traceback."""
    return WorkflowError(f"{err}\n(config files: {', '.join(map(str, workflow.configfiles)) or 'none'})")


try:  # the schema first: the settings read below need their defaults
    check_config(config, SCHEMA)
except AunceError as err:
    raise config_error(err)

# Every job calls the `aunce` command; it must be the one installed beside this Snakemake.
if shutil.which("aunce") is None:
    raise WorkflowError(
        "the `aunce` command is not on PATH: run through `make run`, or activate the environment "
        "first (source .venv/bin/activate), or install the package (pip install -e .)"
    )
TORCH_THREADS = config["threads"]
SEEDS = config["seeds"]
# --configfile replaces the Snakefile's default; a file given twice is named once
def _shown(path):
    """A config file as the tables name it: relative to the project when inside it."""
    path, base = Path(path).resolve(), Path(workflow.basedir).resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


CONFIG_FILES = list(dict.fromkeys(_shown(f) for f in workflow.configfiles))


# --- what each job asks a scheduler for (config `resources`; docs/cluster.md) --------------------
# A job's threads are its CPUs (sbatch --cpus-per-task; on one machine capped by --cores); a data
# job gets `--workers {threads}` in its command, not a machine-dependent param, so that results
# made on a node with another core count are not rerun. Training and embedding jobs hold the
# resource `gpu`: 1 unless the device is the CPU (the SLURM plugin turns it into --gpus=1; locally
# `--resources gpu=1` runs them one at a time). Memory and wall time are each job's estimate
# (aunce.resources, REQUESTS below), the config's values as caps.
GPUS = 0 if config["device"] == "cpu" else 1
#: Retries beyond the allocations a chained pretraining job needs: preemptions and node failures
#: (the SLURM profile's `retries: 2`, which a rule's own retries replace).
CHAIN_MARGIN = 2


def stage_threads(stage):
    return config["resources"][stage]["threads"]


def stage_resources(stage, gpu=False, rule=None, by=None):
    """Resources of a job of ``stage`` (a key of config `resources`): memory and wall time (the
    estimate of the job of rule ``rule`` told apart by its wildcard ``by``, the config's values
    as caps; the config's values without an estimate), optional partition and, for ``gpu`` jobs,
    the GPU (with its model when the config names one)."""
    spec = config["resources"][stage]
    name = rule

    def ask(what):
        if name is None:
            return spec[what]
        if by is None:
            found = REQUESTS.get((name, None))
            return getattr(found[1], what) if found else spec[what]

        def per_job(wildcards):
            found = REQUESTS.get((name, getattr(wildcards, by)))
            return getattr(found[1], what) if found else spec[what]

        return per_job

    res = {"mem_mb": ask("mem_mb"), "runtime": ask("runtime")}
    if spec["partition"]:
        res["slurm_partition"] = spec["partition"]
    if gpu:
        res["gpu"] = GPUS
        if GPUS and config["resources"]["gpu_model"]:
            res["gpu_model"] = config["resources"]["gpu_model"]
    return res


def chain_resources(rule, by=None):
    """A pretraining job's place in its chain of allocations (docs/cluster.md): `allocation` is
    Snakemake's attempt, `allocations` the estimate's count (both in the job's command, so that
    its log and `squeue`'s comment say which allocation of how many it is), and SLURM's signal to
    checkpoint `resources.checkpoint_lead` seconds before the time limit."""
    def allocations(wildcards):
        found = REQUESTS.get((rule, getattr(wildcards, by) if by else None))
        return found[1].allocations if found else 1

    return {"allocation": lambda wildcards, attempt: attempt, "allocations": allocations,
            "slurm_extra": f"--signal=TERM@{config['resources']['checkpoint_lead']}"}


def chain_retries(rule, methods=(None,)):
    """Retries of a pretraining rule: the allocations its longest job needs, less one, plus
    CHAIN_MARGIN; None (the profile's retries) for jobs that fit one allocation; 0 inside a
    cluster job (its own Snakemake must not run the job again in the same allocation)."""
    if not workflow.is_main_process:
        return 0
    n = max((REQUESTS[(rule, m)][1].allocations for m in methods if (rule, m) in REQUESTS),
            default=1)
    return n - 1 + CHAIN_MARGIN if n > 1 else None


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
    # the linear evaluation reads the encoders and the augmentations too (features: augmented)
    "linear_eval": code_version(*_COMMON, "data", "encoders", "train.py", "evaluate.py", "losses.py",
                                "metrics.py", "device.py"),
    "tables": code_version(*_COMMON, "tables.py", "stats.py", "plan.py", "baselines.py"),
    "figures": code_version(*_COMMON, "figures.py", "stats.py", "plan.py"),
    "report": code_version(*_COMMON, "report.py", "stats.py", "baselines.py"),
    "pages": code_version(*_COMMON, "pages.py"),
    "verdicts": code_version(*_COMMON, "claims.py", "stats.py", "plan.py", "presets.py",
                             "baselines.py"),
    "warmstart": code_version(*_COMMON, "data", "encoders", "warmstart.py", "device.py"),
}


# --- the plan: every run, cross-evaluation and table the config asks for ------------------------
PUBLISHED = os.path.relpath(Path(workflow.basedir) / "baselines" / "published.csv")
try:  # the one validation path of `aunce check-config` too (aunce.validate)
    PLAN = validate(config, schema_path=SCHEMA, published=PUBLISHED,
                    provenance=f"Config: {', '.join(CONFIG_FILES)}; code {CODE['tables']}.",
                    main_process=workflow.is_main_process)
except AunceError as err:
    raise config_error(err)
for _warning in PLAN.warnings:
    logger.warning(f"aunce: {_warning}")
# what each job needs and asks for (aunce.resources): estimates from this results folder's caches and
# timings, a rates file (config `resources.rates`) or the paper's Table 9, capped by the config's
# `resources`; also in a cluster job's own Snakemake, whose command says which allocation of how
# many it is (chain_resources)
def job_requests():
    from aunce.resources import plan_requests

    try:
        return plan_requests(PLAN, "results", config["resources"]["rates"])
    except AunceError as err:
        raise config_error(err)


REQUESTS = job_requests()
OVER = [f"{e.name}{f' ({key[1]})' if key[1] else ''}: {'; '.join(r.over)}"
        for key, (e, r) in REQUESTS.items() if r.over and workflow.is_main_process]
if OVER:  # named before anything runs; on a cluster the run stops (Snakefile, onstart)
    logger.warning(f"aunce: {len(OVER)} job(s) need more than the config's `resources` allow "
                   "(a cluster run stops before it starts; `aunce plan` lists them):\n  "
                   + "\n  ".join(OVER[:10]) + ("\n  ..." if len(OVER) > 10 else ""))



# contact sheets of the synthetic datasets the config names (not the noise tables' copies)
CONTACT_SHEETS = contact_sheets(PLAN)
ALL_TARGETS = all_targets(PLAN)
config["datasets"] = PLAN.datasets  # with the noise tables' derived datasets (saved resolved)
DATASETS = list(PLAN.datasets)
TABLES = table_ids(PLAN)
FIGURES = figure_ids(PLAN)
REPORT_INPUTS = report_inputs(PLAN)
# what stays on disk (config `keep`): the other encoders and embeddings are temp() files
KEPT_ENCODERS = kept_encoders(PLAN)
KEEP_EMBEDDINGS = keeps_embeddings(PLAN)
ENCODERS = sorted({enc for _, enc in cells(PLAN)} | set(config["encoders"]))


def alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names)) or "no-name"


# --- warm start (rules/warmstart.smk): `pretrained: warm` names the warm-start job's weights -----
WARM_ENCODERS = sorted(n for n, e in config["encoders"].items() if e["pretrained"] == "warm")


def warm_start_file(encoder):
    return f"results/warmstart/{encoder}/backbone.pt"


def warm_input(encoder):
    """The warm-start weights a pretraining job of ``encoder`` starts from ([] from scratch)."""
    return warm_start_files(config, encoder)


def warm_population_args():
    w = config["warm_start"]
    return (f"--seed {w['seed']} --n-subjects {w['n_subjects']} "
            f"--frames-per-subject {w['frames_per_subject']} --image-size {w['image_size']} "
            f"--aligned-size {config['image']['cache_size']}")


def warm_start_settings(encoder):
    return {"encoder": dict(config["encoders"][encoder], name=encoder), "image": config["image"],
            "warm_start": resolved_warm_start(config, encoder), "device": config["device"],
            "threads": TORCH_THREADS}


wildcard_constraints:
    dataset=alternatives(DATASETS),
    method=alternatives(PLAN.methods),
    encoder=alternatives(ENCODERS),
    table=alternatives(TABLES),
    figure=alternatives(FIGURES),
    page=alternatives(PLAN.tables),


def units(ds, enc, which="all"):
    """Jobs of a (dataset, encoder): [(tag, runs, methods)] (aunce.plan.units)."""
    return plan_units(PLAN, ds, enc, which)


CELLS = cells(PLAN)


def pretrain_units(ds, enc):
    """Pretraining jobs of a (dataset, encoder): [(tag, runs, methods, kept runs)]; all
    runs, or with fuse_stages only those trained for cross-dataset tests (fold 'all')."""
    which = "pretrain_only" if config["fuse_stages"] else "all"
    return [(f"{tag}{suffix}", runs, methods, kept)
            for tag, runs, unit_methods in units(ds, enc, which)
            for suffix, methods, kept in pretrain_groups(PLAN, ds, enc, runs, unit_methods, KEPT_ENCODERS)]


def run_files(stage, ds, enc, runs, name, methods, kept=None):
    """Per-run paths of a stage with {method} a wildcard limited to ``methods`` (an input: not
    limited, Snakemake ignores constraints there). With ``kept`` (a set of (fold, seed)), the other
    runs' files are temp(): deleted once every job reading them is done."""
    method = f"{{method,{alternatives(methods)}}}" if methods else "{method}"
    paths = [(f"results/{stage}/{ds}/{enc}/{method}/fold-{f}/seed-{s}/{name}", (f, s))
             for f, s in runs]
    if kept is None:
        return [p for p, _ in paths]
    return [p if run in kept else temp(p) for p, run in paths]


def kept_encoder(ds, enc, method, fold, seed):
    return (ds, enc, method, fold, seed) in KEPT_ENCODERS


def encoder_files(ds, enc, runs, methods):
    """encoder.pt of each method and run of a fused unit, temp() unless kept (config `keep`)."""
    return [p if kept_encoder(ds, enc, m, f, s) else temp(p)
            for m in methods for f, s in runs
            for p in [f"results/pretrain/{ds}/{enc}/{m}/fold-{f}/seed-{s}/encoder.pt"]]


def embedding_files(paths):
    """embeddings.npz paths, temp() unless keep.embeddings is all (a t-SNE figure keeps a sample)."""
    return list(paths) if KEEP_EMBEDDINGS else [temp(p) for p in paths]


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


def as_json(obj, sort_keys=True):
    """A job's settings as one JSON argument; keys sorted (a reordered config reruns nothing)
    unless their order means something (the resolved config: the plan names derived methods in
    the order of the tables)."""
    return json.dumps(obj, sort_keys=sort_keys, separators=(",", ":"))


def encoder_settings(name):
    """An encoder's settings as its jobs get them: `pretrained: none` (random initialisation,
    stated explicitly) becomes None, `pretrained: warm` the warm-start job's file; the image
    geometry goes into the stage's `image`."""
    enc = {k: v for k, v in config["encoders"][name].items() if k != "image"}
    if str(enc.get("pretrained")).lower() == "none":
        enc["pretrained"] = None
    elif enc.get("pretrained") == "warm":
        enc["pretrained"] = warm_start_file(name)
    return dict(enc, name=name)


def pretrain_settings(dataset, encoder, method):
    pretrain = dict(config["pretrain"], epochs=PLAN.epochs.get(method, config["pretrain"]["epochs"]))
    return {"dataset": dataset, "encoder": encoder_settings(encoder), "method": PLAN.methods[method],
            "method_name": method, "pretrain": pretrain, "image": encoder_image(config, encoder),
            "device": config["device"], "amp": config["amp"], "threads": TORCH_THREADS,
            "channels_last": config["channels_last"], "compile": config["compile"]}


def embed_settings(dataset, encoder, method):
    return {"dataset": dataset, "image": encoder_image(config, encoder), "device": config["device"],
            "amp": config["amp"], "threads": TORCH_THREADS, "channels_last": config["channels_last"]}


AUGMENTED_FEATURES = config["linear_eval"]["features"] == "augmented"


def linear_eval_settings(dataset, encoder, method):
    settings = {"dataset": dataset, "encoder": encoder_settings(encoder), "method_name": method,
                "linear_eval": resolved_linear_eval(config, dataset), "device": config["device"],
                "threads": TORCH_THREADS}
    if AUGMENTED_FEATURES:  # the released linear evaluation reads the cache through the encoder
        settings.update(image=encoder_image(config, encoder), pretrain=config["pretrain"],
                        amp=config["amp"], channels_last=config["channels_last"])
    return settings


def linear_eval_inputs(ds, enc, runs):
    """With linear_eval.features augmented, a linear evaluation also reads the cache and the
    pretrained encoders (the released protocol); else nothing more than the embeddings."""
    if not AUGMENTED_FEATURES:
        return {}
    return {"cache": cache_path(config, ds, enc),
            "models": run_files("pretrain", ds, enc, runs, "encoder.pt", methods=None)}


def linear_eval_args(ds, enc, method):
    """`aunce linear-eval`'s --cache and --models where it reads them (linear_eval_inputs)."""
    if not AUGMENTED_FEATURES:
        return ""
    models = f"results/pretrain/{ds}/{enc}/{method}"
    return f"--cache {shlex.quote(cache_path(config, ds, enc))} --models {shlex.quote(models)}"


def cross_settings(src, tgt, encoder, method):
    return dict(linear_eval_settings(src, encoder, method), target=tgt, image=encoder_image(config, encoder),
                amp=config["amp"], channels_last=config["channels_last"])


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
    """Arguments of a cache job: `{size}` is set for an encoder's own cache size (JA-Net's 200)."""
    ds = config["datasets"][wildcards.dataset]
    if ds["source"] == "synthetic":
        root, reader = f"results/data/{wildcards.dataset}", "synthetic"
    else:
        root, reader = ds["root"], ds["source"]
    size = getattr(wildcards, "size", None) or config["image"]["cache_size"]
    args = [f"--reader {reader}", f"--root {shlex.quote(root)}", f"--size {size}"]
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
        entry["synthetic"] = data_kind(PLAN, t) != "real"  # no comparison with the paper's data
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
        "paper_config": os.path.relpath(Path(workflow.basedir) / "config" / "paper.yaml"),
        "provenance": {"code": CODE["tables"], "configs": CONFIG_FILES, "seeds": SEEDS,
                       "created": None},
        "verdicts": "results/verdicts.md",
    }


# --- the claims' verdicts and Snakemake's HTML report (snakemake --report results/report.html) ---
CLAIMS = os.path.relpath(Path(workflow.basedir) / "baselines" / "claims.yaml")
try:
    VERDICT_INPUTS = claim_inputs(PLAN, load_claims(CLAIMS))
except AunceError as err:
    raise WorkflowError(str(err))
# one report category per table or figure, in config order, after the verdicts ("00 Verdicts");
# the report's menu sorts categories by name
PAGES = list(PLAN.tables)
VERDICTS_CATEGORY = "00 Verdicts"
FULL_REPORT_CATEGORY = f"{len(PAGES) + 1:02d} Full report"


def report_category(name):
    return f"{PAGES.index(name) + 1:02d} {name}"


def report_labels(name, file):
    """Columns of a category's result list; `file` first, so each file is a row of its own."""
    spec = PLAN.tables[name]
    return {"file": file, "table": name, "kind": spec["kind"], "data": data_kind(PLAN, name)}


def _rst_escape(text):
    """Plain text for reStructuredText: every markup character taken literally."""
    return re.sub(r"([\\`*_|\[\]<>:])", r"\\\1", str(text))


def report_caption(name):
    """A table's or figure's caption (its title and notes) as reStructuredText."""
    spec = PLAN.tables[name]
    lines = [f"**{_rst_escape(spec['title'])}**", ""]
    lines += [f"- {_rst_escape(note)}" for note in spec.get("notes", [])]
    if spec["kind"] not in ("occurrence", "cost", "tsne") and data_kind(PLAN, name) != "real":
        lines += ["", "The data are synthetic stand-ins: compare the methods of this run with each "
                      "other (the verdicts, the significance tests), not with the paper's numbers."]
    return "\n".join(lines)


def page_source(wildcards):
    spec = PLAN.tables[wildcards.page]
    if spec["kind"] in FIGURE_KINDS:
        return {"md": spec["outputs"]["md"], "png": spec["outputs"]["png"]}
    return {"md": spec["outputs"]["md"]}
