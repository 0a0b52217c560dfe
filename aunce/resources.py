"""What each job of a plan needs: peak memory, wall time and disk, and what a cluster job asks for.

Plain Python (no torch, no Snakemake). :func:`estimate` prices one job of :func:`aunce.plan.jobs`
from the frames of its datasets, its encoder, its stage and the seconds per training frame of
its runs (measured, benchmarked or published: :class:`aunce.summary.Rates`); :func:`request` turns
an estimate into what the job asks a scheduler for, with the config's ``resources`` as caps, and
says what exceeds them. ``aunce plan`` prints both per table and stage; ``rules/common.smk`` gives
them to the rules (SLURM ``--mem``, ``-t``, and for a pretraining job longer than its time limit,
the allocations it is chained over: docs/cluster.md).

The model, and where each number comes from (docs/cluster.md, "Estimates"):

- **Time.** Pretraining: epochs x the frames a fold sees in whole batches x seconds per training
  frame (a frame of a two-view loss is two encoder passes, :data:`aunce.plan.LOSS_COST`), plus a
  checkpoint write per epoch. Embedding: one forward pass per frame, a third of a training pass
  per view (:data:`FORWARD_SHARE`: backward about twice the forward). Linear evaluation: epochs x
  (steps x :data:`HEAD_STEP_SECONDS` + the training embeddings read at
  :data:`READ_BYTES_PER_SECOND`). Caches and synthetic data: frames over the per-process rates
  measured in BENCHMARKS.md. Each job adds :data:`STARTUP_SECONDS`. A job without a rate (a tiny
  encoder not yet timed) has no time estimate and asks for its stage's ``runtime``.
- **Memory** (peak resident, host): a process of the stage (:data:`BASE_BYTES`, measured with
  torch imported; on CUDA plus :data:`CUDA_HOST_BYTES` for the driver and kernels, an allowance),
  the encoder's state in the stage's copies (pretraining on the CPU: weights, gradients and two
  Adam moments), the batch's buffers, the readers' mapped pages (:data:`MAPPED_BUDGET`) and
  :data:`FRAME_BYTES` per frame of the dataset (labels, indices, the manifest's identifiers):
  since embeddings stream to disk and are read by rows, nothing else grows with the dataset.
  Activations on a CPU device are not modelled (a GPU holds them).
- **Disk**: the outputs a job writes, and what it holds only while it runs (checkpoints;
  cross-dataset evaluation's source embeddings); embeddings are temporary until their linear
  evaluation has read them (config ``keep``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aunce.config import dataset_kind
from aunce.data.catalog import DATASET_AUS

GB, MB = 1e9, 2**20
#: settings.json, history.csv, timing.json, metrics.json, a log and a benchmark file of one run
#: (the smoke workflow test checks its runs stay within this).
SMALL_FILES_PER_RUN = 64 * 1024
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

#: A stage's process before its data: Python, torch, pandas, scikit-learn and aunce imported
#: (measured: 770 MB resident after the imports of a linear-evaluation job, BENCHMARKS.md
#: "Scale"); a data job imports no torch.
BASE_BYTES = {"torch": 1000 * MB, "data": 250 * MB}
#: Host memory of the CUDA driver, runtime and kernel libraries in a process that uses a GPU: an
#: allowance (not measured here: this machine has no GPU).
CUDA_HOST_BYTES = 3000 * MB
#: Per frame of the dataset in a stage's process: the manifest without its image paths (about 40
#: bytes, aunce.data.cache.open_cache), labels, split indices and a permutation.
FRAME_BYTES = 96
#: The mapped pages a reader keeps (aunce.data.loader.MAPPED_BUDGET), and a minibatch's gather of
#: page-cache folios (up to 2 MB each) before they are released.
MAPPED_BUDGET = 16 * MB
FOLIO_BYTES = 2 * MB
#: Per frame of a cache job: the manifest with its image paths (about 400 bytes; 321 measured
#: for a stand-in's, tests/test_cache.py) and, for a real dataset aligned from its landmark files,
#: the 49 landmarks parsed into memory (float32). The stand-ins' landmark file, the manifest's CSV
#: and the aligned faces are read, hashed and written a chunk at a time (aunce.data.cache).
CACHE_FRAME_BYTES = 400 + 49 * 2 * 4
#: Per frame of generating a stand-in: its rows and landmarks as rendered, gathered and sorted
#: (4.4 GB measured for 1.83 M frames, BENCHMARKS.md "Scale").
SYNTH_FRAME_BYTES = 2 * (400 + 68 * 2 * 4 * 2 + 49 * 2 * 4)
#: One worker process of a data job: numpy, OpenCV, a chunk of aligned faces and a decoded frame.
DATA_WORKER_BYTES = 300 * MB
#: Headroom on a memory estimate when a job asks for it, and the least a job asks for.
MEMORY_HEADROOM = 1.25
MIN_REQUEST_MB = 1000

#: Seconds a job spends before and after its work: Snakemake's start-ups in a cluster job (5.7 s
#: measured, BENCHMARKS.md "SLURM"), imports, building the model; a CUDA context (an allowance).
STARTUP_SECONDS = {"cpu": 15.0, "cuda": 90.0}
#: A forward pass as a share of a training pass (forward + backward, the backward about twice the
#: forward): an embedding pass per frame costs this share of a training frame's time per view.
FORWARD_SHARE = 1 / 3
#: A linear-evaluation step (the head's forward, backward and AdamW step on a minibatch): measured
#: on this CPU, 11 ms at the default's K x D = 12 x 64 and batch 256 (BENCHMARKS.md "Scale"); on a
#: GPU the step is launch-bound, an allowance.
HEAD_STEP_SECONDS = {"cpu": 0.011, "cuda": 0.002}
#: Rows of float16 embeddings read by pread into a minibatch and converted to float32 (the linear
#: evaluation's reader), bytes per second: measured on this CPU (BENCHMARKS.md "Scale").
READ_BYTES_PER_SECOND = 400e6
#: Writing a file (embeddings, checkpoints, caches): a conservative figure for a cluster's
#: shared file system.
WRITE_BYTES_PER_SECOND = 200e6
#: Faces a data process aligns per second (BENCHMARKS.md "Data loading": 78 BP4D, 56 DISFA per
#: core from full frames; aligned faces 328; synthetic faces from the scale run) and synthetic
#: faces it renders per second (BENCHMARKS.md "Synthetic data", 64 px).
CACHE_FACES_PER_SECOND = {"full": 50.0, "aligned": 300.0, "synthetic": 300.0}
SYNTH_FACES_PER_SECOND = 400.0
#: Disk of a synthetic face as a PNG file (a file-system block and the image).
SYNTH_FILE_BYTES = 4096
#: What each rule family asks for: its key in config ``resources`` and whether it holds a GPU.
STAGE_OF = {"synthesize": "data", "cache": "data", "warm_population": "data",
            "warmstart": "pretrain", "pretrain": "pretrain", "train_eval": "pretrain",
            "embed": "embed", "linear_eval": "linear_eval", "cross_eval": "cross_eval"}  # fmt: skip
GPU_RULES = {"warmstart", "pretrain", "train_eval", "embed", "cross_eval"}
#: Stages whose jobs resume from a checkpoint when stopped, and so may run over several
#: allocations (docs/cluster.md, "Runs longer than the time limit").
CHAINED = {"pretrain", "train_eval"}


# --- sizes --------------------------------------------------------------------------------------
def feature_dim(config: dict, enc: str) -> int:
    spec = config["encoders"][enc]
    size = spec.get("size", "paper")
    return spec.get("feature_dim") or PRESET_FEATURE_DIM[size].get(enc, DEFAULT_FEATURE_DIM[size])


def encoder_bytes(config: dict, enc: str, num_aus: int) -> int | None:
    """Bytes of encoder.pt (state at the preset's feature_dim); None for an unknown encoder."""
    found = ENCODER_STATE_BYTES.get((enc, config["encoders"][enc].get("size", "paper")))
    return None if found is None else found[0] + found[1] * num_aus


def num_aus(plan, ds: str) -> int:
    spec = plan.datasets[ds]
    if spec.get("aus"):
        return len(spec["aus"])
    return len(DATASET_AUS.get(dataset_kind(spec), DATASET_AUS["bp4d"]))


# --- estimates ----------------------------------------------------------------------------------
@dataclass
class Estimate:
    """One job's needs. ``seconds`` None: no rate to price it (asks for its stage's runtime)."""

    rule: str
    name: str
    stage: str  # key of config `resources`
    gpu: bool
    mem_bytes: float
    seconds: float | None
    gpu_seconds: float | None  # seconds holding a GPU (None without a rate)
    disk_bytes: float  # its outputs
    temp_bytes: float  # held only while it runs (checkpoints, a cross evaluation's embeddings)
    method: str | None = None  # the {method} wildcard of its rule, if any
    scratch_bytes: float = 0.0  # outputs deleted once read (embeddings, config `keep`)


@dataclass
class Request:
    """What a job asks a scheduler for: ``mem_mb``, ``runtime`` (minutes per allocation) and the
    ``allocations`` its work needs; ``over``: what exceeds the config's caps."""

    mem_mb: int
    runtime: int
    allocations: int
    over: list = field(default_factory=list)


class Context:
    """What prices a plan's jobs: the plan, each dataset's frames (``aunce.summary.dataset_frames``)
    and seconds per training frame of a (dataset, encoder, method) (None when unknown)."""

    def __init__(self, plan, frames: dict, rate):
        from aunce.plan import keeps_embeddings

        self.plan, self.config, self.frames, self.rate = plan, plan.config, frames, rate
        self.keep_embeddings = keeps_embeddings(plan)
        self.augmented = plan.config["linear_eval"].get("features", "embeddings") == "augmented"
        device = plan.config.get("device", "auto")
        self.device = "cpu" if device == "cpu" else "cuda"

    def train_test(self, ds: str, fold: str) -> tuple[int, int]:
        return tuple(self.frames[ds]["folds"].get(fold, (0, 0)))

    def total(self, ds: str) -> int:
        return self.frames[ds].get("total") or 0

    def image(self, enc: str | None) -> dict:
        from aunce.plan import encoder_image

        return encoder_image(self.config, enc)

    def base(self) -> float:
        return BASE_BYTES["torch"] + (CUDA_HOST_BYTES if self.device == "cuda" else 0)

    def views(self, method: str) -> int:
        from aunce.plan import loss_cost

        return loss_cost(self.plan.methods[method])["views"]

    def epochs(self, method: str) -> int:
        return self.plan.epochs.get(method, self.config["pretrain"]["epochs"])

    def forward_seconds(self, ds: str, enc: str, method: str) -> float | None:
        """Seconds of one embedding pass of a frame: a third of a training pass per view."""
        spf = self.rate(ds, enc, method)
        return None if spf is None else spf / self.views(method) * FORWARD_SHARE


def _sum(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else float(sum(values))


def _pretrain_run(ctx: Context, ds, enc, method, fold) -> dict:
    """Seconds, memory and disk of pretraining one run."""
    cfg = ctx.config
    bsz = cfg["pretrain"]["batch_size"]
    train, _ = ctx.train_test(ds, fold)
    k = num_aus(ctx.plan, ds)
    state = encoder_bytes(cfg, enc, k) or 0
    checkpoint = 3 * state + 4 * k * feature_dim(cfg, enc) * 4  # weights, 2 Adam moments, head
    spf = ctx.rate(ds, enc, method)
    epochs = ctx.epochs(method)
    seen = (train // bsz) * bsz
    seconds = None if spf is None else epochs * (seen * spf + checkpoint / WRITE_BYTES_PER_SECOND)
    image = ctx.image(enc)
    views = ctx.views(method)
    batch = bsz * views * (image["cache_size"] ** 2 * 3 + image["input_size"] ** 2 * 3 * 4 * 4)
    model = 4 * state if ctx.device == "cpu" else 2 * state
    return {"seconds": seconds, "mem": model + batch + bsz * FOLIO_BYTES,
            "frames": ctx.total(ds), "outputs": state, "temp": checkpoint}  # fmt: skip


def _embed_run(ctx: Context, ds, enc, method, fold) -> dict:
    cfg = ctx.config
    train, test = ctx.train_test(ds, fold)
    k, d = num_aus(ctx.plan, ds), feature_dim(cfg, enc)
    state = encoder_bytes(cfg, enc, k) or 0
    per = ctx.forward_seconds(ds, enc, method)
    nbytes = (train + test) * (k * d * 2 + k + 8)
    seconds = None if per is None else (train + test) * per + nbytes / WRITE_BYTES_PER_SECOND
    image = ctx.image(enc)
    batch = 256 * (image["cache_size"] ** 2 * 3 + image["input_size"] ** 2 * 3 * 4 * 3
                   + k * d * 4 * 2)  # fmt: skip
    return {"seconds": seconds, "mem": state + batch + MAPPED_BUDGET, "embeddings": nbytes}


def _linear_run(ctx: Context, ds, enc, fold, method=None, augmented=None) -> dict:
    """A linear evaluation of one run; with ``features: augmented`` (the released protocol) every
    epoch encodes the training frames again (one forward pass each) and the test frames once."""
    cfg = ctx.config
    lin = cfg["linear_eval"]
    train, test = ctx.train_test(ds, fold)
    k, d = num_aus(ctx.plan, ds), feature_dim(cfg, enc)
    steps = math.ceil(train / lin["batch_size"])
    if ctx.augmented if augmented is None else augmented:
        per = None if method is None else ctx.forward_seconds(ds, enc, method)
        seconds = None if per is None else (lin["epochs"] * (steps * HEAD_STEP_SECONDS[ctx.device]
                                                             + train * per) + test * per)  # fmt: skip
    else:
        seconds = lin["epochs"] * (steps * HEAD_STEP_SECONDS[ctx.device]
                                   + train * k * d * 2 / READ_BYTES_PER_SECOND)  # fmt: skip
    batch = lin["batch_size"] * k * d * (2 + 4 + 4) * 2  # float16 rows, float32, gradients; ahead
    return {"seconds": seconds, "mem": batch + MAPPED_BUDGET, "predictions": test * (k * 5 + 8)}


def _small(runs: int) -> int:
    return runs * SMALL_FILES_PER_RUN


def estimate(ctx: Context, job) -> Estimate | None:
    """The needs of one :class:`aunce.plan.Job`; None for a job that runs on the submitting
    machine (tables, figures, the report)."""
    rule, meta = job.rule, job.meta
    stage = STAGE_OF.get(rule)
    if stage is None:
        return None
    on_gpu = rule in GPU_RULES or (rule == "linear_eval" and ctx.augmented)
    gpu = on_gpu and ctx.config.get("device") != "cpu"
    start = STARTUP_SECONDS[ctx.device] if on_gpu else STARTUP_SECONDS["cpu"]
    e = Estimate(rule, job.name, stage, gpu, 0.0, None, None, 0.0, 0.0, method=meta.get("method"))
    if rule in ("pretrain", "train_eval", "embed", "linear_eval"):
        ds, enc = meta["dataset"], meta["encoder"]
        parts = []
        frames = ctx.total(ds)
        for m in meta["methods"]:
            for fold, _ in meta["runs"]:
                part = {"seconds": 0.0, "mem": 0.0, "disk": 0.0, "temp": 0.0, "scratch": 0.0}
                if rule in ("pretrain", "train_eval"):
                    p = _pretrain_run(ctx, ds, enc, m, fold)
                    part.update(seconds=p["seconds"], mem=p["mem"], disk=p["outputs"],
                                temp=p["temp"])  # fmt: skip
                if rule in ("embed", "train_eval"):
                    em = _embed_run(ctx, ds, enc, m, fold)
                    part["seconds"] = _sum([part["seconds"], em["seconds"]])
                    part["mem"] = max(part["mem"], em["mem"])
                    part["disk"] += em["embeddings"]
                    part["scratch"] += 0 if ctx.keep_embeddings else em["embeddings"]
                if rule in ("linear_eval", "train_eval"):
                    li = _linear_run(ctx, ds, enc, fold, m)
                    part["seconds"] = _sum([part["seconds"], li["seconds"]])
                    part["mem"] = max(part["mem"], li["mem"])
                    part["disk"] += li["predictions"]
                parts.append(part)
        e.seconds = _sum(p["seconds"] for p in parts)
        e.mem_bytes = ctx.base() + max((p["mem"] for p in parts), default=0) + frames * FRAME_BYTES
        e.disk_bytes = sum(p["disk"] for p in parts) + _small(len(parts))
        # a job keeps every run's checkpoint until it ends (train_eval: until it has evaluated)
        e.temp_bytes = sum(p["temp"] for p in parts)
        e.scratch_bytes = sum(p["scratch"] for p in parts)
        if rule == "linear_eval" and not gpu:
            e.gpu_seconds = 0.0
    elif rule == "cross_eval":
        src, tgt, enc = meta["source"], meta["target"], meta["encoder"]
        parts = []
        for m, triples in meta["methods"].items():
            for sf, tf, _ in triples:
                em = _embed_run(ctx, src, enc, m, sf)
                train, _ = ctx.train_test(src, sf)
                test = ctx.total(tgt) if tf == "all" else ctx.train_test(tgt, tf)[1]
                per = ctx.forward_seconds(src, enc, m)
                li = _linear_run(ctx, src, enc, sf, augmented=False)  # extracted embeddings
                k, d = num_aus(ctx.plan, src), feature_dim(ctx.config, enc)
                seconds = None if per is None else (train + test) * per + li["seconds"]
                parts.append({"seconds": seconds, "mem": max(em["mem"], li["mem"]),
                              "temp": train * k * d * 2})  # fmt: skip
        e.seconds = _sum(p["seconds"] for p in parts)
        e.mem_bytes = (ctx.base() + max((p["mem"] for p in parts), default=0)
                       + (ctx.total(src) + ctx.total(tgt)) * FRAME_BYTES)  # fmt: skip
        e.disk_bytes = _small(len(parts))
        e.temp_bytes = max((p["temp"] for p in parts), default=0)
    elif rule == "cache":
        ds, size = meta["dataset"], meta["size"]
        n = ctx.total(ds)
        spec = ctx.plan.datasets[ds]
        workers = ctx.config["resources"]["data"]["threads"]
        from aunce.data import aligned_by_default

        kind = ("synthetic" if spec["source"] == "synthetic" else
                "aligned" if spec.get("aligned", aligned_by_default(spec["source"])) else "full")  # fmt: skip
        e.seconds = n / (CACHE_FACES_PER_SECOND[kind] * workers)
        e.mem_bytes = BASE_BYTES["data"] + n * CACHE_FRAME_BYTES + workers * DATA_WORKER_BYTES
        e.disk_bytes = n * (size * size * 3 + 49 * 2 * 4 + 64)
    elif rule == "synthesize":
        ds = meta["dataset"]
        n = ctx.total(ds)
        workers = ctx.config["resources"]["data"]["threads"]
        image = ctx.plan.datasets[ds]["synthetic"]["image_size"]
        e.seconds = n / (SYNTH_FACES_PER_SECOND * workers * (64 / image) ** 2)
        e.mem_bytes = BASE_BYTES["data"] + n * SYNTH_FRAME_BYTES + workers * DATA_WORKER_BYTES
        e.disk_bytes = n * (SYNTH_FILE_BYTES + image * image * 3 // 2)
    else:  # warm start: no estimate
        e.mem_bytes = ctx.base()
    if e.seconds is not None:
        e.seconds += start
        if e.gpu_seconds is None:
            e.gpu_seconds = e.seconds if gpu else 0.0
    return e


def estimates(ctx: Context, jobs) -> list[tuple[object, Estimate]]:
    """(job, estimate) of every job that a scheduler runs."""
    out = []
    for job in jobs:
        e = estimate(ctx, job)
        if e is not None:
            out.append((job, e))
    return out


# --- what a job asks for ------------------------------------------------------------------------
def request(config: dict, e: Estimate) -> Request:
    """What job ``e`` asks a scheduler for, with config ``resources.<stage>`` as caps.

    Memory: the estimate with :data:`MEMORY_HEADROOM`, at least :data:`MIN_REQUEST_MB`, at most
    ``mem_mb``. Time: the estimate with the same headroom, at most ``runtime``; a pretraining job
    whose estimate plus ``checkpoint_lead`` is longer runs over several allocations of
    ``runtime`` minutes, each ending ``checkpoint_lead`` seconds early with a checkpoint (one that
    fits asks for its estimate plus the lead: it stops itself that long before the end).
    Without an estimate, or with ``resources.request: config``, the stage's values. ``over``
    names what the caps cannot hold: memory above ``mem_mb``, or a job that cannot be chained
    (embedding, evaluation, data) longer than ``runtime``."""
    res = config["resources"]
    cap = res[e.stage]
    over = []
    mem_mb = math.ceil(e.mem_bytes * MEMORY_HEADROOM / 100 / MB) * 100
    if e.mem_bytes / MB > cap["mem_mb"]:
        over.append(f"memory {e.mem_bytes / GB:,.1f} GB > resources.{e.stage}.mem_mb "
                    f"{cap['mem_mb']:,}")  # fmt: skip
    allocations, runtime = 1, cap["runtime"]
    if e.seconds is not None:
        minutes = e.seconds * MEMORY_HEADROOM / 60
        # a pretraining job stops itself checkpoint_lead seconds before its allocation ends
        # (aunce.cluster): one allocation holds it only with the lead on top of its estimate
        lead = res["checkpoint_lead"] / 60 if e.rule in CHAINED else 0
        if e.rule in CHAINED and minutes + lead > cap["runtime"]:
            startup = STARTUP_SECONDS["cuda" if e.gpu else "cpu"]
            usable = cap["runtime"] * 60 - res["checkpoint_lead"] - startup
            if usable <= 0:
                over.append(f"resources.checkpoint_lead {res['checkpoint_lead']} s leaves no time "
                            f"for training in resources.{e.stage}.runtime {cap['runtime']} min")  # fmt: skip
            else:
                allocations = math.ceil(e.seconds * MEMORY_HEADROOM / usable)
        elif minutes > cap["runtime"]:
            over.append(f"time {e.seconds / 3600:,.1f} h > resources.{e.stage}.runtime "
                        f"{cap['runtime']:,} min")  # fmt: skip
        else:
            runtime = max(5, math.ceil(minutes + lead))
    if res.get("request", "estimate") == "config":
        return Request(cap["mem_mb"], cap["runtime"], allocations, over)
    return Request(min(max(mem_mb, MIN_REQUEST_MB), cap["mem_mb"]), runtime, allocations, over)


def job_key(job) -> tuple[str, str | None]:
    """A job as its rule tells it apart (rules/*.smk): its rule's name and the value of the
    wildcard that separates the rule's jobs (method, dataset or encoder), or None."""
    m = job.meta
    if job.rule in ("cache", "synthesize"):
        return job.name, m["dataset"]
    return job.name, m.get("encoder") if job.rule == "warmstart" else m.get("method")


def plan_requests(plan, results="results", rates_file=None, published_cost=None) -> dict:
    """Every job of ``plan`` a scheduler runs, by :func:`job_key`: (estimate, request), priced
    from the results folder ``results`` (its caches and timing.json), a rates file and the paper
    (``published_cost``: its Table 9, by default the project's baselines/published_cost.csv)."""
    from pathlib import Path

    from aunce.plan import jobs
    from aunce.summary import frames_for, rates_for

    results = Path(results)
    ctx = Context(plan, frames_for(plan, results),
                  rates_for(plan, results, rates_file, published_cost))  # fmt: skip
    return {job_key(job): (e, request(plan.config, e)) for job, e in estimates(ctx, jobs(plan))}
