"""The statistics behind the verdicts and the tables (docs/report.md, "The test"): the trained model
as the unit of analysis, its variance components (fold and seed spreads, the jackknife over test
subjects), the t-test with the smallest component's degrees of freedom, Holm's correction, the
paper's twice-the-std criterion and the per-seed figures.

Every test here compares against scipy or scikit-learn called directly, against a slow reference
written from the definition, or against numbers worked by hand.
"""

import itertools
import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from aunce.metrics import detection_metrics
from aunce.stats import (
    Runs,
    aggregate,
    beats_published,
    beats_published_frame,
    difference,
    estimate,
    holm,
    jackknife_variance,
    metric_from_counts,
    paired_comparison,
    runs_frame,
    runs_from_records,
    seed_summary,
    significance_table,
    t_test,
)

AUS = ["AU1", "AU2", "AU4"]


def predictions(rng, n_frames, subjects, quality=0.7):
    """Labels (with unknown -1 entries), probabilities and the subject of every test frame."""
    y = (rng.random((n_frames, len(AUS))) < [0.1, 0.3, 0.5]).astype(int)
    y[rng.random(y.shape) < 0.05] = -1
    p = np.clip(np.where(y == 1, quality, 1 - quality) + 0.35 * rng.standard_normal(y.shape), 0, 1)
    return y, p, rng.choice(subjects, n_frames)


# --- counts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_figures_from_subject_counts_equal_scikit_learns(seed):
    """Summed over the subjects, the per-subject counts give the F1 per AU, F1-macro, F1-micro and
    accuracy that aunce.metrics computes with scikit-learn from the predictions."""
    rng = np.random.default_rng(seed)
    y, p, subjects = predictions(rng, 300, ["F01", "F02", "M07", "M11"])
    if seed == 0:
        y[:, 0] = np.where(y[:, 0] == 1, 0, y[:, 0])  # an AU never active: F1 0 (zero_division)
    if seed == 1:
        y[:, 2] = -1  # an AU never labelled: NaN, left out of the means
    m = detection_metrics(y, p, AUS, 0.5, subjects)
    by = m["by_subject"]
    assert by["subjects"] == ["F01", "F02", "M07", "M11"]
    counts = np.asarray(by["counts"])
    assert counts.shape == (4, len(AUS), 4)
    assert counts.sum() == (y >= 0).sum()  # every known label counted once
    total = counts.sum(0)
    for k, au in enumerate(AUS):
        want = m["f1"][au]
        got = float(metric_from_counts(total[k : k + 1]))
        assert (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want, abs=1e-12)
    for metric in ("f1_macro", "f1_micro", "accuracy"):
        assert float(metric_from_counts(total, metric)) == pytest.approx(m[metric], abs=1e-12)


def test_counts_need_a_subject_per_frame():
    y, p, _ = predictions(np.random.default_rng(0), 10, ["a"])
    with pytest.raises(ValueError, match="9 subjects for 10 test frames"):
        detection_metrics(y, p, AUS, 0.5, np.array(["a"] * 9))
    assert "by_subject" not in detection_metrics(y, p, AUS)


# --- the variance components, against slow references --------------------------------------------
def grid_runs(values: dict, by_subject=False, subjects=None, metric="f1_macro", cross=False):
    """Runs from ``{(fold, seed): value}``; ``cross``: one model per seed evaluated on each fold."""
    tests = {k: k[0] for k in values}
    train = {k: ("split" if cross else k[0]) for k in values}
    return Runs(values, tests, train, subjects, metric, by_subject)


def reference_components(d: dict, models_of: dict) -> list[tuple[str, float, int]]:
    """The models' spread written out: models are the (training fold, seed) means of the runs
    that evaluate them; the spread is the sample variance of the seed means of the models over
    their number, or with a single seed of the fold means."""
    models: dict = {}
    for key, value in d.items():
        models.setdefault(models_of[key], []).append(value)
    models = {m: sum(v) / len(v) for m, v in models.items()}
    folds = sorted({f for f, _ in models})
    seeds = sorted({s for _, s in models})
    for name, levels, pick in (("seeds", seeds, 1), ("folds", folds, 0)):
        if len(levels) >= 2:
            means = [np.mean([v for m, v in models.items() if m[pick] == lv]) for lv in levels]
            return [(name, float(np.var(means, ddof=1) / len(levels)), len(levels) - 1)]
    return []


@pytest.mark.parametrize(("n_folds", "n_seeds"), [(3, 1), (3, 2), (1, 5), (3, 5), (2, 9)])
@pytest.mark.parametrize("cross", [False, True])
def test_fold_and_seed_components_match_the_reference(n_folds, n_seeds, cross):
    rng = np.random.default_rng(n_folds * 10 + n_seeds + 100 * cross)
    keys = [(str(f), s) for f in range(1, n_folds + 1) for s in range(1, n_seeds + 1)]
    a = {k: float(v) for k, v in zip(keys, rng.uniform(0.4, 0.7, len(keys)), strict=True)}
    b = {k: a[k] - float(rng.normal(0.02, 0.03)) for k in keys}
    est = estimate([(1.0, grid_runs(a, cross=cross)), (-1.0, grid_runs(b, cross=cross))])
    d = {k: a[k] - b[k] for k in keys}
    models_of = {k: ("split" if cross else k[0], k[1]) for k in keys}
    want = reference_components(d, models_of)
    assert [(n, df) for n, _, df in est.components] == [(n, df) for n, _, df in want]
    assert [v for _, v, _ in est.components] == pytest.approx([v for _, v, _ in want], rel=1e-12)
    assert est.mean == pytest.approx(np.mean(list(d.values())))
    assert (est.n_folds, est.n_seeds, est.n_runs) == (n_folds, n_seeds, len(keys))


def test_one_component_is_scipys_one_sample_t_test():
    """With seeds alone (one fold) the test is the paired t-test over the seeds' models, with
    folds alone (one seed) over the folds': scipy's ttest_1samp on the differences."""
    rng = np.random.default_rng(3)
    for keys in ([("1", s) for s in range(1, 6)], [(str(f), 1) for f in range(1, 5)]):
        a = {k: float(x) for k, x in zip(keys, rng.uniform(0.4, 0.7, len(keys)), strict=True)}
        b = {k: a[k] - float(rng.normal(0.03, 0.02)) for k in keys}
        got = t_test(estimate([(1.0, grid_runs(a)), (-1.0, grid_runs(b))]))
        want = sps.ttest_1samp([a[k] - b[k] for k in keys], 0.0)
        assert got["t"] == pytest.approx(want.statistic, rel=1e-12)
        assert got["p"] == pytest.approx(want.pvalue, rel=1e-12)
        assert got["df"] == len(keys) - 1


def test_several_components_take_the_smallest_df():
    """Cross-validation without per-subject counts: the seeds' spread (4 df) and the folds' (2 df),
    which stands for the test subjects; the t-test takes the smaller df."""
    values = {(str(f), s): f * 0.01 + s * 0.003 + (f * s % 3) * 0.001
              for f in (1, 2, 3) for s in range(1, 6)}  # fmt: skip
    est = estimate([(1.0, grid_runs(values, by_subject=True))])
    assert [(c[0], c[2]) for c in est.components] == [("seeds", 4), ("folds", 2)]
    out = t_test(est)
    v = sum(c[1] for c in est.components)
    assert out["df"] == 2 and out["se"] == pytest.approx(math.sqrt(v))
    assert out["p"] == pytest.approx(2 * sps.t.sf(abs(est.mean / math.sqrt(v)), 2))


def slow_jackknife(records_a, records_b, aus=AUS):
    """Leave each test subject out of the predictions, recompute every run's F1-macro with
    scikit-learn, and take the delete-one jackknife variance within each test set."""
    strata: dict = {}
    for key in records_a:
        strata.setdefault(records_a[key]["test"], sorted(set(records_a[key]["subjects"])))

    def mean_diff(drop=None):
        diffs = []
        for key in records_a:
            out = []
            for recs in (records_a, records_b):
                r = recs[key]
                keep = np.asarray(r["subjects"]) != drop
                out.append(detection_metrics(r["y"][keep], r["p"][keep], aus)["f1_macro"])
            diffs.append(out[0] - out[1])
        return np.mean(diffs)

    total = 0.0
    for subjects in strata.values():
        loo = np.array([mean_diff(j) for j in subjects])
        n = len(loo)
        total += (n - 1) / n * ((loo - loo.mean()) ** 2).sum()
    return total, sum(len(s) for s in strata.values()), len(strata)


@pytest.mark.parametrize("design", ["one split", "target folds"])
def test_subject_jackknife_matches_leaving_each_subject_out(design):
    """The jackknife from counts equals recomputing F1 from the predictions without each subject,
    on a fixed split (one stratum) and on a model per seed scored on three target folds."""
    rng = np.random.default_rng(7)
    folds = ["split"] if design == "one split" else ["1", "2", "3"]
    seeds = [1, 2, 3]
    groups = {f: [f"{f}-S{j}" for j in range(4)] for f in folds}
    frames = {f: predictions(rng, 120, groups[f])[0::2] for f in folds}  # y, subjects per test set
    runs = {}
    for method, quality in (("a", 0.72), ("b", 0.66)):
        for f in folds:
            y, subj = frames[f][0], frames[f][1]
            for s in seeds:
                p = np.clip(np.where(y == 1, quality, 1 - quality)
                            + 0.35 * rng.standard_normal(y.shape), 0, 1)  # fmt: skip
                m = detection_metrics(y, p, AUS, 0.5, subj)
                rec = {"run": {"dataset": "d", "encoder": "e", "method": method,
                               "fold": f"split-on-{f}" if design != "one split" else f,
                               "seed": s}, **m}  # fmt: skip
                if design != "one split":
                    rec.update(source={"fold": "split"}, target={"fold": f})
                runs[(method, f, s)] = (rec, {"y": y, "p": p, "subjects": subj, "test": f})
    recs = {m: [runs[k][0] for k in runs if k[0] == m] for m in "ab"}
    est = estimate([(1.0, runs_from_records(recs["a"])), (-1.0, runs_from_records(recs["b"]))])
    var = dict((n, v) for n, v, _ in est.components)["subjects"]
    slow = {m: {(f, s): runs[(m, f, s)][1] for f in folds for s in seeds} for m in "ab"}
    want, n, strata = slow_jackknife(slow["a"], slow["b"])
    assert var == pytest.approx(want, rel=1e-9)
    assert est.n_subjects == n and ("subjects", n - strata) in [(c[0], c[2]) for c in est.components]
    names = [c[0] for c in est.components]
    assert names == (["seeds", "subjects"])  # the target folds' spread is the subjects'


def test_jackknife_variance_by_hand():
    """Leave-one-out means 1, 2, 3 (n = 3): (2/3) * ((1-2)^2 + 0 + (3-2)^2) = 4/3; two strata add."""
    assert float(jackknife_variance([1.0, 2.0, 3.0])) == pytest.approx(4 / 3)
    both = jackknife_variance([1.0, 2.0, 3.0, 10.0, 14.0], np.array([0, 0, 0, 1, 1]))
    assert float(both) == pytest.approx(4 / 3 + 1 / 2 * (4 + 4))


def test_within_dataset_folds_hold_the_subjects_and_a_shared_test_set_needs_them():
    keys = [(str(f), s) for f in (1, 2, 3) for s in (1, 2, 3)]
    rng = np.random.default_rng(1)
    a = {k: float(x) for k, x in zip(keys, rng.uniform(0.4, 0.6, 9), strict=True)}
    cv = estimate([(1.0, grid_runs(a, by_subject=True))])
    assert [c[0] for c in cv.components] == ["seeds", "folds"] and not cv.missing
    one_seed = {k: v for k, v in a.items() if k[1] == 1}  # the folds' spread holds everything
    assert [c[0] for c in estimate([(1.0, grid_runs(one_seed, by_subject=True))]).components] == [
        "folds"]  # fmt: skip
    one = {("split", s): float(v) for s, v in zip((1, 2, 3), rng.uniform(0.4, 0.6, 3), strict=True)}
    fixed = estimate([(1.0, grid_runs(one, by_subject=True))])
    assert "no per-subject counts" in fixed.missing and math.isnan(t_test(fixed)["p"])
    timing = estimate([(1.0, grid_runs(one, by_subject=False))])  # seconds: no subjects
    assert not timing.missing and [c[0] for c in timing.components] == ["seeds"]


def test_a_single_model_per_arm_is_not_tested():
    est = estimate([(1.0, grid_runs({("1", 1): 0.5})), (-1.0, grid_runs({("1", 1): 0.3}))])
    assert est.components == [] and math.isnan(t_test(est)["p"])


def test_unpaired_runs_are_left_out_and_counted():
    a = {(str(f), s): 0.5 + 0.01 * f + 0.001 * s for f in (1, 2, 3) for s in (1, 2, 3)}
    b = {k: v - 0.02 for k, v in a.items() if k != ("2", 3)}  # seed 3 lacks fold 2 in b
    b[("4", 1)] = 0.1
    est = estimate([(1.0, grid_runs(a)), (-1.0, grid_runs(b))])
    assert (est.n_folds, est.n_seeds, est.n_runs) == (3, 2, 6)
    assert est.n_unpaired == 9 + 9 - 2 * 6
    assert est.mean == pytest.approx(0.02)


def test_independent_estimates_add_their_variances():
    rng = np.random.default_rng(4)
    x = {("1", s): float(v) for s, v in enumerate(rng.uniform(0.4, 0.6, 5))}
    y = {("1", s): float(v) for s, v in enumerate(rng.uniform(0.3, 0.5, 4))}
    ea, eb = estimate([(1.0, grid_runs(x))]), estimate([(1.0, grid_runs(y))])
    both = difference(ea, eb)
    assert both.mean == pytest.approx(ea.mean - eb.mean)
    assert [c[1] for c in both.components] == [ea.components[0][1], eb.components[0][1]]
    assert t_test(both)["df"] == 3
    # Welch's statistic with Hsu's degrees of freedom: min(n_a, n_b) - 1
    va, vb = np.var(list(x.values()), ddof=1) / 5, np.var(list(y.values()), ddof=1) / 4
    t = (np.mean(list(x.values())) - np.mean(list(y.values()))) / math.sqrt(va + vb)
    assert t_test(both)["t"] == pytest.approx(t)


def test_degenerate_inputs_give_nan_without_warnings():
    tie = {(str(f), s): 0.5 for f in (1, 2, 3) for s in (1, 2)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = t_test(estimate([(1.0, grid_runs(tie)), (-1.0, grid_runs(tie))]))
        assert math.isnan(out["p"]) and math.isnan(out["t"])
        shifted = {k: v + 0.1 for k, v in tie.items()}  # a constant difference: no spread
        out = t_test(estimate([(1.0, grid_runs(shifted)), (-1.0, grid_runs(tie))]))
        assert math.isnan(out["p"])


# --- the tables' significance -------------------------------------------------------------------
def records_of(method, values, dataset="bp4d", encoder="megraph"):
    """metrics.json records of one method from ``{(fold, seed): F1}`` (every AU alike)."""
    return [{"run": {"dataset": dataset, "encoder": encoder, "method": method, "fold": f, "seed": s},
             "aus": AUS[:2], "f1": {"AU1": v, "AU2": v / 2}, "f1_macro": v}
            for (f, s), v in values.items()]  # fmt: skip


def test_paired_comparison_rows_are_the_test_per_value():
    rng = np.random.default_rng(9)
    keys = [(str(f), s) for f in (1, 2, 3) for s in (1, 2, 3, 4)]
    a = {k: float(v) for k, v in zip(keys, rng.uniform(0.5, 0.7, 12), strict=True)}
    b = {k: a[k] - float(rng.normal(0.05, 0.02)) for k in keys}
    recs = records_of("aunce", a) + records_of("wce", b)[::-1]  # pairing by key, not position
    out = paired_comparison(recs, "aunce", "wce")
    assert list(out["value"]) == ["f1_macro", "f1_AU1", "f1_AU2"]
    for _, row in out.iterrows():
        half = 0.5 if row["value"] == "f1_AU2" else 1.0
        ra = grid_runs({k: v * half for k, v in a.items()}, by_subject=True)
        rb = grid_runs({k: v * half for k, v in b.items()}, by_subject=True)
        want = t_test(estimate([(1.0, ra), (-1.0, rb)]))
        assert row["p"] == pytest.approx(want["p"]) and row["df"] == 2
        assert (row["n_folds"], row["n_seeds"], row["n_runs"]) == (3, 4, 12)


@pytest.mark.parametrize(
    ("recs", "a", "b", "match"),
    [
        (records_of("x", {("1", 1): 0.5}), "x", "nope", "no runs of method 'nope'"),
        (records_of("x", {("1", 1): 0.5}), "x", "x", "both 'x'"),
        (records_of("x", {("1", 1): 0.5}) + records_of("y", {("1", 1): 0.5}, "disfa"), "x", "y",
         "one and the same"),
        (records_of("x", {("1", 1): 0.5}) * 2 + records_of("y", {("1", 1): 0.5}), "x", "y",
         "two runs of fold 1, seed 1"),
    ],
    ids=["absent", "same-method", "other-dataset", "duplicate"],
)  # fmt: skip
def test_mismatched_comparisons_are_refused(recs, a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(recs, a, b)


def test_significance_table_stacks_pairs_and_corrects_within_the_table():
    rng = np.random.default_rng(11)
    keys = [(str(f), s) for f in (1, 2, 3) for s in (1, 2)]
    recs = [r for d, e in [("bp4d", "megraph"), ("disfa", "megraph")] for m in ("aunce", "wce", "wfl")
            for r in records_of(m, {k: float(rng.uniform(0.4, 0.7)) for k in keys}, d, e)]  # fmt: skip
    table = significance_table(recs, [("aunce", "wce"), ("aunce", "wfl")])
    assert len(table) == 2 * 2 * 3  # cells x pairs x (F1-macro, AU1, AU2)
    np.testing.assert_allclose(table["p_holm"], holm_reference(table["p"]))
    with pytest.raises(ValueError, match="only one of"):
        significance_table([r for r in recs if r["run"]["method"] != "wfl" or
                            r["run"]["dataset"] == "bp4d"], [("aunce", "wfl")])  # fmt: skip
    with pytest.raises(ValueError, match="neither"):
        significance_table(recs, [("mine", "theirs")])
    with pytest.raises(ValueError, match="no pairs"):
        significance_table(recs, [])


def test_every_pair_order_gives_the_same_two_sided_p():
    rng = np.random.default_rng(2)
    keys = list(itertools.product("123", (1, 2, 3)))
    a = {k: float(v) for k, v in zip(keys, rng.uniform(0.4, 0.6, 9), strict=True)}
    b = {k: float(v) for k, v in zip(keys, rng.uniform(0.4, 0.6, 9), strict=True)}
    ab = t_test(estimate([(1.0, grid_runs(a)), (-1.0, grid_runs(b))]))
    ba = t_test(estimate([(1.0, grid_runs(b)), (-1.0, grid_runs(a))]))
    assert ab["p"] == pytest.approx(ba["p"]) and ab["t"] == pytest.approx(-ba["t"])


def holm_reference(p):
    """Holm's adjusted p-values straight from the definition, one hypothesis at a time.

    Hypothesis i is rejected at level alpha iff every hypothesis k with p_k <= p_i passes its own
    step, p_k <= alpha / (m - r_k + 1) with r_k its rank (ties share the lowest rank), so its
    adjusted p-value is the largest (m - r_k + 1) p_k over those k, capped at 1.
    """
    p = np.asarray(p, dtype=float)
    out = p.copy()
    idx = [i for i in range(len(p)) if not math.isnan(p[i])]
    m = len(idx)
    for i in idx:
        worst = 0.0
        for k in idx:
            if p[k] <= p[i]:
                rank = 1 + sum(p[j] < p[k] for j in idx)
                worst = max(worst, (m - rank + 1) * p[k])
        out[i] = min(1.0, worst)
    return out


def test_holm_textbook_example():
    """Worked by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04,
    and the last is raised to 0.06 to stay monotone."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


@pytest.mark.parametrize("size", [0, 1, 2, 5, 13, 40])
@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_the_reference(size, seed):
    """Does the vectorised Holm equal the definition on random p-values with NaNs and ties?"""
    rng = np.random.default_rng(seed * 1000 + size)
    p = rng.uniform(0, 1, size) ** 3  # many small p-values, so that some stay below 1
    if seed % 2:
        p = np.round(p, 2)  # ties
    p[rng.random(size) < 0.2] = np.nan
    got = holm(p)
    np.testing.assert_allclose(got, holm_reference(p), rtol=1e-12, equal_nan=True)
    known = ~np.isnan(p)
    assert np.array_equal(np.isnan(got), ~known)
    assert np.all(got[known] >= p[known]) and np.all(got[known] <= 1)
    order = np.argsort(p[known])
    assert np.all(np.diff(got[known][order]) >= 0)  # monotone in p


def test_holm_nans_do_not_count_and_bad_p_is_refused():
    """Is m the number of non-NaN p-values, shape kept, and a p-value outside [0, 1] an error?"""
    assert np.allclose(holm([np.nan, 0.01, 0.02]), [np.nan, 0.02, 0.02], equal_nan=True)
    assert holm(np.full((2, 2), 0.3)).shape == (2, 2)
    assert np.isnan(holm([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="p-values"):
        holm([0.2, 1.5])


@pytest.mark.parametrize(
    "mean,std,published,beats",
    [
        (66.1, 1.0, 63.6, True),  # 2.5 > 2.0
        (66.1, 1.3, 63.6, False),  # 2.5 < 2.6
        (64.0, 1.0, 62.0, False),  # exactly twice: not larger
        (66.1, math.nan, 63.6, False),  # one seed: no std, no claim
        (math.nan, 1.0, 63.6, False),
        (60.0, 0.5, 63.6, False),  # worse
    ],
)
def test_beats_published(mean, std, published, beats):
    """The paper's criterion, improvement larger than twice the std, and its vectorised form."""
    assert beats_published(mean, std, published) is beats
    frame = pd.DataFrame({"f1_macro_mean": [mean], "f1_macro_std": [std], "published": [published]})
    assert beats_published_frame(frame).tolist() == [beats]


def test_seed_summary_is_what_aggregate_takes_the_std_of():
    """Per cell and seed, the fold-mean F1-macro; its mean and std over seeds are aggregate's."""
    rng = np.random.default_rng(5)
    recs = [
        {
            "run": {"dataset": "bp4d", "encoder": "megraph", "method": m, "fold": f, "seed": s},
            "f1": {"AU1": x, "AU2": x / 2},
            "f1_macro": x,
            "f1_micro": x,
            "accuracy": x,
            "exact_match": x,
        }
        for m in ("aunce", "wce")
        for f in ("1", "2", "3")
        for s in (1, 2, 3, 4, 5)
        for x in [rng.random()]
    ]
    runs = runs_frame(recs)
    seeds = seed_summary(runs)
    assert list(seeds.columns) == ["dataset", "encoder", "method", "seed", "f1_macro", "n_folds"]
    assert len(seeds) == 10 and (seeds["n_folds"] == 3).all()
    for rec_seed in (1, 4):
        want = np.mean(
            [
                r["f1_macro"]
                for r in recs
                if r["run"]["method"] == "wce" and r["run"]["seed"] == rec_seed
            ]
        )
        got = seeds[(seeds["method"] == "wce") & (seeds["seed"] == rec_seed)]["f1_macro"]
        assert got.item() == pytest.approx(want)
    agg = aggregate(runs).set_index("method")
    by_method = seeds.groupby("method")["f1_macro"]
    assert agg["f1_macro_mean"].to_dict() == pytest.approx(by_method.mean().to_dict())
    assert agg["f1_macro_std"].to_dict() == pytest.approx(by_method.std(ddof=1).to_dict())


def test_stats_imports_without_torch():
    """Can the table and report steps import the statistics without paying for torch?"""
    code = "import sys, aunce.stats; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
