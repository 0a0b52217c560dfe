"""Differential check against the authors' released code: does the harness's released reading of
AUNCE compute what github.com/Ziqiao-Shang/AUNCE computes?

    python benchmarks/released_diff.py --released PATH [--cache C --warm W] [--epochs 10]
                                       [--out results/benchmarks/released_diff] [--golden-out F]

PATH is a checkout of the released code that you fetched yourself (``git clone``; HEAD ``bade385``
or the first public version ``8400de9``, told apart by ``au_infonce_loss``'s signature). Nothing
is downloaded and none of its code is copied: its modules are imported from PATH in this process,
unedited. Two runtime changes make it run on a CPU: ``Tensor.cuda`` is the identity when no GPU
is visible (its loss calls ``torch.rand(K).cuda()``), and a stand-in ``easydict`` module is
provided when the package is missing (its ``utils.py`` imports it for its command-line config).
The Swin-B backbone is replaced by the harness's tiny MEGraph backbone (``Graph_au_net_NCE`` is
assembled from the release's own ``LinearBlock`` and ``Head`` around it) and the data loader runs
without worker processes.

The comparisons, each written to ``<out>/released_diff.json`` and summarised on stdout:

1. **Loss level.** Seeded per-AU embeddings (B, K, D) and labels: the release's
   ``au_infonce_loss`` on the L2-normalised embeddings (its encoder's output) against
   ``aunce.losses.aunce_loss`` with the matching preset (``released`` for HEAD, ``released_v1`` for
   the first version), the same positive kinds (drawn as the release draws them, ``torch.rand(K)``
   after a seed); loss and gradient with respect to the unnormalised embeddings.
2. **One step.** The same tiny MEGraph weights in the release's ``Graph_au_net_NCE`` and the
   harness's encoder, the same batch and the same two views, each view in its own forward pass
   (the release's ``net(inputs)``, ``net(inputs_e)``; ``view_passes: separate``): loss, gradient of
   every weight and the weights after one AdamW step.
3. **Lockstep** (with ``--cache``): ``--lockstep-steps`` steps of both from the same weights on
   the same batches of fold 1, the same two views and the same positive kinds: per step both
   losses, the largest weight difference and the mean similarity of the first view's embeddings.
   Twice: with the views the harness draws (its released settings), and with the views the
   release's own loader gives (its PIL transforms), which tells a difference of the views'
   implementation from one of the loss, network or optimizer.
4. **Trajectory** (with ``--cache``): ``--epochs`` epochs of each from the same weights on fold 1
   of a stand-in cache: the release's own ``train_graphau_nce`` on the fold's training frames
   exported in its list layout (its transforms, loader and step schedule), against
   ``aunce.train.pretrain`` with ``config/config.yaml`` and ``config/released.yaml``'s released
   settings; per epoch the mean loss and the mean cosine similarity of the first view's per-AU
   embeddings in the training batches (``aunce.train.mean_similarity``; the release's through a
   forward hook). The random streams differ (the release draws crops and flips with Python's
   ``random``, its jitter on 8-bit PIL images), so the two agree in distribution, not draw by draw.

``--golden-out F`` writes the release's figures of comparisons 1 and 2 by seed (an entry per
version of the release, kept beside the other's);
``tests/test_released_diff.py`` recomputes the harness's side from the seeds and checks it
against them without the released code (refresh F when a deliberate change moves the harness).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import hashlib
import inspect
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aunce.encoders import create_encoder  # noqa: E402
from aunce.losses import au_weights, aunce_loss  # noqa: E402
from aunce.methods import loss_settings  # noqa: E402
from aunce.presets import AUNCE_PRESETS  # noqa: E402

#: BP4D's Table 1 occurrence rates (12 AUs), for the seeded labels of the loss and step checks
BP4D_RATES = (0.211, 0.171, 0.203, 0.462, 0.549, 0.594, 0.562, 0.466, 0.169, 0.344, 0.165, 0.152)
#: what the release's versions are called here: the harness preset each reproduces
VERSIONS = {"released": "HEAD (bade385 and later)", "released_v1": "first public version (8400de9)"}
TAU = 0.5


# --- seeded inputs, shared with tests/test_released_diff.py (no released code needed) ------------
def seeded_labels(b: int, seed: int) -> torch.Tensor:
    """(b, 12) 0/1 labels drawn at BP4D's occurrence rates."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, len(BP4D_RATES), generator=g) < torch.tensor(BP4D_RATES)).long()


def seeded_weights(seed: int) -> torch.Tensor:
    """AU weights (Eq. 1) of 2,000 seeded label rows: the fold's training split stands in."""
    return au_weights(seeded_labels(2000, seed + 1))


def released_kinds(k: int, seed: int) -> torch.Tensor:
    """The release's positive kind per AU: ``p = torch.rand(K)`` on the global generator after
    ``torch.manual_seed(seed)``; "max" (kind 0) if p < 0.2, "mean" (2) if p < 0.8, else the twin
    view (1), as its ``au_infonce_loss`` does."""
    torch.manual_seed(seed)
    p = torch.rand([k])
    return torch.where(p < 0.2, 0, torch.where(p < 0.8, 2, 1))


def harness_loss(z, z_aug, labels, preset: str, weights, kinds) -> torch.Tensor:
    """``aunce_loss`` with the preset's settings as a method of that preset gets them."""
    method = {"loss": "aunce", "preset": preset}
    use_weights = AUNCE_PRESETS[preset]["au_weights"]
    return aunce_loss(
        z, z_aug, labels, weights if use_weights else None, positive_kind=kinds,
        **loss_settings(method),
    )  # fmt: skip


def loss_inputs(seed: int, b: int = 32, d: int = 64):
    """Unnormalised per-AU embeddings (leaves, requires_grad) of two views and their labels."""
    g = torch.Generator().manual_seed(seed)
    k = len(BP4D_RATES)
    u = torch.randn(b, k, d, generator=g)
    u_aug = u + 0.8 * torch.randn(b, k, d, generator=g)  # correlated views, as augmentations give
    return u.requires_grad_(), u_aug.requires_grad_(), seeded_labels(b, seed)


def harness_loss_level(seed: int, preset: str) -> dict:
    """Comparison 1, the harness's side: loss and gradient of the unnormalised embeddings."""
    u, u_aug, labels = loss_inputs(seed)
    loss = harness_loss(u, u_aug, labels, preset, seeded_weights(seed), released_kinds(12, seed))
    loss.backward()
    return {"loss": loss.item(), "grad": torch.cat([u.grad.flatten(), u_aug.grad.flatten()])}


def step_inputs(seed: int, b: int = 32, size: int = 32):
    """Two views (normalised images) of a batch and its labels."""
    g = torch.Generator().manual_seed(seed)
    v1 = torch.randn(b, 3, size, size, generator=g)
    v2 = v1 + 0.5 * torch.randn(b, 3, size, size, generator=g)
    return v1, v2, seeded_labels(b, seed)


def harness_encoder(seed: int, warm: str | None = None, feature_dim: int = 64, size: int = 32):
    """The tiny MEGraph encoder as a pretraining run builds it (torch seeded first)."""
    torch.manual_seed(seed)
    return create_encoder(
        "megraph", len(BP4D_RATES), size="tiny", pretrained=warm, feature_dim=feature_dim,
        input_size=size,
    )  # fmt: skip


def harness_step(seed: int, preset: str, lr: float = 1e-3, weight_decay: float = 1e-6) -> dict:
    """Comparison 2, the harness's side: loss, every weight's gradient and the weights after one
    AdamW step, each view in its own pass (``view_passes: separate``)."""
    encoder = harness_encoder(seed).train()
    v1, v2, labels = step_inputs(seed)
    before = flat(encoder.parameters())
    optimizer = torch.optim.AdamW(
        encoder.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay
    )
    z1, z2 = encoder(v1), encoder(v2)
    loss = harness_loss(z1, z2, labels, preset, seeded_weights(seed), released_kinds(12, seed))
    optimizer.zero_grad()
    loss.backward()
    grad = flat(p.grad for p in encoder.parameters())
    optimizer.step()
    return {"loss": loss.item(), "grad": grad, "step": flat(encoder.parameters()) - before}


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in tensors]).double()


def sketch(vector: torch.Tensor, n: int = 8, seed: int = 0) -> list[float]:
    """``n`` projections of ``vector`` on seeded Gaussian directions: a fingerprint that moves with
    any change of the vector, small enough to pin in a test."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, vector.numel(), generator=g, dtype=torch.float64)
    return (directions @ vector.double()).tolist()


# --- the released code ---------------------------------------------------------------------------
def load_released(path: Path) -> types.SimpleNamespace:
    """The release's modules imported from ``path`` (its folder first on sys.path), unedited."""
    path = Path(path).resolve()
    if not (path / "losses.py").is_file() or not (path / "model" / "graph_au_pre.py").is_file():
        raise SystemExit(f"{path}: not a checkout of the released AUNCE code (no losses.py, model/)")
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # its loss calls .cuda()
    try:
        import easydict  # noqa: F401
    except ImportError:  # its utils.py builds its command-line config with it; not used here
        shim = types.ModuleType("easydict")

        class EasyDict(dict):
            __getattr__ = dict.__getitem__
            __setattr__ = dict.__setitem__

        shim.EasyDict = EasyDict
        sys.modules["easydict"] = shim
    for name in ("losses", "utils", "model", "data_loader", "pre_process", "lr_schedule",
                 "conf_graph_au", "train_graph_au"):  # fmt: skip
        sys.modules.pop(name, None)  # e.g. benchmarks/losses.py, first on sys.path as the script's
    sys.path.insert(0, str(path))
    argv, sys.argv = sys.argv, sys.argv[:1]  # its conf_graph_au parses the command line
    try:
        import losses
        import train_graph_au
        from model import graph_au_pre
    finally:
        sys.argv = argv
    has_probability = "probability" in inspect.signature(losses.au_infonce_loss).parameters
    return types.SimpleNamespace(
        path=path,
        losses=losses,
        model=graph_au_pre,
        train=train_graph_au,
        preset="released" if has_probability else "released_v1",
        revision=_revision(path),
    )


def _revision(path: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if out:
        return out
    return "losses.py sha256 " + hashlib.sha256((path / "losses.py").read_bytes()).hexdigest()


def released_loss(rel, z, z_aug, labels, weights, seed) -> torch.Tensor:
    """The release's ``au_infonce_loss`` on (B, K, D) embeddings, called as its training loop
    calls it (its input is the encoder's output: L2-normalised, (B, D, K))."""
    inputs = F.normalize(z, dim=-1).transpose(1, 2)
    inputs_e = F.normalize(z_aug, dim=-1).transpose(1, 2)
    kwargs = {"probability": True} if rel.preset == "released" else {}
    torch.manual_seed(seed)  # its positive kinds: torch.rand(K) on the global generator
    return rel.losses.au_infonce_loss(
        inputs, inputs_e, labels.float(), weights.double(), temperature=TAU, **kwargs
    )


def released_net(rel, encoder):
    """The release's ``Graph_au_net_NCE`` around a copy of ``encoder``'s backbone, with the
    harness encoder's weights (its ``LinearBlock``, ``Head`` and ``GNN`` as released)."""
    m = rel.model
    k, _, d = encoder.head.afg.weight.shape
    net = m.Graph_au_net_NCE.__new__(m.Graph_au_net_NCE)
    torch.nn.Module.__init__(net)
    net.backbone = copy.deepcopy(encoder.backbone)
    net.in_channels, net.out_channels = encoder.backbone.out_dim, d
    net.global_linear = m.LinearBlock(net.in_channels, d)
    net.head = m.Head(d, k, encoder.head.fgg.neighbors, "dots")
    with torch.no_grad():
        for target, source, index in weight_map(net, encoder):
            target.copy_(index(source))
    return net


def weight_map(net, encoder):
    """(released tensor, harness tensor, harness -> released view) for every weight and batch-norm
    buffer: the harness's AFG holds the K per-AU LinearBlocks of the release in batched tensors."""
    h, r = encoder.head, net.head
    k, _, d = h.afg.weight.shape
    mine, theirs = (m.backbone.state_dict(keep_vars=True) for m in (encoder, net))
    pairs = [(theirs[name], mine[name], lambda t: t) for name in mine]  # the same module class
    for a, b in ((net.global_linear, h.global_linear), (r.gnn.U, h.fgg.U), (r.gnn.V, h.fgg.V),
                 (r.gnn.bnv, h.fgg.bnv)):  # fmt: skip
        sa, sb = a.state_dict(keep_vars=True), b.state_dict(keep_vars=True)
        pairs += [(sa[n], sb[n], lambda t: t) for n in sa]
    for i, block in enumerate(r.class_linears):
        cut = slice(i * d, (i + 1) * d)
        pairs += [
            (block.fc.weight, h.afg.weight, lambda t, i=i: t[i].T),
            (block.fc.bias, h.afg.bias, lambda t, i=i: t[i]),
            (block.bn.weight, h.afg.bn.weight, lambda t, c=cut: t[c]),
            (block.bn.bias, h.afg.bn.bias, lambda t, c=cut: t[c]),
            (block.bn.running_mean, h.afg.bn.running_mean, lambda t, c=cut: t[c]),
            (block.bn.running_var, h.afg.bn.running_var, lambda t, c=cut: t[c]),
        ]
    return pairs


def in_harness_layout(net, encoder, what) -> torch.Tensor:
    """The release's gradients (``what='grad'``) or weights (``'data'``) in the order of
    ``encoder.parameters()``, flattened: comparable with the harness's."""
    out = {id(p): torch.zeros_like(p) for p in encoder.parameters()}
    for target, source, index in weight_map(net, encoder):
        if id(source) not in out:
            continue  # a buffer
        value = getattr(target, what)
        view = index(out[id(source)])
        view.copy_(torch.zeros_like(view) if value is None else value)
    return flat(out[id(p)] for p in encoder.parameters())


def released_step(rel, seed: int, lr: float = 1e-3, weight_decay: float = 1e-6) -> dict:
    """Comparison 2, the release's side: its net, its loss, its optimizer settings."""
    encoder = harness_encoder(seed).train()
    net = released_net(rel, encoder).train()
    v1, v2, labels = step_inputs(seed)
    before = in_harness_layout(net, encoder, "data")
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay
    )  # train_graph_au.py's optimizer
    outputs, outputs_e = net(v1), net(v2)  # train_graphau_nce: two passes
    kwargs = {"probability": True} if rel.preset == "released" else {}
    torch.manual_seed(seed)
    loss = rel.losses.au_infonce_loss(
        outputs, outputs_e, labels.float(), seeded_weights(seed).double(), temperature=TAU,
        **kwargs,
    )  # fmt: skip
    optimizer.zero_grad()
    loss.backward()
    grad = in_harness_layout(net, encoder, "grad")
    optimizer.step()
    return {
        "loss": loss.item(),
        "grad": grad,
        "step": in_harness_layout(net, encoder, "data") - before,
    }


def compare_loss_level(rel, seed: int) -> dict:
    u, u_aug, labels = loss_inputs(seed)
    loss = released_loss(rel, u, u_aug, labels, seeded_weights(seed), seed)
    loss.backward()
    theirs = {"loss": loss.item(), "grad": torch.cat([u.grad.flatten(), u_aug.grad.flatten()])}
    ours = harness_loss_level(seed, rel.preset)
    return _differences(theirs, ours)


def compare_step(rel, seed: int, lr: float) -> dict:
    theirs, ours = released_step(rel, seed, lr), harness_step(seed, rel.preset, lr)
    out = _differences(theirs, ours)
    d = (theirs["step"] - ours["step"]).abs()
    out.update(
        step_sketch=sketch(theirs["step"]),
        step_norm=float(theirs["step"].norm()),
        step_max_abs_difference=float(d.max()),
        step_difference_norm=float(d.norm()),
        # AdamW's first step is about lr * sign(gradient): a weight whose gradient is 0 up to
        # rounding can step either way, so count the steps that differ by more than 1 % of lr
        steps_differing=int((d > 0.01 * lr).sum()),
        weights=int(d.numel()),
        lr=lr,
    )
    return out


def lockstep(rel, cache_dir, fold, warm, settings, seed, steps, loader=None) -> list[dict]:
    """``steps`` training steps of both from the same weights on the same batches, views and
    positive kinds: what remains of the free trajectories' differences once their random streams
    are shared. The views are the harness's (drawn with the run's settings), or with ``loader``
    (the release's DataLoader, :func:`released_loader`) the release's own. Per step both losses,
    the largest weight difference and the mean similarity of the first view's embeddings."""
    from aunce.data.augment import ViewSpec, augment_view, normalize, to_float
    from aunce.data.cache import open_cache
    from aunce.train import mean_similarity, training_statistics

    cache = open_cache(cache_dir)
    train_idx, _ = cache.split(fold)
    pre, image = settings["pretrain"], settings["config"]["image"]
    spec = ViewSpec.from_settings(pre, image["input_size"], colour=True)
    encoder = harness_encoder(seed, str(warm) if warm else None, 64, image["input_size"]).train()
    net = released_net(rel, encoder).train()
    weights, _ = training_statistics(cache, train_idx, "training split")
    ours = torch.optim.AdamW(encoder.parameters(), lr=pre["lr"], betas=(0.9, 0.999),
                             weight_decay=pre["weight_decay"])  # fmt: skip
    theirs = torch.optim.AdamW(net.parameters(), lr=pre["lr"], betas=(0.9, 0.999),
                               weight_decay=pre["weight_decay"])  # fmt: skip
    kwargs = {"probability": True} if rel.preset == "released" else {}
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_idx), generator=g).numpy()
    batches = iter(loader) if loader is not None else None
    rows = []
    for step in range(steps):
        if batches is not None:
            v1, v2, labels = next(batches)
            v1, v2, labels = v1.float(), v2.float(), labels.long()
        else:
            rows_idx = np.sort(train_idx[order[(step * 32) % len(order) :][:32]])
            x = to_float(torch.from_numpy(np.asarray(cache.images[rows_idx])))
            labels = torch.from_numpy(np.asarray(cache.labels[rows_idx])).long()
            v1, v2 = (normalize(augment_view(x, None, spec, g)[0], image["normalize"]) for _ in "12")
        kinds = released_kinds(labels.shape[1], seed + step)
        z1 = encoder(v1)
        loss = harness_loss(z1, encoder(v2), labels, rel.preset, weights, kinds)
        ours.zero_grad()
        loss.backward()
        ours.step()
        out, out_e = net(v1), net(v2)
        torch.manual_seed(seed + step)
        their_loss = rel.losses.au_infonce_loss(
            out, out_e, labels.float(), weights.double(), temperature=TAU, **kwargs
        )
        theirs.zero_grad()
        their_loss.backward()
        theirs.step()
        diff = (in_harness_layout(net, encoder, "data") - flat(encoder.parameters())).abs()
        rows.append({"step": step + 1, "released_loss": their_loss.item(), "harness_loss":
                     loss.item(), "max_weight_difference": float(diff.max()),
                     "mean_similarity": float(mean_similarity(z1))})  # fmt: skip
    return rows


def released_loader(rel, root, settings, seed):
    """The release's training DataLoader (its BP4D dataset, transforms and shuffling) on the list
    layout under ``root``, seeded as its set_env seeds, without worker processes."""
    pre, image = settings["pretrain"], settings["config"]["image"]
    conf = sys.modules["easydict"].EasyDict(
        dataset="BP4D", dataset_path=str(root), if_200=False, info_nce="enhance", fold=1,
        crop_size=image["input_size"], batch_size=pre["batch_size"], num_workers=0,
        gamma=pre["lr_step_factor"], stepsize=(pre["lr_step_epochs"] or [10**9])[0],
        probability=True, seed=seed, init_lr=pre["lr"], weight_decay=pre["weight_decay"],
    )  # fmt: skip
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    conf.gpu_ids = visible or ""
    rel.train.set_env(conf)  # its seeds (random, numpy, torch); it also sets CUDA_VISIBLE_DEVICES
    if visible is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    with contextlib.redirect_stdout(io.StringIO()):
        return conf, rel.train.get_dataloader(conf)[0]


def _differences(theirs: dict, ours: dict) -> dict:
    g = theirs["grad"] - ours["grad"]
    return {
        "released_loss": theirs["loss"],
        "harness_loss": ours["loss"],
        "loss_difference": abs(theirs["loss"] - ours["loss"]),
        "released_grad_norm": float(theirs["grad"].norm()),
        "grad_difference_norm": float(g.norm()),
        "grad_relative_difference": float(g.norm() / theirs["grad"].norm().clamp(min=1e-30)),
        "grad_sketch": sketch(theirs["grad"]),
    }


# --- trajectories --------------------------------------------------------------------------------
def export_list_layout(cache_dir: Path, fold: str, root: Path) -> tuple[np.ndarray, torch.Tensor]:
    """Fold ``fold``'s training frames of a cache as the release reads BP4D: PNG images and list
    files under ``root`` (``img_256x256``/``list_256x256`` for HEAD, ``img``/``list`` for the first
    version); returns the training rows and their AU weights."""
    from PIL import Image

    from aunce.data.cache import open_cache

    cache = open_cache(cache_dir)
    train_idx, _ = cache.split(fold)
    labels = np.asarray(cache.labels[train_idx])
    if (labels < 0).any():
        raise SystemExit(f"{cache_dir}: unknown labels (-1); the release reads 0/1 only")
    for folder in ("img_256x256", "list_256x256"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    paths = []
    for n, row in enumerate(train_idx):
        rel_path = f"{cache.manifest['subject'].iloc[row]}/{n:06d}.png"
        (root / "img_256x256" / rel_path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(cache.images[row])).save(root / "img_256x256" / rel_path)
        paths.append(rel_path)
    lists = root / "list_256x256"
    (lists / "BP4D_train_img_path_fold1.txt").write_text("\n".join(paths) + "\n")
    np.savetxt(lists / "BP4D_train_label_fold1.txt", labels, fmt="%d")
    for old, new in (("img", "img_256x256"), ("list", "list_256x256")):
        (root / old).symlink_to(new)
    return train_idx, au_weights(torch.from_numpy(labels.astype(np.int64)))


def released_settings(epochs: int, constant_lr: bool, preset: str) -> dict:
    """``aunce.train.pretrain``'s settings for the released reading: config/config.yaml with
    config/released.yaml's pretraining, image and encoder settings merged over it."""
    import yaml

    from aunce.config import check_config, merge_config, resolved_pretrain

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    overlay = yaml.safe_load((REPO / "config" / "released.yaml").read_text())
    for key in ("pretrain", "image", "encoders", "amp"):
        if key in overlay:
            cfg[key] = merge_config(cfg.get(key, {}), overlay[key]) if isinstance(
                overlay[key], dict) else overlay[key]  # fmt: skip
    cfg["methods"] = {"aunce": {"loss": "aunce", "preset": preset}}
    cfg["tables"] = {}
    check_config(cfg)
    pretrain = dict(resolved_pretrain(cfg, cfg["methods"]["aunce"]), epochs=epochs)
    if preset == "released_v1":  # that version's training script had no schedule
        pretrain.update(lr_step_epochs=[], lr_from_epoch_2=None)
    if constant_lr:
        pretrain["lr_from_epoch_2"] = None
    return {"config": cfg, "pretrain": pretrain}


def harness_trajectory(cache_dir, warm, settings, seed, threads, out) -> list[dict]:
    import pandas as pd

    from aunce.train import pretrain

    cfg = settings["config"]
    enc = dict(cfg["encoders"]["megraph"], name="megraph", pretrained=str(warm) if warm else None)
    run = {
        "dataset": "bp4d", "encoder": enc, "method": cfg["methods"]["aunce"],
        "method_name": "aunce_released", "pretrain": settings["pretrain"], "image": cfg["image"],
        "device": "cpu", "amp": "none", "threads": threads,
    }  # fmt: skip
    pretrain(cache_dir, run, [("1", seed)], out)
    history = pd.read_csv(Path(out) / "fold-1" / f"seed-{seed}" / "history.csv")
    return [
        {"epoch": int(r.epoch), "lr": float(r.lr), "loss": float(r.loss),
         "mean_similarity": float(r.mean_similarity)}
        for r in history.itertuples()
    ]  # fmt: skip


def released_trajectory(rel, root, weights, warm, settings, seed, threads) -> list[dict]:
    """The release's own epoch function on its own loader, from the harness encoder's weights."""
    from aunce.train import mean_similarity

    torch.set_num_threads(threads)
    pre, image = settings["pretrain"], settings["config"]["image"]
    encoder = harness_encoder(seed, str(warm) if warm else None, 64, image["input_size"])
    net = released_net(rel, encoder)
    train = rel.train
    conf, loader = released_loader(rel, root, settings, seed)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=conf.init_lr, betas=(0.9, 0.999), weight_decay=conf.weight_decay
    )
    epoch_fn = train.train_graphau_nce
    head = len(inspect.signature(epoch_fn).parameters) > 5  # HEAD: (conf, ..., lr, lr_scheduler)
    schedule = train.schedule_dict["step"] if head else None
    if head and pre.get("lr_from_epoch_2") is None:  # its function, its init_lr default replaced
        import functools

        schedule = functools.partial(schedule, init_lr=conf.init_lr)
    sims: list[float] = []
    calls = [0]

    def hook(module, args, output):
        calls[0] += 1
        if calls[0] % 2 == 1:  # net(inputs), then net(inputs_e): the first view
            sims.append(float(mean_similarity(output.transpose(1, 2))))

    handle = net.register_forward_hook(hook)
    rows = []
    try:
        for epoch in range(1, pre["epochs"] + 1):
            lr = optimizer.param_groups[0]["lr"]
            sims.clear()
            quiet = io.StringIO()  # its progress bars and prints
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                if head:
                    loss = epoch_fn(conf, net, loader, optimizer, epoch, weights.double(), lr,
                                    schedule)  # fmt: skip
                else:
                    loss = epoch_fn(net, loader, optimizer, epoch, weights.double())
            rows.append({"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "loss": loss,
                         "mean_similarity": float(np.mean(sims))})  # fmt: skip
    finally:
        handle.remove()
    return rows


# --- the command ---------------------------------------------------------------------------------
def header(threads: int) -> str:
    rev = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, git {rev or 'unknown'}, torch "
        f"{torch.__version__}, {platform.machine()}, {threads} torch thread(s)"
    )


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--released", type=Path, required=True, help="a checkout of the released code")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[3407, 3408])
    p.add_argument("--lr", type=float, default=1e-3, help="the one-step check's AdamW rate")
    p.add_argument("--cache", type=Path, help="a BP4D stand-in cache: also the trajectories")
    p.add_argument("--warm", type=Path, help="the tiny MEGraph warm start (backbone.pt)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=3407, help="the trajectories' seed")
    p.add_argument(
        "--constant-lr", action="store_true",
        help="the trajectories at the config's lr throughout (default: the release's schedule, "
        "which drops to 1e-5 after epoch 1 whatever its --init_lr)",
    )  # fmt: skip
    p.add_argument("--lockstep-steps", type=int, default=56, help="steps of the lockstep check")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/released_diff"))
    p.add_argument("--golden-out", type=Path, help="write the release's figures for the test")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rel = load_released(args.released)
    result = {
        "header": header(args.threads),
        "released": {"path": str(rel.path), "revision": rel.revision, "preset": rel.preset,
                     "version": VERSIONS[rel.preset]},  # fmt: skip
        "loss_level": {str(s): compare_loss_level(rel, s) for s in args.seeds},
        "one_step": {str(s): compare_step(rel, s, args.lr) for s in args.seeds},
    }
    if args.cache is not None:
        settings = released_settings(args.epochs, args.constant_lr, rel.preset)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            _, weights = export_list_layout(args.cache, "1", Path(tmp) / "lists")
            theirs = released_trajectory(rel, Path(tmp) / "lists", weights, args.warm, settings,
                                         args.seed, args.threads)  # fmt: skip
            released_seconds = time.perf_counter() - start
            start = time.perf_counter()
            ours = harness_trajectory(args.cache, args.warm, settings, args.seed, args.threads,
                                      Path(tmp) / "harness")  # fmt: skip
            harness_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result["lockstep"] = {"steps": args.lockstep_steps, "views": {}}
        with tempfile.TemporaryDirectory() as tmp:
            export_list_layout(args.cache, "1", Path(tmp))
            for views in ("harness", "released"):
                loader = None if views == "harness" else released_loader(
                    rel, Path(tmp), settings, args.seed)[1]  # fmt: skip
                result["lockstep"]["views"][views] = lockstep(
                    rel, args.cache, "1", args.warm, settings, args.seed, args.lockstep_steps,
                    loader,
                )  # fmt: skip
        result["lockstep"]["seconds"] = time.perf_counter() - start
        result["trajectory"] = {
            "cache": str(args.cache), "warm": str(args.warm), "fold": "1", "seed": args.seed,
            "epochs": args.epochs, "constant_lr": args.constant_lr,
            "pretrain": settings["pretrain"], "released": theirs, "harness": ours,
            "released_seconds": released_seconds, "harness_seconds": harness_seconds,
        }  # fmt: skip
    from aunce.io import write_json

    write_json(args.out / "released_diff.json", result)
    if args.golden_out is not None:  # one entry per version of the release, kept side by side
        pinned = json.loads(args.golden_out.read_text()) if args.golden_out.exists() else {}
        pinned[rel.preset] = golden(result)
        write_json(args.golden_out, pinned)
    print(summary(result))
    return result


def golden(result: dict) -> dict:
    """The release's figures of the loss-level and one-step checks, by seed, for the test."""
    keep = ("released_loss", "released_grad_norm", "grad_sketch")
    return {
        "released": result["released"],
        "made": result["header"],
        "loss_level": {s: {k: v[k] for k in keep} for s, v in result["loss_level"].items()},
        "one_step": {
            s: {**{k: v[k] for k in keep}, **{k: v[k] for k in ("step_sketch", "step_norm", "lr")}}
            for s, v in result["one_step"].items()
        },
    }


def summary(result: dict) -> str:
    rel = result["released"]
    lines = [
        f"{result['header']}; released code {rel['revision'][:12]} ({rel['version']}), "
        f"harness preset '{rel['preset']}'",
        "",
        "| check | seed | loss: released | harness | difference | gradient difference "
        "(relative) | AdamW steps differing > 1 % of lr |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for check in ("loss_level", "one_step"):
        for seed, v in result[check].items():
            steps = (
                f"{v['steps_differing']} of {v['weights']} (max {v['step_max_abs_difference']:.1e})"
                if "steps_differing" in v
                else "-"
            )
            lines.append(
                f"| {check.replace('_', ' ')} | {seed} | {v['released_loss']:.7f} | "
                f"{v['harness_loss']:.7f} | {v['loss_difference']:.1e} | "
                f"{v['grad_difference_norm']:.1e} ({v['grad_relative_difference']:.1e}) | {steps} |"
            )
    lock = result.get("lockstep")
    if lock:
        lines += ["", f"Lockstep, {lock['steps']} steps on the same batches, views and positive "
                  "kinds, from the same weights:", "",
                  "| views | largest loss difference | weight difference after the last step | "
                  "mean similarity of the steps |", "| --- | --- | --- | --- |"]  # fmt: skip
        for views, rows in lock["views"].items():
            worst = max(abs(r["released_loss"] - r["harness_loss"]) for r in rows)
            sim = np.mean([r["mean_similarity"] for r in rows])
            lines.append(f"| {views}'s | {worst:.1e} | {rows[-1]['max_weight_difference']:.1e} | "
                         f"{sim:.3f} |")  # fmt: skip
    traj = result.get("trajectory")
    if traj:
        schedule = (
            "the release's step_lr_scheduler: 1e-5 from epoch 2"
            if traj["pretrain"].get("lr_from_epoch_2")
            else "a constant learning rate"
        )
        lines += [
            "",
            f"Trajectory, fold {traj['fold']}, seed {traj['seed']}, {traj['epochs']} epochs "
            f"({schedule}); "
            f"{traj['released_seconds']:.0f} s released, {traj['harness_seconds']:.0f} s harness:",
            "",
            "| epoch | lr | loss: released | harness | mean similarity: released | harness |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a, b in zip(traj["released"], traj["harness"], strict=True):
            lines.append(
                f"| {a['epoch']} | {b['lr']:.0e} | {a['loss']:.4f} | {b['loss']:.4f} | "
                f"{a['mean_similarity']:.3f} | {b['mean_similarity']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="timm")  # its imports
    main()
