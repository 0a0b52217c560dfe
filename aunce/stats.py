"""Aggregation over folds and seeds, and the statistics the paper promises and does not show.

protocol.md, "Reported figure per table cell": a cell's figure is the mean over folds of the
per-fold F1, then the mean and the sample standard deviation (ddof = 1) over seeds. With a single seed
the standard deviation is undefined (NaN) and tables print none.

protocol.md, "Statistics the paper promises and does not show": a test between two methods the
harness ran whose unit is the trained model (:func:`estimate`, :func:`t_test`; docs/report.md,
"The test": the paper's paired t-test over (fold, seed) pairs counted runs that share test subjects
and models as independent, and rejected far more often than it promised, as aunce.calibration
measures), Holm's correction, and the paper's own criterion against a published baseline
(improvement larger than twice the standard deviation). pandas and scipy only: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


# --- the test: trained models are the unit; folds, seeds and test subjects are its variance ------
#
# docs/report.md, "The test", states the design and its assumptions; in short: a comparison's
# statistic is the difference of two arms' means over the same runs (mean over seeds of the mean over
# folds, as every table averages), and its variance is the sum of two components: the spread of the
# seed means of the trained models (the training randomness; a model evaluated on several target
# folds is one observation), and the test subjects' sampling, a delete-one-subject jackknife over
# per-subject confusion counts, stratified by test set. The training folds are the protocol's and
# fixed. The statistic is referred to Student's t with the smaller component's degrees of freedom
# (Hsu's conservative choice for a sum of variances estimated with few degrees of freedom).

Key = tuple[str, int]  # (fold, seed): the fold label of a run (within: its fold; cross: "sf-on-tf")
COUNT_FIELDS = ("tp", "fp", "fn", "tn")
METRICS = ("f1_macro", "f1_micro", "accuracy")


def metric_from_counts(counts: np.ndarray, metric: str = "f1_macro") -> np.ndarray:
    """F1-macro, F1-micro or accuracy from confusion counts ``(..., K, 4)`` (tp, fp, fn, tn per AU,
    over the frames with a known label; aunce.metrics defines the same from the predictions).

    - F1 of an AU: ``2 tp / (2 tp + fp + fn)``; 0 when that denominator is 0 but the AU has known
      labels (scikit-learn's ``zero_division=0``), NaN when it has none.
    - ``f1_macro``: the mean of the AUs' F1 over the AUs with a number; ``f1_micro``: F1 of the
      counts pooled over the AUs; ``accuracy``: the mean over the AUs of ``(tp + tn) / n``.
    """
    c = np.asarray(counts, dtype=float)
    tp, fp, fn, tn = (c[..., i] for i in range(4))
    known = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "f1_micro":
            num, den = 2 * tp.sum(-1), (2 * tp + fp + fn).sum(-1)
            empty = np.where(known.sum(-1) > 0, 0.0, np.nan)
            return np.where(den > 0, num / np.where(den > 0, den, 1), empty)
        if metric == "accuracy":
            acc = np.where(known > 0, (tp + tn) / np.where(known > 0, known, 1), np.nan)
            return _nanmean(acc)
        if metric != "f1_macro":
            raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
        den = 2 * tp + fp + fn
        f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
        return _nanmean(np.where(known > 0, f1, np.nan))


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) where every value is NaN."""
    n = np.sum(~np.isnan(x), axis=-1)
    total = np.nansum(x, axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


@dataclass
class Runs:
    """One arm of a comparison: a value per run, and the model and test set behind each.

    ``values`` maps a run ``(fold, seed)`` to its value (F1 as a fraction, or seconds). ``test_sets``
    names the test set each run was scored on (within a dataset its fold; across datasets the target
    fold) and ``train_folds`` the training fold of its model (within a dataset its fold; across
    datasets the source fold): the model of a run is (training fold, seed). ``subjects`` (optional)
    gives per run the subject ids and their confusion counts ``(n_subjects, K, 4)`` (tp, fp, fn,
    tn) of the AUs the value reads, and ``metric`` the value they give (:func:`metric_from_counts`).
    ``by_subject``: whether the value depends on the test subjects at all (False for seconds per
    epoch)."""

    values: dict[Key, float]
    test_sets: dict[Key, str]
    train_folds: dict[Key, str]
    subjects: dict[Key, tuple[tuple[str, ...], np.ndarray]] | None = None
    metric: str = "f1_macro"
    by_subject: bool = True


@dataclass
class Estimate:
    """A mean (of an arm, of a paired difference, or of two independent ones) and its variance
    components ``[(name, variance of the mean, degrees of freedom)]``. ``missing`` says why a
    component the design needs could not be estimated (then no test is made)."""

    mean: float
    components: list[tuple[str, float, int]]
    n_runs: int = 0
    n_unpaired: int = 0
    n_folds: int = 0
    n_seeds: int = 0
    n_subjects: int = 0
    term_means: list[float] = field(default_factory=list)
    missing: str = ""


def estimate(terms: list[tuple[float, Runs]]) -> Estimate:
    """The mean of ``sum(coef * value)`` over the runs every term has, and its variance components.

    One term is an arm's mean; ``[(1, a), (-1, b)]`` the paired difference a - b (a pair: the runs
    of the same fold and seed); four terms a difference of differences (the label-noise claim). Runs
    that not every term has, and seeds missing a fold, are left out and counted in ``n_unpaired``:
    the runs used form a complete folds x seeds grid, so that the mean is the tables' mean over seeds
    of the mean over folds. Components (docs/report.md, "The test"):

    - The models: a model is a (training fold, seed); its value is the mean over the runs that
      evaluate it (a cross-dataset model on several target folds is one observation). ``seeds``:
      with r >= 2 seeds, the sample variance of the r seed means (each over the training folds)
      over r, r - 1 degrees of freedom: the training randomness, whatever a seed shares across
      folds included. The training folds themselves are the protocol's (the dataset's folds or
      split), fixed: the comparison is about methods trained on them. With a single seed, the
      spread of the k >= 2 training folds' means stands in (``folds``, k - 1 degrees of freedom).
    - The test subjects, a sample shared by every model scored on them: ``subjects``, the
      delete-one-subject jackknife variance of the mean, stratified by test set
      (``sum_h (n_h - 1) / n_h sum_j (m_(-j) - m_h)^2``), from the per-subject counts
      (``Runs.subjects``), with ``n - H`` degrees of freedom. Without the counts, cross-validation
      within a dataset (each fold its own test subjects) has ``folds``, the spread of the fold
      means (k - 1 degrees of freedom: conservative, it holds the training randomness too); several
      target folds have ``test sets``, the spread of their means; a single test set has nothing,
      and ``missing`` says so. With one seed of cross-validation the fold spread holds both.

    With a single model per arm (one fold and one seed) there is no component at all: the
    training randomness cannot be estimated, and no test is made.
    """
    if not terms:
        raise ValueError("estimate: no terms")
    keys = set(terms[0][1].values)
    for _, runs in terms[1:]:
        keys &= set(runs.values)
    folds = sorted({f for f, _ in keys}, key=_fold_order)
    seeds = sorted({s for _, s in keys})
    complete = [s for s in seeds if all((f, s) in keys for f in folds)]
    grid = [(f, s) for f in folds for s in complete]
    n_unpaired = sum(len(runs.values) for _, runs in terms) - len(terms) * len(grid)
    out = Estimate(math.nan, [], len(grid), n_unpaired, len(folds) if complete else 0, len(complete))
    if not grid:
        return out
    first = terms[0][1]
    train = {f: first.train_folds[(f, complete[0])] for f in folds}
    test = {f: first.test_sets[(f, complete[0])] for f in folds}
    values = {key: sum(c * runs.values[key] for c, runs in terms) for key in grid}
    out.mean = float(np.mean(list(values.values())))
    out.term_means = [float(np.mean([runs.values[key] for key in grid])) for _, runs in terms]
    # the models: (training fold, seed), each the mean of the runs that evaluate it
    train_folds = list(dict.fromkeys(train[f] for f in folds))
    models = np.array([[np.mean([values[(f, s)] for f in folds if train[f] == t]) for s in complete]
                       for t in train_folds])  # fmt: skip
    out.components = [(name, float(v), df) for name, v, df in model_components(models)]
    if not out.components:  # a single model per arm: its training randomness is unknown
        return out
    nested = len(folds) >= 2 and len(set(test.values())) == len(folds) == len(train_folds)
    if not any(runs.by_subject for _, runs in terms) or (nested and len(complete) == 1):
        return out  # seconds per epoch; or one seed of cross-validation: the fold spread holds all
    subject = _subject_component(terms, grid, test)
    if isinstance(subject, tuple):
        var, n, strata = subject
        out.n_subjects = n
        out.components.append(("subjects", var, n - strata))
        return out
    sets = list(dict.fromkeys(test.values()))
    if nested:  # no counts: the folds' spread holds their test subjects' sampling (conservative)
        out.components.append(("folds", float(models.mean(1).var(ddof=1) / len(train_folds)),
                               len(train_folds) - 1))  # fmt: skip
    elif len(sets) >= 2:  # no counts: the spread of the target folds' means stands for them
        means = np.array([np.mean([values[(f, s)] for f in folds if test[f] == h for s in complete])
                          for h in sets])  # fmt: skip
        out.components.append(("test sets", float(means.var(ddof=1) / len(sets)), len(sets) - 1))
    else:
        out.missing = subject
    return out


def _fold_order(fold: str):
    return (0, int(fold)) if str(fold).isdigit() else (1, str(fold))


def model_components(models: np.ndarray) -> list[tuple[str, np.ndarray, int]]:
    """The models' component of a ``(..., k, r)`` grid of per-model values (training folds x
    seeds; vectorised over the leading axes, for the calibration simulations): with r >= 2 seeds
    ``seeds``, the sample variance of the r seed means (each over the training folds) over r, r - 1
    degrees of freedom; with one seed and k >= 2 training folds ``folds``, the same over the folds;
    nothing for a single model."""
    k, r = models.shape[-2:]
    if r >= 2:
        return [("seeds", models.mean(-2).var(-1, ddof=1) / r, r - 1)]
    if k >= 2:
        return [("folds", models.mean(-1).var(-1, ddof=1) / k, k - 1)]
    return []


def jackknife_variance(loo_means: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
    """Delete-one jackknife variance over the last axis (Efron & Tibshirani 1993, Sec. 11.2) from
    the leave-one-out means ``m_(-j)``: ``(n - 1) / n * sum_j (m_(-j) - m_(.))^2``, summed over the
    strata when ``strata`` labels each of the n units (a stratified jackknife: each stratum's units
    are deleted in turn and compared with that stratum's mean)."""
    m = np.asarray(loo_means, dtype=float)
    labels = np.zeros(m.shape[-1], dtype=int) if strata is None else np.asarray(strata)
    total = np.zeros(m.shape[:-1])
    for h in np.unique(labels):
        part = m[..., labels == h]
        n = part.shape[-1]
        if n > 1:
            total = total + (n - 1) / n * ((part - part.mean(-1, keepdims=True)) ** 2).sum(-1)
    return total


NO_COUNTS = (
    "every run is scored on one test set, and its metrics files hold no per-subject counts: the "
    "test subjects' sampling cannot be estimated"
)


def _subject_component(terms, grid, test) -> tuple[float, int, int] | str:
    """The stratified jackknife over the test subjects (strata: test sets), or why not."""
    sets = list(dict.fromkeys(test[f] for f, _ in grid))
    ids: dict[str, tuple[str, ...]] = {}
    shifts = []  # per subject: the change of the mean when it is left out
    strata = []
    for _, runs in terms:
        if not runs.by_subject:
            continue
        if not runs.subjects or any(key not in runs.subjects for key in grid):
            return NO_COUNTS
        for key in grid:
            own, _ = runs.subjects[key]
            if ids.setdefault(test[key[0]], tuple(own)) != tuple(own):
                return f"the runs of test set {test[key[0]]} list different test subjects"
    for h in sets:
        n_h = len(ids[h])
        if n_h < 2:
            return f"test set {h} has fewer than two subjects: their sampling cannot be estimated"
        shift = np.zeros(n_h)
        for coef, runs in terms:
            if not runs.by_subject:
                continue
            keys = [key for key in grid if test[key[0]] == h]
            counts = np.stack([runs.subjects[key][1] for key in keys]).astype(float)  # (runs, n, K, 4)
            full = metric_from_counts(counts.sum(1), runs.metric)  # (runs,)
            loo = metric_from_counts(counts.sum(1, keepdims=True) - counts, runs.metric)  # (runs, n)
            shift += coef * (loo - full[:, None]).sum(0) / len(grid)
        shifts.append(shift)
        strata += [sets.index(h)] * n_h
    loo_means = np.concatenate(shifts)
    return float(jackknife_variance(loo_means, np.array(strata))), len(loo_means), len(sets)


def difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` for two estimates from independent runs (different datasets, different models):
    the means subtract, the variance components add (each named after its side)."""
    out = Estimate(a.mean - b.mean, [(f"a {n}", v, d) for n, v, d in a.components]
                   + [(f"b {n}", v, d) for n, v, d in b.components],
                   a.n_runs + b.n_runs, a.n_unpaired + b.n_unpaired, 0, 0,
                   a.n_subjects + b.n_subjects, [a.mean, b.mean], a.missing or b.missing)  # fmt: skip
    return out


def t_test(est: Estimate) -> dict:
    """Two-sided t-test of ``est.mean == 0``: ``{"se", "df", "t", "p"}``, NaN where undefined.

    ``t = mean / sqrt(V)`` with ``V`` the sum of the variance components, referred to Student's t
    with the smallest component's degrees of freedom: Hsu's conservative solution for a sum of
    variances estimated with few degrees of freedom (the Welch-Satterthwaite value rejects too often
    when a component with 2 degrees of freedom dominates; docs/report.md, "Calibration"). Undefined
    (NaN) without any component (a single model per arm), when a component the design needs is
    ``missing``, or when ``V`` is 0 (every model gives the same value)."""
    out = {"se": math.nan, "df": math.nan, "t": math.nan, "p": math.nan}
    if est.missing or not est.components or not math.isfinite(est.mean):
        return out
    v = np.array([c[1] for c in est.components], dtype=float)
    df = np.array([c[2] for c in est.components], dtype=float)
    se, nu, t, p = _t_arrays(est.mean, v, df)
    if not np.isfinite(t):
        return out
    return {"se": float(se), "df": float(nu), "t": float(t), "p": float(p)}


def _t_arrays(mean, variances, dfs):
    """:func:`t_test` on arrays: ``variances`` ``(..., c)``, ``dfs`` ``(c,)`` or ``(..., c)``."""
    variances = np.asarray(variances, dtype=float)
    dfs = np.broadcast_to(np.asarray(dfs, dtype=float), variances.shape)
    total = variances.sum(-1)
    positive = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        nu = np.where(positive, dfs.min(-1), np.nan)
        se = np.sqrt(total)
        t = np.where(positive, np.asarray(mean, dtype=float) / np.where(positive, se, 1), np.nan)
        p = 2 * stats.t.sf(np.abs(t), nu)
    return se, nu, t, p


def runs_from_records(records: list[dict], value: str = "f1_macro",
                      aus: list[str] | None = None) -> Runs:  # fmt: skip
    """A :class:`Runs` from metrics.json records of one arm: the run's F1-macro (``value``
    "f1_macro"), F1-micro ("f1_micro"), accuracy ("accuracy"), one AU's F1 ("f1_AU1"), or with
    ``aus`` the mean F1 over those AUs. Across datasets a run's test set is its target fold
    (``target.fold``) and its model's training fold the source fold (``source.fold``); within a
    dataset both are its fold. The per-subject counts (``by_subject``, aunce.metrics) are kept for
    the AUs the value reads, when every record has them."""
    values, test_sets, train_folds, subjects = {}, {}, {}, {}
    metric = value
    wanted = aus
    if value.startswith("f1_AU"):
        metric, wanted = "f1_macro", [value[3:]]
    elif aus:
        metric = "f1_macro"
    for rec in records:
        key = (str(rec["run"]["fold"]), int(rec["run"]["seed"]))
        if key in values:
            raise ValueError(f"two runs of fold {key[0]}, seed {key[1]}")
        values[key] = record_value(rec, value, aus)
        test_sets[key] = str((rec.get("target") or {}).get("fold", rec["run"]["fold"]))
        train_folds[key] = str((rec.get("source") or {}).get("fold", rec["run"]["fold"]))
        by = rec.get("by_subject")
        if by is not None and subjects is not None:
            counts = np.asarray(by["counts"], dtype=float)
            if wanted:
                counts = counts[:, [rec["aus"].index(au) for au in wanted if au in rec["aus"]]]
            subjects[key] = (tuple(map(str, by["subjects"])), counts)
        else:
            subjects = None
    return Runs(values, test_sets, train_folds, subjects or None, metric)


def record_value(rec: dict, value: str = "f1_macro", aus: list[str] | None = None) -> float:
    """One number of a metrics.json record (see :func:`runs_from_records`)."""
    if aus:
        got = [rec["f1"].get(au) for au in aus]
        got = [float(v) for v in got if v is not None and math.isfinite(float(v))]
        return float(np.mean(got)) if got else math.nan
    if value.startswith("f1_AU"):
        return float(rec["f1"].get(value[3:], math.nan))
    return float(rec[value])


COMPARISON = [
    "dataset", "encoder", "method_a", "method_b", "value", "n_runs", "n_unpaired", "n_folds",
    "n_seeds", "n_subjects", "mean_a", "mean_b", "mean_diff", "se", "df", "t", "p",
]  # fmt: skip


def paired_comparison(records: list[dict], method_a: str, method_b: str,
                      values: list[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """``method_a`` against ``method_b`` on the metrics.json records of one (dataset, encoder) cell:
    one row per value (default: F1-macro and every AU's F1 with a number), columns
    :data:`COMPARISON`. Each is :func:`estimate` of the paired difference a - b and its
    :func:`t_test` (two-sided); differences are fractions like the F1 they come from.

    Raises ValueError when a method has no runs or repeats a (fold, seed), when both names are the
    same, or when the two methods' runs span several or different (dataset, encoder) cells."""
    if method_a == method_b:
        raise ValueError(f"method_a and method_b are both {method_a!r}: compare two methods")
    arms, cells = {}, {}
    for method in (method_a, method_b):
        own = [r for r in records if r["run"]["method"] == method]
        if not own:
            known = sorted({r["run"]["method"] for r in records})
            raise ValueError(f"no runs of method {method!r}; methods present: {known}")
        cells[method] = sorted({(r["run"]["dataset"], r["run"]["encoder"]) for r in own})
        arms[method] = own
    if len(cells[method_a]) != 1 or cells[method_a] != cells[method_b]:
        raise ValueError(
            f"methods must be compared on one and the same (dataset, encoder) cell: "
            f"{method_a!r} ran on {cells[method_a]}, {method_b!r} on {cells[method_b]}"
        )
    dataset, encoder = cells[method_a][0]
    if values is None:
        aus = list(dict.fromkeys(au for r in records for au in r["aus"]))
        values = ["f1_macro"] + [f"f1_{au}" for au in aus
                                 if any(math.isfinite(float(r["f1"].get(au, math.nan)))
                                        for r in arms[method_a] + arms[method_b])]  # fmt: skip
    rows = []
    for value in values:
        try:
            a = runs_from_records(arms[method_a], value)
            b = runs_from_records(arms[method_b], value)
        except ValueError as err:
            raise ValueError(f"{dataset}/{encoder}: {err}") from None
        est = estimate([(1.0, a), (-1.0, b)])
        rows.append({"dataset": dataset, "encoder": encoder, "method_a": method_a,
                     "method_b": method_b, "value": value, "n_runs": est.n_runs,
                     "n_unpaired": est.n_unpaired, "n_folds": est.n_folds,
                     "n_seeds": est.n_seeds, "n_subjects": est.n_subjects,
                     "mean_a": est.term_means[0] if est.term_means else math.nan,
                     "mean_b": est.term_means[1] if est.term_means else math.nan,
                     "mean_diff": est.mean, **t_test(est)})  # fmt: skip
    return pd.DataFrame(rows, columns=COMPARISON)


def significance_table(records: list[dict], pairs: list[tuple[str, str]],
                       values: list[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """Every pair of methods compared (:func:`paired_comparison`) in every (dataset, encoder) cell
    where they ran, with ``p_holm`` Holm-adjusted over the whole table (cells x pairs x values).

    Raises ValueError when ``pairs`` is empty, when a method of a pair never ran, or when in some
    cell one method of a pair ran and the other did not."""
    if not pairs:
        raise ValueError("no pairs of methods to compare")
    cells: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        cells.setdefault((rec["run"]["dataset"], rec["run"]["encoder"]), []).append(rec)
    frames = []
    for method_a, method_b in pairs:
        found = False
        for (dataset, encoder), cell in cells.items():
            present = {r["run"]["method"] for r in cell}
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
    table["p_holm"] = holm(table["p"].to_numpy())
    return table


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
