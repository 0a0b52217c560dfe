"""Stage 2: embeddings from the frozen encoder, then linear evaluation (protocol.md).

``embed`` runs each pretrained encoder once in eval mode (batch-norm statistics frozen) on the
centre crops of the training and test frames and stores the per-AU embeddings. ``linear_eval``
trains a fresh per-AU linear classifier on the training embeddings with WCE (AU weights from the
training split of the fold, unless ``linear_eval.au_weights`` is false, resolved per method) and
scores the test split at the fixed threshold. Nothing is tuned on the test split: the last epoch is
evaluated. With injected label noise, the classifier trains on the noisy labels and is scored
against the true ones.

The optimizer takes the pretraining's betas and weight decay unless ``linear_eval`` sets its own
(paper Sec. 4.1: "with the same settings as the pre-training phase"; the workflow resolves null).
Settings of the released linear evaluation (the authors' linear_graph_au.py, docs/losses.md):
``head: softmax`` (per AU a Linear(D, 2) and a softmax, trained with the released clamped WCE),
``normalize_features`` (L2-normalised embeddings), and ``features: augmented``, a second path:
the head trains on features recomputed at every step from augmented training crops through the
frozen encoder, left in train mode with ``encoder_mode: train`` (batch-norm running statistics
move, stochastic depth is active), and the test split's centre crops are embedded at the end in
eval mode with the statistics the training passes left (:func:`fit_linear_head_augmented`).

On CUDA the embeddings are extracted in batches of ``EMBED_BATCH`` read and pinned ahead on a
background thread (on the CPU read in turn: aunce.train.prefetch_depth), under bf16 (or fp16)
autocast when ``amp`` says so and in the ``channels_last`` format when asked; they are stored as
float16 either way. The linear head trains on the device with no host synchronisation inside its
steps (labels validated once).

Memory is bounded by the batch, not by the dataset (Aff-Wild2's 1.83 M frames): the embeddings go
to disk as they are computed (:func:`aunce.embeddings.write_embeddings`), and the linear head
reads each minibatch's rows from the memory-mapped file (:func:`aunce.embeddings.open_embeddings`,
:class:`aunce.data.loader.RowReader`, read ahead on a thread on CUDA), then scores the test split
in blocks of :data:`PREDICT_BATCH`. The numbers are those of the whole arrays in memory: the same
permutation, the same rows per step, the same float32 values. Cross-dataset evaluation writes the
source embeddings to a file of its own beside its outputs for as long as its head trains.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aunce import AunceError
from aunce.config import linear_eval_augment
from aunce.data.augment import (
    ViewSpec,
    augment_view,
    center_crop,
    crop_landmarks,
    normalize,
    to_float,
)
from aunce.data.cache import Cache, open_cache
from aunce.data.loader import CacheReader, Prefetcher, RowReader, epoch_batches
from aunce.device import autocast, resolve_amp, resolve_channels_last, resolve_device, set_threads
from aunce.embeddings import mapped_member, open_embeddings, write_embeddings
from aunce.encoders.blocks import PerAULinear
from aunce.io import atomic_path, check_digest, read_json, write_json
from aunce.losses import au_weights, clamped_wce_loss, values_checked, wce_loss
from aunce.train import group_runs, load_encoder, prefetch_depth, require_landmarks, run_dir

log = logging.getLogger(__name__)
EMBED_BATCH = 256
PREDICT_BATCH = EMBED_BATCH  # test rows scored at once


@torch.no_grad()
def embedding_chunks(
    encoder: torch.nn.Module,
    images: np.ndarray,
    idx: np.ndarray,
    settings: dict,
    device: torch.device,
    landmarks: np.ndarray | None = None,
    *,
    amp: torch.dtype | None = None,
    channels_last: bool = False,
    dtype: type = np.float16,
) -> Iterator[np.ndarray]:
    """Per-AU embeddings (B, K, D) of the centre crops of ``images[idx]``, :data:`EMBED_BATCH`
    frames at a time in the order of ``idx``, as ``dtype`` (float16: what is stored).

    Encoders that need landmarks get ``landmarks[idx]`` (the cache's (N, 49, 2)) moved into the crop.
    ``amp``: the autocast dtype (None: float32); ``channels_last``: the images' memory format.
    """
    if encoder.needs_landmarks and landmarks is None:
        raise ValueError("this encoder needs landmarks: pass the cache's landmarks to extract")
    reader = CacheReader(
        images, None, landmarks if encoder.needs_landmarks else None, pin=device.type == "cuda"
    )
    chunks = [idx[start : start + EMBED_BATCH] for start in range(0, len(idx), EMBED_BATCH)]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    # each chunk is read sorted (sequential memmap reads) and its embeddings put back in order
    with Prefetcher(reader, [np.sort(c) for c in chunks], prefetch_depth(device)) as stream:
        for chunk, batch in zip(chunks, stream, strict=True):
            order = np.argsort(np.argsort(chunk))
            batch = batch.to(device)
            x, crop = center_crop(to_float(batch.images), settings["image"]["input_size"])
            x = normalize(x, settings["image"]["normalize"]).contiguous(memory_format=memory_format)
            with autocast(device, amp):
                if encoder.needs_landmarks:
                    z = encoder(x, crop_landmarks(batch.landmarks, crop))
                else:
                    z = encoder(x)
            yield z.float().cpu().numpy()[order].astype(dtype)


def extract(encoder: torch.nn.Module, images: np.ndarray, idx: np.ndarray, settings: dict,
            device: torch.device, landmarks: np.ndarray | None = None, **kwargs) -> np.ndarray:  # fmt: skip
    """The embeddings of :func:`embedding_chunks` as one array (N, K, D), for callers that hold a
    few thousand frames (the stages themselves stream them to disk)."""
    out = list(embedding_chunks(encoder, images, idx, settings, device, landmarks, **kwargs))
    if not out:
        return np.zeros((0, 0, 0), kwargs.get("dtype", np.float16))
    return np.concatenate(out)


def embed(
    cache_dir: str | Path,
    models_root: str | Path,
    settings: dict,
    runs: list[tuple[str, int]],
    out_root: str | Path,
) -> None:
    """Per-AU embeddings of the train and test frames of each (fold, seed) run's frozen encoder."""
    set_threads(settings.get("threads", 0))
    cache = open_cache(cache_dir)
    device = resolve_device(settings["device"])
    precision = _precision(settings, device)
    for fold, seeds in group_runs(runs).items():
        train_idx, test_idx = cache.split(fold)
        for seed in seeds:
            model_dir = run_dir(models_root, fold, seed)
            encoder, ckpt = _load(model_dir / "encoder.pt", device, precision)
            if encoder.needs_landmarks:
                require_landmarks(
                    cache, np.concatenate([train_idx, test_idx]), ckpt["encoder"]["name"]
                )
            pretrain_settings = read_json(model_dir / "settings.json")
            out = run_dir(out_root, fold, seed)
            out.mkdir(parents=True, exist_ok=True)
            write_run_embeddings(
                out / "embeddings.npz", encoder, cache, train_idx, test_idx, settings, device,
                precision, pretrain_settings,
            )  # fmt: skip
            log.info(
                "embedded fold %s seed %s: %d train, %d test frames",
                fold,
                seed,
                len(train_idx),
                len(test_idx),
            )


def write_run_embeddings(
    path: Path, encoder: torch.nn.Module, cache: Cache, train_idx: np.ndarray,
    test_idx: np.ndarray, settings: dict, device: torch.device, precision: dict,
    pretrain_settings: dict,
) -> None:  # fmt: skip
    """One run's ``embeddings.npz``: both splits streamed to disk as the encoder embeds them."""

    def stream(idx):
        chunks = embedding_chunks(encoder, cache.images, idx, settings, device, cache.landmarks,
                                  **precision)  # fmt: skip
        return len(idx), chunks

    write_embeddings(
        path,
        {"train_z": stream(train_idx), "test_z": stream(test_idx)},
        {
            "train_labels": cache.labels[train_idx],
            "train_index": train_idx,
            "test_labels": cache.true_labels[test_idx],
            "test_index": test_idx,
            "test_subjects": subject_names(cache, test_idx),
            "aus": np.array(cache.aus),
            "pretrain_settings": np.array(json.dumps(pretrain_settings)),
        },
        digest=True,
    )


def subject_names(cache: Cache, idx: np.ndarray) -> np.ndarray:
    """The subject of each of the cache rows ``idx``, as text (the test's per-subject counts)."""
    return np.asarray(cache.manifest["subject"].astype(str), dtype=str)[idx]


def _precision(settings: dict, device: torch.device) -> dict:
    """``extract``'s ``amp`` and ``channels_last`` from a stage's settings (CUDA only)."""
    return {
        "amp": resolve_amp(settings.get("amp", "none"), device),
        "channels_last": resolve_channels_last(bool(settings.get("channels_last", False)), device),
    }


def _load(path, device: torch.device, precision: dict) -> tuple[torch.nn.Module, dict]:
    encoder, ckpt = load_encoder(path, device)
    if precision["channels_last"]:
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder, ckpt


class SoftmaxHead(nn.Module):
    """The released linear evaluation's classifier (linear_graph_au.py, ``Val_Net``): per AU a
    ``Linear(D, 2)`` whose two outputs go through a softmax, output 0 the AU's presence.

    (B, K, D) -> (B, K) presence log-odds ``l_0 - l_1``: their sigmoid is the softmax's presence
    probability. Initialised as ``nn.Linear`` (weights and biases uniform in +-1/sqrt(D))."""

    def __init__(self, num_aus: int, dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_aus, 2, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_aus, 2).uniform_(-bound, bound))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("bkd,kcd->bkc", z, self.weight) + self.bias  # (B, K, 2)
        return out[..., 0] - out[..., 1]


class LinearHead(nn.Module):
    """The linear evaluation's classifier: (B, K, D) embeddings -> (B, K) presence logits.

    ``kind`` logit: one logit per AU from its own embedding, WCE from logits (Eq. 1); softmax: the
    released :class:`SoftmaxHead` with its clamped WCE. ``normalize``: embeddings L2-normalised
    first (the released encoder's outputs are)."""

    def __init__(self, num_aus: int, dim: int, kind: str = "logit", normalize: bool = False):
        super().__init__()
        if kind not in ("logit", "softmax"):
            raise ValueError(f"unknown linear head '{kind}' (known: logit, softmax)")
        self.kind, self.normalize = kind, normalize
        self.classifier = (
            PerAULinear(num_aus, dim) if kind == "logit" else SoftmaxHead(num_aus, dim)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.normalize(z, dim=-1) if self.normalize else z)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor):
        if self.kind == "softmax":
            return clamped_wce_loss(logits, labels, weights)
        return wce_loss(logits, labels, weights)


def _head_and_optimizer(
    num_aus: int, dim: int, cfg: dict, device: torch.device
) -> tuple[LinearHead, torch.optim.Optimizer]:
    """A fresh head and its optimizer. ``betas`` None: torch's (0.9, 0.999) (the workflow resolves
    the config's null to the pretraining's betas)."""
    head = LinearHead(
        num_aus, dim, cfg.get("head", "logit"), bool(cfg.get("normalize_features", False))
    ).to(device)
    optimizer = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[cfg["optimizer"]]
    betas = tuple(cfg.get("betas") or (0.9, 0.999))
    return head, optimizer(
        head.parameters(), lr=cfg["lr"], betas=betas, weight_decay=cfg["weight_decay"]
    )


def fit_linear_head(
    train_z: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    settings: dict,
    seed: int,
    device: torch.device,
) -> LinearHead:
    """A per-AU linear classifier on frozen embeddings (N, K, D), trained with WCE (last epoch kept;
    every batch of an epoch, the last partial one included).

    ``train_z`` may be memory-mapped: each step reads its minibatch's rows (as float32), so memory
    grows with the batch, not with N. Labels (N, K) are checked once (the AU weights)."""
    cfg = settings["linear_eval"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if isinstance(train_z, torch.Tensor):
        train_z = train_z.detach().cpu().numpy()
    labels = np.asarray(train_labels.cpu() if isinstance(train_labels, torch.Tensor) else train_labels)
    n, k, d = train_z.shape
    weights = au_weights(torch.from_numpy(labels), split="training split").to(device)
    weights = weights if cfg.get("au_weights", True) else None  # lambda off (Table 10's model A)
    head, optim = _head_and_optimizer(k, d, cfg, device)
    rows = RowReader(train_z, pin=device.type == "cuda")

    def read(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return rows(batch), torch.from_numpy(labels[batch].astype(np.int64))

    with values_checked():  # the labels were checked once, by au_weights
        for _ in range(cfg["epochs"]):
            perm = torch.randperm(n, generator=gen).numpy()
            batches = [perm[start : start + cfg["batch_size"]]
                       for start in range(0, n, cfg["batch_size"])]  # fmt: skip
            with Prefetcher(read, batches, prefetch_depth(device)) as stream:
                for z, y in stream:
                    z = z.to(device, non_blocking=True)
                    y = y.to(device, non_blocking=True)
                    loss = head.loss(head(z), y, weights)
                    optim.zero_grad(set_to_none=True)
                    loss.backward()
                    optim.step()
    return head.eval()


@torch.no_grad()
def predict(head: LinearHead, chunks: Iterable[np.ndarray | torch.Tensor],
            device: torch.device) -> np.ndarray:  # fmt: skip
    """Presence probabilities (N, K) float32 of the embeddings ``chunks`` yields, block by block."""
    out = []
    for z in chunks:
        z = torch.as_tensor(z, dtype=torch.float32).to(device)
        out.append(torch.sigmoid(head(z)).cpu().numpy())
    if not out:
        return np.zeros((0, head.classifier.weight.shape[0]), np.float32)
    return np.concatenate(out)


def fit_linear_head_augmented(
    encoder: torch.nn.Module,
    cache: Cache,
    train_idx: np.ndarray,
    settings: dict,
    seed: int,
    device: torch.device,
) -> LinearHead:
    """The released linear evaluation (linear_graph_au.py): a head trained on features the frozen
    ``encoder`` computes at every step from augmented crops of the training frames.

    Per epoch a fresh order of the frames, batches of ``batch_size`` with the last partial one
    kept; each batch is cropped and flipped (``augment`` simclr: colour distortion and blur as the
    pretraining's AUNCE views, no similarity transform), normalised and encoded without gradients,
    the encoder in train mode when ``encoder_mode`` is train (its batch-norm running statistics
    move). The encoder is left in eval mode. Labels are checked once; nothing in a step reads a
    device value on the host.
    """
    cfg, image = settings["linear_eval"], settings["image"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    labels = cache.labels[train_idx]
    weights = au_weights(torch.from_numpy(labels.astype(np.int64)), split="training split")
    head, optim = _head_and_optimizer(len(cache.aus), encoder.feature_dim, cfg, device)
    weights = weights.to(device) if cfg.get("au_weights", True) else None
    precision = _precision(settings, device)
    memory_format = torch.channels_last if precision["channels_last"] else torch.contiguous_format
    colour = (
        linear_eval_augment(cfg.get("augment", "crop"), settings.get("dataset", "")) == "simclr"
    )
    spec = ViewSpec.from_settings(
        settings.get("pretrain", {}), image["input_size"], colour=colour, similarity=False
    )
    landmarks = cache.landmarks if encoder.needs_landmarks else None
    reader = CacheReader(cache.images, cache.labels, landmarks, pin=device.type == "cuda")
    for p in encoder.parameters():
        p.requires_grad_(False)
    encoder.train(cfg.get("encoder_mode", "eval") == "train")
    with values_checked():
        for _ in range(cfg["epochs"]):
            perm = torch.randperm(len(train_idx), generator=gen).numpy()
            batches = epoch_batches(train_idx, perm, cfg["batch_size"], drop_last=False)
            with Prefetcher(reader, batches, prefetch_depth(device)) as stream:
                for batch in stream:
                    batch = batch.to(device)
                    view, lm = augment_view(to_float(batch.images), batch.landmarks, spec, gen)
                    view = normalize(view, image["normalize"]).contiguous(
                        memory_format=memory_format
                    )
                    with torch.no_grad(), autocast(device, precision["amp"]):
                        z = encoder(view, lm) if encoder.needs_landmarks else encoder(view)
                    loss = head.loss(head(z.float()), batch.labels.long(), weights)
                    optim.zero_grad(set_to_none=True)
                    loss.backward()
                    optim.step()
    encoder.eval()
    return head.eval()


def _augmented_probabilities(
    cache: Cache, models_root, fold: str, seed: int, train_idx, test_idx, settings, device
) -> np.ndarray:
    """Test probabilities of the released linear evaluation of one run (features: augmented)."""
    precision = _precision(settings, device)
    encoder, ckpt = _load(run_dir(models_root, fold, seed) / "encoder.pt", device, precision)
    if encoder.needs_landmarks:
        require_landmarks(cache, np.concatenate([train_idx, test_idx]), ckpt["encoder"]["name"])
    head = fit_linear_head_augmented(encoder, cache, train_idx, settings, seed, device)
    chunks = embedding_chunks(encoder, cache.images, test_idx, settings, device, cache.landmarks,
                              **precision, dtype=np.float32)  # fmt: skip
    return predict(head, chunks, device)


def linear_eval(
    embeddings_root: str | Path,
    settings: dict,
    runs: list[tuple[str, int]],
    out_root: str | Path,
    *,
    cache_dir: str | Path | None = None,
    models_root: str | Path | None = None,
) -> None:
    """A linear head per (fold, seed) run on its embeddings; metrics on the true test labels.

    With ``linear_eval.features: augmented`` the head trains on augmented crops of the cache
    ``cache_dir`` through the encoders below ``models_root`` instead
    (:func:`fit_linear_head_augmented`); the embeddings give the labels and the split."""
    from aunce.metrics import detection_metrics

    set_threads(settings.get("threads", 0))
    device = resolve_device(settings["device"])
    augmented = settings["linear_eval"].get("features", "embeddings") == "augmented"
    if augmented and (cache_dir is None or models_root is None):
        raise AunceError(
            "linear_eval.features: augmented recomputes features from the cache through the "
            "pretrained encoders: give the cache and the models' folder (--cache, --models)"
        )
    cache = open_cache(cache_dir) if augmented else None
    for fold, seeds in group_runs(runs).items():
        for seed in seeds:
            src = run_dir(embeddings_root, fold, seed) / "embeddings.npz"
            check_digest(src)
            data = open_embeddings(src)
            aus = data.aus
            if augmented:
                probs = _augmented_probabilities(
                    cache, models_root, fold, seed, data.train_index, data.test_index,
                    settings, device,
                )  # fmt: skip
            else:
                head = fit_linear_head(data.train_z, data.train_labels, settings, seed, device)
                probs = predict(head, RowReader(data.test_z).chunks(PREDICT_BATCH), device)
            metrics = detection_metrics(
                data.test_labels, probs, aus, settings["linear_eval"]["threshold"],
                data.test_subjects,
            )
            out = run_dir(out_root, fold, seed)
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(out / "predictions.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(
                        fh,
                        probabilities=probs.astype(np.float32),
                        labels=data.test_labels,
                        index=data.test_index,
                        aus=np.array(aus),
                    )
            pretrain_settings = data.pretrain_settings
            del data  # the memory maps close with it
            write_json(
                out / "metrics.json",
                {
                    "run": {
                        "dataset": settings["dataset"],
                        "encoder": settings["encoder"]["name"],
                        "method": settings["method_name"],
                        "fold": fold,
                        "seed": seed,
                    },
                    **metrics,
                    "linear_eval": settings["linear_eval"],
                    "pretrain_settings": pretrain_settings,
                },
            )
            log.info(
                "fold %s seed %s: F1-macro %.1f  F1-micro %.1f  accuracy %.1f",
                fold,
                seed,
                100 * metrics["f1_macro"],
                100 * metrics["f1_micro"],
                100 * metrics["accuracy"],
            )


def cross_eval(
    source_cache: str | Path,
    target_cache: str | Path,
    models_root: str | Path,
    settings: dict,
    runs: list[tuple[str, str, int]],
    out_root: str | Path,
) -> None:
    """Cross-dataset evaluation (protocol.md, Tables 4 and 7) of each (source fold, target fold, seed).

    The source model of ``source fold`` and ``seed`` embeds the source's training split of that fold
    and the target's test split of ``target fold``; a linear head trained (WCE) on the source
    embeddings of the AUs both datasets code is tested on the target's true labels. Writes
    ``<out_root>/fold-<sf>-on-<tf>/seed-<s>/metrics.json``.
    """
    from aunce.metrics import detection_metrics

    set_threads(settings.get("threads", 0))
    device = resolve_device(settings["device"])
    precision = _precision(settings, device)
    src, tgt = open_cache(source_cache), open_cache(target_cache)
    shared = [au for au in src.aus if au in tgt.aus]
    if not shared:
        raise AunceError(f"{source_cache} and {target_cache} code no AU in common")
    si = [src.aus.index(au) for au in shared]
    ti = [tgt.aus.index(au) for au in shared]
    for sf, tf, seed in runs:
        train_idx, _ = src.split(sf)
        # 'all': every frame of a test-only target (BP4D+)
        test_idx = np.arange(len(tgt.manifest)) if tf == "all" else tgt.split(tf)[1]
        encoder, ckpt = _load(run_dir(models_root, sf, seed) / "encoder.pt", device, precision)
        if encoder.needs_landmarks:
            require_landmarks(src, train_idx, ckpt["encoder"]["name"])
            require_landmarks(tgt, test_idx, ckpt["encoder"]["name"])
        out = Path(out_root) / f"fold-{sf}-on-{tf}" / f"seed-{seed}"
        out.mkdir(parents=True, exist_ok=True)
        # the source's training embeddings on disk while the head trains on them (bounded memory)
        source_z = out / ".source-embeddings.npz"
        try:
            chunks = embedding_chunks(encoder, src.images, train_idx, settings, device,
                                      src.landmarks, **precision)  # fmt: skip
            write_embeddings(source_z, {"z": (len(train_idx), (c[:, si] for c in chunks))}, {})
            head = fit_linear_head(mapped_member(source_z, "z"), src.labels[train_idx][:, si],
                                   settings, seed, device)  # fmt: skip
        finally:
            source_z.unlink(missing_ok=True)
        target = embedding_chunks(encoder, tgt.images, test_idx, settings, device, tgt.landmarks,
                                  **precision)  # fmt: skip
        probs = predict(head, (c[:, si] for c in target), device)
        labels = tgt.true_labels[test_idx][:, ti]
        subjects = subject_names(tgt, test_idx)  # per-subject counts
        metrics = detection_metrics(labels, probs, shared, settings["linear_eval"]["threshold"],
                                    subjects)  # fmt: skip
        write_json(
            out / "metrics.json",
            {
                "run": {
                    "dataset": f"{settings['dataset']}->{settings['target']}",
                    "encoder": settings["encoder"]["name"],
                    "method": settings["method_name"],
                    "fold": f"{sf}-on-{tf}",
                    "seed": seed,
                },
                **metrics,
                "source": {"cache": str(source_cache), "fold": sf, "train_frames": len(train_idx)},
                "target": {"cache": str(target_cache), "fold": tf, "test_frames": len(test_idx)},
                "linear_eval": settings["linear_eval"],
            },
        )
        log.info(
            "%s -> %s fold %s on %s seed %s: F1-macro %.1f on %d shared AUs",
            settings["dataset"], settings["target"], sf, tf, seed,
            100 * metrics["f1_macro"], len(shared),
        )  # fmt: skip
