"""Detection metrics from scikit-learn, with unknown labels (-1) left out (protocol.md).

- ``f1``: F1 of each AU on its known labels;
- ``f1_macro``: mean of the per-AU F1 (the paper's "F1" and "Avg.");
- ``f1_micro``: F1 of TP, FP and FN pooled over all AUs;
- ``accuracy``: per-AU accuracy averaged over AUs (the paper's "correctly classified frames over
  all frames", read per AU) and ``exact_match``: frames whose every AU is right, over frames whose
  every label is known. All values are fractions in [0, 1]; tables print percentages.
- ``all_positive``: the same F1s for the trivial predictor that calls every AU active on every frame,
  the floor a detector must clear (on imbalanced AUs its F1 is ``2r / (1 + r)`` for occurrence r).
- ``by_subject`` (when the test frames' subjects are given): ``{"subjects": [...], "counts":
  [[[tp, fp, fn, tn] per AU] per subject]}``, the confusion counts of each test subject over its
  frames with a known label. Summed over the subjects they give every figure above
  (aunce.stats.metric_from_counts); the verdicts' test leaves one subject out at a time to
  measure how much the figures depend on which subjects were tested (docs/report.md, "The test").
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def detection_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    aus: list[str],
    threshold: float = 0.5,
    subjects: np.ndarray | None = None,
) -> dict:
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob)
    if y_true.shape != y_prob.shape or y_true.ndim != 2 or y_true.shape[1] != len(aus):
        raise ValueError(
            f"labels {y_true.shape}, probabilities {y_prob.shape} and {len(aus)} AUs disagree"
        )
    y_pred = (y_prob >= threshold).astype(np.int8)
    known = y_true >= 0
    f1, acc, support = {}, {}, {}
    for k, au in enumerate(aus):
        m = known[:, k]
        f1[au] = (
            float(f1_score(y_true[m, k], y_pred[m, k], zero_division=0.0))
            if m.any()
            else float("nan")
        )
        acc[au] = float(accuracy_score(y_true[m, k], y_pred[m, k])) if m.any() else float("nan")
        support[au] = {"known": int(m.sum()), "positive": int((y_true[m, k] == 1).sum())}
    micro = (
        f1_score(y_true[known], y_pred[known], zero_division=0.0) if known.any() else float("nan")
    )
    full = known.all(1)
    exact = float((y_pred[full] == y_true[full]).all(1).mean()) if full.any() else float("nan")
    # the trivial reference: every AU predicted active on every frame
    all_positive = {}
    for k, au in enumerate(aus):
        m = known[:, k]
        all_positive[au] = (
            float(f1_score(y_true[m, k], np.ones(m.sum(), np.int8), zero_division=0.0))
            if m.any()
            else float("nan")
        )
    out = {
        "aus": list(aus),
        "f1": f1,
        "f1_macro": float(np.nanmean(list(f1.values()))),
        "f1_micro": float(micro),
        "accuracy": float(np.nanmean(list(acc.values()))),
        "accuracy_per_au": acc,
        "exact_match": exact,
        "support": support,
        "all_positive": {
            "f1": all_positive,
            "f1_macro": float(np.nanmean(list(all_positive.values()))),
        },
        "threshold": threshold,
        "n_frames": int(len(y_true)),
    }
    if subjects is not None:
        out["by_subject"] = subject_counts(y_true, y_pred, subjects)
    return out


def subject_counts(y_true: np.ndarray, y_pred: np.ndarray, subjects: np.ndarray) -> dict:
    """Per test subject and AU: true positives, false positives, false negatives and true
    negatives over the frames with a known label (``-1`` left out), subjects in sorted order."""
    subjects = np.asarray(subjects).astype(str)
    if len(subjects) != len(y_true):
        raise ValueError(f"{len(subjects)} subjects for {len(y_true)} test frames")
    names, index = np.unique(subjects, return_inverse=True)
    known = y_true >= 0
    counts = np.zeros((len(names), y_true.shape[1], 4), dtype=np.int64)
    for i, (truth, pred) in enumerate(((1, 1), (0, 1), (1, 0), (0, 0))):
        hit = known & (y_true == truth) & (y_pred == pred)
        np.add.at(counts[:, :, i], index, hit.astype(np.int64))
    return {"subjects": names.tolist(), "counts": counts.tolist()}
