"""Stage 1: pretraining of an encoder with one method, for one or several (fold, seed) runs.

Several runs share one process on purpose: on a CPU the start-up and imports of a job cost seconds
(BENCHMARKS.md), so the ``cell`` granularity trains every fold and seed of a cell here in turn.

Each run writes, under ``<out_root>/fold-<f>/seed-<s>/``:
    encoder.pt     the encoder's state dict and what rebuilds it
    history.csv    loss, seconds and frames per second per epoch (and the face-alignment loss of
                   encoders that have one, JA-Net: the run minimises loss + 0.5 x alignment_loss)
    timing.json    the figures of Table 9 (frames per second, seconds per epoch)
    settings.json  the resolved settings of the run (config, method defaults, AU weights, code version)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from aunce import AunceError, __version__
from aunce.data.augment import crop_landmarks, normalize, random_crop_flip, simclr_view, to_float
from aunce.data.cache import Cache, open_cache
from aunce.device import autocast, resolve_amp, resolve_device, set_threads
from aunce.encoders import create_encoder
from aunce.encoders.blocks import PerAULinear
from aunce.io import atomic_path, write_json, write_text
from aunce.losses import au_weights
from aunce.methods import build_objective, loss_settings

log = logging.getLogger(__name__)


def run_dir(out_root: str | Path, fold: str, seed: int) -> Path:
    return Path(out_root) / f"fold-{fold}" / f"seed-{seed}"


def training_statistics(
    cache: Cache, train_idx: np.ndarray, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """AU weights lambda and minority labels from the training split of the current fold only."""
    labels = torch.from_numpy(cache.labels[train_idx])
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
        input_size=spec.get("input_size"),  # the config's image.input_size, stored in checkpoints
    )


def require_landmarks(cache: Cache, idx: np.ndarray, encoder_name: str) -> None:
    """Encoders that need landmarks refuse a cache without them (NaN where the dataset had none)."""
    if not np.isfinite(cache.landmarks[idx]).all():
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


def group_runs(runs: list[tuple[str, int]]) -> dict[str, list[int]]:
    """(fold, seed) pairs grouped by fold, in the order given."""
    out: dict[str, list[int]] = {}
    for fold, seed in runs:
        out.setdefault(str(fold), []).append(int(seed))
    return out


def pretrain(
    cache_dir: str | Path, settings: dict, runs: list[tuple[str, int]], out_root: str | Path
) -> None:
    """Pretrain one encoder per (fold, seed) in ``runs`` with the method in ``settings``."""
    set_threads(settings.get("threads", 0))
    cache = open_cache(cache_dir)
    device = resolve_device(settings["device"])
    amp = resolve_amp(settings["amp"], device)
    for fold, seeds in group_runs(runs).items():
        train_idx, _ = cache.split(fold)
        weights, minority = training_statistics(cache, train_idx, f"training split of fold {fold}")
        for seed in seeds:
            _pretrain_run(
                cache,
                train_idx,
                weights,
                minority,
                settings,
                fold,
                seed,
                device,
                amp,
                run_dir(out_root, fold, seed),
            )


def _pretrain_run(
    cache: Cache,
    train_idx: np.ndarray,
    weights: torch.Tensor,
    minority: torch.Tensor,
    settings: dict,
    fold: str,
    seed: int,
    device: torch.device,
    amp,
    out: Path,
) -> None:
    cfg, image = settings["pretrain"], settings["image"]
    method = settings["method"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # the encoder is built for the configured crop size (its preset size is only the default)
    settings = dict(settings, encoder=dict(settings["encoder"], input_size=image["input_size"]))
    encoder = build_encoder(settings["encoder"], cache.aus).to(device)
    objective = build_objective(
        method, weights.to(device), minority.to(device), name=settings.get("method_name")
    )
    head = (
        PerAULinear(len(cache.aus), encoder.feature_dim).to(device) if objective.uses_head else None
    )
    params = list(encoder.parameters()) + (list(head.parameters()) if head is not None else [])
    optim = torch.optim.AdamW(
        params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"]
    )
    # the step schedule of the released code: lr x factor from each listed epoch (counted from 1)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optim, milestones=[e - 1 for e in cfg["lr_step_epochs"]], gamma=cfg["lr_step_factor"]
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    labels_all = torch.from_numpy(cache.labels)
    landmarks_all = None
    if encoder.needs_landmarks:
        require_landmarks(cache, train_idx, settings["encoder"]["name"])
        landmarks_all = torch.from_numpy(cache.landmarks)  # (N, 49, 2) aligned-face pixels
    aligns = hasattr(encoder, "alignment_loss")
    n, bsz = len(train_idx), cfg["batch_size"]
    n_batches = max(1, n // bsz)  # drop the last partial batch (contrastive batches stay full)
    encoder.train()
    history = []
    log.info(
        "pretrain %s fold %s seed %s: %d training frames, %d batches of %d, %s on %s",
        objective.name,
        fold,
        seed,
        n,
        n_batches,
        min(bsz, n),
        method["loss"],
        device,
    )
    for epoch in range(1, cfg["epochs"] + 1):
        perm = torch.randperm(n, generator=gen).numpy()
        start, total, total_align, frames = time.perf_counter(), 0.0, 0.0, 0
        for i in range(n_batches):
            idx = np.sort(
                train_idx[perm[i * bsz : (i + 1) * bsz]]
            )  # sorted: sequential memmap reads
            x = to_float(torch.from_numpy(np.ascontiguousarray(cache.images[idx]))).to(device)
            labels = labels_all[idx].to(device)
            lm = None if landmarks_all is None else landmarks_all[idx].to(device)
            with autocast(device, amp):
                if objective.two_views:
                    v1, c1 = simclr_view(
                        x,
                        image["input_size"],
                        gen,
                        color_jitter=cfg["color_jitter"],
                        blur=cfg["blur"],
                    )
                    v2, c2 = simclr_view(
                        x,
                        image["input_size"],
                        gen,
                        color_jitter=cfg["color_jitter"],
                        blur=cfg["blur"],
                    )
                    views_lm = (
                        None
                        if lm is None
                        else torch.cat([crop_landmarks(lm, c1), crop_landmarks(lm, c2)])
                    )
                    z, align = encode(
                        encoder, normalize(torch.cat([v1, v2]), image["normalize"]), views_lm
                    )
                    loss = objective(z[: len(idx)], z[len(idx) :], None, labels, gen)
                else:
                    v, crop = random_crop_flip(x, image["input_size"], gen)
                    view_lm = None if lm is None else crop_landmarks(lm, crop)
                    z, align = encode(encoder, normalize(v, image["normalize"]), view_lm)
                    loss = objective(z, None, head(z), labels, gen)
                total_loss = loss if align is None else loss + encoder.alignment_weight * align
            if not torch.isfinite(total_loss):
                raise FloatingPointError(
                    f"method '{settings.get('method_name') or objective.name}' fold {fold} "
                    f"seed {seed} epoch {epoch}: loss is {total_loss.item()}"
                )
            optim.zero_grad(set_to_none=True)
            scaler.scale(total_loss).backward()
            scaler.step(optim)
            scaler.update()
            total += loss.item()
            total_align += 0.0 if align is None else align.item()
            frames += len(idx)
        seconds = time.perf_counter() - start
        lr = optim.param_groups[0]["lr"]
        schedule.step()
        history.append(
            {
                "epoch": epoch,
                "lr": lr,
                "loss": total / n_batches,
                **({"alignment_loss": total_align / n_batches} if aligns else {}),
                "seconds": seconds,
                "frames_per_second": frames / seconds,
            }
        )
        log.info(
            "  epoch %d/%d  loss %.4f  %.1f s  %.0f frames/s",
            epoch,
            cfg["epochs"],
            total / n_batches,
            seconds,
            frames / seconds,
        )

    out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    write_text(out / "history.csv", pd.DataFrame(history).to_csv(index=False))
    epoch_seconds = [h["seconds"] for h in history]
    write_json(
        out / "timing.json",
        {
            "frames_per_second": float(np.mean([h["frames_per_second"] for h in history])),
            "epoch_seconds": float(np.mean(epoch_seconds)),
            "epochs": len(history),
            "train_frames": int(n),
            "batch_size": bsz,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
        },
    )
    write_json(
        out / "settings.json",
        {
            **settings,
            "fold": fold,
            "seed": seed,
            "aunce_version": __version__,
            "loss_settings": loss_settings(method, settings.get("method_name")),
            "au_weights": None if objective.kwargs["au_weights"] is None else weights.tolist(),
            "minority_label": minority.tolist(),
            "aus": cache.aus,
            "cache": str(cache.root),
            "train_frames": int(n),
            "torch": torch.__version__,
        },
    )
    with atomic_path(out / "encoder.pt") as tmp:
        torch.save(
            {
                "encoder": settings["encoder"],
                "num_aus": len(cache.aus),
                "aus": cache.aus,
                "state_dict": encoder.state_dict(),
                "fold": fold,
                "seed": seed,
                "method": method,
            },
            tmp,
        )


def load_encoder(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild a pretrained encoder from ``encoder.pt``, in eval mode (batch-norm statistics frozen)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    encoder = build_encoder(dict(ckpt["encoder"], pretrained=None), ckpt["aus"])
    encoder.load_state_dict(ckpt["state_dict"])
    return encoder.to(device).eval(), ckpt
