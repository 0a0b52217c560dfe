"""A registry of encoder builders and the one factory that creates them (timm's pattern)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_AU_SPECIFIC: set[str] = set()
SIZES = ("paper", "tiny")


def register_encoder(name: str, *, au_specific: bool = False):
    """Decorator: ``@register_encoder("megraph")`` on a builder ``(num_aus, size, pretrained, **overrides)``.

    ``au_specific`` builders are tied to which AUs they detect (JA-Net places one attention map per
    AU from landmarks) and also receive ``aus``, the AU numbers in label order.
    """

    def wrap(builder):
        if name in _BUILDERS:
            raise ValueError(f"encoder '{name}' is registered twice")
        _BUILDERS[name] = builder
        if au_specific:
            _AU_SPECIFIC.add(name)
        return builder

    return wrap


def list_encoders() -> list[str]:
    return list(_BUILDERS)


def au_numbers(aus: Sequence[int | str]) -> tuple[int, ...]:
    """AU numbers from ints or label names: ``["AU1", "AU12"]`` -> ``(1, 12)``."""
    numbers = []
    for au in aus:
        text = str(au).upper().removeprefix("AU")
        if not text.isdigit():
            raise ValueError(f"not an AU: '{au}' (expected an AU number or a name like 'AU12')")
        numbers.append(int(text))
    return tuple(numbers)


def create_encoder(
    name: str,
    num_aus: int,
    *,
    size: str = "paper",
    pretrained: str | None = None,
    aus: Sequence[int | str] | None = None,
    **overrides,
) -> nn.Module:
    """Build an encoder by name. Unknown names and sizes raise ``ValueError`` listing the known ones.

    ``pretrained`` is a local checkpoint file or a timm weight tag found in the local cache;
    nothing is downloaded. ``aus`` names the K AUs in label order (numbers or ``AU<n>`` names); only
    AU-specific encoders use it, the others only check its length. ``overrides`` set size-preset
    values such as ``feature_dim``; ``None`` values are ignored.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown encoder '{name}' (known: {', '.join(list_encoders())})")
    if size not in SIZES:
        raise ValueError(f"unknown encoder size '{size}' (known: {', '.join(SIZES)})")
    if num_aus < 1:
        raise ValueError(f"num_aus must be positive, got {num_aus}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if aus is not None:
        aus = au_numbers(aus)
        if len(aus) != num_aus:
            raise ValueError(f"aus lists {len(aus)} AUs {list(aus)} but num_aus is {num_aus}")
        if name in _AU_SPECIFIC:
            overrides["aus"] = aus
    return _BUILDERS[name](num_aus=num_aus, size=size, pretrained=pretrained, **overrides)


def resolve_preset(name: str, size: str, presets: dict[str, dict], overrides: dict) -> dict:
    """The size preset of an encoder with ``overrides`` applied; an unknown key is a ``ValueError``."""
    preset = dict(presets[size])
    unknown = sorted(set(overrides) - set(preset))
    if unknown:
        raise ValueError(
            f"{name} ({size}) has no setting {', '.join(unknown)} (known: {', '.join(preset)})"
        )
    preset.update(overrides)
    return preset
