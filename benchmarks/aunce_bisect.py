"""Which term of AUNCE collapses the embeddings, and by how much: a bisection from the released
code's loss to the paper's, one change at a time, on a stand-in fold with validation subjects.

    python benchmarks/aunce_bisect.py --cache C --warm W [--seeds 3407,3408] [--epochs 10]
                                      [--variants released,paper,...] [--out DIR]

C is a BP4D stand-in cache (``aunce cache``), W the tiny MEGraph warm start (``results/warmstart/
megraph/backbone.pt``). Every run is the harness's own pretraining, embedding and linear evaluation
(``aunce.train.pretrain``, ``aunce.evaluate.embed`` and ``linear_eval``) with the settings of
``config/config.yaml`` (data geometry, encoder, warm start, learning rate, linear evaluation),
trained on fold 1's training subjects less a third of them, held out as validation subjects (the
fold's test subjects are never read). Each variant changes one thing from the one above it:

    released             the released loss (``preset: released``) with its colour jitter and blur
    others               + "max" and "mean" over same-label samples of other images (Same(a)), not
                           over every same-label sample with the anchor itself
    prototype            + the "mean" kind as the paper's prototype (Eq. 10), not a mean of exp-sims
    minority_beta        + beta by the AU's minority label (1.2 minority / 0.8), not by the anchor's
                           label (1.2 for 1, 0.8 for 0)
    per_anchor           + one kind per (anchor, AU) at the paper's (0.15, 0.15, 0.7, 0), and lambda:
                           the paper's reading with beta_majority 0.8
    paper_released_aug   + beta_majority 0.4: the paper's reading, still the released jitter and blur
    paper                + the default's SimCLR jitter and blur: the paper's reading as the harness runs it

and beside the chain: ``released_default_aug`` (the released loss with the default's augmentation),
``released_beta04`` (the released loss with beta 0.4 for anchors labelled 0), ``paper_beta08`` and
``paper_beta1`` (the paper's reading with beta_majority 0.8, and with no re-weighting),
``paper_resized_crop`` (the paper's reading with SimCLR's random resized crop, Sec. 3.3.2) and
``wce``. ``--cost ROUNDS`` measures instead what an epoch of each reading of the default costs
(CPU seconds, alternating). The intermediate losses are :func:`bisect_loss`, whose two ends are
exactly the harness's released and paper readings (tests/test_aunce_bisect.py).

Writes one JSON record per run to ``<out>/bisect.jsonl`` (resumable: runs already there are kept),
``<out>/bisect.json`` (the records and the summary) and ``<out>/bisect.md``: per variant the mean
batch similarity of its training batches' per-AU embeddings after each epoch (1: collapsed) and the
validation F1-macro, mean over seeds, with the all-positive predictor on the same frames.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # warmstart.py; this module by name
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

from aunce.losses import (  # noqa: E402
    PAPER_POSITIVE_PROBS,
    RELEASED_POSITIVE_PROBS,
    _check_weights,
    _masked_au_mean,
    _minority,
    cosine_similarities,
    draw_positive_kinds,
)

#: the released code's augmentation of its views (pre_process.py's image_train_enhance)
RELEASED_AUG = {"jitter_strengths": [0.4, 0.4, 0.4, 0.1], "blur": 1.0, "blur_kernel": 3}
SIMCLR_CROP = {"scale": [0.08, 1.0], "ratio": [0.75, 4 / 3]}


def bisect_loss(
    z,
    z_aug,
    labels,
    *,
    au_weights=None,
    minority_label=None,
    generator=None,
    positives: str = "all",
    mean: str = "exp_2b",
    beta_by: str = "label",
    kinds: str = "per_au",
    tau: float = 0.5,
    beta_minority: float = 1.2,
    beta_majority: float = 0.8,
    positive_probs=RELEASED_POSITIVE_PROBS,
):
    """AUNCE with each difference between the released code and the paper as a switch.

    ``positives``: ``all`` (every same-label sample, the anchor itself included: the release) or
    ``others`` (same-label samples of other images, Same(a): the paper; an anchor with none falls
    back to the twin view). ``mean``: the "mean" kind (kind 2) as ``exp_2b`` (the sum of
    exp(s / tau) over the positives divided by 2B: the release), ``exp`` (their mean) or
    ``prototype`` (exp of the similarity to the mean embedding, Eq. 10: the paper). ``beta_by``:
    ``label`` (beta_minority for anchors labelled 1: the release) or ``minority`` (for anchors of
    the AU's minority label: the paper). ``kinds``: ``per_au`` (one kind per AU per batch: the
    release) or ``per_anchor`` (per anchor and AU: the paper). Kind 3 is the least similar positive.
    ``positives='all', mean='exp_2b', beta_by='label', kinds='per_au'`` is
    ``aunce_loss(variant='released')``; ``'others', 'prototype', 'minority', 'per_anchor'`` is
    ``aunce_loss(variant='paper')`` (same draws from ``generator``).
    """
    b, k, _ = z.shape
    labels = torch.as_tensor(labels, device=z.device)
    sim = cosine_similarities(torch.cat([z, z_aug]).float())  # (k, a, j)
    y = torch.cat([labels, labels]).T
    known = y >= 0
    both = known[:, :, None] & known[:, None, :]
    same_label = (y[:, :, None] == y[:, None, :]) & both
    negative = both & ~same_label
    twin = (torch.arange(2 * b, device=z.device) + b) % (2 * b)
    s_twin = sim.gather(2, twin.view(1, -1, 1).expand(k, -1, 1)).squeeze(-1)
    image = torch.arange(2 * b, device=z.device) % b
    pool = same_label if positives == "all" else same_label & (image[:, None] != image[None, :])
    n_pool = pool.sum(-1)
    scaled = (sim / tau).masked_fill(~pool, float("-inf"))
    log_max = scaled.amax(-1)
    log_min = (sim / tau).masked_fill(~pool, float("inf")).amin(-1)
    if mean == "exp_2b":
        log_mean = torch.logsumexp(scaled, -1) - math.log(2 * b)
    elif mean == "exp":
        log_mean = torch.logsumexp(scaled, -1) - torch.log(n_pool.clamp(min=1).to(sim.dtype))
    elif mean == "prototype":
        log_mean = (sim * pool).sum(-1) / n_pool.clamp(min=1) / tau
    else:
        raise ValueError(f"mean must be exp_2b, exp or prototype, got {mean}")
    rows = 1 if kinds == "per_au" else 2 * b
    kind = draw_positive_kinds(rows, k, positive_probs, generator).expand(2 * b, k)
    kind = kind.to(z.device).T
    kind = torch.where((n_pool > 0) | (kind == 1), kind, torch.ones_like(kind))
    candidates = torch.stack([log_max, s_twin / tau, log_mean, log_min], -1)
    pos_logit = candidates.gather(-1, kind.unsqueeze(-1)).squeeze(-1)
    if beta_by == "label":
        beta = torch.where(y == 1, beta_minority, beta_majority)
    else:
        minority = _minority(minority_label, k, z.device)
        beta = torch.where(y == minority[:, None], beta_minority, beta_majority)
    neg = (beta.to(sim.dtype)[:, :, None] * sim / tau).masked_fill(~negative, float("-inf"))
    per_anchor = torch.logsumexp(torch.cat([pos_logit.unsqueeze(-1), neg], -1), -1) - pos_logit
    weights = _check_weights(au_weights, k, per_anchor)
    return _masked_au_mean(per_anchor.T, known.T, weights)


def _custom(label: str, au_weights: bool, aug: dict | None, **options) -> dict:
    method = {"loss": "aunce_bisect:bisect_loss", "kind": "contrastive", "label": label,
              "au_weights": au_weights, "options": options}  # fmt: skip
    if aug:
        method["pretrain"] = aug
    return method


_PAPERISH = {"positives": "others", "mean": "prototype"}
#: name: method (a config entry), in the chain's order, then the variants beside it
VARIANTS = {
    "released": {"loss": "aunce", "preset": "released", "label": "released (HEAD)",
                 "pretrain": RELEASED_AUG},
    "others": _custom("+ positives among other images", False, RELEASED_AUG,
                      positives="others", mean="exp"),
    "prototype": _custom("+ prototype", False, RELEASED_AUG, **_PAPERISH),
    "minority_beta": _custom("+ beta by minority label", False, RELEASED_AUG, **_PAPERISH,
                             beta_by="minority"),
    "per_anchor": _custom("+ kind per anchor, paper probabilities, lambda", True, RELEASED_AUG,
                          **_PAPERISH, beta_by="minority", kinds="per_anchor",
                          positive_probs=list(PAPER_POSITIVE_PROBS)),
    "paper_released_aug": {"loss": "aunce", "label": "+ beta_majority 0.4 (paper, released aug)",
                           "pretrain": RELEASED_AUG},
    "paper": {"loss": "aunce", "label": "+ SimCLR jitter and blur (paper, default aug)"},
    "released_default_aug": {"loss": "aunce", "preset": "released",
                             "label": "released loss, default aug"},
    "released_beta04": {"loss": "aunce", "preset": "released", "beta_majority": 0.4,
                        "label": "released loss, beta 0.4 for label 0", "pretrain": RELEASED_AUG},
    "paper_beta08": {"loss": "aunce", "beta_majority": 0.8, "label": "paper, beta_majority 0.8"},
    "paper_beta1": {"loss": "aunce", "beta_minority": 1.0, "beta_majority": 1.0,
                    "label": "paper, no re-weighting (1 / 1)"},
    "paper_resized_crop": {"loss": "aunce", "label": "paper, random resized crop 0.08-1",
                           "pretrain": {"resized_crop": SIMCLR_CROP}},
    "wce": {"loss": "wce", "label": "WCE"},
}  # fmt: skip


def load_default() -> dict:
    """config/config.yaml, validated, with the schema's defaults filled in."""
    from aunce.config import load_config

    return load_config(REPO / "config" / "config.yaml")


def run_variant(name, cfg, cache, warm, seed, epochs, threads, root) -> dict:
    """One run of a variant on the validation cache; its record."""
    from aunce.config import resolved_linear_eval, resolved_pretrain
    from aunce.evaluate import embed, linear_eval
    from aunce.train import pretrain, run_dir

    method = VARIANTS[name]
    enc = dict(cfg["encoders"]["megraph"], name="megraph", pretrained=str(warm))
    enc.pop("image", None)
    pre = dict(resolved_pretrain(cfg, method), epochs=epochs)
    common = {"dataset": "validation", "device": "cpu", "amp": "none", "threads": threads}
    linear = dict(resolved_linear_eval(cfg, None, method), au_weights=True)  # the same for all
    runs = [("split", seed)]
    start = time.perf_counter()
    pretrain(cache, {**common, "encoder": enc, "method": method, "method_name": name,
                     "pretrain": pre, "image": cfg["image"]}, runs, root / "pretrain")  # fmt: skip
    seconds = time.perf_counter() - start
    embed(cache, root / "pretrain", {**common, "image": cfg["image"]}, runs, root / "embed")
    linear_eval(root / "embed", {**common, "encoder": enc, "method_name": name,
                                 "linear_eval": linear}, runs, root / "eval")  # fmt: skip
    metrics = json.loads((run_dir(root / "eval", "split", seed) / "metrics.json").read_text())
    history = (run_dir(root / "pretrain", "split", seed) / "history.csv").read_text().splitlines()
    cols = history[0].split(",")
    rows = [dict(zip(cols, map(float, line.split(",")), strict=True)) for line in history[1:]]
    return {
        "variant": name,
        "seed": seed,
        "epochs": epochs,
        "similarity": [r["mean_similarity"] for r in rows],
        "loss": [r["loss"] for r in rows],
        "f1_macro": metrics["f1_macro"],
        "all_positive": metrics["all_positive"]["f1_macro"],
        "pretrain_seconds": seconds,
    }


def epoch_cpu_seconds(cache, method_name: str, cfg: dict, epochs: int = 2) -> float:
    """CPU seconds of this process in the last of ``epochs`` epochs of a fresh run of a method of
    config/config.yaml on fold 1 (the first warms up): CPU time moves far less with the other
    processes' load than the wall clock (benchmarks/augment.py)."""
    from aunce.config import resolved_pretrain
    from aunce.data.cache import open_cache
    from aunce.train import Loop, setup_run, train_epoch, training_statistics

    method = cfg["methods"][method_name]
    settings = {
        "dataset": "bp4d", "encoder": {"name": "megraph", "size": "tiny", "feature_dim": 64},
        "method": method, "method_name": method_name,
        "pretrain": dict(resolved_pretrain(cfg, method), epochs=epochs), "image": cfg["image"],
        "device": "cpu", "amp": "none",
    }  # fmt: skip
    cache = open_cache(cache)
    loop = Loop(cache, cache.labels, torch.device("cpu"), None, False, 0)
    train_idx, _ = cache.split("1")
    weights, minority = training_statistics(cache, train_idx, "training split")
    run = setup_run(loop, train_idx, weights, minority, settings, "1", 3407)
    for epoch in range(1, epochs):
        train_epoch(run, loop, epoch)
    start = time.process_time()
    train_epoch(run, loop, epochs)
    return time.process_time() - start


def cost(cache, rounds: int) -> str:
    """Per-epoch CPU seconds of the default's two readings of AUNCE and WCE, alternating."""
    cfg = load_default()
    names = ["aunce", "aunce_released", "wce"]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for name in names:
            seconds[name].append(epoch_cpu_seconds(cache, name, cfg))
    med = {n: float(np.median(v)) for n, v in seconds.items()}
    lines = [f"{header(1)}; {cache}, fold 1, config/config.yaml's methods, median of {rounds} "
             "alternating rounds, CPU seconds of one epoch:", "",
             "| method | CPU s/epoch | / aunce |", "| --- | --- | --- |"]  # fmt: skip
    lines += [f"| {n} | {med[n]:.2f} | {med[n] / med['aunce']:.2f} |" for n in names]
    return "\n".join(lines)


def summarise(records: list[dict], names: list[str], epochs: int) -> tuple[list[dict], str]:
    shown = sorted({0, 1, 2, 4, epochs - 1} & set(range(epochs)))
    rows, lines = [], [
        "| variant | what changes | similarity after epoch "
        + ", ".join(str(e + 1) for e in shown)
        + " | validation F1-macro |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        rs = [r for r in records if r["variant"] == name and r["epochs"] == epochs]
        if not rs:
            continue
        sim = np.mean([r["similarity"] for r in rs], axis=0)
        f1 = [100 * r["f1_macro"] for r in rs]
        spread = f" ± {np.std(f1, ddof=1):.1f}" if len(f1) > 1 else ""
        rows.append({"variant": name, "label": VARIANTS[name]["label"], "seeds": len(rs),
                     "similarity": sim.tolist(), "f1_macro": float(np.mean(f1))})  # fmt: skip
        lines.append(
            f"| {name} | {VARIANTS[name]['label']} | "
            + " / ".join(f"{sim[e]:.3f}" for e in shown)
            + f" | {np.mean(f1):.1f}{spread} ({len(f1)} seeds) |"
        )
    floor = [100 * r["all_positive"] for r in records]
    if floor:
        lines.append(f"\nAll-positive predictor on the same validation frames: {np.mean(floor):.1f}.")
    return rows, "\n".join(lines)


def header(threads: int) -> str:
    import os

    rev = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, git {rev or 'unknown'}, torch "
        f"{torch.__version__}, {platform.machine()}, {threads} torch thread(s), load {load}"
    )


def main(argv=None) -> None:
    from warmstart import validation_cache

    from aunce.io import write_json, write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="a BP4D stand-in cache")
    p.add_argument("--warm", type=Path, help="the tiny MEGraph warm start (not for --cost)")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[3407, 3408])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    p.add_argument("--fold", default="1", help="the training fold whose subjects are split")
    p.add_argument("--val-fraction", type=float, default=1 / 3)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/aunce_bisect"))
    p.add_argument(
        "--cost", type=int, metavar="ROUNDS",
        help="instead: the CPU seconds per epoch of the default's two readings and WCE",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.cost:
        torch.set_num_threads(args.threads)
        print(cost(args.cache, args.cost))
        return
    if args.warm is None:
        raise SystemExit("--warm: the tiny MEGraph warm start is needed (backbone.pt)")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    cfg = load_default()
    jsonl = args.out / "bisect.jsonl"
    records = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    done = {(r["variant"], r["seed"], r["epochs"]) for r in records}
    with tempfile.TemporaryDirectory() as tmp:
        val = validation_cache(args.cache, args.fold, args.val_fraction, args.split_seed,
                               Path(tmp) / "validation")  # fmt: skip
        for seed in args.seeds:
            for name in args.variants:
                if (name, seed, args.epochs) in done:
                    continue
                root = Path(tmp) / "runs"
                rec = run_variant(name, cfg, val, args.warm, seed, args.epochs, args.threads, root)
                shutil.rmtree(root)
                rec.update(fold=args.fold, header=header(args.threads))
                records.append(rec)
                args.out.mkdir(parents=True, exist_ok=True)
                with jsonl.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(
                    f"{name} seed {seed}: similarity {rec['similarity'][0]:.3f} -> "
                    f"{rec['similarity'][-1]:.3f}, validation F1 {100 * rec['f1_macro']:.1f}",
                    file=sys.stderr,
                )
    rows, table = summarise(records, args.variants, args.epochs)
    text = (
        f"{header(args.threads)}. {args.cache}, fold {args.fold}'s training subjects, "
        f"{args.val_fraction:.2f} of them held out for validation (split seed {args.split_seed}); "
        f"{args.epochs} epochs from the warm start {args.warm}, config/config.yaml's settings.\n\n"
        + table
    )
    write_json(args.out / "bisect.json", {"records": records, "summary": rows})
    write_text(args.out / "bisect.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
