"""A registry of encoder builders and the one factory that creates them (timm's pattern)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
SIZES = ("paper", "tiny")


def register_encoder(name: str):
    """Decorator: ``@register_encoder("megraph")`` on a builder ``(num_aus, size, **overrides)``."""

    def wrap(builder):
        if name in _BUILDERS:
            raise ValueError(f"encoder '{name}' is registered twice")
        _BUILDERS[name] = builder
        return builder

    return wrap


def list_encoders() -> list[str]:
    return list(_BUILDERS)


def create_encoder(
    name: str, num_aus: int, *, size: str = "paper", pretrained: str | None = None, **overrides
) -> nn.Module:
    """Build an encoder by name. Unknown names and sizes raise ``ValueError`` listing the known ones.

    ``pretrained`` is a local checkpoint file or a timm weight tag found in the local cache;
    nothing is downloaded. ``overrides`` set size-preset values such as ``feature_dim``.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown encoder '{name}' (known: {', '.join(list_encoders())})")
    if size not in SIZES:
        raise ValueError(f"unknown encoder size '{size}' (known: {', '.join(SIZES)})")
    if num_aus < 1:
        raise ValueError(f"num_aus must be positive, got {num_aus}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return _BUILDERS[name](num_aus=num_aus, size=size, pretrained=pretrained, **overrides)
