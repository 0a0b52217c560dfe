"""Methods: a loss and its settings, as named in the config's ``methods:`` section.

A method is resolved once into an :class:`Objective` that the pretraining loop calls the same way
for every loss: contrastive losses get two augmented views, classification losses one view and a
per-AU linear head (thrown away after pretraining, protocol.md). A method may also bring its own
augmentation of the training views (``pretrain:``, merged over the config's ``pretrain`` settings
by :func:`aunce.config.resolved_pretrain`): not a setting of its loss, and ignored here.

A method's loss is a built-in one (``aunce``, ``wce``, ``wfl``) or the user's own function given by
its Python import path ``package.module:function`` with a ``kind`` and keyword ``options``
(docs/custom-method.md). Such a function is called

- kind ``contrastive``: ``fn(z, z_aug, labels, *, au_weights, minority_label, generator, **options)``
  with ``z``, ``z_aug`` (B, K, D) per-AU embeddings of two augmented views of the same B images;
- kind ``classification``: ``fn(logits, labels, *, au_weights, **options)`` with ``logits`` (B, K)
  from a per-AU linear head;

``labels`` (B, K) in {1, 0, -1 unknown}, ``au_weights`` (K,) or None, ``minority_label`` (K,) 0/1,
``generator`` a ``torch.Generator``; it returns a scalar tensor. The module is imported with the
working directory first on ``sys.path`` (as ``python -m`` has it; the ``aunce`` console script does
not), so a module in the project folder, where Snakemake runs its jobs, is found.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
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
KINDS = ("contrastive", "classification")
#: what a loss of each kind is given besides its options: positional and keyword arguments
_CALL = {
    "contrastive": (("z", "z_aug", "labels"), ("au_weights", "minority_label", "generator")),
    "classification": (("logits", "labels"), ("au_weights",)),
}
_CUSTOM_KEYS = {"loss", "kind", "options", "label", "au_weights", "pretrain"}
#: a method's keys that are not settings of its loss: its label, lambda, its preset (expanded) and
#: its own augmentation (``pretrain:``, merged over the config's by aunce.config.resolved_pretrain)
# (``replicate`` moves the seed: train.REPLICATE_SEED_STEP)
_NOT_LOSS_KEYS = ("loss", "label", "au_weights", "preset", "pretrain", "replicate")


@dataclass
class Objective:
    name: str
    two_views: bool  # contrastive: two SimCLR views of each image
    uses_head: bool  # classification: a per-AU linear head on the embeddings
    loss: Callable[..., Tensor]
    kwargs: dict
    path: str | None = None  # the import path of a user's loss (None: a built-in loss)

    def __call__(
        self,
        z: Tensor,
        z_aug: Tensor | None,
        logits: Tensor | None,
        labels: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        if self.two_views:
            out = self.loss(z, z_aug, labels, generator=generator, **self.kwargs)
        else:
            out = self.loss(logits, labels, **self.kwargs)
        if self.path is not None and not (isinstance(out, Tensor) and out.ndim == 0):
            got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
            raise AunceError(f"loss '{self.path}' must return a scalar tensor, got {got}")
        return out


def is_custom(method: dict) -> bool:
    """Whether the method's loss is a user's function given by import path (``module:function``)."""
    return ":" in str(method.get("loss", ""))


def _who(method: dict, name: str | None) -> str:
    name = name or method.get("label")
    return f"method '{name}' (loss '{method['loss']}')" if name else f"loss '{method['loss']}'"


def _cwd_importable() -> None:
    """Put the working directory first on ``sys.path`` unless it is there already (as ``''`` or
    itself): ``python -m`` does this, a console script such as ``aunce`` does not."""
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.insert(0, cwd)


def resolve_loss(path: str, name: str | None = None) -> Callable[..., Tensor]:
    """The function at ``package.module:function``, imported with the working directory on
    ``sys.path``. Raises :class:`AunceError` naming the method and path when it cannot be had."""
    who = _who({"loss": path}, name)
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise AunceError(f"{who}: not an import path of the form package.module:function")
    _cwd_importable()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name + ".").startswith(err.name + "."):
            raise AunceError(
                f"{who}: no module '{module_name}' (looked in the working directory {os.getcwd()} "
                "and the installed packages; run from the project folder, install the module, "
                "or set PYTHONPATH)"
            ) from None
        raise AunceError(f"{who}: importing module '{module_name}' failed: {err}") from err
    except Exception as err:
        raise AunceError(
            f"{who}: importing module '{module_name}' failed: {type(err).__name__}: {err}"
        ) from err
    if not hasattr(module, attr):
        raise AunceError(f"{who}: module '{module_name}' has no attribute '{attr}'")
    fn = getattr(module, attr)
    if not callable(fn):
        raise AunceError(
            f"{who}: '{attr}' in module '{module_name}' is a {type(fn).__name__}, not callable"
        )
    return fn


def _jsonable(value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _custom_settings(method: dict, name: str | None) -> tuple[Callable[..., Tensor], dict]:
    """A user's loss and its settings: path, kind, the function's keyword defaults and the options."""
    who = _who(method, name)
    kind = method.get("kind")
    if kind is None:
        raise AunceError(
            f"{who}: a loss given by import path needs 'kind: contrastive' or "
            "'kind: classification'"
        )
    if kind not in KINDS:
        raise AunceError(f"{who}: kind '{kind}' is not one of {', '.join(KINDS)}")
    extra = sorted(set(method) - _CUSTOM_KEYS)
    if extra:
        raise AunceError(
            f"{who}: setting(s) {', '.join(extra)} do not apply to a loss given by import path "
            "(put its keyword arguments under options)"
        )
    options = dict(method.get("options") or {})
    positional, given = _CALL[kind]
    reserved = sorted(set(options) & ({"loss", "kind", *positional, *given} | _NOT_SETTINGS))
    if reserved:
        raise AunceError(f"{who}: option(s) {', '.join(reserved)} are reserved names")
    fn = resolve_loss(method["loss"], name or method.get("label"))
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: nothing to check or record
        return fn, {"loss": method["loss"], "kind": kind, **options}
    try:
        signature.bind(*positional, **dict.fromkeys(given), **options)
    except TypeError as err:
        raise AunceError(
            f"{who}: cannot be called as a {kind} loss "
            f"fn({', '.join(positional)}, *, {', '.join(given)}, **options) "
            f"with options {options or '{}'}: {err}"
        ) from None
    params = list(signature.parameters.values())[len(positional) :]
    defaults = {
        p.name: _jsonable(p.default)
        for p in params
        if p.name not in _NOT_SETTINGS
        and p.default is not inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return fn, {"loss": method["loss"], "kind": kind, **defaults, **options}


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


def loss_settings(method: dict, name: str | None = None) -> dict:
    """The method's loss settings with presets expanded and every default filled in (what runs record).

    For a loss given by import path: ``loss`` (the path), ``kind``, the function's keyword defaults
    and the method's ``options``. ``name`` (the method's key) only makes error messages clearer.
    """
    if is_custom(method):
        return _custom_settings(method, name)[1]
    method = expand_preset(method)
    loss = method["loss"]
    if loss not in LOSSES:
        raise AunceError(
            f"unknown loss '{loss}' (known: {', '.join(LOSSES)}, or your own function as "
            "package.module:function)"
        )
    params = inspect.signature(LOSSES[loss]).parameters
    out = {
        param: p.default
        for param, p in params.items()
        if param not in _NOT_SETTINGS and p.default is not inspect.Parameter.empty
    }
    for key, value in method.items():
        if key in _NOT_LOSS_KEYS:
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


def check_method(method: dict, name: str | None = None) -> None:
    """Refuse, before any job runs, a loss given by import path that its jobs could not train with.

    What can be checked without data: the module imports, the function is callable and accepts
    the calling contract of its ``kind`` with the method's options, and one call on tiny inputs of
    the contract's shapes (B = 4 images, K = 3 AUs, D = 8; labels 1, 0 and -1) returns a scalar
    floating-point tensor that depends on the embeddings. Raises :class:`AunceError` naming the
    method and path. Built-in losses need no check here.
    """
    if not is_custom(method):
        return
    who = _who(method, name)
    b, k, d = 4, 3, 8
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, -1], [0, 1, 1]], dtype=torch.int8)
    objective = build_objective(method, torch.ones(k), torch.tensor([1, 0, 1]), name=name)
    z = torch.randn(b, k, d, generator=gen, requires_grad=True)
    z_aug = torch.randn(b, k, d, generator=gen, requires_grad=True)
    logits = torch.randn(b, k, generator=gen, requires_grad=True)
    inputs = f"z and z_aug ({b}, {k}, {d})" if objective.two_views else f"logits ({b}, {k})"
    try:
        if objective.two_views:
            out = objective.loss(z, z_aug, labels, generator=gen, **objective.kwargs)
        else:
            out = objective.loss(logits, labels, **objective.kwargs)
    except Exception as err:
        raise AunceError(
            f"{who}: a test call with {inputs} and labels ({b}, {k}) failed: "
            f"{type(err).__name__}: {err}"
        ) from None
    if not (isinstance(out, Tensor) and out.ndim == 0):
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise AunceError(
            f"{who}: must return a scalar tensor, got {got} on a test call with {inputs}"
        )
    if not out.is_floating_point():
        raise AunceError(f"{who}: returned a {out.dtype} tensor; a loss is a floating-point scalar")
    if not out.requires_grad:
        raise AunceError(
            f"{who}: returned a tensor that does not depend on its inputs ({inputs}): "
            "there is nothing to train"
        )


def build_objective(
    method: dict,
    au_weights: Tensor | None,
    minority_label: Tensor | None,
    name: str | None = None,
) -> Objective:
    """The method as the pretraining loop calls it; ``au_weights`` is dropped when the method turns
    them off (``au_weights: false``). ``name`` (the method's key) only makes errors clearer."""
    if is_custom(method):
        fn, settings = _custom_settings(method, name)
        kwargs = dict(method.get("options") or {})  # the function's own defaults do the rest
        kwargs["au_weights"] = au_weights if method.get("au_weights", True) else None
        two_views = settings["kind"] == "contrastive"
        if two_views:
            kwargs["minority_label"] = minority_label
        label = method.get("label") or name or method["loss"]
        return Objective(label, two_views, not two_views, fn, kwargs, method["loss"])
    method = expand_preset(method)
    loss = method["loss"]
    kwargs = loss_settings(method)
    use_weights = method.get("au_weights", True)
    kwargs["au_weights"] = au_weights if use_weights else None
    two_views = loss == "aunce"
    if two_views:
        kwargs["minority_label"] = minority_label
    return Objective(method.get("label", loss), two_views, not two_views, LOSSES[loss], kwargs)
