"""Slow, obviously-correct references written straight from shared spec losses.md.

Used by the tests and by benchmarks/losses.py. Python loops over AUs and anchors, float64 maths.
"""

import math

import torch
import torch.nn.functional as F


def reference_aunce(z, z_aug, labels, weights, tau, beta_min, beta_maj, minority, kinds):
    """The paper variant, anchor by anchor: Same(a), Neg(a), the four positive kinds, Eq. 3-4."""
    b, k, _ = z.shape
    pooled = torch.cat([z, z_aug]).double()
    y = torch.cat([labels, labels])
    total = 0.0
    for i in range(k):
        emb = [pooled[a, i] / pooled[a, i].norm() for a in range(2 * b)]
        losses = []
        for a in range(2 * b):
            if y[a, i] < 0:
                continue
            same = [j for j in range(2 * b) if j % b != a % b and y[j, i] == y[a, i]]
            neg = [j for j in range(2 * b) if y[j, i] >= 0 and y[j, i] != y[a, i]]
            sim = {j: float(emb[a] @ emb[j]) for j in range(2 * b)}
            kind = int(kinds[a, i]) if same else 1
            if kind == 0:
                s_pos = max(sim[j] for j in same)
            elif kind == 1:
                s_pos = sim[(a + b) % (2 * b)]
            elif kind == 2:
                proto = sum(emb[j] for j in same) / len(same)
                s_pos = float(emb[a] @ proto)
            else:
                s_pos = min(sim[j] for j in same)
            beta = beta_min if int(y[a, i]) == int(minority[i]) else beta_maj
            denom = math.exp(s_pos / tau) + sum(math.exp(beta * sim[j] / tau) for j in neg)
            losses.append(-math.log(math.exp(s_pos / tau) / denom))
        if losses:
            total += float(weights[i]) * sum(losses) / len(losses)
    return total / k


def literal_released(z, z_aug, labels, kind_per_au, tau, beta_1, beta_0, weights=None):
    """The released formula transcribed literally: products of exp-scores in the released layout.

    Embeddings in the released (N, D, K) layout, already L2-normalised per AU by the model's head;
    ``scores[i, l, k] = exp(<out_i, out_l>_k / tau)``; every label known. ``kind_per_au``: 0 "max",
    2 "mean", 1 the twin view.
    """
    x = F.normalize(z.double(), dim=-1).transpose(1, 2)
    x_aug = F.normalize(z_aug.double(), dim=-1).transpose(1, 2)
    out = torch.cat([x, x_aug])  # (2B, D, K)
    target = torch.cat([labels, labels]).double()  # (2B, K)
    scores = torch.exp(torch.einsum("idk,ldk->ilk", out, out) / tau)  # (2B, 2B, K)
    relation_pos = (target.unsqueeze(0) == target.unsqueeze(1)).double()  # [i, l, k]
    pos_max = (relation_pos * scores).max(dim=1).values
    pos_mean = (relation_pos * scores).mean(dim=1)
    twin = torch.exp((x * x_aug).sum(dim=1) / tau)
    pos_twin = torch.cat([twin, twin])
    pick = torch.as_tensor(kind_per_au)
    pos = pos_max * (pick == 0) + pos_mean * (pick == 2) + pos_twin * (pick == 1)
    relation_neg = 1.0 - relation_pos
    neg = (relation_neg * scores**beta_1).sum(dim=1) * (target == 1) + (
        relation_neg * scores**beta_0
    ).sum(dim=1) * (target == 0)
    per_au = -(torch.log(pos / (pos + neg))).mean(dim=0)
    if weights is not None:
        per_au = per_au * weights
    return per_au.mean().item()


def reference_wce(logits, labels, weights):
    k = logits.shape[1]
    total = 0.0
    for i in range(k):
        terms = []
        for b in range(logits.shape[0]):
            y = int(labels[b, i])
            if y < 0:
                continue
            p = 1 / (1 + math.exp(-float(logits[b, i])))
            terms.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
        if terms:
            total += float(weights[i]) * sum(terms) / len(terms)
    return total / k


def reference_wfl(logits, labels, weights, gamma, margin):
    k = logits.shape[1]
    total = 0.0
    for i in range(k):
        terms = []
        for b in range(logits.shape[0]):
            y = int(labels[b, i])
            if y < 0:
                continue
            p = 1 / (1 + math.exp(-float(logits[b, i])))
            pm = max(p - margin, 0.0)
            terms.append(
                -(y * (1 - p) ** gamma * math.log(p) + (1 - y) * pm**gamma * math.log(1 - pm))
            )
        if terms:
            total += float(weights[i]) * sum(terms) / len(terms)
    return total / k
