"""Device and precision from settings, with a clean CPU fallback.

``device: cuda`` uses the first GPU that ``CUDA_VISIBLE_DEVICES`` leaves visible; when none is
visible the job logs a warning and runs on the CPU. Mixed precision (``amp: bf16 | fp16``) and the
``channels_last`` memory format apply on CUDA only and are switched off, with a warning, on the CPU.
``compile: true`` compiles the encoder with ``torch.compile`` on any device; where compilation
fails (no compiler, an unsupported operation) the encoder runs eagerly, with dynamo's warning.
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> torch.device:
    if requested not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be cpu, cuda or auto, got '{requested}'")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        log.warning(
            "device 'cuda' requested but no GPU is visible (CUDA_VISIBLE_DEVICES=%s); "
            "running on the CPU",
            visible,
        )
    return torch.device("cpu")


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision."""
    if amp == "none":
        return None
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp must be none, bf16 or fp16, got '{amp}'")
    if device.type != "cuda":
        log.warning("amp '%s' applies on CUDA only; running in float32 on %s", amp, device)
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_channels_last(requested: bool, device: torch.device) -> bool:
    """Whether images and convolution weights use the channels-last (NHWC) memory format."""
    if requested and device.type != "cuda":
        log.warning("channels_last applies on CUDA only; keeping the default format on %s", device)
        return False
    return bool(requested)


def compile_module(module: torch.nn.Module, requested: bool) -> torch.nn.Module:
    """``module`` compiled in place (``nn.Module.compile``: state-dict keys unchanged) if asked."""
    if requested:
        import torch._dynamo

        torch._dynamo.config.suppress_errors = True  # fall back to eager where compiling fails
        module.compile()
    return module


def set_threads(threads: int) -> None:
    """Torch intra-op threads: ``threads``, or with 0 every core this process may use.

    0 does not mean torch's default: Snakemake exports OMP_NUM_THREADS=<the job's threads> (1 under
    ``--cores 1``), which torch would follow, and training would use one core of two (measured:
    AUNCE 2.2x, WCE 1.2x slower, BENCHMARKS.md)."""
    if threads <= 0:
        threads = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
    torch.set_num_threads(max(1, int(threads or 1)))
