"""Aggregation over folds and seeds (protocol.md, "Reported figure per table cell").

A cell's figure is the mean over folds of the per-fold F1, then the mean and the sample standard
deviation (ddof = 1) over seeds. With a single seed the standard deviation is undefined (NaN) and
tables print none.
"""

from __future__ import annotations

import pandas as pd

CELL = ["dataset", "encoder", "method"]
SUMMARY = ["f1_macro", "f1_micro", "accuracy", "exact_match"]


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run from metrics.json records: cell keys, fold, seed, summary and per-AU F1."""
    rows = []
    for rec in records:
        row = dict(rec["run"])
        row.update({key: rec[key] for key in SUMMARY})
        row.update({f"f1_{au}": value for au, value in rec["f1"].items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    dup = frame.duplicated(CELL + ["fold", "seed"])
    if dup.any():
        raise ValueError(
            f"duplicate runs: {frame.loc[dup, CELL + ['fold', 'seed']].to_dict('records')}"
        )
    return frame


def aggregate(runs: pd.DataFrame, values: list[str] | None = None) -> pd.DataFrame:
    """Mean over folds per seed, then mean and std over seeds, per cell.

    Returns one row per cell with columns ``<value>_mean``, ``<value>_std``, ``n_seeds`` and
    ``n_folds`` (folds per seed; every seed must have the same folds).
    """
    values = values or [c for c in runs.columns if c in SUMMARY or c.startswith("f1_AU")]
    per_seed = runs.groupby(CELL + ["seed"], sort=False)[values].mean()
    folds = runs.groupby(CELL + ["seed"], sort=False)["fold"].nunique()
    uneven = folds.groupby(CELL, sort=False).nunique()
    if (uneven > 1).any():
        raise ValueError(
            f"cells whose seeds cover different numbers of folds: {list(uneven[uneven > 1].index)}"
        )
    grouped = per_seed.groupby(CELL, sort=False)
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    out["n_seeds"] = grouped.size()
    out["n_folds"] = folds.groupby(CELL, sort=False).first()
    return out.reset_index()
