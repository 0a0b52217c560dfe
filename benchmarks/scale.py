"""Scale: the cache, embedding and linear evaluation at Aff-Wild2's frame count, on this CPU.

    python benchmarks/scale.py run --data DATA --work WORK [--cache-size 32 --input-size 28]
    python benchmarks/scale.py fused --before OLD_CHECKOUT --work WORK [--repeats 3]
    python benchmarks/scale.py random-cache --out CACHE --frames N [--size 16]

``run`` takes a synthetic dataset (``aunce synth --profile affwild2 ...``) through the workflow's
own commands, each in a process of its own under ``/usr/bin/time -v`` (wall and CPU seconds, peak
resident memory): ``aunce cache`` (aligning every face into the memory-mapped cache), ``aunce
embed`` (the frozen encoder's per-AU embeddings of the training and test splits, streamed to
disk) and ``aunce linear-eval`` (a linear head trained on minibatches read from the memory-mapped
embeddings, then the test split scored). The encoder is a tiny MEGraph pretrained one epoch (WCE)
on a small cache of random faces of the same AUs and size: embedding and evaluation cost the same
whatever its weights. A Markdown table of the stages goes to stdout, the records to
``WORK/scale.json``.

``fused`` times the CPU default's fused ``aunce train-eval`` job (pretraining, embedding and
linear evaluation of one BP4D cell of config/config.yaml: the default's data, image, encoder and
linear evaluation, WCE and AUNCE on fold 1, seed 3407, 2 epochs) with this checkout's code and with
another's (``--before``: a folder holding an older ``aunce`` package), alternating, each in its
own process: CPU seconds and the ratio, and whether their metrics and predictions are identical.

``random-cache`` writes a cache of random faces and labels in the cache's format (the ``scale``
test's data: a cache of N frames in a second, where generating and aligning faces would take
minutes).

Peak resident memory counts every page of a memory-mapped file the process has touched; the
readers release those pages as they go (:mod:`aunce.data.loader`), so the peak is what the process
holds, not the size of its files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
AFFWILD2_AUS = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25",
                "AU26"]  # fmt: skip


# --- measuring a process ------------------------------------------------------------------------
def measured(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v`` (when present), its output to ``log``: wall and
    CPU seconds and peak resident memory (MB) of the process and its children."""
    env = dict(os.environ if env is None else env)
    timer = shutil.which("time", path="/usr/bin:/bin")
    start = time.perf_counter()
    with open(log, "w") as fh:
        if timer:
            proc = subprocess.run([timer, "-v", *cmd], stdout=fh, stderr=subprocess.STDOUT, env=env)
        else:  # the children's usage as Python sees it
            code = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
                    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
                    "print(f'\\tUser time (seconds): {u.ru_utime}\\n\\tSystem time (seconds): "
                    "{u.ru_stime}\\n\\tMaximum resident set size (kbytes): {u.ru_maxrss}'); "
                    "sys.exit(rc)")  # fmt: skip
            proc = subprocess.run([sys.executable, "-c", code, *cmd], stdout=fh,
                                  stderr=subprocess.STDOUT, env=env)  # fmt: skip
    wall = time.perf_counter() - start
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{text[-3000:]}")

    def field(name):
        return float(re.search(rf"{re.escape(name)}: ([\d.]+)", text)[1])

    return {"wall_s": wall, "cpu_s": field("User time (seconds)") + field("System time (seconds)"),
            "max_rss_mb": field("Maximum resident set size (kbytes)") / 1024}  # fmt: skip


# --- data ---------------------------------------------------------------------------------------
def random_cache(out: Path, frames: int, size: int = 16, aus=AFFWILD2_AUS, seed: int = 0,
                 train_fraction: float = 0.76) -> Path:  # fmt: skip
    """A cache (aunce.data.cache's layout) of ``frames`` random faces of ``size`` px, random labels
    (each AU active in about 30 % of the frames), the first ``train_fraction`` of the frames the
    training split and the rest the test split (fold ``split``), no landmarks."""
    import pandas as pd

    from aunce.data.cache import CACHE_VERSION, FILES, sha256_file
    from aunce.io import write_json

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(out / "images.npy", "w+", np.uint8, (frames, size, size, 3))
    for start in range(0, frames, 65536):  # in blocks: this is itself a big-data writer
        stop = min(start + 65536, frames)
        images[start:stop] = rng.integers(0, 256, (stop - start, size, size, 3), np.uint8)
    images.flush()
    del images
    np.save(out / "landmarks.npy", np.full((frames, 49, 2), np.nan, np.float32))
    subjects = np.arange(frames) // 1000
    train = np.arange(frames) < round(train_fraction * frames)
    manifest = pd.DataFrame({
        "image": [f"images/s{s}/{i}.png" for i, s in enumerate(subjects)],
        "subject": [f"s{s:05d}" for s in subjects], "sequence": "clip",
        "frame": np.arange(frames), "split": np.where(train, "train", "test"),
    })  # fmt: skip
    for au in aus:
        manifest[au] = (rng.random(frames) < 0.3).astype(np.int8)
    manifest.to_csv(out / "manifest.csv", index=False)
    write_json(out / "report.json", {"frames": frames, "dropped": {}})
    write_json(out / "cache.json", {"cache_version": CACHE_VERSION, "reader": "random",
                                    "source": "benchmarks/scale.py", "size": size,
                                    "aligned_input": True, "n_frames": frames, "aus": list(aus),
                                    "sha256": {n: sha256_file(out / n) for n in FILES},
                                    "bytes": {n: (out / n).stat().st_size for n in FILES}})  # fmt: skip
    return out


def stage_settings(cache_size: int, input_size: int, feature_dim: int, linear_epochs: int,
                   encoder: str = "megraph") -> dict[str, dict]:  # fmt: skip
    """Settings of the pretrain, embed and linear-eval stages as the workflow resolves them, for a
    tiny ``encoder`` with per-AU embeddings of ``feature_dim``."""
    from aunce.config import load_config, resolved_linear_eval

    cfg = load_config(REPO / "config" / "config.yaml")
    image = {"cache_size": cache_size, "input_size": input_size, "normalize": "imagenet"}
    common = {"dataset": "affwild2", "device": "cpu", "amp": "none", "threads": 0}
    linear = dict(resolved_linear_eval(cfg, "affwild2"), epochs=linear_epochs)
    return {
        "pretrain": dict(common, encoder={"name": encoder, "size": "tiny", "pretrained": None,
                                          "feature_dim": feature_dim},
                         method=cfg["methods"]["wce"], method_name="wce",
                         pretrain=dict(cfg["pretrain"], epochs=1), image=image,
                         channels_last=False, compile=False),
        "embed": dict(common, image=image, channels_last=False),
        "linear_eval": dict(common, encoder={"name": encoder}, method_name="wce",
                            linear_eval=linear),
    }  # fmt: skip


def aunce(*args) -> list[str]:
    return [sys.executable, "-m", "aunce", *map(str, args)]


def embed_and_evaluate(cache: Path, models: Path, work: Path, settings: dict, runs: str = "split:0",
                       env: dict | None = None) -> dict:  # fmt: skip
    """``aunce embed`` and ``aunce linear-eval`` of one run, each measured in its own process."""
    out = {}
    out["embed"] = measured(aunce("embed", "--cache", cache, "--models", models, "--settings",
                                  json.dumps(settings["embed"]), "--runs", runs, "--out",
                                  work / "embed"), work / "embed.log", env)  # fmt: skip
    out["linear_eval"] = measured(aunce("linear-eval", "--embeddings", work / "embed", "--settings",
                                        json.dumps(settings["linear_eval"]), "--runs", runs,
                                        "--out", work / "eval"), work / "eval.log", env)  # fmt: skip
    return out


def pretrained_model(root: Path, settings: dict, aus=AFFWILD2_AUS, frames: int = 2000) -> Path:
    """The tiny encoder of ``settings`` pretrained one epoch (WCE) on ``frames`` random faces:
    ``root/models``."""
    from aunce.train import pretrain

    size = settings["pretrain"]["image"]["cache_size"]
    cache = random_cache(root / "model-cache", frames, size, aus)
    pretrain(cache, settings["pretrain"], [("split", 0)], root / "models")
    return root / "models"


# --- the run ------------------------------------------------------------------------------------
def run(args) -> None:
    from aunce.data.cache import open_cache

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    settings = stage_settings(args.cache_size, args.input_size, args.feature_dim,
                              args.linear_epochs)  # fmt: skip
    records = {}
    cache = work / "cache"
    if not (cache / "cache.json").exists():
        records["cache"] = measured(aunce("cache", "--reader", "synthetic", "--root", args.data,
                                          "--out", cache, "--size", args.cache_size, "--workers",
                                          args.workers), work / "cache.log")  # fmt: skip
    opened = open_cache(cache)
    train_idx, test_idx = opened.split("split")
    frames = {"total": len(opened.manifest), "train": len(train_idx), "test": len(test_idx)}
    del opened
    models = pretrained_model(work, settings)
    records.update(embed_and_evaluate(cache, models, work, settings))
    sizes = {p.name: p.stat().st_size for p in [*cache.glob("*.npy"),
                                                *(work / "embed").rglob("embeddings.npz")]}  # fmt: skip
    record = {"date": datetime.date.today().isoformat(), "git": _git(), "frames": frames,
              "cache_size": args.cache_size, "input_size": args.input_size,
              "feature_dim": args.feature_dim, "linear_epochs": args.linear_epochs,
              "workers": args.workers, "bytes": sizes, "stages": records}  # fmt: skip
    (work / "scale.json").write_text(json.dumps(record, indent=1))
    print(markdown(record))


def markdown(record: dict) -> str:
    frames = record["frames"]
    per_stage = {"cache": frames["total"], "embed": frames["total"],
                 "linear_eval": frames["train"] * record["linear_epochs"]}  # fmt: skip
    lines = ["| stage | frames | wall s | CPU s | frames/s (wall) | peak RSS MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for stage, r in record["stages"].items():
        n = per_stage[stage]
        lines.append(f"| {stage} | {n:,} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | "
                     f"{n / r['wall_s']:,.0f} | {r['max_rss_mb']:,.0f} |")  # fmt: skip
    return "\n".join(lines)


def fused(args) -> None:
    from aunce.config import load_config, resolved_linear_eval
    from aunce.data.cache import build_cache
    from aunce.data.synthetic import generate

    work = args.work
    cfg = load_config(REPO / "config" / "config.yaml")
    ds = cfg["datasets"]["bp4d"]["synthetic"]
    cache = work / "cache"
    if not (cache / "cache.json").exists():
        data = generate("bp4d", work / "data", seed=ds["seed"], image_size=ds["image_size"],
                        n_subjects=ds["n_subjects"], frames_per_subject=ds["frames_per_subject"],
                        workers=1)  # fmt: skip
        build_cache("synthetic", data, cache, cfg["image"]["cache_size"], workers=1)
    common = {"dataset": "bp4d", "device": "cpu", "amp": "none", "threads": 1,
              "channels_last": False, "compile": False}  # fmt: skip
    encoder = dict(cfg["encoders"]["megraph"], name="megraph", pretrained=None)
    settings = {m: {"pretrain": dict(common, encoder=encoder, method=cfg["methods"][m],
                                     method_name=m, pretrain=dict(cfg["pretrain"], epochs=2),
                                     image=cfg["image"]),
                    "embed": dict(common, image=cfg["image"]),
                    "linear_eval": dict(common, encoder=encoder, method_name=m,
                                        linear_eval=resolved_linear_eval(cfg, "bp4d"))}
                for m in ("wce", "aunce")}  # fmt: skip
    rows = []
    for i in range(args.repeats):
        for code in ("before", "after"):
            out = work / f"{code}{i}"
            shutil.rmtree(out, ignore_errors=True)
            path = str(args.before.resolve()) if code == "before" else str(REPO)
            env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")
            rec = measured([sys.executable, "-m", "aunce", "train-eval", "--cache", cache,
                            "--settings", json.dumps(settings), "--runs", "1:3407", "--results",
                            out, "--cell", "bp4d/megraph"], work / f"{code}{i}.log", env)  # fmt: skip
            rows.append((code, i, rec))
            print(f"{code} {i}: {rec['cpu_s']:.1f} s CPU, {rec['wall_s']:.1f} s wall, "
                  f"{rec['max_rss_mb']:.0f} MB", flush=True)
    cpu = {c: [r["cpu_s"] for code, _, r in rows if code == c] for c in ("before", "after")}
    files = [Path("bp4d/megraph") / m / "fold-1/seed-3407" / f
             for m in ("wce", "aunce") for f in ("metrics.json", "predictions.npz")]  # fmt: skip
    same = all((work / f"before{i}" / "eval" / rel).read_bytes()
               == (work / f"after{i}" / "eval" / rel).read_bytes()
               for i in range(args.repeats) for rel in files)  # fmt: skip
    median = {c: sorted(v)[len(v) // 2] for c, v in cpu.items()}
    print(f"after / before, CPU seconds: {sum(cpu['after']) / sum(cpu['before']):.3f} "
          f"(medians {median['after']:.1f} / {median['before']:.1f}); metrics and predictions "
          f"identical: {same}")


def _git() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
    except OSError:
        return "?"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="cache, embed and linear-eval a synthetic dataset, measured")
    p.add_argument("--data", required=True, type=Path, help="aunce synth output (affwild2 profile)")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--cache-size", type=int, default=32)
    p.add_argument("--input-size", type=int, default=28)
    p.add_argument("--feature-dim", type=int, default=64, help="D (the default's tiny MEGraph)")
    p.add_argument("--linear-epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=run)
    p = sub.add_parser("fused", help="the default's train-eval job, this code against older code")
    p.add_argument("--before", required=True, type=Path, help="a folder with the older aunce/")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=fused)
    p = sub.add_parser("random-cache", help="a cache of random faces (the scale test's data)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--frames", required=True, type=int)
    p.add_argument("--size", type=int, default=16)
    p.set_defaults(func=lambda a: print(random_cache(a.out, a.frames, a.size)))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
