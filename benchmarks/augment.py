"""Augmentation fidelity (issue 11): what the similarity transform before the crop costs, and the
released code's pipeline settings against the harness's.

    .venv/bin/python benchmarks/augment.py [--rounds 3] [--subjects 12]
    .venv/bin/python benchmarks/augment.py --validate C --warm W [--seeds 3407,3408]

1. Per epoch, in the real training loop (``aunce.train``: the step, the loss, the optimizer) at the
   embedded default's geometry (``config/config.yaml``: 36 px cache, 32 px crops, batch 32, tiny
   MEGraph with D = 64) on a synthetic BP4D of ``--subjects`` x 64 frames (fold 1's training
   split): AUNCE and WCE with the similarity transform (config/paper.yaml's ranges) and without it,
   alternating A/B for ``--rounds`` rounds; median CPU seconds per epoch on one thread (the
   least noisy measure on a shared machine) and the ratio on/off.
2. Per batch at the paper's geometry (256 px cache, 224 px crops, batch 32) on this CPU: one view
   with and without the similarity transform, AUNCE's SimCLR view (harness settings) and the
   released code's (jitter 0.4/0.4/0.4/0.1, a 3 px blur always), without the encoder (wall
   clock, one thread).

3. ``--validate``: does the similarity transform change what the embedded default learns? WCE and
   AUNCE (the paper's betas) from the warm start ``W`` (``results/warmstart/megraph/backbone.pt``)
   at the default budget (10 epochs, lr 1e-3), with and without it, each scored on validation
   subjects carved from fold 1's training subjects of the cache ``C`` (never a test split:
   ``benchmarks/warmstart.py``'s ``validation_cache``).

Prints Markdown with the date, git revision, torch version, threads and CPU. The CPU is shared:
compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from loader import cpu_name, git_revision, median_seconds

from aunce.config import load_config
from aunce.data.augment import ViewSpec, augment_view
from aunce.data.cache import build_cache, open_cache
from aunce.data.synthetic import generate
from aunce.train import Loop, setup_run, train_epoch, training_statistics

REPO = Path(__file__).resolve().parent.parent
OFF = {"rotation": 0, "scale": 0, "translation": 0}
#: the paper protocol's ranges (config/paper.yaml; the schema's defaults)
ON = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["pretrain"]["similarity"]


def epoch_seconds(cache_dir: Path, method: str, similarity: dict, epochs: int = 2) -> float:
    """CPU seconds of this process in the last of ``epochs`` epochs of a fresh run (the first
    warms up): on a shared machine, CPU time moves far less with the other processes' load than
    the wall clock."""
    cfg = load_config(REPO / "config" / "config.yaml")
    settings = {
        "dataset": "bp4d",
        "encoder": {"name": "megraph", "size": "tiny", "feature_dim": 64},
        "method": cfg["methods"][method],
        "method_name": method,
        "pretrain": dict(cfg["pretrain"], epochs=epochs, similarity=similarity),
        "image": cfg["image"],
        "device": "cpu",
        "amp": "none",
    }
    cache = open_cache(cache_dir)
    loop = Loop(cache, cache.labels, torch.device("cpu"), None, False, 0)
    train_idx, _ = cache.split("1")
    weights, minority = training_statistics(cache, train_idx, "training split")
    run = setup_run(loop, train_idx, weights, minority, settings, "1", 3407)
    for epoch in range(1, epochs):
        train_epoch(run, loop, epoch)
    start = time.process_time()
    train_epoch(run, loop, epochs)
    return time.process_time() - start


def validate(cache: Path, warm: Path, seeds: list[int]) -> None:
    """Validation F1 with and without the similarity transform (section 3 of the module doc)."""
    import numpy as np
    import warmstart  # benchmarks/warmstart.py: the harness's three stages on a validation split

    cfg = load_config(REPO / "config" / "config.yaml")
    warmstart.PRETRAIN.update({k: cfg["pretrain"][k] for k in ("lr", "epochs")})
    warmstart.LINEAR_EVAL.update(weight_decay=cfg["pretrain"]["weight_decay"],
                                 betas=cfg["pretrain"]["betas"])  # fmt: skip
    print(warmstart.header(torch.get_num_threads()) + "\n")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        val = warmstart.validation_cache(cache, "1", 1 / 3, 0, Path(tmp) / "val")
        for name, sim in (("off", OFF), ("on", ON)):
            warmstart.PRETRAIN["similarity"] = sim
            for method in ("wce", "aunce"):
                for seed in seeds:
                    rec = warmstart.train_eval(
                        val, "validation", method, str(warm), cfg["pretrain"]["lr"],
                        cfg["pretrain"]["epochs"], "split", seed, 1, Path(tmp) / name / method,
                    )  # fmt: skip
                    rows.setdefault((method, name), []).append(rec)
    print("F1-macro on fold 1's validation subjects, mean ± std over seeds "
          f"{', '.join(map(str, seeds))}:\n")  # fmt: skip
    print("| method | similarity off | similarity on | all-positive |")
    print("| --- | --- | --- | --- |")
    for method in ("wce", "aunce"):
        cells = [warmstart.fmt([r["f1_macro"] for r in rows[method, n]]) for n in ("off", "on")]
        floor = 100 * np.mean([r["all_positive"] for r in rows[method, "off"]])
        print(f"| {method} | {cells[0]} | {cells[1]} | {floor:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--validate", type=Path, metavar="CACHE", help="section 3 on this cache")
    parser.add_argument("--warm", type=Path, help="--validate: the warm start's backbone.pt")
    parser.add_argument("--seeds", default="3407,3408", help="--validate: seeds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.validate:
        validate(args.validate, args.warm, [int(s) for s in args.seeds.split(",")])
        return  # CPU seconds of one thread: the least noisy measure on a shared CPU
    cfg = load_config(REPO / "config" / "config.yaml")

    print(f"# Augmentation benchmark, {datetime.date.today()}, git {git_revision()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        src = generate("bp4d", Path(tmp) / "data", n_subjects=args.subjects,
                       frames_per_subject=64, image_size=64)  # fmt: skip
        cache_dir = build_cache("synthetic", src, Path(tmp) / "cache", cfg["image"]["cache_size"])
        n = len(open_cache(cache_dir).split("1")[0])
        print(f"## Per epoch, config/config.yaml geometry, fold 1: {n} training frames\n")
        print(f"similarity on: {ON}\n")
        print("| method | CPU s/epoch off | CPU s/epoch on | on / off |")
        print("| --- | --- | --- | --- |")
        for method in ("aunce", "wce"):
            times = {"off": [], "on": []}
            for _ in range(args.rounds):
                for name, sim in (("off", OFF), ("on", ON)):
                    times[name].append(epoch_seconds(cache_dir, method, sim))
            off, with_sim = statistics.median(times["off"]), statistics.median(times["on"])
            print(f"| {method} | {off:.2f} | {with_sim:.2f} | {with_sim / off:.3f} |")

    print("\n## Per batch of 32 at 256 -> 224 px, augmentation only\n")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 256, 256, generator=gen)
    lm = torch.rand(32, 49, 2, generator=gen) * 200 + 28
    pretrain = dict(cfg["pretrain"], similarity=ON)
    released = dict(pretrain, jitter_strengths=[0.4, 0.4, 0.4, 0.1], blur=1.0, blur_kernel=3)
    specs = {
        "crop + flip": ViewSpec.from_settings(pretrain, 224, colour=False, similarity=False),
        "similarity + crop + flip": ViewSpec.from_settings(pretrain, 224, colour=False),
        "SimCLR view (harness)": ViewSpec.from_settings(pretrain, 224, colour=True),
        "SimCLR view (released: jitter 0.4, 3 px blur always, no similarity)":
            ViewSpec.from_settings(released, 224, colour=True, similarity=False),
    }  # fmt: skip
    print("| view | ms/batch |")
    print("| --- | --- |")
    for name, spec in specs.items():
        seconds = median_seconds(lambda spec=spec: augment_view(x, lm, spec, gen), 1.0)
        print(f"| {name} | {1000 * seconds:.1f} |")
    print(f"\n(total {time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
