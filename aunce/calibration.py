"""How often the verdicts' test rejects when nothing differs, and how often when something does.

The test of :mod:`aunce.stats` (docs/report.md, "The test") is checked the way a reviewer would check
it: by simulating the designs the harness runs, many times, under no effect and under a stated one,
and counting rejections at alpha 0.05. The simulation works at the level the harness measures:
per-subject confusion counts of every AU, from which each run's F1-macro is computed as
aunce.metrics computes it, so that the test sees what it sees on real runs.

Generative model (one simulated experiment, two methods A and B):

- K AUs with occurrence rates from 5 % to 50 %; every test subject has ``frames`` labelled frames
  per AU and its own positives, drawn once (the data: the same for both methods and every run).
- A run (a trained model) detects each AU of a subject with a true-positive rate
  ``sigmoid(1 + q)`` and a false-positive rate ``sigmoid(-2 - q)``, where the quality ``q`` adds,
  per method: a subject effect ``u`` (how well the method suits that subject; the test subjects
  are a sample), a seed effect ``w`` shared by the folds of one seed (an initialisation that suits
  one method), a run effect ``e`` (each model's own training randomness) and, for method A only,
  the true effect ``delta``. Under no effect (``delta = 0``) every effect of A and B is drawn from
  the same distribution, so the two methods are exchangeable. The caveat scenario adds an effect
  ``a`` of each training set: the test is conditional on the protocol's training sets (the
  dataset's folds or split) and does not cover it.
- The counts are binomial draws of those rates.

Designs (:data:`DESIGNS`), as the harness runs them: k folds x r seeds within a dataset (Tables 2,
3, 8, 10, 11, Fig. 6), one split x r seeds (Tables 4-6), one source model per seed evaluated on k
target folds (Table 7, GFT -> BP4D), and k source folds x r seeds evaluated on one target test set
(Table 7, BP4D -> GFT).

Entry point: :func:`rejection_rate` (vectorised over the simulations: seconds for 2,000). Used by
tests/test_calibration.py and benchmarks/calibration.py (the table in docs/report.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ttest_1samp

from aunce.stats import _t_arrays, jackknife_variance, metric_from_counts, model_components


@dataclass(frozen=True)
class Design:
    """``folds`` test groups x ``seeds``; ``subjects`` per test group; ``shared_model``: a seed's
    model is the same in every group (cross-dataset: the groups are target folds); ``one_test_set``:
    every run is scored on the same subjects (the groups are source folds, or a single split)."""

    name: str
    folds: int
    subjects: int
    shared_model: bool = False
    one_test_set: bool = False


DESIGNS = {
    "folds x seeds": Design("k folds x r seeds (Tables 2, 3, 8, 10, 11, Fig. 6)", 3, 14),
    "one split x seeds": Design("one split x r seeds (Tables 4-6)", 1, 18, one_test_set=True),
    "model on target folds": Design(
        "one source model per seed on k target folds (Table 7, GFT -> BP4D)", 3, 14,
        shared_model=True,
    ),
    "source folds on one test set": Design(
        "k source folds x r seeds on one target test set (Table 7, BP4D -> GFT)", 3, 18,
        one_test_set=True,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Effects:
    """Standard deviations of the quality effects (logit scale) of each method."""

    subject: float
    fold: float
    seed: float
    run: float


SCENARIOS = {
    "run noise": Effects(subject=0.05, fold=0.0, seed=0.0, run=0.3),
    "subjects": Effects(subject=0.4, fold=0.0, seed=0.0, run=0.1),
    "shared seed": Effects(subject=0.05, fold=0.0, seed=0.3, run=0.1),
    "all": Effects(subject=0.25, fold=0.0, seed=0.2, run=0.2),
}
#: What the test is conditional on: an effect of the training set itself (docs/report.md)
CAVEATS = {"training sets": Effects(subject=0.05, fold=0.3, seed=0.0, run=0.1)}
AU_RATES = np.array([0.05, 0.15, 0.3, 0.5])
FRAMES = 60


def simulate_p(
    design: Design,
    seeds: int,
    effects: Effects,
    delta: float = 0.0,
    n_sims: int = 2000,
    seed: int = 0,
    naive: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The test's two-sided p-values of ``n_sims`` simulated experiments, their mean differences
    of F1-macro (A - B, fractions), and the average standard deviation of the per-run differences
    within an experiment (the noise the difference is measured against). ``naive``: the p-values
    of the paired t-test that counts every run (every evaluation) as an independent pair instead,
    for comparison."""
    rng = np.random.default_rng(seed)
    k, r, n, n_aus = design.folds, seeds, design.subjects, len(AU_RATES)
    groups = 1 if design.one_test_set else k
    # the data: positives per test subject and AU, shared by both methods and every run
    rates = np.clip(AU_RATES * rng.uniform(0.5, 1.5, (n_sims, groups, 1, n, n_aus)), 0, 0.9)
    pos = rng.binomial(FRAMES, rates)  # (S, groups, 1, n, K)
    neg = FRAMES - pos
    shape = (n_sims, 2)  # two methods

    def draw(sd, *dims):
        return sd * rng.standard_normal((*shape, *dims)) if sd else np.zeros((*shape, *dims))

    # quality of each method on run (fold f, seed s) and subject j: (S, 2, k, r, n)
    subject = draw(effects.subject, groups, 1, n)
    # a training set's effect (scenario "training sets" only): the comparison is conditional on the
    # protocol's training sets, so this is what the test does not cover
    fold = draw(effects.fold, 1 if design.shared_model else k, 1, 1)
    seed_effect = draw(effects.seed, 1, r, 1)
    run = draw(effects.run, 1 if design.shared_model else k, r, 1)  # one model per seed
    q = subject + fold + seed_effect + run
    q = q + delta * np.array([1.0, 0.0])[None, :, None, None, None]
    q = np.broadcast_to(q, (*shape, k, r, n))[..., None]  # every AU alike
    tpr, fpr = _sigmoid(1.0 + q), _sigmoid(-2.0 - q)
    pos_b = np.broadcast_to(pos[:, None], (*shape, k, r, n, n_aus))
    neg_b = np.broadcast_to(neg[:, None], (*shape, k, r, n, n_aus))
    tp, fp = rng.binomial(pos_b, tpr), rng.binomial(neg_b, fpr)
    counts = np.stack([tp, fp, pos_b - tp, neg_b - fp], axis=-1)  # (S, 2, k, r, n, K, 4)
    totals = counts.sum(-3)  # (S, 2, k, r, K, 4)
    f1 = metric_from_counts(totals)  # (S, 2, k, r)
    diff = f1[:, 0] - f1[:, 1]  # (S, k, r)
    mean = diff.mean((-2, -1))
    models = diff.mean(-2, keepdims=True) if design.shared_model else diff  # a model per seed
    parts = model_components(models)
    components, dfs = [v for _, v, _ in parts], [df for _, _, df in parts]
    # the jackknife over the test subjects, stratified by test set
    loo = metric_from_counts(totals[..., None, :, :] - counts)  # (S, 2, k, r, n)
    delta_d = (loo - f1[..., None])[:, 0] - (loo - f1[..., None])[:, 1]  # (S, k, r, n)
    if design.one_test_set:
        shifts, strata = delta_d.sum((1, 2)) / (k * r), None
    else:  # each fold (or target fold) its own subjects: strata
        shifts = (delta_d.sum(2) / (k * r)).reshape(n_sims, k * n)
        strata = np.repeat(np.arange(k), n)
    components.append(jackknife_variance(shifts, strata))
    dfs.append(shifts.shape[-1] - (1 if strata is None else k))
    _, _, _, p = _t_arrays(mean, np.stack(components, -1), np.array(dfs))
    if naive:  # the test the verdicts used before: every run a pair, ttest_rel over them all
        p = ttest_1samp(diff.reshape(n_sims, -1), 0.0, axis=1).pvalue
    return p, mean, diff.reshape(n_sims, -1).std(-1, ddof=1).mean()


def rejection_rate(design: str, seeds: int, scenario: str, delta: float = 0.0,
                   n_sims: int = 2000, seed: int = 0, alpha: float = 0.05,
                   naive: bool = False) -> dict:  # fmt: skip
    """Share of ``n_sims`` simulated experiments whose p-value is below ``alpha``, with its
    Monte-Carlo standard error, the mean F1 difference of the experiments and the standard
    deviation of a run's difference within one (F1 points)."""
    effects = SCENARIOS.get(scenario) or CAVEATS[scenario]
    p, mean, sd = simulate_p(DESIGNS[design], seeds, effects, delta, n_sims, seed, naive)
    rate = float(np.mean(p < alpha))
    return {
        "design": design,
        "seeds": seeds,
        "scenario": scenario,
        "delta": delta,
        "rate": rate,
        "mc_se": float(np.sqrt(alpha * (1 - alpha) / n_sims)),
        "f1_diff": float(100 * mean.mean()),
        "run_sd": float(100 * sd),
        "n_sims": n_sims,
    }


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
