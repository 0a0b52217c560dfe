"""Building blocks shared by the encoders, written once."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from aunce import AunceError
from aunce.io import check_digest, read_digest


class LinearBlock(nn.Module):
    """Linear -> BatchNorm over channels -> ReLU, applied to (B, N, C) tokens or (B, C) vectors.

    As ME-GraphAU's LinearBlock (Luo et al., IJCAI 2022), with optional dropout before the linear,
    and initialised as there: linear weight ~ N(0, sqrt(2 / out_features)) (linear bias: torch's
    default), batch-norm weight 1 and bias 0.
    """

    def __init__(self, in_features: int, out_features: int, drop: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)
        self.relu = nn.ReLU(inplace=True)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / out_features))

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc(self.drop(x))
        if x.ndim == 3:  # (B, N, C): normalise each channel over batch and tokens
            return self.relu(self.bn(x.transpose(1, 2))).transpose(1, 2)
        return self.relu(self.bn(x))


class PerAULinearBlocks(nn.Module):
    """K independent LinearBlocks in one batched op: ME-GraphAU's AU-specific feature generator.

    ``(B, C) -> (B, K, D)``: one vector per image (the per-AU head of ResNet50 and ROI Nets);
    ``(B, N, C) -> (B, K, N, D)``: every token of an image (MEGraph's AFG, which then averages over
    tokens). Each AU has its own linear and its own batch norm; initialised as :class:`LinearBlock`.
    """

    def __init__(self, num_aus: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_aus, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_aus, out_features))
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default bias, per AU
        nn.init.uniform_(self.bias, -bound, bound)
        self.bn = nn.BatchNorm1d(num_aus * out_features)  # one BN per AU block
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        k, _, d = self.weight.shape
        if x.ndim == 2:
            h = torch.einsum("bc,kcd->bkd", x, self.weight) + self.bias
            return self.relu(self.bn(h.reshape(len(x), k * d))).view(len(x), k, d)
        if x.ndim == 3:
            b, n, _ = x.shape
            h = torch.einsum("bnc,kcd->bkdn", x, self.weight) + self.bias[None, :, :, None]
            h = self.relu(self.bn(h.reshape(b, k * d, n)))
            return h.view(b, k, d, n).transpose(2, 3)
        raise ValueError(f"expected (B, C) or (B, N, C) features, got {tuple(x.shape)}")


class PerAULinear(nn.Module):
    """One logit per AU from that AU's own embedding: (B, K, D) -> (B, K).

    The per-AU linear classifier of the WCE/WFL pretraining head and of the linear evaluation.
    """

    def __init__(self, num_aus: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_aus, dim))
        self.bias = nn.Parameter(torch.zeros(num_aus))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, z: Tensor) -> Tensor:
        return torch.einsum("bkd,kd->bk", z, self.weight) + self.bias


def load_pretrained(module: nn.Module, pretrained: str | os.PathLike, *, what: str) -> None:
    """Load a local state dict into ``module``; a missing file says where to put it. Never downloads."""
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise AunceError(
            f"{what}: pretrained weights '{pretrained}' not found. The harness never downloads; put "
            f"the file there (e.g. from the timm/Hugging Face cache of a machine with network) or set "
            f"`pretrained: none` to train from scratch"
        )
    if read_digest(path) is not None:  # a file the harness wrote (a warm start): its content hash
        check_digest(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - not a file of tensors: refused, never executed
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AunceError(
            f"{path}: weights for {what} could not be read safely ({reason})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing:
        raise AunceError(
            f"{path}: weights do not fit {what}: missing {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}"
        )
    del unexpected  # classifier heads of ImageNet checkpoints are expected extras


def create_timm_model(name: str, pretrained: str | None, **kwargs) -> nn.Module:
    """A timm model built with ``pretrained=False``, then weights from a local file or the local cache.

    ``pretrained`` is None (from scratch), a path to a state dict, or a timm weight tag (such as
    ``ms_in1k``) that must already sit in the local Hugging Face cache. Imports timm lazily (2 s).
    """
    import timm

    if pretrained is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    if (
        Path(pretrained).expanduser().suffix in {".pth", ".pt", ".bin", ".safetensors"}
        or os.sep in pretrained
    ):
        model = timm.create_model(name, pretrained=False, **kwargs)
        load_pretrained(model, pretrained, what=name)
        return model
    os.environ["HF_HUB_OFFLINE"] = "1"  # never download, even when the network is up
    try:
        return timm.create_model(f"{name}.{pretrained}", pretrained=True, **kwargs)
    except Exception as err:  # timm/huggingface_hub raise several types for a missing file
        raise AunceError(
            f"{name}.{pretrained}: weights not in the local cache ({type(err).__name__}). The harness "
            f'never downloads; on a machine with network run `python -c "import timm; '
            f"timm.create_model('{name}.{pretrained}', pretrained=True)\"` and copy "
            f"~/.cache/huggingface to this machine, or give a local file path"
        ) from None


def check_images(images: Tensor, input_size: int, what: str) -> None:
    """A ``ValueError`` naming the shape unless ``images`` is (B, 3, input_size, input_size)."""
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (input_size, input_size):
        raise ValueError(
            f"{what} expects images (B, 3, {input_size}, {input_size}), got {tuple(images.shape)}"
        )
