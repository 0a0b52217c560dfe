"""The statistics the paper promises and does not show (protocol.md, "Statistics the paper promises
and does not show"; issue 7, "Statistics"): paired t-test, Wilcoxon signed-rank test, effect size,
Holm correction within a table, the paper's twice-the-std criterion and the per-seed figures.

Every test here compares against scipy called directly on hand-built paired arrays, or against a
slow reference written from the definition, or against numbers worked by hand.
"""

import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from aunce.stats import (
    aggregate,
    beats_published,
    beats_published_frame,
    holm,
    paired_comparison,
    runs_frame,
    seed_summary,
    significance_table,
)

AUS = ["AU1", "AU2"]


def frame_of(method, a, dataset="bp4d", encoder="megraph", folds=None, seeds=None):
    """Runs of one method from an array shaped (runs, 1 + len(AUS)): F1-macro then per-AU F1.

    Keys are (fold, seed) over ``folds`` x ``seeds`` in that order unless given one by one.
    """
    a = np.asarray(a, dtype=float)
    if folds is None:
        assert len(a) % 3 == 0, "three folds x seeds unless keys are given"
        keys = [(str(f), s) for f in (1, 2, 3) for s in range(1, len(a) // 3 + 1)]
    else:
        keys = list(zip(folds, seeds, strict=True))
    return pd.DataFrame(
        {
            "dataset": dataset,
            "encoder": encoder,
            "method": method,
            "fold": [k[0] for k in keys],
            "seed": [k[1] for k in keys],
            "f1_macro": a[:, 0],
            **{f"f1_{au}": a[:, i + 1] for i, au in enumerate(AUS)},
        }
    )


def expected(a, b):
    """What scipy says about paired samples ``a`` and ``b``, called directly."""
    ttest = sps.ttest_rel(a, b)
    wilcoxon = sps.wilcoxon(a, b)
    d = a - b
    return {
        "n_pairs": len(a),
        "mean_a": a.mean(),
        "mean_b": b.mean(),
        "mean_diff": d.mean(),
        "t": ttest.statistic,
        "p_ttest": ttest.pvalue,
        "w": wilcoxon.statistic,
        "p_wilcoxon": wilcoxon.pvalue,
        "effect_size": d.mean() / d.std(ddof=1),
    }


def assert_row(row, want):
    for key, value in want.items():
        assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("n_folds,n_seeds", [(3, 1), (3, 2), (1, 5), (3, 5), (2, 9), (3, 20)])
def test_paired_comparison_matches_scipy(n_folds, n_seeds):
    """Does each row equal ttest_rel / wilcoxon / d_z on the same pairs, whatever the run order?

    Shapes from one seed to 60 pairs (scipy's exact, then normal-approximation regimes of the
    Wilcoxon test); method b's rows are shuffled so pairing must go by (fold, seed), not position.
    """
    rng = np.random.default_rng(n_folds * 100 + n_seeds)
    n = n_folds * n_seeds
    keys = [(str(f), s) for f in range(1, n_folds + 1) for s in range(1, n_seeds + 1)]
    folds, seeds = zip(*keys, strict=True)
    a = rng.uniform(0.4, 0.7, size=(n, 3))
    b = a - rng.normal(0.02, 0.03, size=(n, 3))
    shuffle = rng.permutation(n)
    runs = pd.concat(
        [
            frame_of("aunce", a, folds=folds, seeds=seeds),
            frame_of("wce", b, folds=folds, seeds=seeds).iloc[shuffle],
        ],
        ignore_index=True,
    )
    out = paired_comparison(runs, "aunce", "wce")
    assert list(out["value"]) == ["f1_macro", "f1_AU1", "f1_AU2"]
    assert (out["n_unpaired"] == 0).all()
    for i, row in out.iterrows():
        assert_row(row, expected(a[:, i], b[:, i]))
        assert row["effect_size"] == pytest.approx(row["t"] / math.sqrt(n), rel=1e-9)


def test_ties_and_zero_differences_follow_scipy_and_hand_ranks():
    """Are zero differences discarded and tied |d| given mid-ranks ("wilcox"), as scipy does?

    Dyadic values make every difference exact: d = 1/4, 1/4, -1/8, 0, 1/2. The zero goes; the rest
    rank 2.5, 2.5, 1, 4, so the positive sum is 9 and the negative sum 1: w = 1.
    """
    b = np.array([0.5, 0.25, 0.625, 0.375, 0.125])
    a = b + np.array([0.25, 0.25, -0.125, 0.0, 0.5])
    keys = {"folds": ["1"] * 5, "seeds": range(5)}
    runs = pd.concat(
        [frame_of("aunce", np.c_[a, a, b], **keys), frame_of("wce", np.c_[b, b, b], **keys)]
    )
    row = paired_comparison(runs, "aunce", "wce", ["f1_macro"]).iloc[0]
    assert row["w"] == 1.0
    assert_row(row, expected(a, b))


def test_roundoff_differences_tie_and_cancel():
    """Do F1 values equal up to float roundoff count as equal (ties, zeros), not as distinct?

    0.7 - 0.5 and 0.3 - 0.1 differ in the last bit; 0.1 + 0.2 - 0.3 is not 0 in floats.
    """
    a = np.array([0.7, 0.3, 0.1 + 0.2, 0.9, 0.6])
    b = np.array([0.5, 0.1, 0.3, 0.6, 0.7])
    keys = {"folds": ["1"] * 5, "seeds": range(5)}
    runs = pd.concat([frame_of("x", np.c_[a, a, a], **keys), frame_of("y", np.c_[b, b, b], **keys)])
    row = paired_comparison(runs, "x", "y", ["f1_macro"]).iloc[0]
    exact = np.array([0.2, 0.2, 0.0, 0.3, -0.1])
    want = sps.wilcoxon(exact)
    assert (row["w"], row["p_wilcoxon"]) == pytest.approx((want.statistic, want.pvalue))


def test_unpaired_runs_are_dropped_and_counted():
    """Are runs of a (fold, seed) that only one method has left out of every test and counted?"""
    rng = np.random.default_rng(7)
    a = rng.uniform(0.4, 0.7, size=(8, 3))
    b = rng.uniform(0.4, 0.7, size=(7, 3))
    runs = pd.concat(
        [
            frame_of("aunce", a, folds=list("11112222"), seeds=[1, 2, 3, 4, 1, 2, 3, 4]),
            frame_of("wce", b, folds=list("1112223"), seeds=[1, 2, 5, 1, 2, 3, 1]),
        ],
        ignore_index=True,
    )
    out = paired_comparison(runs, "aunce", "wce")
    # shared: (1,1) (1,2) (2,1) (2,2) (2,3); aunce alone: (1,3) (1,4) (2,4); wce alone: (1,5) (3,1)
    assert (out["n_pairs"] == 5).all() and (out["n_unpaired"] == 5).all()
    pa, pb = [0, 1, 4, 5, 6], [0, 1, 3, 4, 5]
    for i, row in out.iterrows():
        assert_row(row, expected(a[pa, i], b[pb, i]))


def test_nan_values_drop_a_pair_for_that_value_only():
    """Is a NaN F1 (an AU without test positives) left out of that AU's test and no other?"""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.4, 0.7, size=(2, 6, 3))
    a[2, 1] = np.nan
    runs = pd.concat([frame_of("x", a), frame_of("y", b)], ignore_index=True)
    out = paired_comparison(runs, "x", "y").set_index("value")
    assert out.loc["f1_macro", "n_pairs"] == 6 and out.loc["f1_AU1", "n_pairs"] == 5
    keep = [0, 1, 3, 4, 5]
    assert_row(out.loc["f1_AU1"], expected(a[keep, 1], b[keep, 1]))


def test_default_values_skip_aus_without_numbers():
    """Are the default values F1-macro and the per-AU columns this cell has (not another dataset's)?"""
    runs = pd.concat([frame_of("x", np.full((3, 3), 0.5)), frame_of("y", np.full((3, 3), 0.4))])
    runs["f1_AU27"] = np.nan  # a DISFA AU in a BP4D comparison
    assert list(paired_comparison(runs, "x", "y")["value"]) == ["f1_macro", "f1_AU1", "f1_AU2"]


@pytest.mark.parametrize(
    "a,b,wilcoxon_defined",
    [
        ([[0.5, 0.5, 0.5]], [[0.4, 0.4, 0.4]], False),  # one pair
        (np.full((6, 3), 0.5), np.full((6, 3), 0.5), False),  # identical methods
        ([[0.6] * 3, [0.7] * 3, [0.8] * 3], [[0.5] * 3, [0.6] * 3, [0.7] * 3], True),  # constant d
    ],
    ids=["one-pair", "identical", "zero-variance"],
)
def test_degenerate_inputs_give_nan_without_warnings(a, b, wilcoxon_defined):
    """Do 1 pair, identical methods and constant differences give NaN, with no warning at all?

    A constant non-zero difference keeps its Wilcoxon test (ranks need no variance); the t-test and
    d_z divide by a zero standard deviation and are NaN.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    runs = pd.concat(
        [
            frame_of("x", a, folds=["1"] * n, seeds=range(n)),
            frame_of("y", b, folds=["1"] * n, seeds=range(n)),
        ],
        ignore_index=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = paired_comparison(runs, "x", "y")
    assert out[["t", "p_ttest", "effect_size"]].isna().all().all()
    assert out["mean_diff"].to_numpy() == pytest.approx((a - b).mean(axis=0))
    if wilcoxon_defined:
        want = sps.wilcoxon(np.round(a[:, 0] - b[:, 0], 12))
        assert (out["w"] == want.statistic).all() and (out["p_wilcoxon"] == want.pvalue).all()
    else:
        assert out[["w", "p_wilcoxon"]].isna().all().all()


def two_cells():
    rng = np.random.default_rng(11)
    parts = [
        frame_of(m, rng.uniform(0.4, 0.7, size=(6, 3)), dataset=d, encoder=e)
        for d, e in [("bp4d", "megraph"), ("bp4d", "resnet50"), ("disfa", "megraph")]
        for m in ("aunce", "wce", "wfl")
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize(
    "runs,a,b,match",
    [
        (two_cells(), "aunce", "nope", "no runs of method 'nope'"),
        (two_cells(), "aunce", "aunce", "both 'aunce'"),
        (two_cells(), "aunce", "wce", "one and the same"),  # three cells in one frame
        (
            pd.concat([frame_of("x", np.ones((3, 3))), frame_of("y", np.ones((3, 3)), "disfa")]),
            "x",
            "y",
            "one and the same",
        ),
        (
            pd.concat(
                [frame_of("x", np.ones((3, 3))), frame_of("y", np.ones((3, 3)), "bp4d", "roi")]
            ),
            "x",
            "y",
            "one and the same",
        ),
        (
            pd.concat([frame_of("x", np.ones((3, 3)))] * 2 + [frame_of("y", np.ones((3, 3)))]),
            "x",
            "y",
            "repeats",
        ),
    ],
    ids=["absent", "same-method", "several-cells", "other-dataset", "other-encoder", "duplicate"],
)
def test_mismatched_cells_are_refused(runs, a, b, match):
    """Are comparisons across datasets/encoders, of an absent method or with itself refused?"""
    with pytest.raises(ValueError, match=match):
        paired_comparison(runs, a, b)


def test_unknown_value_is_refused():
    runs = pd.concat([frame_of("x", np.ones((3, 3))), frame_of("y", np.ones((3, 3)))])
    with pytest.raises(ValueError, match="f1_AU99"):
        paired_comparison(runs, "x", "y", ["f1_AU99"])


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


def test_significance_table_stacks_pairs_and_corrects_within_the_table():
    """Is each row paired_comparison in its cell, and Holm applied over all cells x pairs x values?"""
    runs = two_cells()
    pairs = [("aunce", "wce"), ("aunce", "wfl")]
    table = significance_table(runs, pairs)
    assert len(table) == 3 * 2 * 3  # cells x pairs x (F1-macro, AU1, AU2)
    for (dataset, encoder), cell in runs.groupby(["dataset", "encoder"]):
        for a, b in pairs:
            want = paired_comparison(cell, a, b)
            got = table[
                (table["dataset"] == dataset)
                & (table["encoder"] == encoder)
                & (table["method_b"] == b)
            ]
            pd.testing.assert_frame_equal(
                got[want.columns].reset_index(drop=True), want, check_exact=False
            )
    for test in ("p_ttest", "p_wilcoxon"):
        np.testing.assert_allclose(table[f"{test}_holm"], holm_reference(table[test]))


def test_significance_table_refusals():
    """Does a pair missing from a cell, or from the whole table, raise instead of vanishing?"""
    runs = two_cells()
    with pytest.raises(ValueError, match="only one of"):
        significance_table(runs[runs["method"] != "wfl"].iloc[6:], [("aunce", "wce")])
    with pytest.raises(ValueError, match="neither"):
        significance_table(runs, [("mine", "theirs")])
    with pytest.raises(ValueError, match="no pairs"):
        significance_table(runs, [])


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
