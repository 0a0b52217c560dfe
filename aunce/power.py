"""Power before spending: the smallest F1 difference each claim's folds and seeds can detect.

``aunce plan`` prints, for each claim of baselines/claims.yaml on each table of a config it bears
on, the difference that the verdicts' test (aunce.stats; docs/report.md, "The test") finds with
probability 0.8 at alpha 0.05 (two-sided, before Holm's correction), beside the margin the paper
reports where baselines/published.csv gives it: a user sees which of the paper's margins the
planned seeds can resolve before spending a GPU-month.

The detectable difference is the smallest ``d`` whose noncentral t power, with noncentrality
``d / SE`` and the test's degrees of freedom, reaches 0.8 (scipy.stats.nct), where

    SE^2 = s_seed^2 / r + V_subjects        (a paired comparison over r seeds)

``s_seed`` is the standard deviation of one seed's mean difference between the arms and
``V_subjects`` the test subjects' part of the variance (a fixed number for given test sets). Two
independent arms (a margin on another dataset, within- against cross-dataset) add their variances;
a difference of differences (label noise) has twice a paired one's. The degrees of freedom are
r - 1, the test's smallest component with per-subject counts; a single seed leaves nothing to test.

Where the variance comes from, in this order:

1. a finished run's ``verdicts.checks.csv`` (``--variance FILE``, or ``results/verdicts.checks.csv``
   of the results folder): per claim and scope, the largest ``var_models * n_seeds`` and
   ``var_subjects`` of its comparisons (the test subjects the same as that run's);
2. the paper's printed standard deviations (baselines/published_std.csv: AUNCE's F1-macro std over
   seeds in Tables 2, 4 and 6; elsewhere the largest of them): ``s_seed = sqrt(2) * std`` for two
   methods with that spread each, and ``V_subjects`` unknown, so the detectable difference is a
   lower bound (the paper prints no spread over test subjects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aunce import AunceError
from aunce.baselines import load_published
from aunce.config import dataset_folds

ALPHA = 0.05
POWER = 0.8
PUBLISHED_STD = Path(__file__).resolve().parent.parent / "baselines" / "published_std.csv"
#: Claims whose comparisons are not an F1 difference of trained models, or make no test
NOT_F1 = {"cost": "seconds per epoch, not F1", "separability": "measured, not tested",
          "replicate": "an A/A control: no difference to detect"}  # fmt: skip


def detectable(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided t-test with standard error ``se`` and ``df``
    degrees of freedom rejects with probability ``power`` at level ``alpha`` (noncentral t)."""
    from scipy import optimize, stats

    if not (se > 0 and df >= 1):
        return math.nan
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(ncp: float) -> float:
        upper = stats.nct.sf(crit, df, ncp)
        lower = stats.nct.cdf(-crit, df, ncp)  # negligible for ncp > 0 (scipy: NaN far out)
        upper = (1.0 if ncp > crit else 0.0) if math.isnan(upper) else upper
        return upper + (0.0 if math.isnan(lower) else lower) - power

    hi = crit
    while shortfall(hi) < 0:  # the power grows with the noncentrality: bracket the root
        hi *= 2
    return se * optimize.brentq(shortfall, 0.0, hi)


@dataclass
class Design:
    """What one verdict row of a claim compares: seeds and folds; ``factor`` 2 for a difference of
    differences or two independent arms; ``criterion``: the paper's 2-std rule against published
    numbers instead of a test (real data without a WCE/WFL baseline)."""

    claim: str
    scope: str
    seeds: int
    folds: int
    factor: float = 1.0
    paper_table: str | None = None
    dataset: str | None = None
    criterion: bool = False


def designs(plan, claims: dict) -> list[Design | tuple[str, str, str]]:
    """Every (claim, scope) the verdicts would judge on this plan, as a :class:`Design`, or
    ``(claim, scope, why)`` for one the power does not apply to."""
    from aunce.claims import BASELINE_LOSSES, _matches, data_kind, paper_table

    out: list = []
    for claim in claims["claims"]:
        cid, test = claim["id"], claim["test"]
        if not any(_matches(claim, t, s) for t, s in plan.tables.items()):
            out.append((cid, "-", "not run in this config"))
            continue
        for table, spec in plan.tables.items():
            if not _matches(claim, table, spec):
                continue
            entry = plan.config["tables"][table]
            seeds = len(entry.get("seeds") or plan.seeds)
            pub = spec.get("published") or {}
            where = (paper_table(table, spec), pub.get("dataset"))
            if test in NOT_F1:  # one row per claim
                out.append((cid, "-", NOT_F1[test]))
                break
            elif test == "margin":  # one row per claim: two tables' margins, independent
                scope = "; ".join(f"{a} > {b}" for a in claim["larger"] for b in claim["smaller"])
                out.append(Design(cid, scope, seeds, _folds(plan, entry), 2.0, *where))
                break
            elif spec["kind"] == "cross":
                for d, (src, tgt) in zip(spec["directions"], entry["pairs"], strict=True):
                    folds = max(_folds(plan, {"dataset": src}), _folds(plan, {"dataset": tgt}))
                    out.append(Design(cid, f"{table}: {d['label']}", seeds, folds,
                                      2.0 if test == "cross_drop" else 1.0, where[0], d["name"],
                                      test == "published"))  # fmt: skip
            else:
                losses = {plan.methods[m]["loss"] for m, _ in spec.get("methods", [])}
                criterion = test == "published" or (
                    test == "losses" and spec["kind"] == "au_f1" and data_kind(plan, table) == "real"
                    and not losses & set(BASELINE_LOSSES))  # fmt: skip
                out.append(Design(cid, table, seeds, _folds(plan, entry),
                                  2.0 if test == "noise" else 1.0, *where, criterion))  # fmt: skip
    return out


def _folds(plan, entry: dict) -> int:
    """Training folds of a table entry (1: a fixed split, or a whole dataset against another)."""
    if entry.get("test_dataset"):
        return 1
    if entry.get("folds"):
        return len(entry["folds"])
    names = [entry.get("dataset")] + list(entry.get("datasets") or [])
    counts = [len([f for f in dataset_folds(plan.datasets[n]) if f != "all"]) for n in names if n]
    return max(counts or [1]) or 1


def paper_spread(paper_table: str | None, dataset: str | None,
                 path: str | Path = PUBLISHED_STD) -> tuple[float, str]:  # fmt: skip
    """AUNCE's printed F1-macro std over seeds for a paper table, or the largest printed one."""
    std = pd.read_csv(path)
    avg = std[std["au"] == "avg"]
    own = avg[(avg["table"] == paper_table) & (avg["dataset"] == dataset)]
    if len(own):
        return float(own["std"].iloc[0]), f"the paper's std {float(own['std'].iloc[0]):g} ({paper_table})"
    top = avg.loc[avg["std"].idxmax()]
    return float(top["std"]), (f"the paper's largest printed std {float(top['std']):g} "
                               f"({top['table']}; none printed here)")  # fmt: skip


def run_spread(checks: pd.DataFrame, claim: str, scope: str) -> tuple[float, float] | None:
    """``(s_seed^2, V_subjects)`` of a claim's comparisons in a finished run's checks (the largest
    over its comparisons; scope matched on its table), or None."""
    need = {"claim", "scope", "var_models", "var_subjects", "n_seeds"}
    if not need <= set(checks.columns):
        return None
    table = scope.split(":")[0]
    rows = checks[(checks["claim"] == claim) & (checks["scope"].astype(str).str.split(":").str[0]
                                                == table)]  # fmt: skip
    if scope != table:
        exact = rows[rows["scope"] == scope]
        rows = exact if len(exact) else rows
    rows = rows[rows["var_models"].notna() & (rows["n_seeds"] >= 2)]
    if rows.empty:
        return None
    return float((rows["var_models"] * rows["n_seeds"]).max()), float(rows["var_subjects"].max())


def power_table(plan, claims: dict, checks: pd.DataFrame | None = None,
                published: str | Path | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per claim and scope: design, where the variance comes from, SE, df, the detectable
    difference (F1 points) and the paper's margins (with whether the design resolves each)."""
    published = load_published(published or plan.published)
    rows = []
    for d in designs(plan, claims):
        if isinstance(d, tuple):
            rows.append({"claim": d[0], "scope": d[1], "design": "-", "variance from": d[2],
                         "se": math.nan, "df": math.nan, "detectable": math.nan,
                         "paper's margin": "-"})  # fmt: skip
            continue
        margins = paper_margins(published, d.claim, d.scope, d.paper_table, d.dataset)
        if d.criterion:  # mean - B > 2 std: the margin it needs is twice AUNCE's own spread
            std, source = paper_spread(d.paper_table, d.dataset)
            rows.append({"claim": d.claim, "scope": d.scope,
                         "design": f"{d.folds} fold(s) x {d.seeds} seed(s), the paper's 2-std "
                         "criterion against published numbers", "variance from": source,
                         "se": math.nan, "df": math.nan, "detectable": 2 * std,
                         "paper's margin": _margin_text(margins, 2 * std, False)})  # fmt: skip
            continue
        found = run_spread(checks, d.claim, d.scope) if checks is not None else None
        if found is not None:
            s2, v_subj = found
            source = "a finished run's spread"
        else:
            std, source = paper_spread(d.paper_table, d.dataset)
            s2, v_subj = 2 * std**2, 0.0
            source += "; test subjects unknown: a lower bound"
        se = math.sqrt(d.factor * (s2 / d.seeds + v_subj)) if d.seeds >= 2 else math.nan
        df = d.seeds - 1 if d.seeds >= 2 else math.nan
        mde = detectable(se, df) if d.seeds >= 2 else math.nan
        shown = _margin_text(margins, mde, found is None)
        rows.append({"claim": d.claim, "scope": d.scope,
                     "design": f"{d.folds} fold(s) x {d.seeds} seed(s)"
                     + (", independent arms" if d.factor == 2 and "margin" in d.claim else ""),
                     "variance from": source if d.seeds >= 2 else (
                         "one seed: the test has only the folds' spread, unknown before the run"),
                     "se": se, "df": df, "detectable": mde, "paper's margin": shown})  # fmt: skip
    return pd.DataFrame(rows)


def _margin_text(margins: list[tuple[str, float]], mde: float, lower_bound: bool) -> str:
    """Each margin, and whether the plan resolves it: a margin below the detectable difference is
    not resolved; above a lower bound (the paper's spreads, no test subjects), perhaps."""

    def verdict(m: float) -> str:
        if math.isnan(mde):
            return ""
        if abs(m) < mde:
            return " (not resolved)"
        return " (perhaps: above a lower bound)" if lower_bound else " (resolved)"

    return "; ".join(f"{label} {m:+.1f}{verdict(m)}" for label, m in margins) or "-"


def _avg(published: pd.DataFrame, table: str, dataset: str, method: str) -> float | None:
    hit = published[(published["table"] == table) & (published["dataset"] == dataset)
                    & (published["method"] == method) & (published["au"] == "avg")]  # fmt: skip
    return float(hit["f1"].iloc[0]) if len(hit) else None


def _best_other(published: pd.DataFrame, table: str, dataset: str | None,
                own: str) -> tuple[str, float] | None:  # fmt: skip
    rows = published[(published["table"] == table) & (published["au"] == "avg")
                     & (published["method"] != own) & (published["source"] != "this paper")]  # fmt: skip
    if dataset:
        rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        return None
    best = rows.loc[rows["f1"].idxmax()]
    return str(best["method"]), float(best["f1"])


def paper_margins(published: pd.DataFrame, claim: str, scope: str, table: str | None = None,
                  dataset: str | None = None) -> list[tuple[str, float]]:  # fmt: skip
    """The margins the paper reports for a claim on a scope (its paper ``table`` and ``dataset``
    where known), from baselines/published.csv: ``[(what, F1 points)]``; empty where its tables
    do not print them."""
    out = []

    def diff(label, a, b):
        if a is not None and b is not None:
            out.append((label, a - b))

    enc = "MEGraph (Onestage)"
    datasets = {"table2-bp4d": "bp4d", "table3-disfa": "disfa"}
    if claim in datasets or claim.startswith("table8-"):
        for ds in ([datasets[claim]] if claim in datasets else ["bp4d", "disfa"]):
            aunce = _avg(published, "table8", ds, f"{enc} + AUNCE")
            for loss in ("WCE", "WFL"):
                diff(f"{ds} AUNCE - {loss} (Table 8)", aunce,
                     _avg(published, "table8", ds, f"{enc} + {loss}"))  # fmt: skip
    elif claim in ("table4-bp4d-plus", "table5-gft", "table6-affwild2", "published-2std"):
        table = {"table4-bp4d-plus": "table4", "table5-gft": "table5",
                 "table6-affwild2": "table6"}.get(claim, table or scope.split(":")[0])  # fmt: skip
        rows = published[(published["table"] == table) & (published["method"] == "AUNCE")
                         & (published["au"] == "avg")]  # fmt: skip
        if dataset:
            rows = rows[rows["dataset"] == dataset]
        for _, row in rows.iterrows():
            best = _best_other(published, table, row["dataset"], "AUNCE")
            if best:
                diff(f"AUNCE - {best[0]}", float(row["f1"]), best[1])
    elif claim == "table7-cross-dataset":
        direction = scope.split(": ")[-1].replace(" ", "")
        name = {"bp4d->gft": "bp4d->gft", "gft->bp4d": "gft->bp4d"}.get(direction)
        if name:
            diff("AUNCE - WCE", _avg(published, "table7", name, "AUNCE"),
                 _avg(published, "table7", name, "WCE"))  # fmt: skip
    elif claim == "table10-components":
        for hi, lo in (("D", "B"), ("C", "B")):
            diff(f"{hi} - {lo}", _avg(published, "table10", "bp4d", hi),
                 _avg(published, "table10", "bp4d", lo))  # fmt: skip
        # E prints no average; its per-AU values are Table 2's AUNCE row (baselines/README.md)
        diff("E - C (E: Table 2's AUNCE)", _avg(published, "table2", "bp4d", "AUNCE"),
             _avg(published, "table10", "bp4d", "C"))  # fmt: skip
    elif claim == "table11-best-sampling":
        best = _avg(published, "table11", "bp4d", "(0.15,0.15,0.7,0)")
        other = _best_other(published.assign(source="-"), "table11", "bp4d", "(0.15,0.15,0.7,0)")
        if best is not None and other:
            diff(f"(0.15,0.15,0.7,0) - {other[0]}", best, other[1])
    return out


def load_checks(path: str | Path) -> pd.DataFrame:
    """A verdicts.checks.csv (aunce verdicts --checks); a file that is not one is named."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AunceError(f"{path}: cannot read as a verdicts.checks.csv ({err})") from None
    missing = {"claim", "scope", "var_models", "var_subjects", "n_seeds"} - set(frame.columns)
    if missing:
        raise AunceError(f"{path}: not a verdicts.checks.csv of this version (no column(s) "
                         f"{', '.join(sorted(missing))})")  # fmt: skip
    return frame


def render_power(frame: pd.DataFrame) -> str:
    """The power section of ``aunce plan``."""
    from tabulate import tabulate

    rows = [[r["claim"], r["scope"], r["design"],
             "-" if math.isnan(r["detectable"]) else f"{r['detectable']:.2f}",
             "-" if math.isnan(r["se"]) else f"{r['se']:.2f}",
             "-" if math.isnan(r["df"]) else f"{r['df']:g}", r["paper's margin"],
             r["variance from"]] for _, r in frame.iterrows()]  # fmt: skip
    head = (
        "## Power: the smallest F1 difference each claim can detect\n\n"
        f"alpha {ALPHA:g} two-sided, power {POWER:g}, before Holm's correction over the run "
        "(aunce.power; docs/report.md, \"Power\"). detectable: F1 points the planned folds and "
        "seeds find with probability 0.8 (for the paper's 2-std criterion, twice the spread it "
        "needs); a paper margin smaller than it is one this plan cannot resolve (more seeds: the "
        "standard error falls as 1 / sqrt(seeds)). From the paper's printed spreads, which leave "
        "out the test subjects, it is a lower bound: a margin above it is perhaps resolved.\n\n"
    )
    return head + tabulate(rows, ["claim", "scope", "design", "detectable", "SE", "df",
                                  "paper's margin", "variance from"], tablefmt="github",
                           disable_numparse=True) + "\n"  # fmt: skip
