"""Aggregation over folds and seeds, and the statistics the paper promises and does not show.

protocol.md, "Reported figure per table cell": a cell's figure is the mean over folds of the
per-fold F1, then the mean and the sample standard deviation (ddof = 1) over seeds. With a single seed
the standard deviation is undefined (NaN) and tables print none.

protocol.md, "Statistics the paper promises and does not show": paired t-test and Wilcoxon
signed-rank test between two methods the harness ran (pairs: same fold and seed), Cohen's d_z, Holm
correction within a table, and the paper's own criterion against a published baseline (improvement
larger than twice the standard deviation). pandas and scipy only: no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

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


def seed_summary(runs: pd.DataFrame, values: list[str] | None = None) -> pd.DataFrame:
    """Per cell and seed, the mean over folds (protocol.md, "Reported figure per table cell").

    These are the numbers whose mean and sample standard deviation ``aggregate`` reports, one row per
    (dataset, encoder, method, seed) with the fold-mean of each value (default: F1-macro) and
    ``n_folds``, for reports that show what a standard deviation was computed from.
    """
    values = values or ["f1_macro"]
    grouped = runs.groupby(CELL + ["seed"], sort=False)
    out = grouped[values].mean()
    out["n_folds"] = grouped["fold"].nunique()
    return out.reset_index()


PAIR = ["fold", "seed"]
COMPARISON = [
    "dataset",
    "encoder",
    "method_a",
    "method_b",
    "value",
    "n_pairs",
    "n_unpaired",
    "mean_a",
    "mean_b",
    "mean_diff",
    "t",
    "p_ttest",
    "w",
    "p_wilcoxon",
    "effect_size",
]
# Differences are rounded before ranking so that F1 values equal up to float roundoff tie (and
# cancel to zero) as they would in exact arithmetic; scipy's wilcoxon docstring asks for this.
DIFF_DECIMALS = 12


def _default_values(runs: pd.DataFrame) -> list[str]:
    """F1-macro and every per-AU F1 column holding at least one number in these runs."""
    candidates = ["f1_macro"] + [c for c in runs.columns if c.startswith("f1_AU")]
    return [c for c in candidates if c in runs.columns and runs[c].notna().any()]


def _compare(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired tests on two aligned samples; NaN wherever a test is undefined (see paired_comparison)."""
    n = len(a)
    diff = a - b
    rounded = np.round(diff, DIFF_DECIMALS)
    row = {
        "n_pairs": n,
        "mean_a": a.mean() if n else np.nan,
        "mean_b": b.mean() if n else np.nan,
        "mean_diff": diff.mean() if n else np.nan,
        "t": np.nan,
        "p_ttest": np.nan,
        "w": np.nan,
        "p_wilcoxon": np.nan,
        "effect_size": np.nan,
    }
    if n < 2:
        return row
    if np.ptp(rounded) > 0:
        ttest = stats.ttest_rel(a, b, alternative="two-sided")
        row.update(
            t=float(ttest.statistic),
            p_ttest=float(ttest.pvalue),
            effect_size=float(diff.mean() / diff.std(ddof=1)),
        )
    if np.any(rounded != 0):
        wilcoxon = stats.wilcoxon(rounded, zero_method="wilcox", alternative="two-sided")
        row.update(w=float(wilcoxon.statistic), p_wilcoxon=float(wilcoxon.pvalue))
    return row


def paired_comparison(
    runs: pd.DataFrame, method_a: str, method_b: str, values: list[str] | None = None
) -> pd.DataFrame:
    """Paired t-test, Wilcoxon signed-rank test and effect size of ``method_a`` against ``method_b``.

    protocol.md, "Statistics the paper promises and does not show": the paper promises paired
    t-tests and Wilcoxon tests; here a pair is the two runs of the same fold and seed, on the one
    (dataset, encoder) cell both methods were run on. Returns one row per value (default: F1-macro
    and every per-AU F1 column with a number in these runs) with columns ``dataset, encoder,
    method_a, method_b, value, n_pairs, n_unpaired, mean_a, mean_b, mean_diff, t, p_ttest, w,
    p_wilcoxon, effect_size``; differences are ``a - b``, all tests two-sided.

    - Pairing: a (fold, seed) run for one method only is dropped and counted in ``n_unpaired``
      (the same for every value). A pair with a NaN in a value is left out of that value only, so
      ``n_pairs`` may differ between values. ``mean_a`` and ``mean_b`` are over the pairs used.
    - t-test: ``scipy.stats.ttest_rel``. NaN (``t`` and ``p_ttest``) with fewer than 2 pairs, and
      when every difference is the same (zero variance: the statistic divides by zero; a constant
      non-zero difference shows in ``mean_diff`` and in the Wilcoxon test instead).
    - Wilcoxon: ``scipy.stats.wilcoxon`` on the differences rounded to 12 decimals (so that values
      equal up to float roundoff tie), ``zero_method="wilcox"``: zero differences are discarded,
      tied absolute differences get their average rank, and ``method="auto"`` lets scipy choose the
      p-value (exact or permutation for small samples, normal approximation for large ones, as the
      installed version decides). ``w`` is the smaller of the positive and negative rank sums. NaN
      (``w`` and ``p_wilcoxon``) with fewer than 2 pairs or when every difference is zero; with a
      single non-zero difference among several pairs scipy's value (p = 1) is kept.
    - Effect size: Cohen's d_z, mean difference over the sample standard deviation (ddof = 1) of
      the differences; NaN with fewer than 2 pairs or zero variance.

    Raises ValueError when a method has no runs, when both names are the same, when a method's runs
    span several (dataset, encoder) cells or the two methods were run on different cells (filter the
    frame to one cell first; ``significance_table`` does that per cell), when a method repeats a
    (fold, seed), or when a requested value is not a column.
    """
    if method_a == method_b:
        raise ValueError(f"method_a and method_b are both {method_a!r}: compare two methods")
    cells = {}
    for method in (method_a, method_b):
        own = runs[runs["method"] == method]
        if own.empty:
            known = sorted(runs["method"].unique()) if "method" in runs else []
            raise ValueError(f"no runs of method {method!r}; methods present: {known}")
        cells[method] = sorted(set(own[["dataset", "encoder"]].itertuples(index=False, name=None)))
    if len(cells[method_a]) != 1 or cells[method_a] != cells[method_b]:
        raise ValueError(
            f"methods must be compared on one and the same (dataset, encoder) cell: "
            f"{method_a!r} ran on {cells[method_a]}, {method_b!r} on {cells[method_b]}"
        )
    dataset, encoder = cells[method_a][0]
    pair_runs = runs[runs["method"].isin([method_a, method_b])]
    values = values or _default_values(pair_runs)
    missing = [v for v in values if v not in runs.columns]
    if missing:
        raise ValueError(f"values {missing} are not columns of the runs frame")
    sides = {}
    for method in (method_a, method_b):
        own = pair_runs[pair_runs["method"] == method]
        dup = own.duplicated(PAIR)
        if dup.any():
            raise ValueError(
                f"method {method!r} repeats (fold, seed): {own.loc[dup, PAIR].to_dict('records')}"
            )
        sides[method] = own.set_index(PAIR)[values]
    paired = sides[method_a].add_suffix("_a").join(sides[method_b].add_suffix("_b"), how="inner")
    n_unpaired = len(sides[method_a]) + len(sides[method_b]) - 2 * len(paired)
    rows = []
    for value in values:
        both = paired[[f"{value}_a", f"{value}_b"]].dropna().to_numpy(dtype=float)
        row = {
            "dataset": dataset,
            "encoder": encoder,
            "method_a": method_a,
            "method_b": method_b,
            "value": value,
            "n_unpaired": n_unpaired,
        }
        row.update(_compare(both[:, 0], both[:, 1]))
        rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON)


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979), same shape as the input.

    With the m non-NaN p-values sorted, p_(1) <= ... <= p_(m), the adjusted value of p_(i) is
    ``min(1, max_{j <= i} (m - j + 1) p_(j))``: monotone in p and capped at 1. NaNs (tests that
    could not be run) are passed through unchanged and not counted in m. Raises ValueError on a
    p-value outside [0, 1].
    """
    p = np.asarray(pvalues, dtype=float)
    known = ~np.isnan(p)
    observed = p[known]
    if np.any((observed < 0) | (observed > 1)):
        raise ValueError(
            f"p-values must lie in [0, 1], got {observed[(observed < 0) | (observed > 1)]}"
        )
    m = observed.size
    order = np.argsort(observed, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * observed[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    out = p.copy()
    out[known] = adjusted
    return out


def significance_table(
    runs: pd.DataFrame, pairs: list[tuple[str, str]], values: list[str] | None = None
) -> pd.DataFrame:
    """Every requested pair compared in every (dataset, encoder) cell, Holm-corrected per table.

    protocol.md, "Statistics the paper promises and does not show": comparisons between methods the
    harness ran, corrected for multiple comparisons. ``runs`` holds one table's runs (it may span
    several cells, as table8 spans encoders and datasets); each pair (a, b) is compared with
    ``paired_comparison`` in each cell where either method ran, and the rows are stacked.
    ``p_ttest_holm`` and ``p_wilcoxon_holm`` are Holm-adjusted over the whole table (all cells x
    pairs x values together); NaN p-values stay NaN and do not count.

    Raises ValueError when ``pairs`` is empty, when a method of a pair never ran, or when in some
    cell one method of a pair ran and the other did not.
    """
    if not pairs:
        raise ValueError("no pairs of methods to compare")
    frames = []
    for method_a, method_b in pairs:
        found = False
        for (dataset, encoder), cell in runs.groupby(["dataset", "encoder"], sort=False):
            present = set(cell["method"])
            if method_a not in present and method_b not in present:
                continue
            if method_a not in present or method_b not in present:
                raise ValueError(
                    f"cell ({dataset!r}, {encoder!r}) has runs of only one of "
                    f"{method_a!r} and {method_b!r}"
                )
            frames.append(paired_comparison(cell, method_a, method_b, values))
            found = True
        if not found:
            raise ValueError(f"neither {method_a!r} nor {method_b!r} has runs in this table")
    table = pd.concat(frames, ignore_index=True)
    table["p_ttest_holm"] = holm(table["p_ttest"].to_numpy())
    table["p_wilcoxon_holm"] = holm(table["p_wilcoxon"].to_numpy())
    return table


def beats_published(mean: float, std: float, published: float) -> bool:
    """The paper's own criterion: this run beats a published number by more than twice its std.

    protocol.md, "Statistics the paper promises and does not show": ``mean - published > 2 * std``,
    with ``mean`` and ``std`` the mean and sample standard deviation over seeds (``aggregate``) in the
    same units as ``published`` (convert fractions to percent first). Strict: an improvement of
    exactly two standard deviations does not count. False when ``std`` is NaN (a single seed: the
    criterion cannot be met without a spread to compare with) and when ``mean`` or ``published`` is
    NaN.
    """
    return bool(mean - published > 2 * std)


def beats_published_frame(
    frame: pd.DataFrame,
    mean: str = "f1_macro_mean",
    std: str = "f1_macro_std",
    published: str = "published",
) -> pd.Series:
    """``beats_published`` row by row over three columns of ``frame``; a boolean Series, NaN -> False."""
    return (frame[mean] - frame[published] > 2 * frame[std]).astype(bool)
