"""The warm start (issue 14.3): does it solve the AU task alone, which learning rate, and does
AUNCE's negative term collapse the embeddings when training starts from it?

    python benchmarks/warmstart.py probe   --cache C --warm W [--encoders megraph,roi,...]
    python benchmarks/warmstart.py select  --cache C --warm W/megraph/backbone.pt --lrs 3e-5,1e-4,3e-4,1e-3
    python benchmarks/warmstart.py compare --cache C --warm W/megraph/backbone.pt --warm-lr X
    python benchmarks/warmstart.py cost    --caches bp4d=C1,disfa=C2,... --warm W --lr X

C is an aligned cache (``aunce cache``), W the folder of ``aunce warmstart`` outputs
(``<W>/<encoder>/backbone.pt``). Each command runs the harness's own stages in this process
(``aunce.train.pretrain``, ``aunce.evaluate.embed`` and ``linear_eval``, as a train-eval job does)
and writes one JSON record per run under ``--out`` plus a Markdown summary on stdout, headed by
date, git revision, torch version and threads.

- ``probe``: a linear probe of each encoder before any AU training, from random initialisation and
  from the warm start: the frozen per-AU embeddings, and the backbone's pooled features given to
  every AU, after re-estimating the batch-norm statistics on the fold's training images (no label
  is used). The all-positive predictor on the same test frames is the floor.
- ``select``: the warm regime's learning rate, chosen on validation subjects carved from a fold's
  training subjects (never its test split): the rate with the best mean validation F1 over the
  methods given (default WCE and AUNCE with the paper's betas).
- ``compare``: WCE and AUNCE (paper, released and no re-weighting betas), from scratch and warm
  started, on the same folds and seeds: test F1 against the all-positive predictor, the mean
  pairwise cosine similarity of the per-AU embeddings in each epoch's training batches (a global
  forward hook on the encoder), and of the final frozen test embeddings.
- ``cost``: seconds per pretraining epoch per method and dataset, and of embedding plus linear
  evaluation per run: the per-unit costs that size the default's budgets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aunce.data.augment import center_crop, normalize, to_float
from aunce.data.cache import open_cache
from aunce.encoders import create_encoder
from aunce.encoders.jaanet import JANet
from aunce.encoders.megraph import MEGraphEncoder
from aunce.encoders.resnet50 import ResNetEncoder
from aunce.encoders.roi import ROINets
from aunce.evaluate import embed, extract, fit_linear_head, linear_eval
from aunce.io import write_json
from aunce.metrics import detection_metrics
from aunce.train import pretrain, run_dir
from aunce.warmstart import pooled, trunk

REPO = Path(__file__).resolve().parent.parent
ENCODER_CLASSES = (MEGraphEncoder, ResNetEncoder, ROINets, JANet)
METHODS = {
    "wce": {"loss": "wce", "label": "WCE"},
    "aunce": {"loss": "aunce", "label": "AUNCE 1.2/0.4 (paper)"},
    "aunce_released_betas": {
        "loss": "aunce",
        "label": "AUNCE 1.2/0.8 (released betas)",
        "beta_minority": 1.2,
        "beta_majority": 0.8,
    },
    "aunce_beta1": {
        "loss": "aunce",
        "label": "AUNCE 1.0/1.0",
        "beta_minority": 1.0,
        "beta_majority": 1.0,
    },
    "wfl": {"loss": "wfl", "label": "WFL"},
}
IMAGE = {"cache_size": 36, "input_size": 32, "normalize": "imagenet"}  # the embedded default's
PRETRAIN = {
    "epochs": 10,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 1e-6,
    "betas": [0.9, 0.999],
    "lr_step_epochs": [],
    "lr_step_factor": 0.1,
    "color_jitter": 0.8,
    "blur": 0.5,
}
LINEAR_EVAL = {
    "epochs": 100,
    "optimizer": "adamw",
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 0.01,  # the figures in BENCHMARKS.md were measured with it (the default is now
    # null: as pretraining, 1e-6)
    "threshold": 0.5,
}


def header(threads: int) -> str:
    rev = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, git {rev or 'unknown'}, torch "
        f"{torch.__version__}, {platform.machine()}, {threads} torch thread(s), load "
        f"{' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}"
    )


def settings_of(dataset, encoder, method_name, pretrained, lr, epochs, threads) -> dict:
    """Per-stage settings as rules/common.smk builds them (pretrain_settings, embed_settings, ...)."""
    enc = {"name": encoder, "size": "tiny", "feature_dim": 64, "pretrained": pretrained}
    pre = {
        "dataset": dataset,
        "encoder": enc,
        "method": METHODS[method_name],
        "method_name": method_name,
        "pretrain": dict(PRETRAIN, lr=lr, epochs=epochs),
        "image": IMAGE,
        "device": "cpu",
        "amp": "none",
        "threads": threads,
    }
    emb = {"dataset": dataset, "image": IMAGE, "device": "cpu", "amp": "none", "threads": threads}
    lin = {
        "dataset": dataset,
        "encoder": enc,
        "method_name": method_name,
        "linear_eval": LINEAR_EVAL,
        "device": "cpu",
        "threads": threads,
    }
    return {"pretrain": pre, "embed": emb, "linear_eval": lin}


def mean_pairwise_similarity(z: torch.Tensor) -> float:
    """Mean over AUs of the mean cosine similarity of every pair of samples' embeddings: z (N, K, D)."""
    zn = torch.nn.functional.normalize(z.float(), dim=-1).transpose(0, 1)  # (K, N, D)
    gram = zn @ zn.transpose(1, 2)  # (K, N, N)
    n = gram.shape[-1]
    return float((gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)).mean() / (n * (n - 1)))


class SimilarityRecorder:
    """Records the mean pairwise similarity of every training batch's per-AU embeddings."""

    def __init__(self):
        self.values: list[float] = []

    def __enter__(self):
        def hook(module, args, output):
            if isinstance(module, ENCODER_CLASSES) and module.training:
                self.values.append(mean_pairwise_similarity(output.detach()))

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()

    def per_epoch(self, epochs: int) -> list[float]:
        """Mean per epoch; empty for JA-Net, whose training path calls forward_with_landmarks."""
        per = len(self.values) // epochs
        if per == 0:
            return []
        return [float(np.mean(self.values[e * per : (e + 1) * per])) for e in range(epochs)]


def train_eval(
    cache,
    dataset,
    method_name,
    pretrained,
    lr,
    epochs,
    fold,
    seed,
    threads,
    root,
    encoder="megraph",
):
    """One (fold, seed) run of a method through the harness's three stages; its record, with wall
    and CPU seconds (all threads of this process) of pretraining and of embedding + evaluation."""
    s = settings_of(dataset, encoder, method_name, pretrained, lr, epochs, threads)
    runs = [(str(fold), seed)]
    start, cpu_start = time.perf_counter(), time.process_time()
    with SimilarityRecorder() as rec:
        pretrain(cache, s["pretrain"], runs, root / "pretrain")
    pre_seconds, pre_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    embed(cache, root / "pretrain", s["embed"], runs, root / "embed")
    linear_eval(root / "embed", s["linear_eval"], runs, root / "eval")
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    metrics = json.loads((run_dir(root / "eval", str(fold), seed) / "metrics.json").read_text())
    data = np.load(run_dir(root / "embed", str(fold), seed) / "embeddings.npz")
    timing = json.loads((run_dir(root / "pretrain", str(fold), seed) / "timing.json").read_text())
    return {
        "method": method_name,
        "fold": str(fold),
        "seed": seed,
        "lr": lr,
        "epochs": epochs,
        "warm": pretrained is not None,
        "f1_macro": metrics["f1_macro"],
        "f1": metrics["f1"],
        "all_positive": metrics["all_positive"]["f1_macro"],
        "train_similarity": rec.per_epoch(epochs),
        "test_similarity": mean_pairwise_similarity(torch.from_numpy(data["test_z"])),
        "epoch_seconds": timing["epoch_seconds"],
        "pretrain_seconds": pre_seconds,
        "eval_seconds": total - pre_seconds,
        "pretrain_cpu_seconds": pre_cpu,
        "eval_cpu_seconds": total_cpu - pre_cpu,
        "encoder": encoder,
        "train_frames": timing["train_frames"],
    }


def fmt(values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    mean = 100 * float(np.mean(values))
    return (
        f"{mean:.1f} ± {100 * float(np.std(values, ddof=1)):.1f}"
        if len(values) > 1
        else f"{mean:.1f}"
    )


# --- probe ----------------------------------------------------------------------------------------
@torch.no_grad()
def recalibrate_batchnorm(model, images, idx, landmarks):
    """Batch-norm statistics re-estimated (cumulative average) on centre crops of ``images[idx]``."""
    from aunce.data.augment import crop_landmarks

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for start in range(0, len(idx), 256):
        chunk = np.sort(idx[start : start + 256])
        x, crop = center_crop(
            to_float(torch.from_numpy(np.ascontiguousarray(images[chunk]))), IMAGE["input_size"]
        )
        x = normalize(x, IMAGE["normalize"])
        if getattr(model, "needs_landmarks", False):
            model(x, crop_landmarks(torch.from_numpy(landmarks[chunk]), crop))
        else:
            model(x)
    return model.eval()


@torch.no_grad()
def backbone_features(encoder, name, images, idx):
    out = []
    body = trunk(encoder, name)
    for start in range(0, len(idx), 256):
        chunk = idx[start : start + 256]
        x, _ = center_crop(
            to_float(torch.from_numpy(np.ascontiguousarray(images[chunk]))), IMAGE["input_size"]
        )
        out.append(pooled(body(normalize(x, IMAGE["normalize"]))))
    return torch.cat(out)


def cmd_probe(args):
    cache = open_cache(args.cache)
    settings = {"image": IMAGE, "linear_eval": LINEAR_EVAL}
    rows = []
    for name in args.encoders:
        for init in ("random", "warm"):
            path = None if init == "random" else str(args.warm / name / "backbone.pt")
            for fold in args.folds:
                train_idx, test_idx = cache.split(fold)
                torch.manual_seed(args.seed)
                enc = create_encoder(
                    name,
                    len(cache.aus),
                    size="tiny",
                    pretrained=path,
                    aus=cache.aus,
                    feature_dim=64,
                    input_size=IMAGE["input_size"],
                )
                enc = recalibrate_batchnorm(enc, cache.images, train_idx, cache.landmarks)
                feats = {
                    "per-AU embeddings": (
                        extract(
                            enc,
                            cache.images,
                            train_idx,
                            settings,
                            torch.device("cpu"),
                            cache.landmarks,
                        ),
                        extract(
                            enc,
                            cache.images,
                            test_idx,
                            settings,
                            torch.device("cpu"),
                            cache.landmarks,
                        ),
                    ),
                    "backbone features": tuple(
                        backbone_features(enc, name, cache.images, i)[:, None]
                        .expand(-1, len(cache.aus), -1)
                        .numpy()
                        for i in (train_idx, test_idx)
                    ),
                }
                for what, (tr, te) in feats.items():
                    head = fit_linear_head(
                        torch.from_numpy(tr.astype(np.float32)),
                        torch.from_numpy(cache.labels[train_idx].astype(np.int64)),
                        settings,
                        args.seed,
                        torch.device("cpu"),
                    )
                    with torch.no_grad():
                        probs = torch.sigmoid(head(torch.from_numpy(te.astype(np.float32)))).numpy()
                    m = detection_metrics(cache.true_labels[test_idx], probs, cache.aus)
                    rec = {
                        "encoder": name,
                        "init": init,
                        "features": what,
                        "fold": fold,
                        "seed": args.seed,
                        "f1_macro": m["f1_macro"],
                        "f1": m["f1"],
                        "all_positive": m["all_positive"]["f1_macro"],
                    }
                    rows.append(rec)
                    print(
                        f"{name} {init} {what} fold {fold}: F1 {100 * m['f1_macro']:.1f} "
                        f"(all-positive {100 * m['all_positive']['f1_macro']:.1f})",
                        file=sys.stderr,
                    )
    write_json(args.out / "probe.json", rows)
    print(
        "| encoder | features | random init | warm start | all-positive |\n| --- | --- | --- | --- | --- |"
    )
    for name in args.encoders:
        for what in ("per-AU embeddings", "backbone features"):

            def pick(init, key="f1_macro", name=name, what=what):
                return [
                    r[key]
                    for r in rows
                    if (r["encoder"], r["init"], r["features"]) == (name, init, what)
                ]

            print(
                f"| {name} | {what} | {fmt(pick('random'))} | {fmt(pick('warm'))} | "
                f"{fmt(pick('random', 'all_positive'))} |"
            )


# --- learning-rate selection on validation subjects -----------------------------------------------
def validation_cache(cache_dir: Path, fold: str, fraction: float, seed: int, out: Path) -> Path:
    """A cache of fold ``fold``'s training rows only, a seeded ``fraction`` of its subjects marked
    'test' (the validation subjects; split 'split'), the rest 'train'. The test split is dropped."""

    cache = open_cache(cache_dir)
    train_idx, _ = cache.split(fold)
    manifest = cache.manifest.iloc[train_idx].reset_index(drop=True)
    subjects = sorted(manifest["subject"].unique())
    rng = np.random.default_rng(seed)
    held = set(rng.choice(subjects, size=max(1, round(fraction * len(subjects))), replace=False))
    manifest = manifest.drop(columns=[c for c in ("test_fold", "split") if c in manifest.columns])
    manifest["split"] = np.where(manifest["subject"].isin(held), "test", "train")
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", np.asarray(cache.images[train_idx]))
    np.save(out / "landmarks.npy", cache.landmarks[train_idx])
    manifest.to_csv(out / "manifest.csv", index=False)
    shutil.copyfile(Path(cache_dir) / "report.json", out / "report.json")
    from aunce.data.cache import FILES, sha256_file

    meta = dict(
        cache.meta,
        n_frames=len(manifest),
        source=f"{cache_dir} fold {fold} training split",
        validation_subjects=sorted(held),
        # this cache's own files, as every open checks them (aunce.data.cache.verify_cache)
        sha256={name: sha256_file(out / name) for name in FILES},
        bytes={name: (out / name).stat().st_size for name in FILES},
    )
    write_json(out / "cache.json", meta)
    return out


def all_positive(records) -> list[float]:
    """The all-positive predictor's F1 once per test split (fold) of the records."""
    return list(
        {r["fold"] + str(r.get("training_fold")): r["all_positive"] for r in records}.values()
    )


def cmd_select(args):
    """Validation F1 of each candidate rate (resumable: runs already in select.jsonl are kept)."""
    out = args.out / "select.jsonl"
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["regime"], r["lr"], r["method"], r["training_fold"], r["seed"]) for r in records}
    candidates = [("warm", lr) for lr in args.lrs]
    if args.scratch_lr:  # a reference row: the from-scratch default on the same validation split
        candidates.append(("scratch", args.scratch_lr))
    with tempfile.TemporaryDirectory() as tmp:
        for fold in args.folds:
            val = validation_cache(
                args.cache, fold, args.val_fraction, args.split_seed, Path(tmp) / f"val{fold}"
            )
            for regime, lr in candidates:
                for method in args.methods:
                    for seed in args.seeds:
                        if (regime, lr, method, fold, seed) in done:
                            continue
                        root = Path(tmp) / "runs"
                        warm = str(args.warm) if regime == "warm" else None
                        rec = train_eval(
                            val, "validation", method, warm, lr, args.epochs, "split", seed,
                            args.threads, root,
                        )  # fmt: skip
                        shutil.rmtree(root)
                        rec.update(regime=regime, training_fold=fold)
                        records.append(rec)
                        with out.open("a") as fh:
                            fh.write(json.dumps(rec) + "\n")
                        print(
                            f"fold {fold} {regime} lr {lr:g} {method} seed {seed}: validation F1 "
                            f"{100 * rec['f1_macro']:.1f}",
                            file=sys.stderr,
                        )
    print("F1-macro on the validation subjects, mean ± std over training folds and seeds:\n")
    print("| regime | lr | " + " | ".join(args.methods) + " | mean | all-positive |")
    print("| --- " * (len(args.methods) + 4) + "|")
    means = {}
    for regime, lr in candidates:
        rs = [r for r in records if (r["regime"], r["lr"]) == (regime, lr)]
        per = [[r["f1_macro"] for r in rs if r["method"] == m] for m in args.methods]
        means[regime, lr] = float(np.mean([np.mean(v) for v in per]))
        print(
            f"| {regime} | {lr:g} | "
            + " | ".join(fmt(v) for v in per)
            + f" | {100 * means[regime, lr]:.1f} | {100 * np.mean(all_positive(rs)):.1f} |"
        )
    best = max((c for c in candidates if c[0] == "warm"), key=means.get)
    print(f"\nchosen (best mean validation F1 of the warm candidates): lr {best[1]:g}")


# --- scratch versus warm ---------------------------------------------------------------------------
def cmd_compare(args):
    regimes = {"scratch": (None, args.scratch_lr), "warm": (str(args.warm), args.warm_lr)}
    out = args.out / "compare.jsonl"
    done = set()
    if out.exists():  # resumable: runs already recorded are skipped
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["regime"], r["method"], r["fold"], r["seed"]))
    with tempfile.TemporaryDirectory() as tmp:
        for regime, (pretrained, lr) in regimes.items():
            if regime not in args.regimes:
                continue
            for method in args.methods:
                for fold in args.folds:
                    for seed in args.seeds:
                        if (regime, method, str(fold), seed) in done:
                            continue
                        root = Path(tmp) / "runs"
                        rec = train_eval(
                            args.cache,
                            "bp4d",
                            method,
                            pretrained,
                            lr,
                            args.epochs,
                            fold,
                            seed,
                            args.threads,
                            root,
                        )
                        shutil.rmtree(root)
                        rec["regime"] = regime
                        with out.open("a") as fh:
                            fh.write(json.dumps(rec) + "\n")
                        print(
                            f"{regime} {method} fold {fold} seed {seed}: F1 {100 * rec['f1_macro']:.1f} "
                            f"similarity {rec['train_similarity'][0]:.3f} -> "
                            f"{rec['train_similarity'][-1]:.3f}"
                            f" (test {rec['test_similarity']:.3f})",
                            file=sys.stderr,
                        )
    summarize_compare(out)


def summarize_compare(path: Path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    print(
        "| regime | method | F1-macro (mean ± std over seeds) | all-positive | training-batch "
        "similarity, epochs 1 / 2 / 4 / last | test-embedding similarity |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for regime in dict.fromkeys(r["regime"] for r in records):
        for method in dict.fromkeys(r["method"] for r in records):
            rs = [r for r in records if (r["regime"], r["method"]) == (regime, method)]
            if not rs:
                continue
            seeds = sorted({r["seed"] for r in rs})
            per_seed = [np.mean([r["f1_macro"] for r in rs if r["seed"] == s]) for s in seeds]
            sim = np.mean([r["train_similarity"] for r in rs], axis=0)
            marks = [sim[i] for i in (0, 1, 3) if i < len(sim)] + [sim[-1]]
            print(
                f"| {regime} (lr {rs[0]['lr']:g}) | {METHODS[method]['label']} | {fmt(per_seed)} | "
                f"{100 * np.mean([r['all_positive'] for r in rs]):.1f} | "
                f"{' / '.join(f'{v:.3f}' for v in marks)} | "
                f"{np.mean([r['test_similarity'] for r in rs]):.3f} |"
            )


# --- per-unit costs ---------------------------------------------------------------------------------
def cmd_cost(args):
    """Seconds (wall and CPU) per pretraining epoch and per embedding + linear evaluation."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.caches:
            dataset, cache = item.split("=")
            fold = "1" if "test_fold" in open_cache(cache).manifest.columns else "split"
            for encoder in args.encoders:
                warm = str(args.warm / encoder / "backbone.pt") if args.warm else None
                for method in args.methods:
                    root = Path(tmp) / "runs"
                    rec = train_eval(
                        Path(cache), dataset, method, warm, args.lr, args.epochs, fold, 3407,
                        args.threads, root, encoder,
                    )  # fmt: skip
                    shutil.rmtree(root)
                    rec["dataset"] = dataset
                    rows.append(rec)
                    print(
                        f"{dataset} {encoder} {method}: {rec['epoch_seconds']:.2f} s/epoch, "
                        f"{rec['eval_seconds']:.1f} s embed + linear eval",
                        file=sys.stderr,
                    )
    write_json(args.out / "cost.json", rows)
    print(
        "| dataset | encoder | method | training frames (fold) | s / epoch | CPU s / epoch "
        "| s embed + linear eval | CPU s embed + linear eval |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['encoder']} | {r['method']} | {r['train_frames']} "
            f"({r['fold']}) | {r['epoch_seconds']:.2f} | "
            f"{r['pretrain_cpu_seconds'] / r['epochs']:.2f} | {r['eval_seconds']:.1f} | "
            f"{r['eval_cpu_seconds']:.1f} |"
        )


def main(argv=None):
    csv = lambda kind: lambda text: [kind(v) for v in text.split(",") if v]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("probe", "select", "compare", "cost"):
        q = sub.add_parser(name)
        q.add_argument("--out", type=Path, default=Path("results/benchmarks/warmstart"))
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--warm", type=Path, required=name != "cost")
        q.add_argument("--epochs", type=int, default=10)
        if name != "cost":
            q.add_argument("--cache", type=Path, required=True)
        if name == "probe":
            q.add_argument(
                "--encoders", type=csv(str), default=["megraph", "resnet50", "roi", "jaanet"]
            )
            q.add_argument("--folds", type=csv(str), default=["1", "2", "3"])
            q.add_argument("--seed", type=int, default=3407)
        if name == "select":
            q.add_argument("--lrs", type=csv(float), required=True)
            q.add_argument("--methods", type=csv(str), default=["wce", "aunce"])
            q.add_argument("--folds", type=csv(str), default=["1"])
            q.add_argument("--seeds", type=csv(int), default=[3407])
            q.add_argument("--val-fraction", type=float, default=1 / 3)
            q.add_argument("--split-seed", type=int, default=0)
            q.add_argument("--scratch-lr", type=float, help="also a from-scratch reference row")
        if name == "compare":
            q.add_argument("--scratch-lr", type=float, default=1e-3)
            q.add_argument("--warm-lr", type=float, required=True)
            q.add_argument("--regimes", type=csv(str), default=["scratch", "warm"])
            q.add_argument(
                "--methods",
                type=csv(str),
                default=["wce", "aunce", "aunce_released_betas", "aunce_beta1"],
            )
            q.add_argument("--folds", type=csv(str), default=["1", "2", "3"])
            q.add_argument("--seeds", type=csv(int), default=[3407, 3408])
        if name == "cost":
            q.add_argument("--caches", type=csv(str), required=True, help="name=cache,...")
            q.add_argument("--methods", type=csv(str), default=["wce", "aunce"])
            q.add_argument("--encoders", type=csv(str), default=["megraph"])
            q.add_argument("--lr", type=float, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.command}: {header(args.threads)}\n")
    {"probe": cmd_probe, "select": cmd_select, "compare": cmd_compare, "cost": cmd_cost}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
