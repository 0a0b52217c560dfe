# Helpers and input functions of the workflow. All logic worth testing lives in the aunce package.
import json
import os
import re
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.io import is_flagged, temp as temp_file
from snakemake.logging import logger

from aunce import AunceError
from aunce.cluster import signal_lead
from aunce.codehash import code_versions, module_file_digest
from aunce.config import (
    check_config,
    resolved_linear_eval,
    resolved_pretrain,
    resolved_warm_start,
    retype_overrides,
)
from aunce.folder import CONSENT, check_folder, project_on_path, record_run
from aunce.claims import data_kind, load_claims
from aunce.data.cache import META as CACHE_META, cache_problem, damage_note, mark_damaged
from aunce.io import DIGEST_SUFFIX, content_file
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


# `--config overwrite=true` consents to running into a folder that holds another config's
# results (aunce.folder); a command-line consent, not a setting: never part of the saved config.
OVERWRITE = bool(config.pop(CONSENT, False))
try:  # the schema first: the settings read below need their defaults
    # --config 'pretrain={"epochs": 3}': Snakemake hands nested values over as strings; read them
    # as YAML where the schema wants a number, a boolean or null
    retype_overrides(config, workflow.config_settings.config, SCHEMA)
    check_config(config, SCHEMA)
except AunceError as err:
    raise config_error(err)

# A run in another folder (snakemake --directory DIR) finds the project's own modules (a loss of
# yours given as `my_losses:my_loss` from the project folder) as a run in the project folder does.
project_on_path(workflow.basedir)

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
    its log and `squeue`'s comment say which allocation of how many it is), `checkpoint_lead` the
    seconds before the allocation's end at which the job stops itself, and SLURM's signal as a
    fallback, 60 s later than that (aunce.cluster). Resources, not params: a changed lead or
    attempt reruns nothing."""
    def allocations(wildcards):
        found = REQUESTS.get((rule, getattr(wildcards, by) if by else None))
        return found[1].allocations if found else 1

    lead = config["resources"]["checkpoint_lead"]
    res = {"allocation": lambda wildcards, attempt: attempt, "allocations": allocations,
           "checkpoint_lead": lead}
    fallback = signal_lead(lead)
    if fallback is not None:
        res["slurm_extra"] = f"--signal=TERM@{fallback}"
    return res


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
# Per stage, the import closure of what its `aunce` subcommand runs, by syntax tree: a comment or a
# docstring reruns nothing, a changed value reruns every job of the stages that import it
# (aunce.codehash; tests/test_codehash.py checks the closures against what the jobs import).
CODE = code_versions()


# --- job settings: a small JSON file per job, named by its content ------------------------------
# A job's command names its settings file (results/settings/<kind>-<hash>.json) instead of holding
# kilobytes of JSON. The file is written (atomically, only when absent) when Snakemake asks for the
# job's parameters, also in a dry run and in a cluster job's own Snakemake; its name is the hash of
# its content, so changed settings are another file name, a changed parameter, and Snakemake
# reruns the job ("Params have changed").
SETTINGS_DIR = "results/settings"


def settings_file(kind, obj, sort_keys=True):
    """The settings file of a job: ``obj`` as JSON, keys sorted (a reordered config reruns nothing)
    unless their order means something (the resolved config: the plan names derived methods in
    the order of the tables)."""
    text = json.dumps(obj, sort_keys=sort_keys, indent=1) + "\n"
    return str(content_file(SETTINGS_DIR, kind, text))


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
# One results folder per configuration (aunce.folder): a run whose settings differ from those of
# the results already in this folder stops here, before any job, also on a dry run; the record
# of this run's settings is written when it starts (onstart, in the Snakefile).
VALIDATED_CONFIG = json.loads(json.dumps(config))
if workflow.is_main_process:
    try:
        check_folder(VALIDATED_CONFIG, dict(VALIDATED_CONFIG, datasets=PLAN.datasets),
                     overwrite=OVERWRITE)
    except AunceError as err:
        raise WorkflowError(str(err))


# what each job needs and asks for (aunce.resources): estimates from this results folder's caches and
# timings, a rates file (config `resources.rates`) or the paper's Table 9, capped by the config's
# `resources`; also in a cluster job's own Snakemake, whose command says which allocation of how
# many it is (chain_resources)
def job_requests():
    from aunce.resources import plan_requests

    try:
        return plan_requests(PLAN, "results", config["resources"]["rates"],
                             Path(workflow.basedir) / "baselines" / "published_cost.csv")
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
    """The weights a pretraining job of ``encoder`` starts from: the warm start's backbone.pt and
    its SHA-256 sidecar, or a local weights file (replacing it reruns the job); [] from scratch or
    from a timm tag of the local cache."""
    files = warm_start_files(config, encoder)
    if files:
        return with_digests(files)
    pretrained = config["encoders"][encoder].get("pretrained")
    if isinstance(pretrained, str) and pretrained.lower() != "none" and (
        os.sep in pretrained or Path(pretrained).suffix in (".pth", ".pt", ".bin", ".safetensors")
    ):
        return [os.path.expanduser(pretrained)]
    return []


def warm_population_args():
    w = config["warm_start"]
    return [str(a) for a in ("--seed", w["seed"], "--n-subjects", w["n_subjects"],
                             "--frames-per-subject", w["frames_per_subject"],
                             "--image-size", w["image_size"],
                             "--aligned-size", config["image"]["cache_size"])]


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
    """A hash of the module of a method's own loss (``loss: module:function``), by syntax tree as
    CODE, so that changing its code reruns that method's jobs; '' for the built-in losses."""
    loss = PLAN.methods[method]["loss"]
    if ":" not in loss:
        return ""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    digest = module_file_digest(loss.split(":")[0])
    return "loss-missing" if digest is None else f"loss-{digest[:12]}"  # missing: the job says so


def fused_files(stage, ds, enc, runs, name, methods):
    """Per-run paths of a stage for every method of a fused unit (no wildcards)."""
    return [f"results/{stage}/{ds}/{enc}/{m}/fold-{f}/seed-{s}/{name}" for m in methods for f, s in runs]


def digests(paths):
    """The SHA-256 sidecars (aunce.io.write_digest) of ``paths``, temp() where the file is: they
    are made and deleted with it."""
    return [temp_file(f"{p}{DIGEST_SUFFIX}") if is_flagged(p, "temp") else f"{p}{DIGEST_SUFFIX}"
            for p in paths]


def with_digests(paths):
    """``paths`` and their sidecars, for a job that reads them."""
    return [q for p in paths for q in (p, f"{p}{DIGEST_SUFFIX}")]


def cache_file(path):
    """What a job that reads the cache folder ``path`` declares: its cache.json, written last when
    the cache is built."""
    return f"{path}/{CACHE_META}"


def cache_input(ds, enc):
    return cache_file(cache_path(config, ds, enc))


def folder_of(name):
    """A parameter: the folder of the input ``name`` (a cache's cache.json: the cache folder)."""
    return lambda wildcards, input: os.path.dirname(getattr(input, name))


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
    """The method's own augmentation (its `pretrain:` block) merged over the config's."""
    pretrain = dict(resolved_pretrain(config, PLAN.methods[method]),
                    epochs=PLAN.epochs.get(method, config["pretrain"]["epochs"]))
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
                "linear_eval": resolved_linear_eval(config, dataset, PLAN.methods[method]),
                "device": config["device"], "threads": TORCH_THREADS}
    if AUGMENTED_FEATURES:  # the released linear evaluation reads the cache through the encoder
        settings.update(image=encoder_image(config, encoder),
                        pretrain=resolved_pretrain(config, PLAN.methods[method]),
                        amp=config["amp"], channels_last=config["channels_last"])
    return settings


def linear_eval_inputs(ds, enc, runs):
    """With linear_eval.features augmented, a linear evaluation also reads the cache and the
    pretrained encoders (the released protocol); else nothing more than the embeddings."""
    if not AUGMENTED_FEATURES:
        return {}
    return {"cache": cache_input(ds, enc),
            "models": with_digests(run_files("pretrain", ds, enc, runs, "encoder.pt", methods=None))}


def linear_eval_args(ds, enc, method):
    """`aunce linear-eval`'s --cache and --models where it reads them (linear_eval_inputs), as a
    list of arguments (quoted one by one in the command)."""
    if not AUGMENTED_FEATURES:
        return []
    return ["--cache", cache_path(config, ds, enc), "--models", f"results/pretrain/{ds}/{enc}/{method}"]


def cross_settings(src, tgt, encoder, method):
    return dict(linear_eval_settings(src, encoder, method), target=tgt, image=encoder_image(config, encoder),
                amp=config["amp"], channels_last=config["channels_last"])


def runs_arg(runs):
    return ",".join(f"{f}:{s}" for f, s in runs)


# --- data ---------------------------------------------------------------------------------------
# Arguments built from the config are lists, each element quoted in the command ({params.args:q}).
def synth_args(dataset):
    s = config["datasets"][dataset]["synthetic"]
    args = ["--profile", s["profile"], "--seed", s["seed"], "--image-size", s["image_size"],
            "--label-noise", s["label_noise"], "--miss-ratio", s["miss_ratio"]]
    if s["n_subjects"]:
        args += ["--n-subjects", s["n_subjects"]]
    if s["frames_per_subject"]:
        args += ["--frames-per-subject", s["frames_per_subject"]]
    return [str(a) for a in args]


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
    args = ["--reader", reader, "--root", root, "--size", size]
    if ds.get("aligned") is not None:
        args.append("--aligned" if ds["aligned"] else "--no-aligned")
    if reader != "synthetic":
        args += ["--landmarks", ds.get("landmarks", "landmarks")]
    if ds.get("split_file"):
        args += ["--split-file", ds["split_file"]]
    if reader == "list":
        args += ["--folds", ds.get("folds", 3)]
        if ds.get("list_name"):
            args += ["--list-name", ds["list_name"]]
        for name, digest in sorted(ds.get("list_sha256", {}).items()):
            args += ["--list-sha256", f"{name}={digest}"]
    if ds.get("aus"):
        args += ["--aus", ",".join(map(str, ds["aus"]))]
    return [str(a) for a in args]


def cache_out(wildcards):
    """The folder a cache job writes (its declared output is the cache.json in it)."""
    size = getattr(wildcards, "size", None)
    return f"results/cache/{wildcards.dataset}" + (f"-{size}px" if size else "")


def damage_input(wildcards):
    """The note of a cache found damaged (aunce.data.cache.mark_damaged), once there is one: an
    input of the cache job, newer than the cache's cache.json until the cache is built again, so
    that Snakemake builds it again and reruns everything made from it."""
    note = damage_note(cache_out(wildcards))
    return [str(note)] if note.exists() else []


# A cache damaged since it was built (a file cut short or grown: cheap checks of sizes) is marked
# damaged before Snakemake looks at it, so that this run builds it again with everything made from
# it; a byte changed in place is found by the SHA-256 of the first job that opens it
# (aunce.data.cache.open_cache), which marks it so for the next run (docs/recovery.md).
def check_caches():
    caches = {cache_path(config, ds, enc) for ds, enc in CELLS}
    caches |= {cache_path(config, ds, enc) for (src, tgt, enc) in cross_jobs(PLAN) for ds in (src, tgt)}
    caches |= {os.path.dirname(p) for t in PLAN.tables for p in table_inputs_of(t)
               if os.path.basename(p) == CACHE_META}
    for path in sorted(caches):
        if not os.path.isfile(cache_file(path)):
            continue
        problem = cache_problem(path)
        if not problem:
            continue
        if problem.startswith("marked damaged ("):  # by a job, or an earlier run: the note says why
            problem = problem.removeprefix("marked damaged (").removesuffix(")")
        else:
            mark_damaged(path, problem)
        logger.warning(f"aunce: {path}: damaged, {problem}; this run builds it again and reruns "
                       "everything made from it")


# --- tables and figures ------------------------------------------------------------------------
def table_spec(name):
    return PLAN.tables[name]


def table_inputs_of(name):
    """The files a table or figure job reads, a cache as its cache.json (cache_file)."""
    return [cache_file(p) if re.fullmatch(r"results/cache/[^/]+", p) else p
            for p in input_files(PLAN.tables[name])]


def table_inputs(wildcards):
    return table_inputs_of(getattr(wildcards, "table", None) or wildcards.figure)


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
        "provenance": {"code": CODE["tables"], "configs": CONFIG_FILES, "seeds": SEEDS},
        "repo": os.path.relpath(workflow.basedir),  # its git commit heads the report
        "verdicts": "results/verdicts.md",
        "verdicts_csv": "results/verdicts.csv",
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


if workflow.is_main_process:  # a cluster job's own Snakemake leaves the caches to the main one
    check_caches()
