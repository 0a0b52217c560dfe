"""Methods: a loss and its settings, as named in the config's ``methods:`` section.

A method is resolved once into an :class:`Objective` that the pretraining loop calls the same way
for every loss: contrastive losses get two augmented views, classification losses one view and a
per-AU linear head (thrown away after pretraining, protocol.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from aunce import AunceError, losses

LOSSES = {"aunce": losses.aunce_loss, "wce": losses.wce_loss, "wfl": losses.wfl_loss}
_NOT_SETTINGS = {
    "z",
    "z_aug",
    "labels",
    "logits",
    "au_weights",
    "minority_label",
    "positive_kind",
    "generator",
}


@dataclass
class Objective:
    name: str
    two_views: bool  # contrastive: two SimCLR views of each image
    uses_head: bool  # classification: a per-AU linear head on the embeddings
    loss: Callable[..., Tensor]
    kwargs: dict

    def __call__(
        self,
        z: Tensor,
        z_aug: Tensor | None,
        logits: Tensor | None,
        labels: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        if self.two_views:
            return self.loss(z, z_aug, labels, generator=generator, **self.kwargs)
        return self.loss(logits, labels, **self.kwargs)


def expand_preset(method: dict) -> dict:
    """A method with its ``preset`` (Table 10's A-E, ``released``) expanded; explicit keys win."""
    if "preset" not in method:
        return dict(method)
    name = method["preset"]
    if method["loss"] != "aunce" or name not in losses.AUNCE_PRESETS:
        raise AunceError(
            f"unknown preset '{name}' for loss '{method['loss']}' "
            f"(AUNCE presets: {', '.join(losses.AUNCE_PRESETS)})"
        )
    expanded = {
        key: list(v) if isinstance(v, tuple) else v for key, v in losses.AUNCE_PRESETS[name].items()
    }
    expanded.update({key: v for key, v in method.items() if key != "preset"})
    return expanded


def loss_settings(method: dict) -> dict:
    """The method's loss settings with presets expanded and every default filled in (what runs record)."""
    method = expand_preset(method)
    loss = method["loss"]
    if loss not in LOSSES:
        raise AunceError(f"unknown loss '{loss}' (known: {', '.join(LOSSES)})")
    params = inspect.signature(LOSSES[loss]).parameters
    out = {
        name: p.default
        for name, p in params.items()
        if name not in _NOT_SETTINGS and p.default is not inspect.Parameter.empty
    }
    for key, value in method.items():
        if key in ("loss", "label", "au_weights", "preset"):
            continue
        if key not in out:
            raise AunceError(
                f"method setting '{key}' does not apply to loss '{loss}' "
                f"(its settings: {', '.join(sorted(out))})"
            )
        out[key] = tuple(value) if isinstance(value, list) else value
    if loss == "aunce" and out["positive_probs"] is None:
        out["positive_probs"] = losses.DEFAULT_POSITIVE_PROBS[out["variant"]]
    return out


def build_objective(
    method: dict, au_weights: Tensor | None, minority_label: Tensor | None
) -> Objective:
    method = expand_preset(method)
    loss = method["loss"]
    kwargs = loss_settings(method)
    use_weights = method.get("au_weights", True)
    kwargs["au_weights"] = au_weights if use_weights else None
    two_views = loss == "aunce"
    if two_views:
        kwargs["minority_label"] = minority_label
    return Objective(method.get("label", loss), two_views, not two_views, LOSSES[loss], kwargs)
