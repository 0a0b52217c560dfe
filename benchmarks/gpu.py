"""GPU fast path (issue 13): the released code's training loop against the harness's, on one device.

    .venv/bin/python benchmarks/gpu.py                        # CUDA: Swin-B MEGraph, 224 px, batch 32
    .venv/bin/python benchmarks/gpu.py --device cpu --quick   # anywhere: tiny MEGraph, 32 px

In one process, on one device, the same model (the harness's MEGraph: Swin-B backbone, D = 1024,
from scratch; the tiny MEGraph with ``--quick``) and the same losses (AUNCE and WCE as
config/paper.yaml sets them), trained by two loops:

(a) released: a reconstruction of the authors' loop (github.com/Ziqiao-Shang/AUNCE:
    train_graph_au.py, data_loader.py, pre_process.py). The 256 px aligned faces are JPEG files in
    a folder; a ``DataLoader`` (batch 32, shuffled, 4 worker processes, ``pin_memory``) decodes
    each image with PIL, draws crop offsets and flips with Python's ``random`` and applies the
    release's torchvision transforms per image (crop, flip, ``RandomApply(ColorJitter(0.4, 0.4,
    0.4, 0.1), p=0.8)``, ``RandomGrayscale(0.2)``, ``GaussianBlur(3)``, ``ToTensor``, CIFAR
    ``Normalize``), twice for AUNCE (two views), once for WCE; the step copies the batch with a
    blocking ``.cuda()``, runs float32, calls the network once per view (two forward passes for
    AUNCE) and reads ``loss.item()`` every step.
(b) harness: ``aunce.train.train_epoch`` on the memory-mapped cache of the same faces: batches read
    and pinned ahead on a thread, ``non_blocking`` copies, the augmentation on the device, one
    forward pass over both views, bf16 autocast and channels-last (config/paper.yaml), no host
    synchronisation inside a step.

Reported per loop and loss: images per second (an image is one training sample, both its views),
the ratio (b)/(a), the seconds a BP4D epoch (97,000 training frames, about two thirds of BP4D's
146,847) would take at that rate, and the model FLOP rate as a share of the card's dense bf16
peak (vendor datasheet figures, ``BF16_PEAK_TFLOPS``; ``--peak-tflops`` overrides). Model FLOPs
are counted by ``torch.utils.flop_counter`` over one forward and backward of the encoder (2 FLOPs
per multiply-add; the loss is not counted). Each loop gets warm-up steps first (worker start-up,
cuDNN autotuning, compilation with ``--compile``), then times ``--steps`` steps.

The harness loop is also timed with and without its prefetching thread (2 and 0 batches read
ahead; epochs alternated), as the step time of each: the overlap of reading with training. The
harness reads ahead on CUDA only (``aunce.train.prefetch_depth``); (b) uses what it would.

Prints Markdown with the date, git revision, torch version, device, CPU and threads, so each figure
can be traced to what produced it. On a shared machine compare ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from aunce.config import fill_defaults, load_config
from aunce.data.cache import build_cache, open_cache
from aunce.data.synthetic import generate
from aunce.device import resolve_amp, resolve_channels_last, resolve_device, set_threads
from aunce.methods import build_objective
from aunce.train import (
    Loop,
    build_encoder,
    encode,
    prefetch_depth,
    setup_run,
    train_epoch,
    training_statistics,
)

REPO = Path(__file__).resolve().parent.parent
BP4D_TRAIN_FRAMES = 97_000
BATCH = 32
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the release's
# Dense (no sparsity) bf16 tensor-core peaks with fp32 accumulation, TFLOP/s, from NVIDIA's
# datasheets; matched in this order against torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = [
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("L4", 121.0),
    ("RTX 6000 Ada", 364.0),
    ("A6000", 155.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
]


def git_revision() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, f"{override:g} TFLOP/s (--peak-tflops)"
    if device.type != "cuda":
        return None, "none (CPU)"
    name = torch.cuda.get_device_name(device)
    for key, value in BF16_PEAK_TFLOPS:
        if key in name:
            return value, f"{value:g} TFLOP/s dense bf16 ({key} datasheet)"
    return None, f"unknown for {name} (give --peak-tflops)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- data: the same faces as a JPEG folder (released) and as the harness's cache ---------------
def make_data(tmp: Path, frames: int, image_size: int, cache_size: int) -> tuple[Path, Path]:
    """A synthetic BP4D stand-in of ``frames`` faces, its cache, and its aligned faces as JPEGs."""
    from PIL import Image

    subjects = 4
    data = generate(
        "bp4d",
        tmp / "data",
        seed=0,
        image_size=image_size,
        n_subjects=subjects,
        frames_per_subject=-(-frames // subjects),
        workers=os.cpu_count(),
    )
    cache_dir = build_cache("synthetic", data, tmp / "cache", cache_size, workers=os.cpu_count())
    cache = open_cache(cache_dir)
    folder = tmp / "img"  # the release's img_256x256: aligned faces as JPEG
    folder.mkdir()
    for i, face in enumerate(cache.images):
        Image.fromarray(np.asarray(face)).save(folder / f"{i}.jpg", quality=95)
    return cache_dir, folder


# --- (a) the released loop ----------------------------------------------------------------------
class ReleasedFaces(torch.utils.data.Dataset):
    """The release's training dataset (``data_loader.BP4D``, train): one PIL decode per image,
    random crop offsets and flips drawn with ``random``, the torchvision transforms per view."""

    def __init__(self, folder: Path, labels: np.ndarray, crop: int, two_views: bool):
        self.folder, self.labels, self.crop, self.two_views = folder, labels, crop, two_views

    def __len__(self) -> int:
        return len(self.labels)

    def _view(self, img, flip: int, x: int, y: int) -> torch.Tensor:
        from PIL import Image
        from torchvision import transforms

        t = transforms.Compose(  # built per call, as the release's image_train_enhance does
            [
                transforms.Lambda(lambda im: im.crop((x, y, x + self.crop, y + self.crop))),
                transforms.Lambda(lambda im: im.transpose(Image.FLIP_LEFT_RIGHT) if flip else im),
                transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                transforms.RandomGrayscale(p=0.2),
                transforms.GaussianBlur(kernel_size=int(0.1 * 32)),
                transforms.ToTensor(),
                transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )
        return t(img)

    def __getitem__(self, index: int):
        from PIL import Image

        with open(self.folder / f"{index}.jpg", "rb") as fh, Image.open(fh) as img:
            img = img.convert("RGB")
        w, h = img.size
        oy, ox = random.randint(0, h - self.crop), random.randint(0, w - self.crop)
        view = self._view(img, random.randint(0, 1), ox, oy)
        label = self.labels[index].astype(np.float64)  # np.loadtxt's floats
        if not self.two_views:
            return view, label
        oy2, ox2 = random.randint(0, h - self.crop), random.randint(0, w - self.crop)
        return view, self._view(img, random.randint(0, 1), ox2, oy2), label


def released_rate(settings: dict, cache_dir: Path, folder: Path, device, workers, warmup, steps):
    """Images per second of the released loop (float32, two forward passes for AUNCE)."""
    cache = open_cache(cache_dir)
    idx = np.arange(len(cache.images))
    weights, minority = training_statistics(cache, idx, "benchmark frames")
    torch.manual_seed(0)
    encoder = build_encoder(
        dict(settings["encoder"], input_size=settings["image"]["input_size"]), cache.aus
    ).to(device)
    objective = build_objective(settings["method"], weights.to(device), minority.to(device))
    head = None
    params = list(encoder.parameters())
    if objective.uses_head:
        from aunce.encoders.blocks import PerAULinear

        head = PerAULinear(len(cache.aus), encoder.feature_dim).to(device)
        params += list(head.parameters())
    cfg = settings["pretrain"]
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.999), weight_decay=1e-6)
    gen = torch.Generator().manual_seed(0)
    data = ReleasedFaces(folder, cache.labels, settings["image"]["input_size"], objective.two_views)
    loader = torch.utils.data.DataLoader(
        data, batch_size=BATCH, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda"
    )
    encoder.train()
    batches = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        for group in optimizer.param_groups:  # the release sets the learning rate every step
            group["lr"] = cfg["lr"]
        if objective.two_views:
            inputs, inputs_e, labels = next(batches)
            inputs, inputs_e = inputs.float().to(device), inputs_e.float().to(device)
        else:
            inputs, labels = next(batches)
            inputs = inputs.float().to(device)
        labels = labels.float().to(device)
        optimizer.zero_grad()
        if objective.two_views:
            z, z_e = encode(encoder, inputs, None)[0], encode(encoder, inputs_e, None)[0]
            loss = objective(z, z_e, None, labels, gen)
        else:
            z = encode(encoder, inputs, None)[0]
            loss = objective(z, None, head(z), labels, gen)
        loss.backward()
        optimizer.step()
        loss.item()  # the release's AverageMeter, every step
    return steps * BATCH / (time.perf_counter() - start)


# --- (b) the harness loop -----------------------------------------------------------------------
def harness_run(settings: dict, cache_dir: Path):
    device = resolve_device(settings["device"])
    cache = open_cache(cache_dir)
    loop = Loop(
        cache,
        cache.labels,
        device,
        resolve_amp(settings["amp"], device),
        resolve_channels_last(settings["channels_last"], device),
        prefetch_depth(device),  # as aunce.train.pretrain: on CUDA only
    )
    idx = np.arange(len(cache.images))
    weights, minority = training_statistics(cache, idx, "benchmark frames")
    run = setup_run(loop, idx, weights, minority, settings, "all", 0)
    return run, loop


def harness_rate(settings: dict, cache_dir: Path) -> float:
    """Images per second of ``train_epoch`` (an epoch of warm-up, then one timed)."""
    run, loop = harness_run(settings, cache_dir)
    train_epoch(run, loop, 1)
    return train_epoch(run, loop, 2)["frames_per_second"]


def prefetch_overlap(settings: dict, cache_dir: Path, repeats: int) -> dict[int, float]:
    """Median step seconds of the harness loop with 2 and 0 batches read ahead (alternated)."""
    run, loop = harness_run(settings, cache_dir)
    train_epoch(run, loop, 1)
    steps = max(1, len(run.train_idx) // BATCH)
    times: dict[int, list[float]] = {2: [], 0: []}
    epoch = 1
    for _ in range(repeats):
        for depth in (2, 0):
            epoch += 1
            loop.prefetch = depth
            times[depth].append(train_epoch(run, loop, epoch)["seconds"] / steps)
    return {depth: statistics.median(t) for depth, t in times.items()}


def flops_per_image(settings: dict, cache_dir: Path, two_views: bool) -> float:
    """Model FLOPs of one training sample: forward and backward of the encoder on its views."""
    from torch.utils.flop_counter import FlopCounterMode

    device = resolve_device(settings["device"])
    cache = open_cache(cache_dir)
    size = settings["image"]["input_size"]
    encoder = build_encoder(dict(settings["encoder"], input_size=size), cache.aus).to(device)
    x = torch.randn((2 if two_views else 1) * BATCH, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        encoder(x).float().sum().backward()
    return counter.get_total_flops() / BATCH


# --- the report ---------------------------------------------------------------------------------
def benchmark_settings(method: str, args, device: torch.device) -> dict:
    """config/paper.yaml's method, pretraining and (without --quick) encoder and image settings.

    paper.yaml is read without validation (its datasets need real roots); defaults come from the
    schema."""
    import yaml

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    pretrain = dict(paper["pretrain"], batch_size=BATCH)
    fill_defaults(pretrain, schema["pretrain"])
    source = load_config(REPO / "config" / "config.yaml") if args.quick else paper
    encoder = dict(source["encoders"]["megraph"], name="megraph", pretrained=None)
    return {
        "dataset": "bp4d",
        "encoder": encoder,
        "method": paper["methods"][method],
        "method_name": method,
        "pretrain": pretrain,
        "image": source["image"],
        "device": device.type,
        "amp": "bf16" if device.type == "cuda" else "none",
        "channels_last": device.type == "cuda",
        "compile": args.compile,
        "threads": args.threads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny MEGraph at the CPU geometry")
    parser.add_argument("--steps", type=int, help="timed steps per loop (default 30; quick 8)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of (a)")
    parser.add_argument("--repeats", type=int, default=3, help="alternations of the prefetch test")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the harness")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak")
    parser.add_argument("--methods", nargs="+", default=["aunce", "wce"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    parser.add_argument(
        "--rates-out",
        type=Path,
        help="write the harness loop's images/s per loss as a rates file for `aunce plan --rates`",
    )
    args = parser.parse_args(argv)
    # (a) keeps the release's 4 workers whatever the machine's core count
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    steps = args.steps or (8 if args.quick else 30)
    set_threads(args.threads)
    device = resolve_device(args.device)
    peak, peak_note = peak_tflops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(
        f"{datetime.date.today().isoformat()}, git {git_revision()}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, device {name}, CPU {cpu_name()}, "
        f"{torch.get_num_threads()} torch threads, {args.workers} DataLoader workers\n"
    )
    frames = (args.warmup + steps) * BATCH
    image_size, cache_size = (64, 36) if args.quick else (256, 256)
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir, folder = make_data(Path(tmp), frames, image_size, cache_size)
        first = benchmark_settings(args.methods[0], args, device)
        print(
            f"{'tiny' if args.quick else 'Swin-B'} MEGraph, {first['image']['input_size']} px crops "
            f"of {cache_size} px faces, batch {BATCH}, {steps} timed steps after {args.warmup} "
            f"(released) or an epoch (harness) of warm-up; harness: amp {first['amp']}, "
            f"channels_last {first['channels_last']}, compile {args.compile}. "
            f"Peak used: {peak_note}.\n"
        )
        print("| loop | loss | images/s | s per BP4D epoch | TFLOP/s | share of bf16 peak |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        ratios, rate_rows = {}, []
        for method in args.methods:
            settings = benchmark_settings(method, args, device)
            two_views = settings["method"]["loss"] == "aunce"
            flops = flops_per_image(settings, cache_dir, two_views)
            rates = {
                "(a) released": released_rate(
                    settings, cache_dir, folder, device, args.workers, args.warmup, steps
                ),
                "(b) harness": harness_rate(settings, cache_dir),
            }
            for loop_name, rate in rates.items():
                tflops = flops * rate / 1e12
                share = f"{100 * tflops / peak:.1f} %" if peak else "n/a"
                print(
                    f"| {loop_name} | {method} | {rate:.1f} | {BP4D_TRAIN_FRAMES / rate:.0f} | "
                    f"{tflops:.3g} | {share} |"
                )
            ratios[method] = rates["(b) harness"] / rates["(a) released"]
            rate_rows.append(rates_row(settings, name, rates["(b) harness"]))
        print()
        for method, ratio in ratios.items():
            print(f"- {method}: harness / released images per second = {ratio:.2f}")
        overlap = prefetch_overlap(benchmark_settings(args.methods[0], args, device), cache_dir,
                                   args.repeats)  # fmt: skip
        print(
            f"- prefetch ({args.methods[0]}): step {1000 * overlap[2]:.1f} ms with the batches "
            f"read ahead, {1000 * overlap[0]:.1f} ms read on the main thread "
            f"(without / with = {overlap[0] / overlap[2]:.2f}; median of {args.repeats} "
            "alternated epochs each)"
        )

        if args.rates_out:
            write_rates(args.rates_out, rate_rows)
            print(f"- rates for `aunce plan --rates`: {args.rates_out}")


def rates_row(settings: dict, device_name: str, images_per_second: float) -> dict:
    """One row of a rates file (aunce.summary.RATES_HEADER) for the harness loop's rate."""
    return {
        "encoder": settings["encoder"]["name"],
        "size": settings["encoder"].get("size") or "paper",
        "input_size": settings["image"]["input_size"],
        "batch_size": settings["pretrain"]["batch_size"],
        "loss": settings["method"]["loss"],
        "amp": settings["amp"],
        "device": device_name.replace(",", " "),
        "images_per_second": f"{images_per_second:.4g}",
        "measured_by": f"benchmarks/gpu.py {datetime.date.today().isoformat()} git {git_revision()}",
    }


def write_rates(path: Path, rows: list[dict]) -> None:
    """The rates file, written whole (a temporary file renamed), read by ``aunce plan --rates``."""
    import csv

    from aunce.summary import RATES_HEADER

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, RATES_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    main()
