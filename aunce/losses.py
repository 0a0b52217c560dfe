"""The pretraining losses: AUNCE (the paper's contribution), weighted cross-entropy and weighted focal loss.

Formulas follow the shared spec losses.md, which restores the paper's equations (lost in the text
extraction) from Sections 3.2-3.3 and 4.3-4.4 and from the authors' released code.

Shapes (einsum letters used throughout):
    b  images in the batch (B)           a, j  pooled samples of both views (2B)
    k  action units (K)                  d     embedding size (D)
Labels are 1 (AU active), 0 (inactive) or -1 (unknown); unknown entries never take part.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# torch-free constants, shared with the workflow planner; re-exported here
from aunce.presets import AUNCE_PRESETS as AUNCE_PRESETS
from aunce.presets import DEFAULT_POSITIVE_PROBS as DEFAULT_POSITIVE_PROBS
from aunce.presets import PAPER_POSITIVE_PROBS as PAPER_POSITIVE_PROBS
from aunce.presets import POSITIVE_KINDS as POSITIVE_KINDS
from aunce.presets import RELEASED_POSITIVE_PROBS as RELEASED_POSITIVE_PROBS
from aunce.presets import VARIANTS as VARIANTS


def au_weights(
    train_labels: Tensor, au_names: Sequence[str] | None = None, split: str = "training split"
) -> Tensor:
    """AU weights lambda (Eq. 1): ``lambda_i = (1/r_i) / sum_j (1/r_j) * K``; they average to 1.

    ``r_i`` is the occurrence rate of AU i among the known (non -1) labels of ``train_labels``
    (N, K), which must be the training split of the current fold only. An AU that never occurs
    has no defined weight: ``ValueError`` naming the AU and the split.
    """
    labels = torch.as_tensor(train_labels)
    _check_labels(labels, "train_labels", ndim=2)
    known = labels >= 0
    positives = (labels == 1).sum(0).double()
    counts = known.sum(0).double()
    rates = positives / counts.clamp(min=1)
    zero = torch.nonzero(rates == 0).flatten().tolist()
    if zero:
        names = [au_names[i] if au_names is not None else f"AU column {i}" for i in zero]
        raise ValueError(f"AU weights undefined: {', '.join(names)} never active in the {split}")
    inverse = 1.0 / rates
    return (inverse / inverse.sum() * labels.shape[1]).float()


_VALUES_CHECKED = contextvars.ContextVar("aunce_loss_values_checked", default=False)


@contextlib.contextmanager
def values_checked() -> Iterator[None]:
    """Within this block the losses skip their per-call checks of label and minority-label values.

    For a caller that validated them once (the training loop: once per run). Those checks read
    device tensors on the host, a synchronisation on every step on CUDA. Shapes are still checked.
    """
    token = _VALUES_CHECKED.set(True)
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(token)


def _check_labels(labels: Tensor, name: str, ndim: int) -> None:
    if labels.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(labels.shape)}")
    if _VALUES_CHECKED.get():
        return
    bad = labels[(labels != 0) & (labels != 1) & (labels != -1)]
    if bad.numel():
        raise ValueError(f"{name} must hold 1, 0 or -1 (unknown), found {bad[0].item()}")


def _check_weights(weights: Tensor | None, k: int, like: Tensor) -> Tensor:
    if weights is None:
        return torch.ones(k, dtype=like.dtype, device=like.device)
    weights = torch.as_tensor(weights, device=like.device)
    if weights.shape != (k,):
        raise ValueError(f"au_weights must have shape ({k},), got {tuple(weights.shape)}")
    return weights.to(like.dtype)


def _at_least_float32(x: Tensor) -> Tensor:
    """Half precision (autocast) is promoted to float32; float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _masked_au_mean(per_entry: Tensor, known: Tensor, weights: Tensor) -> Tensor:
    """``(1/K) sum_i lambda_i * mean over known entries of AU i``; an AU with none contributes 0."""
    per_entry = torch.where(known, per_entry, torch.zeros_like(per_entry))
    count = known.sum(0)
    per_au = per_entry.sum(0) / count.clamp(min=1)
    return (weights * per_au).sum() / per_entry.shape[1]


def wce_loss(logits: Tensor, labels: Tensor, au_weights: Tensor | None = None) -> Tensor:
    """Weighted cross-entropy (Eq. 1), from logits (never from clamped probabilities).

    ``L = (1/K) sum_i lambda_i mean_b -[y log p + (1-y) log(1-p)]`` over known labels.
    """
    labels = torch.as_tensor(labels, device=logits.device)
    if logits.ndim != 2 or labels.shape != logits.shape:
        raise ValueError(
            f"logits (B, K) and labels (B, K) must match, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    _check_labels(labels, "labels", ndim=2)
    logits = _at_least_float32(logits)
    weights = _check_weights(au_weights, logits.shape[1], logits)
    known = labels >= 0
    target = labels.clamp(min=0).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _masked_au_mean(bce, known, weights)


def clamped_wce_loss(
    logits: Tensor, labels: Tensor, au_weights: Tensor | None = None, clamp: float = 1e-3
) -> Tensor:
    """The released code's WCE (``au_softmax_loss`` of its losses.py) on a two-way softmax head.

    ``logits`` (B, K) are each AU's presence log-odds ``l_0 - l_1`` (the softmax of the pair gives
    ``p = sigmoid(l_0 - l_1)``); ``L = (1/K) sum_i lambda_i mean_b -[y log max(p, c) + (1-y)
    log max(1-p, c)]`` over known labels, with ``c = clamp``: a term whose probability is below it
    has no gradient. For the released linear evaluation (aunce.evaluate); the paper's Eq. 1 is
    :func:`wce_loss`.
    """
    labels = torch.as_tensor(labels, device=logits.device)
    if logits.ndim != 2 or labels.shape != logits.shape:
        raise ValueError(
            f"logits (B, K) and labels (B, K) must match, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if not 0 < clamp < 1:
        raise ValueError(f"clamp must be in (0, 1), got {clamp}")
    _check_labels(labels, "labels", ndim=2)
    logits = _at_least_float32(logits)
    weights = _check_weights(au_weights, logits.shape[1], logits)
    known = labels >= 0
    target = labels.clamp(min=0).to(logits.dtype)
    present, absent = torch.sigmoid(logits), torch.sigmoid(-logits)  # the softmax's two outputs
    per_entry = -(
        target * torch.log(present.clamp(min=clamp))
        + (1 - target) * torch.log(absent.clamp(min=clamp))
    )
    return _masked_au_mean(per_entry, known, weights)


def wfl_loss(
    logits: Tensor,
    labels: Tensor,
    au_weights: Tensor | None = None,
    gamma: float = 2.0,
    margin: float = 0.0,
) -> Tensor:
    """Weighted focal loss with an optional probability margin ``m`` (spec losses.md, WFL).

    ``p_m = max(p - m, 0)``;
    ``L = (1/K) sum_i lambda_i mean_b -[y (1-p)^gamma log p + (1-y) p_m^gamma log(1-p_m)]``.
    With m = 0 this is the plain weighted focal loss. The cited WFL paper's exact formula is not
    public; the margin follows the asymmetric-loss form used in AU work (a reading of the spec).
    """
    labels = torch.as_tensor(labels, device=logits.device)
    if logits.ndim != 2 or labels.shape != logits.shape:
        raise ValueError(
            f"logits (B, K) and labels (B, K) must match, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    _check_labels(labels, "labels", ndim=2)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1), got {margin}")
    logits = _at_least_float32(logits)
    weights = _check_weights(au_weights, logits.shape[1], logits)
    known = labels >= 0
    y = labels.clamp(min=0).to(logits.dtype)
    p = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    if margin > 0:
        p_m = (p - margin).clamp(min=0)
        log_not_p_m = torch.log1p(-p_m)
    else:
        p_m, log_not_p_m = p, F.logsigmoid(-logits)
    per_entry = -(y * (1 - p).pow(gamma) * log_p + (1 - y) * p_m.pow(gamma) * log_not_p_m)
    return _masked_au_mean(per_entry, known, weights)


def draw_positive_kinds(
    n_anchors: int,
    k: int,
    positive_probs: Sequence[float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw a positive kind 0..3 independently per (anchor, AU), on the CPU (same draw on any device)."""
    probs = torch.tensor(positive_probs, dtype=torch.float64)
    draws = torch.multinomial(probs, n_anchors * k, replacement=True, generator=generator)
    return draws.view(n_anchors, k)


def _check_probs(positive_probs: Sequence[float]) -> None:
    probs = list(positive_probs)
    if len(probs) != 4 or any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"positive_probs must be 4 non-negative numbers summing to 1, got {probs}")


def aunce_loss(
    z: Tensor,
    z_aug: Tensor,
    labels: Tensor,
    au_weights: Tensor | None = None,
    *,
    tau: float = 0.5,
    beta_minority: float = 1.2,
    beta_majority: float = 0.4,
    minority_label: Tensor | None = None,
    positive_probs: Sequence[float] | None = None,
    positive_kind: Tensor | None = None,
    generator: torch.Generator | None = None,
    variant: str = "paper",
) -> Tensor:
    """AUNCE (Eq. 2-4 and 8-10): the paper's reading, or the authors' released code (spec losses.md).

    ``variant="paper"`` (default). For AU i and anchor a among the 2B pooled, L2-normalised
    embeddings of both views:
    ``l(a, i) = -log( exp(s+/tau) / (exp(s+/tau) + sum_{j in Neg(a)} exp(beta s(a,j)/tau)) )``,
    where ``s+`` is the similarity to the positive chosen by the positive-sampling strategy
    (kind 0: most similar same-label sample of another image, Eq. 8; kind 1: the twin view, Eq. 9;
    kind 2: the prototype, the plain mean of the same-label embeddings, Eq. 10; kind 3: least
    similar), and the negative re-weighting (Eq. 3, HCL without mean normalisation) gives each
    negative the importance weight ``exp((beta - 1) s / tau)``, not detached, with ``beta =
    beta_minority`` for anchors of AU i's minority label and ``beta_majority`` otherwise.
    ``L = (1/K) sum_i lambda_i mean_a l(a, i)`` over anchors with a known label; an AU without any
    contributes 0. The paper's alpha is this 1/K: it equals each dataset's number of AUs.
    Readings the spec fixes: kinds 0, 2 and 3 fall back to the twin view when no other image in the
    batch shares the anchor's label; the prototype is the mean of the normalised embeddings and is
    not renormalised, so ``s+ = <z_a, mean_j z_j> = mean_j s(a, j)``.

    ``variant="released"`` reproduces the released ``losses.py`` point by point: one positive kind
    per AU per batch (default probabilities 0.2 max, 0.2 twin, 0.6 mean); "max" and "mean" run over
    all same-label samples including the anchor itself, so "max" is the constant ``exp(1/tau)``;
    "mean" is ``(1/2B) sum_{j same label} exp(s(a,j)/tau)``; beta is ``beta_minority`` for anchors
    labelled 1 and ``beta_majority`` for anchors labelled 0 (``minority_label`` is ignored; the
    released configuration used 1.2 and 0.8); the loss is the mean over anchors, then over AUs,
    weighted by ``au_weights`` if given (the released configuration passes none). Unknown labels,
    which the released code never sees, are left out as in the paper variant.

    Args:
        z, z_aug: (B, K, D) per-AU embeddings of two augmented views of the same B images.
        labels: (B, K) in {1, 0, -1}.
        au_weights: (K,) lambda, or None for uniform weights.
        minority_label: (K,) 0/1, the minority label of each AU (1 when its training occurrence
            rate is below 0.5); None means 1 for every AU. Paper variant only.
        positive_probs: probabilities of kinds 0..3 (None: the variant's default,
            (0.15, 0.15, 0.7, 0) for paper, (0.2, 0.2, 0.6, 0) for released).
        positive_kind: optional long tensor of kinds overriding the draw: (2B, K) for the paper
            variant, rows 0..B-1 the anchors from ``z`` and B..2B-1 those from ``z_aug``; (K,) (or
            (2B, K) with equal rows) for the released variant.
        generator: torch.Generator for the draw (drawn on the CPU, so any device draws the same).
        variant: "paper" or "released".
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown AUNCE variant '{variant}' (known: {', '.join(VARIANTS)})")
    if z.ndim != 3 or z_aug.shape != z.shape:
        raise ValueError(
            f"z and z_aug must both be (B, K, D), got {tuple(z.shape)} and {tuple(z_aug.shape)}"
        )
    b, k, _ = z.shape
    labels = torch.as_tensor(labels, device=z.device)
    if labels.shape != (b, k):
        raise ValueError(f"labels must be (B, K) = ({b}, {k}), got {tuple(labels.shape)}")
    _check_labels(labels, "labels", ndim=2)
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    probs = DEFAULT_POSITIVE_PROBS[variant] if positive_probs is None else tuple(positive_probs)
    _check_probs(probs)
    # drawn on the CPU; non_blocking: a plain copy would wait for the device's queue on every call
    kinds = _positive_kinds(variant, positive_kind, probs, b, k, generator)
    kind = kinds.to(z.device, non_blocking=True).T  # (k, a)

    # Similarities in at least float32, also under autocast: exp(s / tau) is sensitive.
    with torch.autocast(z.device.type, enabled=False):
        sim = cosine_similarities(_at_least_float32(torch.cat([z, z_aug])))  # (k, a, j)
    y = torch.cat([labels, labels]).T  # (k, a)
    known = y >= 0
    both_known = known[:, :, None] & known[:, None, :]
    same_label = (y[:, :, None] == y[:, None, :]) & both_known  # includes the anchor itself
    negative = both_known & ~same_label  # Neg(a)
    twin = (torch.arange(2 * b, device=z.device) + b) % (2 * b)
    s_twin = sim.gather(2, twin.view(1, -1, 1).expand(k, -1, 1)).squeeze(-1)  # (k, a)

    if variant == "paper":
        minority = _minority(minority_label, k, z.device)
        image = torch.arange(2 * b, device=z.device) % b
        same = same_label & (image[:, None] != image[None, :])  # Same(a): other images
        pos_logit = _paper_positive(sim, same, s_twin, kind) / tau
        beta = torch.where(y == minority[:, None], beta_minority, beta_majority)
    else:
        pos_logit = _released_positive(sim, same_label, s_twin, kind, tau)
        beta = torch.where(y == 1, beta_minority, beta_majority)
    neg_logits = (beta.to(sim.dtype)[:, :, None] * sim / tau).masked_fill(~negative, float("-inf"))
    all_logits = torch.cat([pos_logit.unsqueeze(-1), neg_logits], -1)
    per_anchor = torch.logsumexp(all_logits, -1) - pos_logit  # (k, a)

    weights = _check_weights(au_weights, k, per_anchor)
    return _masked_au_mean(per_anchor.T, known.T, weights)


def cosine_similarities(pooled: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-AU cosine similarities (k, a, j) of (a, k, d) embeddings, as ``F.normalize`` then dot.

    Normalising the Gram matrix by its diagonal rather than the embeddings keeps the backward pass on
    (K, 2B, 2B) tensors instead of (2B, K, D) ones (1.5x faster at B = 32, D = 1024; BENCHMARKS.md).
    """
    gram = torch.einsum("akd,jkd->kaj", pooled, pooled)
    norms = gram.diagonal(dim1=1, dim2=2).clamp(min=0).sqrt().clamp(min=eps)  # (k, a)
    return gram / (norms[:, :, None] * norms[:, None, :])


def _minority(minority_label: Tensor | None, k: int, device) -> Tensor:
    if minority_label is None:
        return torch.ones(k, dtype=torch.long, device=device)
    minority = torch.as_tensor(minority_label, device=device).long()
    if minority.shape == (k,) and _VALUES_CHECKED.get():
        return minority
    if minority.shape != (k,) or not bool(((minority == 0) | (minority == 1)).all()):
        raise ValueError(f"minority_label must be (K,) = ({k},) of 0/1, got {minority.tolist()}")
    return minority


def _positive_kinds(variant, positive_kind, probs, b, k, generator) -> Tensor:
    """(2B, K) kinds: drawn per (anchor, AU) for the paper, once per AU for the released code."""
    if variant == "released" and probs[3] > 0:
        raise ValueError(
            f"the released variant has no least-similar positive (kind 3), got {probs}"
        )
    if positive_kind is None:
        rows = 2 * b if variant == "paper" else 1
        return draw_positive_kinds(rows, k, probs, generator).expand(2 * b, k)
    kinds = torch.as_tensor(positive_kind).long().cpu()
    if variant == "released":
        if kinds.shape == (k,):
            kinds = kinds.expand(2 * b, k)
        elif kinds.shape != (2 * b, k) or not bool((kinds == kinds[:1]).all()):
            raise ValueError(
                f"released positive_kind must be (K,) = ({k},) or (2B, K) with equal rows"
            )
    if kinds.shape != (2 * b, k):
        raise ValueError(f"positive_kind must be (2B, K) = ({2 * b}, {k}) of kinds 0..3")
    if not bool(((kinds >= 0) & (kinds <= (3 if variant == "paper" else 2))).all()):
        raise ValueError(
            f"positive_kind holds a kind outside 0..3 (or 0..2 for released): {kinds.unique().tolist()}"
        )
    return kinds


def _paper_positive(sim: Tensor, same: Tensor, s_twin: Tensor, kind: Tensor) -> Tensor:
    """s+ per (AU, anchor): Eq. 8 (max), Eq. 9 (twin), Eq. 10 (prototype), or least similar."""
    n_same = same.sum(-1)
    s_max = sim.masked_fill(~same, float("-inf")).amax(-1)
    s_min = sim.masked_fill(~same, float("inf")).amin(-1)
    s_proto = (sim * same).sum(-1) / n_same.clamp(min=1)
    candidates = torch.stack([s_max, s_twin, s_proto, s_min], -1)  # (k, a, 4)
    kind = torch.where((n_same > 0) | (kind == 1), kind, torch.ones_like(kind))  # twin fallback
    return candidates.gather(-1, kind.unsqueeze(-1)).squeeze(-1)


def _released_positive(
    sim: Tensor, same_label: Tensor, s_twin: Tensor, kind: Tensor, tau: float
) -> Tensor:
    """log of the released positive score: max or (1/2B)-mean of exp(s/tau) over the anchor's label."""
    scaled = (sim / tau).masked_fill(~same_label, float("-inf"))
    log_max = scaled.amax(-1)  # the anchor itself: 1/tau
    log_mean = torch.logsumexp(scaled, -1) - math.log(sim.shape[-1])
    candidates = torch.stack([log_max, s_twin / tau, log_mean], -1)  # kinds 0, 1, 2
    return candidates.gather(-1, kind.unsqueeze(-1)).squeeze(-1)


class _WeightedLoss(nn.Module):
    """Holds the AU weights as a buffer so they move with ``.to(device)`` and are saved."""

    def __init__(self, au_weights: Tensor | None = None):
        super().__init__()
        self.register_buffer(
            "au_weights", None if au_weights is None else torch.as_tensor(au_weights).float()
        )


class WCELoss(_WeightedLoss):
    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return wce_loss(logits, labels, self.au_weights)


class WFLLoss(_WeightedLoss):
    def __init__(self, au_weights: Tensor | None = None, gamma: float = 2.0, margin: float = 0.0):
        super().__init__(au_weights)
        self.gamma, self.margin = gamma, margin

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return wfl_loss(logits, labels, self.au_weights, gamma=self.gamma, margin=self.margin)


class AUNCELoss(_WeightedLoss):
    def __init__(
        self,
        au_weights: Tensor | None = None,
        *,
        tau: float = 0.5,
        beta_minority: float = 1.2,
        beta_majority: float = 0.4,
        minority_label: Tensor | None = None,
        positive_probs: Sequence[float] | None = None,
        variant: str = "paper",
    ):
        super().__init__(au_weights)
        self.register_buffer(
            "minority_label",
            None if minority_label is None else torch.as_tensor(minority_label).long(),
        )
        self.tau, self.beta_minority, self.beta_majority = tau, beta_minority, beta_majority
        self.positive_probs = None if positive_probs is None else tuple(positive_probs)
        self.variant = variant

    def forward(
        self,
        z: Tensor,
        z_aug: Tensor,
        labels: Tensor,
        *,
        positive_kind: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return aunce_loss(
            z,
            z_aug,
            labels,
            self.au_weights,
            tau=self.tau,
            beta_minority=self.beta_minority,
            beta_majority=self.beta_majority,
            minority_label=self.minority_label,
            positive_probs=self.positive_probs,
            positive_kind=positive_kind,
            generator=generator,
            variant=self.variant,
        )
