"""Example user methods for docs/custom-method.md and tests/test_custom_method.py.

Point a config's method at them by import path (the working directory, the project root, is on
``sys.path`` when pretraining jobs import them)::

    methods:
      smoothed_wce: {loss: "tests.example_method:smoothed_wce", kind: classification,
                     options: {smoothing: 0.1}, label: WCE + label smoothing}
      supcon: {loss: "tests.example_method:supcon", kind: contrastive,
               options: {temperature: 0.2}, label: SupCon}

Both follow the harness's conventions (../shared/spec/losses.md): unknown labels (-1) drop out of
each AU's mean, AUs are averaged with the weights lambda (uniform when ``au_weights`` is None), and
an AU with no known label in the batch contributes 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _weighted_au_mean(per_entry: Tensor, known: Tensor, au_weights: Tensor | None) -> Tensor:
    """(N, K) losses -> mean over the known entries of each AU, then lambda-weighted mean over AUs."""
    known = known.to(per_entry.dtype)
    per_au = (per_entry * known).sum(0) / known.sum(0).clamp(min=1)
    weights = torch.ones_like(per_au) if au_weights is None else au_weights.to(per_au)
    return (weights * per_au).mean()


def smoothed_wce(
    logits: Tensor, labels: Tensor, *, au_weights: Tensor | None = None, smoothing: float = 0.1
) -> Tensor:
    """Classification: WCE (Eq. 1) on label-smoothed targets, y (1 - s) + s / 2."""
    targets = labels.clamp(min=0).to(logits.dtype) * (1 - smoothing) + smoothing / 2
    per_entry = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), reduction="none"
    )
    return _weighted_au_mean(per_entry, labels >= 0, au_weights)


def supcon(
    z: Tensor,
    z_aug: Tensor,
    labels: Tensor,
    *,
    au_weights: Tensor | None = None,
    minority_label: Tensor | None = None,
    generator: torch.Generator | None = None,
    temperature: float = 0.1,
) -> Tensor:
    """Contrastive: supervised contrastive loss (Khosla et al. 2020) per AU, on both views pooled.

    For AU k, every sample a with a known label is an anchor; its positives are all other samples
    with the same known label (its twin view among them), its denominator all other known samples.
    ``minority_label`` and ``generator`` are part of the calling contract and unused here.
    """
    b, k, _ = z.shape
    emb = F.normalize(torch.cat([z, z_aug]).float(), dim=-1).transpose(0, 1)  # (K, 2B, D)
    y = torch.cat([labels, labels]).T  # (K, 2B)
    known = y >= 0
    logits = emb @ emb.transpose(1, 2) / temperature  # (K, 2B, 2B)
    pair = (
        known[:, :, None] & known[:, None, :] & ~torch.eye(2 * b, dtype=torch.bool, device=z.device)
    )
    logits = logits.masked_fill(~pair, -1e9)  # finite: a row without partners stays NaN-free
    log_prob = logits - torch.logsumexp(logits, dim=2, keepdim=True)
    positive = pair & (y[:, :, None] == y[:, None, :])
    n_pos = positive.sum(2)
    per_anchor = -log_prob.masked_fill(~positive, 0).sum(2) / n_pos.clamp(min=1)  # (K, 2B)
    return _weighted_au_mean(per_anchor.T, (known & (n_pos > 0)).T, au_weights)
