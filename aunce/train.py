"""Stage 1: pretraining of an encoder with one method, for one or several (fold, seed) runs.

Several runs share one process on purpose: on a CPU the start-up and imports of a job cost seconds
(BENCHMARKS.md), so the ``cell`` granularity trains every fold and seed of a cell here in turn.

Each run writes, under ``<out_root>/fold-<f>/seed-<s>/``:
    encoder.pt     the encoder's state dict and what rebuilds it
    history.csv    per epoch: ``lr``; ``loss`` (mean over the epoch's steps); ``alignment_loss``
                   for encoders that have one (JA-Net: the run minimises loss + 0.5 x
                   alignment_loss); ``mean_similarity``; ``seconds`` and ``frames_per_second``
    timing.json    the figures of Table 9 (frames per second, seconds per epoch)
    settings.json  the resolved settings of the run (config, method defaults, AU weights, code version)

``mean_similarity`` is a diagnostic of embedding collapse (docs/deviations.md): the mean cosine
similarity between the per-AU embeddings of two different images of a training batch (the first
view for two-view methods), ``(1/K) sum_k mean_{a != j} cos(z_ak, z_jk)``, averaged over the epoch's
batches. 1 means every image maps to the same embedding of an AU; unrelated embeddings give about 0.

The step loop (issue 13) keeps the accelerator busy: on CUDA batches are read from the
memory-mapped cache and pinned on a background thread while the previous step runs
(:mod:`aunce.data.loader`; on the CPU they are read in turn, :func:`prefetch_depth`), copied with
``non_blocking``, augmented on the device, and nothing in a
step reads a device value on the host: labels are validated once per fold, the losses and the
similarity are summed on the device and read once per epoch (a NaN or infinite loss stops the run
at the end of that epoch, naming method, fold, seed and epoch). ``amp``, ``channels_last`` and
``compile`` select mixed precision, the memory format and ``torch.compile`` (aunce.device).

Checkpoints and resume (issue 12): at the end of every epoch a run saves, atomically,
``<checkpoints>/fold-<f>/seed-<s>/checkpoint.pt`` with the encoder, head, optimizer, schedule, grad
scaler, every random generator (torch's global CPU generator, the run's ``torch.Generator``, CUDA's,
numpy's and Python's) and the history. ``<checkpoints>`` lies outside the outputs a workflow
declares (Snakemake deletes those before rerunning a job): :func:`checkpoint_root`. A rerun resumes
each run from its last checkpoint ("resumed from epoch N") and restores the runs that had finished
("run already finished, restored") without training them; on the CPU the result is byte-identical
to an uninterrupted run. A checkpoint of other settings, data or code is ignored: the run's
fingerprint (:func:`run_fingerprint`) holds the content hashes of what the run reads (the cache,
the warm-start or pretrained weights) and of the training code. A checkpoint is trusted only when
its bytes match its SHA-256 sidecar (aunce.io.check_digest) and it loads with
``torch.load(weights_only=True)`` (tensors and plain types, never code); otherwise the run trains
afresh, with a log line that says why. ``encoder.pt`` carries a sidecar too, checked by every step
that loads it (:func:`load_encoder`). SIGTERM (SLURM preemption and time limits) checkpoints the
run at the end of the current step and stops the job with :class:`Preempted` (a non-zero exit). The
checkpoints are removed when the job has finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aunce import AunceError, __version__, codehash
from aunce.data.augment import ViewSpec, augment_view, normalize, to_float
from aunce.data.cache import Cache, open_cache
from aunce.data.loader import Batch, CacheReader, Prefetcher, epoch_batches
from aunce.device import (
    autocast,
    compile_module,
    resolve_amp,
    resolve_channels_last,
    resolve_device,
    set_threads,
)
from aunce.encoders import create_encoder
from aunce.encoders.blocks import PerAULinear
from aunce.io import DamagedFile, atomic_path, check_digest, read_digest, write_json, write_text
from aunce.losses import au_weights, values_checked
from aunce.methods import Objective, build_objective, loss_settings
from aunce.progress import JOB

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: random states as tensors and plain types (weights_only loading)
PREFETCH = 2  # batches read ahead of the step on CUDA


def prefetch_depth(device: torch.device) -> int:
    """Batches read ahead on a thread: 2 on CUDA; none on the CPU, where reading a batch from the
    page cache costs about 1 % of a step and a thread competes with torch's for the cores
    (BENCHMARKS.md, "GPU fast path")."""
    return PREFETCH if device.type == "cuda" else 0


class Preempted(AunceError):
    """SIGTERM during pretraining: the run was checkpointed; running the job again resumes it."""


class _StopRequest:
    """Set by SIGTERM while :func:`pretrain` runs; the loop checkpoints and stops at the next step."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @contextlib.contextmanager
    def handling(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers belong to the main thread; elsewhere SIGTERM keeps its default
            return
        previous = signal.signal(signal.SIGTERM, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.signal = None

    def _handle(self, signum, frame) -> None:
        self.signal = signum


STOP = _StopRequest()


def run_dir(out_root: str | Path, fold: str, seed: int) -> Path:
    return Path(out_root) / f"fold-{fold}" / f"seed-{seed}"


def checkpoint_root(out_root: str | Path) -> Path:
    """Where the runs written below ``out_root`` keep their checkpoints while a job runs.

    Outside the outputs a workflow declares, which Snakemake deletes before it reruns a failed job:
    ``<results>/checkpoints/pretrain/<dataset>/<encoder>/<method>`` for the workflow's output root
    ``<results>/pretrain/<dataset>/<encoder>/<method>`` (the part from the last ``pretrain`` folder on
    is mirrored), ``<out_root>/checkpoints`` for any other folder.
    """
    parts = Path(out_root).parts
    if "pretrain" in parts:
        i = len(parts) - 1 - parts[::-1].index("pretrain")
        return Path(*parts[:i], "checkpoints", *parts[i:])
    return Path(out_root) / "checkpoints"


def remove_checkpoints(root: str | Path, runs: list[tuple[str, int]]) -> None:
    """Delete the checkpoints of ``runs`` below ``root`` and the folders they leave empty, up to the
    nearest folder named ``checkpoints`` (folders other jobs still use are kept)."""
    root = Path(root)
    top = next((p for p in (root, *root.parents) if p.name == "checkpoints"), root)
    for fold, seed in runs:
        folder = run_dir(root, fold, seed)
        if folder.is_dir():
            for path in folder.iterdir():  # the checkpoint, its sidecar and their temporary files
                if path.name.startswith((CHECKPOINT, f".{CHECKPOINT}.")):
                    path.unlink(missing_ok=True)
        while True:
            try:
                folder.rmdir()
            except OSError:  # not empty (another run's), or already gone
                break
            if folder == top:
                break
            folder = folder.parent


def training_statistics(
    cache: Cache, train_idx: np.ndarray, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """AU weights lambda and minority labels from the training split of the current fold only.

    Also validates the split's labels once, so that the steps need not (a host synchronisation each).
    """
    labels_np = cache.labels[train_idx]
    bad = labels_np[(labels_np != 0) & (labels_np != 1) & (labels_np != -1)]
    if bad.size:
        raise AunceError(
            f"{cache.root}: labels must be 1, 0 or -1 (unknown), found {int(bad[0])} in the {split}"
        )
    labels = torch.from_numpy(labels_np)
    weights = au_weights(labels, cache.aus, split=split)
    known = labels >= 0
    rates = ((labels == 1) & known).sum(0) / known.sum(0).clamp(min=1)
    minority = (rates < 0.5).long()
    return weights, minority


def build_encoder(spec: dict, aus: list[str]) -> torch.nn.Module:
    return create_encoder(
        spec["name"],
        len(aus),
        size=spec["size"],
        pretrained=spec.get("pretrained"),
        aus=aus,  # AU-specific encoders (JA-Net's attention) need to know which AUs
        feature_dim=spec.get("feature_dim"),
        neighbors=spec.get("neighbors"),  # MEGraph's graph neighbours k (None: its default)
        input_size=spec.get("input_size"),  # the config's image.input_size, stored in checkpoints
    )


def require_landmarks(cache: Cache, idx: np.ndarray, encoder_name: str) -> None:
    """Encoders that need landmarks refuse a cache without them (NaN where the dataset had none).
    Read in blocks: the landmarks are memory-mapped."""
    rows = np.sort(idx)
    if not all(np.isfinite(cache.landmarks[rows[i : i + 65536]]).all()
               for i in range(0, len(rows), 65536)):  # fmt: skip
        raise AunceError(
            f"{cache.root}: encoder {encoder_name} needs landmarks, but some frames have none "
            "(NaN in landmarks.npy); use a dataset with landmarks or an encoder without"
        )


def encode(
    encoder: torch.nn.Module, images: torch.Tensor, landmarks: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-AU embeddings, and the face-alignment loss of encoders with an alignment branch (JA-Net).

    ``landmarks`` (B, 49, 2) in crop pixels, for encoders that need them, else None.
    """
    if not encoder.needs_landmarks:
        return encoder(images), None
    if hasattr(encoder, "alignment_loss"):
        z, predicted = encoder.forward_with_landmarks(images, landmarks)
        return z, encoder.alignment_loss(predicted, landmarks)
    return encoder(images, landmarks), None


@torch.no_grad()
def mean_similarity(z: torch.Tensor) -> torch.Tensor:
    """``(1/K) sum_k mean_{a != j} cos(z_ak, z_jk)`` of (B, K, D) per-AU embeddings, as a 0-d
    float32 tensor on their device (not read: no host synchronisation)."""
    u = F.normalize(z.detach().float(), dim=-1)  # (b, k, d)
    b = u.shape[0]
    total = u.sum(0)  # (k, d): |sum_a u_a|^2 = sum over all (a, j) pairs, the a = j terms included
    pairs = (total * total).sum(-1) - (u * u).sum((0, 2))  # (k,): sum over a != j
    return (pairs / max(b * (b - 1), 1)).mean()


def group_runs(runs: list[tuple[str, int]]) -> dict[str, list[int]]:
    """(fold, seed) pairs grouped by fold, in the order given."""
    out: dict[str, list[int]] = {}
    for fold, seed in runs:
        out.setdefault(str(fold), []).append(int(seed))
    return out


# --- a run and its parts ------------------------------------------------------------------------
@dataclass
class Loop:
    """What every run of a job shares: the cache and where and how the steps run."""

    cache: Cache
    labels: np.ndarray  # (N, K) int8, the cache's training labels (read once)
    device: torch.device
    amp: torch.dtype | None
    channels_last: bool
    prefetch: int = PREFETCH


@dataclass
class EpochProgress:
    """An epoch under way: its order of frames, the steps done and the device-side sums so far."""

    epoch: int
    perm: np.ndarray
    step: int = 0
    sums: torch.Tensor | None = None  # (3,) float64: loss, alignment loss, mean similarity
    seconds: float = 0.0


@dataclass
class Run:
    """One (fold, seed) run: what it trains and the state its checkpoints hold."""

    fold: str
    seed: int
    settings: dict  # the run's settings, encoder.input_size filled in
    train_idx: np.ndarray
    encoder: torch.nn.Module
    head: torch.nn.Module | None
    objective: Objective
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    reader: CacheReader
    history: list[dict] = field(default_factory=list)
    progress: EpochProgress | None = None

    @property
    def finished(self) -> bool:
        return self.progress is None and len(self.history) >= self.settings["pretrain"]["epochs"]

    def who(self) -> str:
        name = self.settings.get("method_name") or self.objective.name
        return f"method {name} fold {self.fold} seed {self.seed}"


def lr_factors(cfg: dict):
    """The learning rate of each epoch (0-based index) as a factor of ``lr``: the released code's
    step schedule, x ``lr_step_factor`` from each of ``lr_step_epochs`` (counted from 1), and from
    the second epoch on ``lr_from_epoch_2`` instead of ``lr`` when set (its step_lr_scheduler)."""
    milestones = [e - 1 for e in cfg.get("lr_step_epochs", [])]
    later, lr, gamma = cfg.get("lr_from_epoch_2"), cfg["lr"], cfg.get("lr_step_factor", 0.1)

    def factor(epoch: int) -> float:
        base = 1.0 if epoch == 0 or later is None else later / lr
        return base * gamma ** sum(epoch >= m for m in milestones)

    return factor


#: A method's ``replicate: n`` (an independent replicate, the A/A control) offsets the seed its
#: pretraining draws from by n times this (config/schema.yaml, methods.replicate).
REPLICATE_SEED_STEP = 1000


def setup_run(
    loop: Loop,
    train_idx: np.ndarray,
    weights: torch.Tensor,
    minority: torch.Tensor,
    settings: dict,
    fold: str,
    seed: int,
) -> Run:
    """Encoder, head, optimizer, schedule and grad scaler of a run, seeded as a fresh run."""
    cfg, image, device = settings["pretrain"], settings["image"], loop.device
    draws = seed + REPLICATE_SEED_STEP * int(settings["method"].get("replicate") or 0)
    torch.manual_seed(draws)
    gen = torch.Generator().manual_seed(draws)
    # the encoder is built for the configured crop size (its preset size is only the default)
    settings = dict(settings, encoder=dict(settings["encoder"], input_size=image["input_size"]))
    encoder = build_encoder(settings["encoder"], loop.cache.aus).to(device)
    if loop.channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
    objective = build_objective(
        settings["method"],
        weights.to(device),
        minority.to(device),
        name=settings.get("method_name"),
    )
    head = (
        PerAULinear(len(loop.cache.aus), encoder.feature_dim).to(device)
        if objective.uses_head
        else None
    )
    params = list(encoder.parameters()) + (list(head.parameters()) if head is not None else [])
    optimizer = torch.optim.AdamW(
        params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factors(cfg))
    scaler = torch.amp.GradScaler(device.type, enabled=loop.amp == torch.float16)
    landmarks = None
    if encoder.needs_landmarks:
        require_landmarks(loop.cache, train_idx, settings["encoder"]["name"])
        landmarks = loop.cache.landmarks  # (N, 49, 2) aligned-face pixels
    reader = CacheReader(loop.cache.images, loop.labels, landmarks, pin=device.type == "cuda")
    compile_module(encoder, bool(settings.get("compile", False)))
    return Run(
        fold, seed, settings, train_idx, encoder, head, objective, optimizer, schedule, scaler, gen,
        reader,
    )  # fmt: skip


def train_step(run: Run, batch: Batch, loop: Loop) -> torch.Tensor:
    """One optimisation step; returns (3,) float64 on the device: the step's loss, alignment loss
    (0 without an alignment branch) and mean similarity, none of them read (no host sync).

    Each view: similarity transform, crop and flip, and for two-view methods SimCLR's colour
    distortion and blur (:func:`aunce.data.augment.augment_view`). ``view_passes``: ``joint``
    encodes both views in one pass (batch-norm statistics over the 2B images), ``separate`` in one
    pass each (statistics per view, the released code)."""
    cfg, image = run.settings["pretrain"], run.settings["image"]
    batch = batch.to(loop.device)
    x = to_float(batch.images)  # on the device: a quarter of the bytes cross the bus as uint8
    b, size, gen, lm = len(batch.rows), image["input_size"], run.generator, batch.landmarks
    memory_format = torch.channels_last if loop.channels_last else torch.contiguous_format
    spec = ViewSpec.from_settings(cfg, size, colour=run.objective.two_views)

    def prepared(v: torch.Tensor) -> torch.Tensor:
        return normalize(v, image["normalize"]).contiguous(memory_format=memory_format)

    with autocast(loop.device, loop.amp):
        if run.objective.two_views:
            v1, lm1 = augment_view(x, lm, spec, gen)
            v2, lm2 = augment_view(x, lm, spec, gen)
            if cfg.get("view_passes", "joint") == "separate":
                z1, a1 = encode(run.encoder, prepared(v1), lm1)
                z2, a2 = encode(run.encoder, prepared(v2), lm2)
                z, align = torch.cat([z1, z2]), None if a1 is None else (a1 + a2) / 2
            else:
                views_lm = None if lm is None else torch.cat([lm1, lm2])
                z, align = encode(run.encoder, prepared(torch.cat([v1, v2])), views_lm)
            loss = run.objective(z[:b], z[b:], None, batch.labels, gen)
        else:
            v, view_lm = augment_view(x, lm, spec, gen)
            z, align = encode(run.encoder, prepared(v), view_lm)
            loss = run.objective(z, None, run.head(z), batch.labels, gen)
        total = loss if align is None else loss + run.encoder.alignment_weight * align
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(total).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    with torch.no_grad():
        align = torch.zeros((), device=loss.device) if align is None else align.detach()
        return torch.stack(
            [loss.detach().double(), align.double(), mean_similarity(z[:b]).double()]
        )  # fmt: skip


def train_epoch(run: Run, loop: Loop, epoch: int) -> dict | None:
    """Train one epoch (or what is left of it) and return its history row; None when SIGTERM
    stopped it at a step (``run.progress`` then holds where)."""
    cfg = run.settings["pretrain"]
    progress = run.progress
    if progress is None or progress.epoch != epoch:
        perm = torch.randperm(len(run.train_idx), generator=run.generator).numpy()
        progress = EpochProgress(epoch, perm)
    if progress.sums is None:
        progress.sums = torch.zeros(3, dtype=torch.float64, device=loop.device)
    run.progress = progress
    batches = epoch_batches(
        run.train_idx, progress.perm, cfg["batch_size"], cfg.get("drop_last", True)
    )
    run.encoder.train()
    start = time.perf_counter()
    with (
        values_checked(),
        Prefetcher(run.reader, batches[progress.step :], loop.prefetch) as stream,
    ):
        for batch in stream:
            progress.sums += train_step(run, batch, loop)
            progress.step += 1
            if STOP.signal is not None and progress.step < len(batches):
                progress.seconds += time.perf_counter() - start
                return None
    loss, align, similarity = (v / len(batches) for v in progress.sums.tolist())  # the one read
    seconds = progress.seconds + time.perf_counter() - start
    if not (math.isfinite(loss) and math.isfinite(align)):
        raise AunceError(
            f"{run.who()} epoch {epoch}: the loss is {loss if not math.isfinite(loss) else align} "
            "(NaN or infinite in a step of this epoch; try a lower pretrain.lr or amp: none)"
        )
    frames = sum(len(b) for b in batches)
    lr = run.optimizer.param_groups[0]["lr"]
    run.schedule.step()
    run.progress = None
    aligns = hasattr(run.encoder, "alignment_loss")
    return {
        "epoch": epoch,
        "lr": lr,
        "loss": loss,
        **({"alignment_loss": align} if aligns else {}),
        "mean_similarity": similarity,
        "seconds": seconds,
        "frames_per_second": frames / seconds,
    }


# --- checkpoints --------------------------------------------------------------------------------
def _save(obj, path: Path) -> None:
    """``torch.save`` atomically and byte-reproducibly, with the SHA-256 sidecar of the bytes: through
    a file object the archive's inner folder is always ``archive`` (given a path, torch names it
    after the random temporary file)."""
    with atomic_path(path, digest=True) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def _code_digest(objective: Objective) -> str:
    """The training code a checkpoint depends on: the import closure of this module by content
    (aunce.codehash; comments and docstrings left out), and a user's loss module."""
    digest = hashlib.sha256(codehash.modules_digest(codehash.closure([__name__])).encode())
    if objective.path is not None:  # a user's loss: its module's file
        import inspect

        with contextlib.suppress(TypeError, OSError):
            digest.update(codehash.source_digest(inspect.getsourcefile(objective.loss)).encode())
    return digest.hexdigest()


def weights_digest(pretrained: str | None) -> str | None:
    """The content hash of the weights file an encoder starts from (a warm-start backbone or a
    local file): its checked sidecar where it has one, else the hash of its bytes; None without a
    file (from scratch, or a timm tag of the local cache)."""
    if not pretrained or not Path(pretrained).expanduser().is_file():
        return None
    path = Path(pretrained).expanduser()
    if read_digest(path) is not None:
        return check_digest(path)
    from aunce.io import file_sha256

    return file_sha256(path)


def run_fingerprint(run: Run, cache: Cache) -> str:
    """What a checkpoint must match to be resumed: settings, run, data, code and torch version, and
    the content (not the path) of every file the run reads: the cache and the starting weights."""
    payload = {
        "settings": {k: v for k, v in run.settings.items() if k != "threads"},
        "fold": run.fold,
        "seed": run.seed,
        "train_idx": hashlib.sha256(np.ascontiguousarray(run.train_idx).tobytes()).hexdigest(),
        "cache": cache.meta.get("sha256"),
        "weights": weights_digest(run.settings["encoder"].get("pretrained")),
        "aunce": __version__,
        "torch": torch.__version__,
        "code": _code_digest(run.objective),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _rng_state(run: Run, device: torch.device) -> dict:
    """Every random generator's state as tensors and plain types (``weights_only`` loads them)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "generator": run.generator.get_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "python": random.getstate(),
    }


def _set_rng_state(state: dict, run: Run, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    run.generator.set_state(state["generator"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(path: Path, run: Run, fingerprint: str, device: torch.device) -> None:
    """Everything that continues ``run`` exactly, written atomically (never half a checkpoint)."""
    progress = run.progress
    state = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "fold": run.fold,
        "seed": run.seed,
        "finished": run.finished,
        "history": run.history,
        "progress": None
        if progress is None
        else {
            "epoch": progress.epoch,
            "perm": torch.from_numpy(np.ascontiguousarray(progress.perm)),
            "step": progress.step,
            "sums": progress.sums.cpu(),
            "seconds": progress.seconds,
        },
        "encoder": run.encoder.state_dict(),
        "head": None if run.head is None else run.head.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "schedule": run.schedule.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": _rng_state(run, device),
    }
    _save(state, path)


def load_checkpoint(path: Path, run: Run, fingerprint: str, device: torch.device) -> bool:
    """Restore ``run`` from ``path`` if it holds a checkpoint of this very run; else False.

    The checkpoint must match its SHA-256 sidecar and load as tensors and plain types
    (``weights_only``: a file that would run code is refused, never executed); anything else is
    logged, naming the file and why, and the run trains afresh."""
    if not path.is_file():
        return False
    try:
        check_digest(path, remedy=f"training {run.who()} afresh")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except DamagedFile as err:
        log.warning("%s", err)
        return False
    except Exception as err:  # noqa: BLE001 - an unreadable checkpoint only costs the training
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("%s: unreadable checkpoint (%s); training %s afresh", path, reason, run.who())
        return False
    if not isinstance(state, dict):
        log.warning("%s: not a checkpoint of aunce; training %s afresh", path, run.who())
        return False
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
        log.info("%s: checkpoint of other settings, data or code; training afresh", path)
        return False
    run.encoder.load_state_dict(state["encoder"])
    if run.head is not None:
        run.head.load_state_dict(state["head"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    run.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"], run, device)
    run.history = list(state["history"])
    p = state["progress"]
    run.progress = (
        None
        if p is None
        else EpochProgress(
            p["epoch"], p["perm"].numpy(), p["step"], p["sums"].to(device), p["seconds"]
        )
    )
    return True


# --- outputs ------------------------------------------------------------------------------------
def write_outputs(
    out: Path, run: Run, cache: Cache, weights: torch.Tensor, minority: torch.Tensor, device
) -> None:
    """history.csv, timing.json, settings.json and (last) encoder.pt of a finished run."""
    import pandas as pd

    settings, n = run.settings, len(run.train_idx)
    method = settings["method"]
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "history.csv", pd.DataFrame(run.history).to_csv(index=False))
    write_json(
        out / "timing.json",
        {
            "frames_per_second": float(np.mean([h["frames_per_second"] for h in run.history])),
            "epoch_seconds": float(np.mean([h["seconds"] for h in run.history])),
            "epochs": len(run.history),
            "train_frames": int(n),
            "batch_size": settings["pretrain"]["batch_size"],
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
        },
    )
    write_json(
        out / "settings.json",
        {
            **settings,
            "fold": run.fold,
            "seed": run.seed,
            "aunce_version": __version__,
            "loss_settings": loss_settings(method, settings.get("method_name")),
            "au_weights": None if run.objective.kwargs["au_weights"] is None else weights.tolist(),
            "minority_label": minority.tolist(),
            "aus": cache.aus,
            "cache": str(cache.root),
            "train_frames": int(n),
            "torch": torch.__version__,
        },
    )
    _save(
        {
            "encoder": settings["encoder"],
            "num_aus": len(cache.aus),
            "aus": cache.aus,
            "state_dict": run.encoder.state_dict(),
            "fold": run.fold,
            "seed": run.seed,
            "method": method,
        },
        out / "encoder.pt",
    )


# --- the stage ----------------------------------------------------------------------------------
def pretrain(
    cache_dir: str | Path,
    settings: dict,
    runs: list[tuple[str, int]],
    out_root: str | Path,
    *,
    checkpoints: str | Path | None = None,
    keep_checkpoints: bool = False,
    prefetch: int | None = None,
) -> None:
    """Pretrain one encoder per (fold, seed) in ``runs`` with the method in ``settings``.

    Checkpoints go below ``checkpoints`` (default :func:`checkpoint_root` of ``out_root``) and are
    removed at the end unless ``keep_checkpoints`` (a caller with more to do before the job is
    complete removes them itself). ``prefetch``: batches read ahead on a thread (0: on the main
    thread; None: :func:`prefetch_depth` of the device).
    """
    set_threads(settings.get("threads", 0))
    cache = open_cache(cache_dir)
    device = resolve_device(settings["device"])
    loop = Loop(
        cache,
        cache.labels,
        device,
        resolve_amp(settings["amp"], device),
        resolve_channels_last(bool(settings.get("channels_last", False)), device),
        prefetch_depth(device) if prefetch is None else prefetch,
    )
    root = checkpoint_root(out_root) if checkpoints is None else Path(checkpoints)
    with STOP.handling():
        for fold, seeds in group_runs(runs).items():
            train_idx, _ = cache.split(fold)
            weights, minority = training_statistics(
                cache, train_idx, f"training split of fold {fold}"
            )
            for seed in seeds:
                run = setup_run(loop, train_idx, weights, minority, settings, fold, seed)
                _train_run(run, loop, run_dir(root, fold, seed) / CHECKPOINT)
                write_outputs(run_dir(out_root, fold, seed), run, cache, weights, minority, device)
        if STOP.signal is not None:  # arrived while the last outputs were written
            raise Preempted(f"received SIGTERM; every run of {out_root} is checkpointed")
    if not keep_checkpoints:
        remove_checkpoints(root, runs)


def _train_run(run: Run, loop: Loop, checkpoint: Path) -> None:
    """Train ``run`` to its last epoch, from its checkpoint when there is one, saving one per epoch."""
    cfg, device = run.settings["pretrain"], loop.device
    fingerprint = run_fingerprint(run, loop.cache)
    if load_checkpoint(checkpoint, run, fingerprint, device):
        which = JOB.start_run(cfg["epochs"], done=len(run.history))
        if run.finished:
            log.info("%s: %s: run already finished, restored from %s", which, run.who(), checkpoint)
            return
        where = (
            ""
            if run.progress is None
            else f", step {run.progress.step} of epoch {run.progress.epoch}"
        )
        log.info("%s: %s: resumed from epoch %d%s (%s)", which, run.who(), len(run.history), where,
                 checkpoint)  # fmt: skip
    else:
        n, bsz = len(run.train_idx), cfg["batch_size"]
        n_batches = len(epoch_batches(np.arange(n), np.arange(n), bsz, cfg.get("drop_last", True)))
        log.info(
            "%s: pretrain %s fold %s seed %s: %d training frames, %d batches of up to %d, %s on %s",
            JOB.start_run(cfg["epochs"]), run.objective.name, run.fold, run.seed, n, n_batches,
            min(bsz, n), run.settings["method"]["loss"], device,
        )  # fmt: skip
    while not run.finished:
        epoch = len(run.history) + 1
        if STOP.signal is not None:
            raise Preempted(
                f"received SIGTERM; {run.who()} is checkpointed after epoch {epoch - 1} "
                f"({checkpoint}); run the job again to resume"
            )
        row = train_epoch(run, loop, epoch)
        if row is None:
            save_checkpoint(checkpoint, run, fingerprint, device)
            log.warning(
                "SIGTERM: %s checkpointed at step %d of epoch %d",
                run.who(),
                run.progress.step,
                epoch,
            )
            raise Preempted(
                f"received SIGTERM; {run.who()} is checkpointed at step {run.progress.step} of "
                f"epoch {epoch} ({checkpoint}); run the job again to resume"
            )
        run.history.append(row)
        where, eta = JOB.epoch_line(epoch, row["seconds"])
        log.info(
            "  %s  loss %.4f  similarity %.3f  %.1f s  %.0f frames/s  %s", where, row["loss"],
            row["mean_similarity"], row["seconds"], row["frames_per_second"], eta,
        )  # fmt: skip
        save_checkpoint(checkpoint, run, fingerprint, device)


def load_encoder(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild a pretrained encoder from ``encoder.pt``, in eval mode (batch-norm statistics frozen).

    The file must match its SHA-256 sidecar (else :class:`aunce.io.DamagedFile`, naming it and what
    to do) and holds tensors and plain types only (``weights_only``)."""
    check_digest(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a file of something else than aunce wrote
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AunceError(f"{path}: not an encoder.pt of aunce ({reason})") from None
    encoder = build_encoder(dict(ckpt["encoder"], pretrained=None), ckpt["aus"])
    encoder.load_state_dict(ckpt["state_dict"])
    return encoder.to(device).eval(), ckpt
