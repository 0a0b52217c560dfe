"""A warm start like the paper's: each encoder's backbone pretrained once, before any AU training.

The paper fine-tunes backbones pretrained on ImageNet (Sec. 4.1: Swin-B, ResNet50, VGG16 weights,
then lr 1e-5). The tiny encoders of the CPU default have no ImageNet weights, so this module gives
them a stand-in: their backbone (the part ``pretrained`` loads, ``TRUNKS``) is trained by instance
discrimination (SimCLR, Chen et al., ICML 2020: NT-Xent, Eq. 1 there) on a population of
synthetic faces whose subjects no dataset has (``aunce.data.synthetic.generate_population``).

Why instance discrimination: it is the generic, label-free task that gives an ImageNet-like prior
(edges, face parts, invariance to crop, scale, colour and blur) without any target that the AU
deformations drive. No AU label exists in the population, and the target of each image is the
image itself. Landmark regression would not do: landmarks move with every AU.

``warm_start`` writes ``<out>/backbone.pt`` (the backbone's state dict, the file an encoder's
``pretrained`` setting names), ``history.csv`` (loss, instance accuracy, seconds per epoch) and
``settings.json``. Same settings and threads, same bytes (``backbone.pt`` too, with its SHA-256
sidecar ``backbone.pt.sha256``).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aunce import AunceError, __version__
from aunce.data.augment import color_distort, gaussian_blur, normalize, to_float
from aunce.data.synthetic import read_population
from aunce.device import resolve_device, set_threads
from aunce.encoders import create_encoder
from aunce.io import atomic_path, write_json, write_text
from aunce.progress import JOB

log = logging.getLogger(__name__)

#: The module of each tiny encoder that ``create_encoder(..., pretrained=path)`` loads: its
#: backbone, the part an ImageNet checkpoint would cover (the per-AU heads stay random).
TRUNKS = {
    "megraph": "backbone",
    "resnet50": "backbone",
    "roi": "backbone",
    "jaanet": "region_learning",
}
WEIGHTS = "backbone.pt"
POOL = 2  # backbone maps are pooled to POOL x POOL cells before the projection head
PROJECTION = (256, 64)  # hidden and output widths of SimCLR's projection MLP (dropped afterwards)


def trunk(encoder: nn.Module, name: str) -> nn.Module:
    """The backbone module of a tiny encoder (the part the warm start trains and transfers)."""
    if name not in TRUNKS:
        raise ValueError(f"no warm start for encoder '{name}' (known: {', '.join(TRUNKS)})")
    return getattr(encoder, TRUNKS[name])


def pooled(features: Tensor) -> Tensor:
    """Backbone output -> one vector per image: maps (B, C, H, W) and square token grids (B, N, C)
    are average-pooled to POOL x POOL cells and flattened; vectors (B, C) pass unchanged."""
    if features.ndim == 3:
        b, n, c = features.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"expected a square token grid, got {n} tokens")
        features = features.transpose(1, 2).reshape(b, c, side, side)
    if features.ndim == 4:
        return F.adaptive_avg_pool2d(features, POOL).flatten(1)
    if features.ndim == 2:
        return features
    raise ValueError(f"unexpected backbone output of shape {tuple(features.shape)}")


class InstanceNet(nn.Module):
    """Backbone -> pooled vector -> SimCLR projection MLP (Linear, BN, ReLU, Linear)."""

    def __init__(self, backbone: nn.Module, in_features: int):
        super().__init__()
        self.backbone = backbone
        hidden, out = PROJECTION
        self.projection = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.projection(pooled(self.backbone(images)))


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """SimCLR's NT-Xent loss (Chen et al. 2020, Eq. 1) and the instance accuracy.

    ``z1``, ``z2`` (B, E): projections of two views of the same B images. Each of the 2B views is an
    anchor whose positive is its twin and whose negatives are the other 2B - 2 views; the loss is
    the mean over anchors of ``-log softmax`` of the twin's cosine similarity / temperature. The
    accuracy is the share of anchors whose most similar other view is their twin.
    """
    if z1.shape != z2.shape or z1.ndim != 2 or len(z1) < 2:
        raise ValueError(
            f"expected two (B, E) batches with B >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    b = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, E)
    logits = z @ z.T / temperature  # (2B, 2B)
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    twin = torch.arange(2 * b, device=z.device).roll(b)  # view i's twin: i + B mod 2B
    loss = F.cross_entropy(logits, twin)
    accuracy = (logits.argmax(1) == twin).float().mean()
    return loss, accuracy


def random_resized_crop(
    x: Tensor,
    size: int,
    generator: torch.Generator,
    min_area: float,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """SimCLR's random resized crop and horizontal flip of (B, 3, S, S) images, to ``size``.

    Each image keeps a random area fraction in [min_area, 1] of its side squared, aspect ratio in
    ``ratio`` (log-uniform), at a random position inside it, flipped with probability 0.5.
    """
    b = len(x)
    area = min_area + (1 - min_area) * torch.rand(b, generator=generator)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    ratio = (lo + (hi - lo) * torch.rand(b, generator=generator)).exp()
    w = (area * ratio).sqrt().clamp(max=1.0)  # crop side / image side
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(b, generator=generator) - 1)  # centre, normalised [-1, 1]
    cy = (1 - h) * (2 * torch.rand(b, generator=generator) - 1)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x), [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def view(x: Tensor, size: int, generator: torch.Generator, cfg: dict) -> Tensor:
    """One SimCLR view: random resized crop and flip, colour distortion (p 0.8), blur (p 0.5)."""
    v = random_resized_crop(x, size, generator, cfg["min_crop_area"])
    v = color_distort(v, generator, p=0.8)
    return gaussian_blur(v, generator, p=0.5)


def warm_start(population_dir: str | Path, settings: dict, out_dir: str | Path) -> Path:
    """Pretrain the backbone of ``settings['encoder']`` on the population; write ``backbone.pt``.

    ``settings``: ``encoder`` (name, size, feature_dim, ...), ``image`` (input_size, normalize),
    ``warm_start`` (seed, epochs, batch_size, lr, weight_decay, temperature, min_crop_area),
    ``device`` and ``threads``. AdamW with a cosine decay of the learning rate over all steps.
    """
    spec, image, cfg = settings["encoder"], settings["image"], settings["warm_start"]
    name = spec["name"]
    if spec.get("size", "paper") != "tiny":
        raise AunceError(
            f"encoder {name}: the warm start stands in for ImageNet weights of the tiny encoders; "
            f"size '{spec.get('size')}' takes real ImageNet weights (pretrained: a local file or a "
            "timm tag such as tv_in1k) or null"
        )
    set_threads(settings.get("threads", 0))
    device = resolve_device(settings.get("device", "cpu"))
    images, population = read_population(population_dir)
    n, bsz = len(images), cfg["batch_size"]
    if n < bsz:
        raise AunceError(
            f"{population_dir}: {n} population frames, fewer than one batch of {bsz} "
            "(raise warm_start.n_subjects or lower warm_start.batch_size)"
        )
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    encoder = create_encoder(
        name, 12, size="tiny", feature_dim=spec.get("feature_dim"), input_size=image["input_size"]
    )
    backbone = trunk(encoder, name)
    with torch.no_grad():
        probe = torch.zeros(2, 3, image["input_size"], image["input_size"])
        in_features = pooled(backbone.eval()(probe)).shape[1]
    model = InstanceNet(backbone, in_features).to(device).train()
    n_batches = n // bsz  # full batches: every anchor sees 2B - 2 negatives
    optim = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=cfg["epochs"] * n_batches)
    log.info(
        "warm start of %s's %s: %d population frames (%d subjects), %d batches of %d, %d epochs, "
        "%d backbone parameters, on %s",
        name, TRUNKS[name], n, population["n_subjects"], n_batches, bsz, cfg["epochs"],
        sum(p.numel() for p in backbone.parameters()), device,
    )  # fmt: skip
    history, started = [], time.perf_counter()
    JOB.start_run(cfg["epochs"])  # the job's one run
    for epoch in range(1, cfg["epochs"] + 1):
        perm = torch.randperm(n, generator=gen).numpy()
        start, total, correct = time.perf_counter(), 0.0, 0.0
        for i in range(n_batches):
            idx = np.sort(perm[i * bsz : (i + 1) * bsz])
            x = to_float(torch.from_numpy(np.ascontiguousarray(images[idx]))).to(device)
            views = torch.cat([view(x, image["input_size"], gen, cfg) for _ in range(2)])
            z = model(normalize(views, image["normalize"]))
            loss, accuracy = nt_xent(z[:bsz], z[bsz:], cfg["temperature"])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"warm start of {name}, epoch {epoch}: loss is {loss.item()}"
                )
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            schedule.step()
            total += loss.item()
            correct += accuracy.item()
        seconds = time.perf_counter() - start
        history.append(
            {
                "epoch": epoch,
                "loss": total / n_batches,
                "instance_accuracy": correct / n_batches,
                "seconds": seconds,
                "frames_per_second": n_batches * bsz / seconds,
            }
        )
        where, eta = JOB.epoch_line(epoch, seconds)
        log.info(
            "  %s  loss %.3f  instance accuracy %.1f %%  %.1f s  %.0f frames/s  %s", where,
            total / n_batches, 100 * correct / n_batches, seconds, n_batches * bsz / seconds, eta,
        )  # fmt: skip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    write_text(out / "history.csv", pd.DataFrame(history).to_csv(index=False))
    write_json(
        out / "settings.json",
        {
            **settings,
            "trunk": TRUNKS[name],
            "population": population,
            "projection": list(PROJECTION),
            "pool": POOL,
            "aunce_version": __version__,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "seconds": time.perf_counter() - started,
        },
    )
    state = {k: v.cpu() for k, v in backbone.state_dict().items()}
    # through a file object: the archive's inner folder is always "archive" (given a path, torch
    # names it after the random temporary file), so the same weights are the same bytes; with the
    # SHA-256 sidecar that every encoder loading it checks (aunce.encoders.blocks.load_pretrained)
    with atomic_path(out / WEIGHTS, digest=True) as tmp, open(tmp, "wb") as fh:
        torch.save({"state_dict": state, "encoder": name, "trunk": TRUNKS[name]}, fh)
    log.info("wrote %s (%.0f s)", out / WEIGHTS, time.perf_counter() - started)
    return out / WEIGHTS
