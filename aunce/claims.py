"""Does the paper hold here? Each claim of baselines/claims.yaml judged on this run's own runs.

docs/report.md, "Verdicts", states the decision rule this module implements:

- A *comparison* sets two arms of the run against each other in the direction the paper states
  (arm a better than arm b: a higher F1, or for Table 9 a shorter epoch). A pair is the two runs of
  the same fold and seed (a cross-dataset run: the same source fold, target fold and seed); the test
  is the two-sided paired t-test of aunce.stats.paired_comparison.
- The p-values of every comparison of the run that has at least ``min_pairs`` pairs are
  Holm-corrected together (aunce.stats.holm): one family, so the chance that any verdict of the
  table rests on a false positive is at most ``alpha``.
- A comparison *agrees* with the paper when its corrected p-value is below ``alpha`` and the mean
  difference has the paper's sign, *disagrees* when it is below ``alpha`` with the other sign, and
  is otherwise not significant, undefined (every difference equal) or has too few pairs.
- A verdict (one claim on one table, or on one cell or direction of it) is **contradicted** when a
  comparison disagrees, **supported** when every comparison agrees, and **inconclusive** otherwise,
  with the reason. A claim no table of the config tests is inconclusive, "not run in this config".
- Two claims are judged otherwise: the paper's own 2-std criterion against published baselines
  (``published``; real data only: synthetic stand-ins are never compared with the paper's
  real-data numbers) and Fig. 5's separability (one run per model: no paired test).

Which tables and methods a claim reads comes from the plan (aunce.plan): a table's kind, its paper
table, its methods and their losses, and the metrics files its spec names.

aunce.stats (scipy) is imported where a test runs: the workflow imports this module to plan its
inputs, and every Snakemake invocation would pay for scipy.

Entry points: :func:`judge` (a plan and the claims), :func:`judge_run` (a finished run's
results/config.yaml), :func:`inputs` (the files a judgement reads, for the rule), and
:class:`Verdicts` with its renderers (:meth:`Verdicts.markdown`, :meth:`Verdicts.html`) and
:func:`write_verdicts`.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aunce import AunceError
from aunce.config import load_yaml
from aunce.io import write_text
from aunce.plan import Plan, make_plan, stage_file
from aunce.presets import effective_aunce

CLAIMS_PATH = Path(__file__).resolve().parent.parent / "baselines" / "claims.yaml"
PUBLISHED_PATH = CLAIMS_PATH.parent / "published.csv"
VERDICTS = ("supported", "contradicted", "inconclusive")
BASELINE_LOSSES = ("wce", "wfl")
NOT_RUN = "not run in this config"
ROW_COLUMNS = ["claim", "scope", "data", "statement", "source", "measured", "test", "verdict",
               "reason"]  # fmt: skip
CHECK_COLUMNS = ["claim", "scope", "a", "b", "quantity", "lower_is_better", "n_pairs",
                 "n_unpaired", "mean_a", "mean_b", "mean_diff", "t", "p_ttest", "p_holm",
                 "p_wilcoxon", "outcome"]  # fmt: skip


# --- the claims file ----------------------------------------------------------------------------
def load_claims(path: str | os.PathLike = CLAIMS_PATH) -> dict:
    """Read and check baselines/claims.yaml: ``{"rule": {"alpha", "min_pairs"}, "claims": [...]}``.

    Raises AunceError naming the file, the claim and the key of the first problem."""
    data = load_yaml(path) or {}
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise AunceError(f"{where}: expected a mapping with a list 'claims'")
    rule = data.get("rule") or {}
    alpha, min_pairs = rule.get("alpha"), rule.get("min_pairs")
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise AunceError(f"{where}: rule.alpha must be a number in (0, 1), got {alpha!r}")
    if not isinstance(min_pairs, int) or isinstance(min_pairs, bool) or min_pairs < 2:
        raise AunceError(f"{where}: rule.min_pairs must be an integer >= 2, got {min_pairs!r}")
    seen = set()
    for i, claim in enumerate(data["claims"]):
        name = claim.get("id") if isinstance(claim, dict) else None
        label = f"{where}: claims[{i}]" + (f" ({name})" if name else "")
        if not isinstance(claim, dict):
            raise AunceError(f"{label}: expected a mapping")
        for key in ("id", "claim", "source", "quote", "test", "tables"):
            if not claim.get(key):
                raise AunceError(f"{label}: missing key '{key}'")
        if name in seen:
            raise AunceError(f"{label}: id '{name}' is used twice")
        seen.add(name)
        if claim["test"] not in TESTS:
            raise AunceError(
                f"{label}: unknown test '{claim['test']}' (known: {', '.join(sorted(TESTS))})"
            )
        if not isinstance(claim["tables"], dict) or "kind" not in claim["tables"]:
            raise AunceError(f"{label}: tables must be a mapping with a 'kind'")
        for key in REQUIRED.get(claim["test"], ()):
            if key not in claim:
                raise AunceError(f"{label}: test '{claim['test']}' needs the key '{key}'")
        if isinstance(claim["quote"], str):
            claim["quote"] = [claim["quote"]]
    return {"rule": {"alpha": float(alpha), "min_pairs": min_pairs}, "claims": data["claims"]}


# --- what a judgement is made of ----------------------------------------------------------------
Pair = tuple[str, int]  # (fold, seed)


@dataclass
class Arm:
    """One side of a comparison: a label and its value per run (fold, seed)."""

    label: str
    values: dict[Pair, float]


@dataclass
class Check:
    """One directed comparison: the paper says ``a`` beats ``b`` on ``quantity``."""

    a: Arm
    b: Arm
    quantity: str  # what the values are, e.g. "F1-macro (%)"
    scale: float = 100.0  # display factor (F1 is stored as a fraction)
    lower_is_better: bool = False
    unit: str = ""
    result: dict = field(default_factory=dict)  # paired_comparison's row, then p_holm, outcome


@dataclass
class Scope:
    """One verdict row: a claim on one table (or one cell, dataset or direction of it)."""

    claim: dict
    scope: str
    data: str  # "synthetic stand-in", "real" or "mixed"
    checks: list[Check] = field(default_factory=list)
    verdict: str | None = None  # set directly by the tests without a paired comparison
    reason: str = ""
    measured: str = ""
    test: str = ""


@dataclass
class Verdicts:
    """The verdict table (``rows``), every comparison behind it (``checks``) and the rule."""

    rows: pd.DataFrame
    checks: pd.DataFrame
    rule: dict
    claims: list[dict]

    def counts(self) -> dict[str, int]:
        return {v: int((self.rows["verdict"] == v).sum()) for v in VERDICTS}

    def markdown(self, heading: str = "## Verdicts") -> str:
        return _markdown(self, heading)

    def html(self) -> str:
        return _html(self)


# --- reading a run ------------------------------------------------------------------------------
class _Reader:
    """Cached JSON reads (several claims read the same runs); a missing or bad file is named."""

    def __init__(self):
        self.cache: dict[str, dict] = {}

    def __call__(self, path: str) -> dict:
        if path not in self.cache:
            try:
                self.cache[path] = json.loads(Path(path).read_text())
            except FileNotFoundError:
                raise AunceError(f"verdicts: missing input file {path}") from None
            except json.JSONDecodeError as err:
                raise AunceError(f"verdicts: {path} is not valid JSON ({err.msg})") from None
        return self.cache[path]


def _f1(rec: dict, aus: list[str] | None = None) -> float:
    """F1-macro of a run, or the mean F1 over ``aus`` (AUs the run does not score are skipped)."""
    if not aus:
        return float(rec["f1_macro"])
    values = [rec["f1"].get(au) for au in aus]
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(values)) if values else math.nan


def _arm(label: str, records: list[dict], value: Callable[[dict], float]) -> Arm:
    values: dict[Pair, float] = {}
    for rec in records:
        key = (str(rec["run"]["fold"]), int(rec["run"]["seed"]))
        if key in values:
            raise AunceError(f"verdicts: {label} has two runs of fold {key[0]}, seed {key[1]}")
        values[key] = value(rec)
    return Arm(label, values)


def _method_records(records: list[dict], method: str) -> list[dict]:
    return [r for r in records if r["run"]["method"] == method]


def _loss(plan: Plan, method: str) -> str:
    return plan.methods[method]["loss"]


def table_datasets(plan: Plan, table: str) -> list[str]:
    """The datasets a table reads (training and test), from its config entry."""
    entry = plan.config["tables"][table]
    names = [entry.get("dataset"), entry.get("test_dataset"), *(entry.get("datasets") or [])]
    names += [d for pair in entry.get("pairs") or [] for d in pair]
    return list(dict.fromkeys(n for n in names if n))


def data_kind(plan: Plan, table: str) -> str:
    """A "synthetic stand-in" when every dataset of the table is synthetic, "real" when none is."""
    sources = {plan.datasets[d]["source"] == "synthetic" for d in table_datasets(plan, table)}
    if sources == {True}:
        return "synthetic stand-in"
    return "real" if sources == {False} else "mixed"


def paper_table(table: str, spec: dict) -> str:
    """The paper table a plan table reproduces: its published table, else its id."""
    return (spec.get("published") or {}).get("table") or table


def _matches(claim: dict, table: str, spec: dict) -> bool:
    want = claim["tables"]
    kinds = want["kind"] if isinstance(want["kind"], list) else [want["kind"]]
    if spec["kind"] not in kinds:
        return False
    return "paper_table" not in want or paper_table(table, spec) == want["paper_table"]


# --- the tests: a claim on one table -> verdict rows --------------------------------------------
@dataclass
class _Context:
    plan: Plan
    read: _Reader


def _scope_name(plan: Plan, table: str, *parts: str) -> str:
    entry = plan.config["tables"][table]
    where = [" -> ".join(d for d in (entry.get("dataset"), entry.get("test_dataset")) if d)]
    where = [w for w in where if w] + ([entry["encoder"]] if entry.get("encoder") else [])
    return f"{table}: " + ", ".join(list(parts) or where)


def _not_run(claim: dict, scope: str, data: str, why: str) -> Scope:
    return Scope(claim, scope, data, verdict="inconclusive", reason=f"{NOT_RUN}: {why}")


def _losses(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Every AUNCE method against every WCE or WFL method of the table, per cell or direction."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    groups: list[tuple[str, list]] = []  # [(scope, [(method, label, records)])]
    if spec["kind"] == "au_f1":
        records = [ctx.read(p) for p in spec["inputs"]["metrics"]]
        groups.append((_scope_name(plan, table),
                       [(m, lab, _method_records(records, m)) for m, lab in spec["methods"]]))  # fmt: skip
        value = _f1
    elif spec["kind"] == "grid":
        cells: dict[tuple[str, str], list] = {}
        for c in spec["cells"]:
            recs = [ctx.read(p) for p in c["metrics"]]
            cells.setdefault((c["dataset"], c["encoder"]), []).append(
                (c["method"], f"{c['encoder_label']} + {c['loss_label']}", recs)
            )
        groups += [(_scope_name(plan, table, ds, enc), members)
                   for (ds, enc), members in cells.items()]  # fmt: skip
        value = _f1
    else:  # cross: per direction, F1 averaged over the shared AUs as Table 7 prints it
        for d in spec["directions"]:
            members = [
                (m, lab, [ctx.read(p) for p in d["metrics"][m]]) for m, lab in spec["methods"]
            ]
            groups.append((_scope_name(plan, table, d["label"]), members))
        aus = spec["aus"]

        def value(rec: dict) -> float:
            return _f1(rec, aus)

    quantity = "F1-macro (%)" if spec["kind"] != "cross" else "F1-macro over the shared AUs (%)"
    out = []
    for scope, members in groups:
        ours = [m for m in members if _loss(plan, m[0]) == "aunce"]
        theirs = [m for m in members if _loss(plan, m[0]) in BASELINE_LOSSES]
        if not ours or not theirs:
            missing = "AUNCE" if not ours else "WCE or WFL baseline"
            out.append(_not_run(claim, scope, data, f"the table trains no {missing} here"))
            continue
        checks = [
            Check(_arm(la, ra, value), _arm(lb, rb, value), quantity)
            for _, la, ra in ours
            for _, lb, rb in theirs
        ]
        out.append(Scope(claim, scope, data, checks))
    return out


def _encoder_best(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Per dataset of a grid: the claim's encoder with AUNCE against every other cell."""
    plan, data, out = ctx.plan, data_kind(ctx.plan, table), []
    for ds in spec["datasets"]:
        cells = [c for c in spec["cells"] if c["dataset"] == ds]
        arms = {
            (c["encoder"], c["method"]): _arm(
                f"{c['encoder_label']} + {c['loss_label']}",
                [ctx.read(p) for p in c["metrics"]],
                _f1,
            )
            for c in cells
        }
        best = [k for k in arms if k[0] == claim["encoder"] and _loss(plan, k[1]) == "aunce"]
        scope = _scope_name(plan, table, ds)
        if not best or len(arms) < 2:
            why = f"no {claim['encoder']} + AUNCE cell" if not best else "a single cell"
            out.append(_not_run(claim, scope, data, f"the grid has {why} on {ds}"))
            continue
        checks = [
            Check(arms[best[0]], arm, "F1-macro (%)") for k, arm in arms.items() if k != best[0]
        ]
        out.append(Scope(claim, scope, data, checks))
    return out


def _cost(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Per dataset: seconds per pretraining epoch, AUNCE against WCE and WFL (lower is better)."""
    plan, data, out = ctx.plan, data_kind(ctx.plan, table), []
    encoder = plan.config["tables"][table]["encoder"]
    for ds in dict.fromkeys(r["dataset"] for r in spec["rows"]):
        arms = {}
        for r in (r for r in spec["rows"] if r["dataset"] == ds):
            wanted = set(r["timing"])
            values = {}
            for fold, seed in sorted(plan.runs.get((ds, encoder, r["method"]), ())):
                path = stage_file("pretrain", ds, encoder, r["method"], fold, seed, "timing.json")
                if path in wanted:
                    values[(str(fold), int(seed))] = float(ctx.read(path)["epoch_seconds"])
            arms[r["method"]] = Arm(r["label"], values)
        ours = [m for m in arms if _loss(plan, m) == "aunce"]
        theirs = [m for m in arms if _loss(plan, m) in BASELINE_LOSSES]
        scope = _scope_name(plan, table, ds, encoder)
        if not ours or not theirs:
            out.append(_not_run(claim, scope, data, "the table times no AUNCE and WCE/WFL pair"))
            continue
        checks = [
            Check(arms[a], arms[b], "seconds per epoch", 1.0, lower_is_better=True, unit=" s")
            for a in ours
            for b in theirs
        ]
        out.append(Scope(claim, scope, data, checks))
    return out


def _order(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Rows labelled as in ``claim["order"]``: each later row beats the one before it (of those
    the table has); on F1-macro, or on the mean F1 of ``claim["aus"]``."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    records = [ctx.read(p) for p in spec["inputs"]["metrics"]]
    aus = claim.get("aus")
    labels = {lab: m for m, lab in spec["methods"]}
    present = [lab for lab in claim["order"] if lab in labels]
    scope = _scope_name(plan, table)
    if len(present) < 2:
        have = " and ".join(present) or "none"
        why = f"the table has only {have} of the models {', '.join(claim['order'])}"
        return [_not_run(claim, scope, data, why)]

    def value(rec: dict) -> float:
        return _f1(rec, aus)

    arms = {lab: _arm(lab, _method_records(records, labels[lab]), value) for lab in present}
    quantity = f"mean F1 of {', '.join(aus)} (%)" if aus else "F1-macro (%)"
    checks = [
        Check(arms[hi], arms[lo], quantity) for lo, hi in zip(present, present[1:], strict=False)
    ]
    return [Scope(claim, scope, data, checks)]


def _best(
    ctx: _Context, claim: dict, table: str, spec: dict, target: str, setting: Callable[[str], str]
) -> list[Scope]:
    """The row whose setting (as ``setting`` names it) is ``target`` against every other row."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    if spec["kind"] == "beta":
        files = {p["method"]: p["metrics"] for p in spec["points"]}  # a shared point counts once
        records = {m: [ctx.read(p) for p in paths] for m, paths in files.items()}
    else:
        all_records = [ctx.read(p) for p in spec["inputs"]["metrics"]]
        records = {m: _method_records(all_records, m) for m, _ in spec["methods"]}
    arms = {m: _arm(setting(m), recs, _f1) for m, recs in records.items()}
    best = [m for m in arms if setting(m) == target]
    scope = _scope_name(plan, table)
    if not best or len(arms) < 2:
        why = f"no row {target}" if not best else "a single row"
        return [_not_run(claim, scope, data, f"the table has {why}")]
    checks = [Check(arms[best[0]], arm, "F1-macro (%)") for m, arm in arms.items() if m != best[0]]
    return [Scope(claim, scope, data, checks)]


def _best_probabilities(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    def name(probs) -> str:
        return "(" + ", ".join(f"{float(p):g}" for p in probs) + ")"

    def setting(method: str) -> str:
        return name(effective_aunce(ctx.plan.methods[method])["positive_probs"])

    return _best(ctx, claim, table, spec, name(claim["best"]), setting)


def _best_beta(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    def name(minority, majority) -> str:
        return f"beta_min {float(minority):g}, beta_maj {float(majority):g}"

    def setting(method: str) -> str:
        s = effective_aunce(ctx.plan.methods[method])
        return name(s["beta_minority"], s["beta_majority"])

    target = name(claim["best"]["beta_minority"], claim["best"]["beta_majority"])
    return _best(ctx, claim, table, spec, target, setting)


def _noise(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """At each noise rate r > 0: AUNCE's F1-macro change from rate 0 against a baseline's."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    rates = {
        float(r): [ctx.read(p) for p in files] for r, files in spec["inputs"]["metrics"].items()
    }
    scope = _scope_name(plan, table)
    if 0.0 not in rates or len(rates) < 2:
        return [_not_run(claim, scope, data, "the table needs rate 0 and a noisy rate")]
    ours = [(m, lab) for m, lab in spec["methods"] if _loss(plan, m) == "aunce"]
    theirs = [(m, lab) for m, lab in spec["methods"] if _loss(plan, m) in BASELINE_LOSSES]
    if not ours or not theirs:
        return [_not_run(claim, scope, data, "the table trains no AUNCE and WCE/WFL pair")]

    def drop(method: str, label: str, rate: float) -> Arm:
        clean = _arm(label, _method_records(rates[0.0], method), _f1).values
        noisy = _arm(label, _method_records(rates[rate], method), _f1).values
        return Arm(label, {k: noisy[k] - clean[k] for k in noisy.keys() & clean.keys()})

    out = []
    for rate in sorted(r for r in rates if r > 0):
        checks = [
            Check(
                drop(a, la, rate),
                drop(b, lb, rate),
                f"F1-macro change, 0% -> {100 * rate:g}% noise (points)",
            )
            for a, la in ours
            for b, lb in theirs
        ]
        out.append(Scope(claim, _scope_name(plan, table, f"{100 * rate:g}% noise"), data, checks))
    return out


def _separability(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Fig. 5: the silhouette of active vs inactive frames per model, averaged over AUs. One run
    per model (the figure's fold and seed): measured, never tested."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    path = spec["outputs"]["csv"]
    if not Path(path).is_file():
        raise AunceError(f"verdicts: missing input file {path}")
    frame = pd.read_csv(path)
    per_au = frame.groupby(["panel", "au"], sort=False)["silhouette"].first()
    means = per_au.groupby(level="panel", sort=False).mean()
    measured = "; ".join(f"{panel} {value:.3f}" for panel, value in means.items())
    return [
        Scope(
            claim, _scope_name(plan, table), data, verdict="inconclusive",
            measured=f"mean silhouette over AUs: {measured}",
            test="silhouette of active vs inactive test frames per AU (the figure's t-SNE input)",
            reason=f"a single run per model (one fold, seed {spec['seed']}): no paired test over "
            "folds and seeds",
        )
    ]  # fmt: skip


def _published(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """The paper's criterion: AUNCE's mean beats a published average by more than twice its std
    over seeds (aunce.stats.beats_published); supported when it holds for most published rows of
    the table, contradicted when the mirror (published beats AUNCE by 2 std) holds for most."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    where = spec.get("published")
    if not where:
        return []
    from aunce.baselines import load_published
    from aunce.stats import beats_published

    published = load_published(where["file"])
    rows = published[(published["table"] == where["table"]) & (published["au"] == "avg")]
    rows = rows[rows["source"] != "this paper"]
    if spec["kind"] == "cross":
        parts = [(d["label"], d["name"], {m: d["metrics"][m] for m, _ in spec["methods"]})
                 for d in spec["directions"]]  # fmt: skip
    else:
        parts = [(None, where.get("dataset"), None)]
    out = []
    for label, dataset, files in parts:
        scope = _scope_name(plan, table, *([label] if label else []))
        pubs = rows if dataset is None else rows[rows["dataset"] == dataset]
        if pubs.empty:
            continue
        if data != "real":
            out.append(Scope(
                claim, scope, data, verdict="inconclusive",
                test="the paper's criterion against its published averages",
                reason="synthetic stand-in: the published averages were measured on the real "
                "dataset, so this run is compared within itself (the other verdicts), not with them",
            ))  # fmt: skip
            continue
        for method, mlabel in spec["methods"]:
            if _loss(plan, method) != "aunce":
                continue
            if files is None:
                records = _method_records([ctx.read(p) for p in spec["inputs"]["metrics"]], method)
            else:
                records = [ctx.read(p) for p in files[method]]
            mean, std, n_seeds = _mean_std(records, spec.get("aus"))
            holds = [beats_published(mean, std, p) for p in pubs["f1"]]
            against = [bool(p - mean > 2 * std) for p in pubs["f1"]]
            n = len(pubs)
            measured = (f"{mlabel} {mean:.1f} ± {std:.1f} over {n_seeds} seed(s); beats "
                        f"{sum(holds)} of {n} published averages by > 2 std, "
                        f"below {sum(against)} by > 2 std")  # fmt: skip
            if n_seeds < 2:
                verdict, reason = "inconclusive", "one seed: no standard deviation"
            elif sum(holds) > n / 2:
                verdict, reason = "supported", f"the criterion holds for {sum(holds)} of {n}"
            elif sum(against) > n / 2:
                verdict, reason = "contradicted", f"{sum(against)} of {n} beat this run by > 2 std"
            else:
                verdict, reason = (
                    "inconclusive",
                    f"the criterion holds for {sum(holds)} of {n} only",
                )
            out.append(Scope(
                claim, f"{scope} ({mlabel})", data, verdict=verdict, reason=reason,
                measured=measured, test="mean - published > 2 std over seeds, for most published rows",
            ))  # fmt: skip
    return out


def _mean_std(records: list[dict], aus: list[str] | None) -> tuple[float, float, int]:
    """Mean over folds per seed, then mean and sample std over seeds, in percent."""
    from aunce.stats import aggregate

    frame = pd.DataFrame(
        [{"dataset": "d", "encoder": "e", "method": "m", "fold": r["run"]["fold"],
          "seed": r["run"]["seed"], "value": 100 * _f1(r, aus)} for r in records]
    )  # fmt: skip
    agg = aggregate(frame, ["value"]).iloc[0]
    return float(agg["value_mean"]), float(agg["value_std"]), int(agg["n_seeds"])


TESTS: dict[str, Callable[[_Context, dict, str, dict], list[Scope]]] = {
    "losses": _losses,
    "encoder_best": _encoder_best,
    "cost": _cost,
    "order": _order,
    "best_probabilities": _best_probabilities,
    "best_beta": _best_beta,
    "noise": _noise,
    "separability": _separability,
    "published": _published,
}
REQUIRED = {
    "encoder_best": ("encoder",),
    "order": ("order",),
    "best_probabilities": ("best",),
    "best_beta": ("best",),
}


# --- judging ------------------------------------------------------------------------------------
def judge(plan: Plan, claims: dict) -> Verdicts:
    """Every claim of ``claims`` (:func:`load_claims`) on every table of ``plan`` it bears on.

    Reads the metrics, timing and figure files the tables' specs name (relative paths resolve
    against the working folder, the run's project folder). Raises AunceError naming a missing
    or malformed file."""
    rule = claims["rule"]
    ctx = _Context(plan, _Reader())
    scopes: list[Scope] = []
    for claim in claims["claims"]:
        found = []
        for table, spec in plan.tables.items():
            if _matches(claim, table, spec):
                found += TESTS[claim["test"]](ctx, claim, table, spec)
        if not found:
            want = claim["tables"]
            what = f"no table of kind {want['kind']}" + (
                f" for the paper's {want['paper_table']}" if "paper_table" in want else ""
            )
            if claim["test"] == "published":
                what = "no table with published averages to compare with"
            found = [Scope(claim, "-", "-", verdict="inconclusive", reason=f"{NOT_RUN}: {what}")]
        scopes += found
    _test(scopes, rule)
    rows = _merge([_row(s, rule) for s in scopes])
    checks = [_check_row(s, c) for s in scopes for c in s.checks]
    return Verdicts(
        pd.DataFrame(rows, columns=ROW_COLUMNS),
        pd.DataFrame(checks, columns=CHECK_COLUMNS),
        rule,
        claims["claims"],
    )


def judge_run(
    config: str | os.PathLike = "results/config.yaml",
    claims: str | os.PathLike = CLAIMS_PATH,
    published: str | os.PathLike = PUBLISHED_PATH,
) -> Verdicts:
    """The verdicts of a finished run, from its resolved config (run in the run's folder).

    The plan is rebuilt from the config the run saved, so its tables, methods and files are the
    ones the run produced. The entry point for a run made outside the workflow's `verdicts` rule
    (`aunce verdicts --config results/config.yaml`)."""
    resolved = load_yaml(config)
    if not isinstance(resolved, dict) or "tables" not in resolved:
        raise AunceError(f"{config}: not a resolved run config (no 'tables')")
    plan = make_plan(resolved, published=str(published))
    return judge(plan, load_claims(claims))


def inputs(plan: Plan, claims: dict) -> list[str]:
    """Every file :func:`judge` reads for these claims on this plan (the rule's inputs)."""
    files: list[str] = []
    for claim in claims["claims"]:
        for table, spec in plan.tables.items():
            if not _matches(claim, table, spec):
                continue
            if spec["kind"] == "tsne":
                files.append(spec["outputs"]["csv"])
            elif spec["kind"] == "cost":
                files += spec["inputs"]["timing"]
            else:
                metrics = spec["inputs"].get("metrics", [])
                files += (
                    [p for ps in metrics.values() for p in ps]
                    if isinstance(metrics, dict)
                    else metrics
                )
            if claim["test"] == "published" and spec.get("published"):
                files.append(spec["published"]["file"])
    return list(dict.fromkeys(files))


def _test(scopes: list[Scope], rule: dict) -> None:
    """Run every comparison, Holm-correct the tested ones together, and classify each."""
    from aunce.stats import holm

    tested = []
    for scope in scopes:
        for check in scope.checks:
            check.result = _compare(check)
            r = check.result
            if r["n_pairs"] >= rule["min_pairs"] and math.isfinite(r["p_ttest"]):
                tested.append(check)
    adjusted = holm([c.result["p_ttest"] for c in tested]) if tested else []
    for check, p in zip(tested, adjusted, strict=True):
        check.result["p_holm"] = float(p)
    for scope in scopes:
        for check in scope.checks:
            check.result["outcome"] = _outcome(check, rule)


def _compare(check: Check) -> dict:
    from aunce.stats import paired_comparison

    rows = [
        {"dataset": "-", "encoder": "-", "method": side, "fold": f, "seed": s, "value": v}
        for side, arm in (("a", check.a), ("b", check.b))
        for (f, s), v in arm.values.items()
    ]
    frame = pd.DataFrame(rows, columns=["dataset", "encoder", "method", "fold", "seed", "value"])
    if not check.a.values or not check.b.values:
        n_un = len(check.a.values) + len(check.b.values)
        return {"n_pairs": 0, "n_unpaired": n_un, "mean_a": math.nan, "mean_b": math.nan,
                "mean_diff": math.nan, "t": math.nan, "p_ttest": math.nan,
                "p_wilcoxon": math.nan, "p_holm": math.nan}  # fmt: skip
    row = paired_comparison(frame, "a", "b", ["value"]).iloc[0].to_dict()
    keep = ("n_pairs", "n_unpaired", "mean_a", "mean_b", "mean_diff", "t", "p_ttest", "p_wilcoxon")
    out = {k: row[k] for k in keep}
    out["n_pairs"], out["n_unpaired"] = int(out["n_pairs"]), int(out["n_unpaired"])
    out["p_holm"] = math.nan
    return out


OUTCOMES = ("agrees", "disagrees", "not significant", "undefined", "too few pairs")


def _outcome(check: Check, rule: dict) -> str:
    r = check.result
    if r["n_pairs"] < rule["min_pairs"]:
        return "too few pairs"
    if not math.isfinite(r["p_ttest"]):
        return "undefined"
    if r["p_holm"] >= rule["alpha"]:
        return "not significant"
    expected = -1 if check.lower_is_better else 1
    return "agrees" if np.sign(r["mean_diff"]) == expected else "disagrees"


def _verdict(scope: Scope, rule: dict) -> tuple[str, str]:
    outcomes = [c.result["outcome"] for c in scope.checks]
    n = len(outcomes)
    if "disagrees" in outcomes:
        against = [c for c in scope.checks if c.result["outcome"] == "disagrees"]
        names = ", ".join(f"{_relation(c, reverse=True)} (p_holm {c.result['p_holm']:.2g})"
                          for c in against)  # fmt: skip
        return "contradicted", f"significant against the paper: {names}"
    if outcomes and all(o == "agrees" for o in outcomes):
        worst = max(c.result["p_holm"] for c in scope.checks)
        what = "the comparison is" if n == 1 else f"all {n} comparisons are"
        return "supported", f"{what} significant in the paper's direction (p_holm <= {worst:.2g})"
    counts = {o: outcomes.count(o) for o in OUTCOMES if o in outcomes}
    if counts == {"too few pairs": n}:
        most = max(c.result["n_pairs"] for c in scope.checks)
        return "inconclusive", (f"too few paired runs for the test ({most} < {rule['min_pairs']}; "
                                "more folds or seeds)")  # fmt: skip
    if counts == {"not significant": n}:
        ps = [c.result["p_holm"] for c in scope.checks]
        what = f"p_holm = {ps[0]:.2g}" if n == 1 else f"smallest p_holm = {min(ps):.2g}"
        return "inconclusive", f"difference not significant ({what})"
    if counts == {"undefined": n}:
        if all(c.result["mean_diff"] == 0 for c in scope.checks):
            return "inconclusive", "no difference: the arms tie on every pair"
        return "inconclusive", "the t-test is undefined: every paired difference is the same"
    parts = [f"{k} of {n} {o}" if o != "agrees" else f"{k} of {n} significant in the paper's direction"
             for o, k in counts.items()]  # fmt: skip
    return "inconclusive", "; ".join(parts)


def _relation(check: Check, reverse: bool = False) -> str:
    better = ">" if not check.lower_is_better else "<"
    worse = "<" if better == ">" else ">"
    return f"{check.a.label} {worse if reverse else better} {check.b.label}"


def _fmt(value: float, check: Check) -> str:
    if not math.isfinite(value):
        return "-"
    value *= check.scale
    return f"{value:.3g}{check.unit}" if check.scale == 1.0 else f"{value:.1f}"


def _measured(check: Check) -> str:
    r = check.result
    if r["n_pairs"] == 0:
        return f"{check.a.label} vs {check.b.label}: no runs in common"
    diff = r["mean_diff"] * check.scale
    diff = f"{diff:+.3g}{check.unit}" if check.scale == 1.0 else f"{diff:+.1f}"
    text = (f"{check.a.label} {_fmt(r['mean_a'], check)} vs {check.b.label} "
            f"{_fmt(r['mean_b'], check)} ({diff}")  # fmt: skip
    if check.lower_is_better and r["mean_b"]:
        text += f", x{r['mean_a'] / r['mean_b']:.2f}"
    text += f"; {r['n_pairs']} pair{'s' if r['n_pairs'] != 1 else ''}"
    if math.isfinite(r["p_holm"]):
        text += f"; p_holm {r['p_holm']:.2g}"
    return text + ")"


def _row(scope: Scope, rule: dict) -> dict:
    claim = scope.claim
    if scope.verdict is None:
        verdict, reason = _verdict(scope, rule)
        measured = "; ".join(_measured(c) for c in scope.checks)
        quantity = scope.checks[0].quantity
        relations = ", ".join(_relation(c) for c in scope.checks)
        test = f"{quantity}: {relations}; paired t-test over (fold, seed) pairs"
    else:
        verdict, reason, measured, test = scope.verdict, scope.reason, scope.measured, scope.test
    return {
        "claim": claim["id"],
        "scope": scope.scope,
        "data": scope.data,
        "statement": claim["claim"],
        "source": claim["source"],
        "measured": measured or "-",
        "test": test or "-",
        "verdict": verdict,
        "reason": reason,
    }


def _merge(rows: list[dict]) -> list[dict]:
    """One row for consecutive rows of a claim that measured nothing and say the same."""
    out: list[dict] = []
    same = ("claim", "data", "verdict", "reason")
    for row in rows:
        prev = out[-1] if out else None
        if (
            prev
            and row["measured"] == prev["measured"] == "-"
            and all(prev[k] == row[k] for k in same)
        ):
            prev["scope"] = f"{prev['scope']}; {row['scope']}"
        else:
            out.append(dict(row))
    return out


def _check_row(scope: Scope, check: Check) -> dict:
    r = check.result
    return {
        "claim": scope.claim["id"],
        "scope": scope.scope,
        "a": check.a.label,
        "b": check.b.label,
        "quantity": check.quantity,
        "lower_is_better": check.lower_is_better,
        **{k: r[k] for k in ("n_pairs", "n_unpaired")},
        **{k: r[k] * check.scale for k in ("mean_a", "mean_b", "mean_diff")},
        **{k: r[k] for k in ("t", "p_ttest", "p_holm", "p_wilcoxon", "outcome")},
    }


# --- rendering ----------------------------------------------------------------------------------
def rule_text(rule: dict, n_tested: int | None = None) -> str:
    """The decision rule in one paragraph (the report and the HTML front page print it)."""
    family = ""
    if n_tested is not None:
        family = f" over the {n_tested} comparison{'s' if n_tested != 1 else ''} tested in this run"
    return (
        "Each comparison sets two arms of this run against each other in the direction the paper "
        "states; a pair is the two runs of the same fold and seed, and the test is the two-sided "
        f"paired t-test, its p-value Holm-corrected{family}. A comparison counts when it has at "
        f"least {rule['min_pairs']} pairs and a corrected p below {rule['alpha']:g}. **Supported**: "
        "every comparison counts in the paper's direction; **contradicted**: one counts against "
        "it; **inconclusive**: otherwise, with the reason. On synthetic stand-ins a verdict says "
        "whether the claim holds on the stand-ins, not on the paper's data. docs/report.md has the "
        "details."
    )


def _n_tested(v: Verdicts) -> int:
    return int(v.checks["p_holm"].notna().sum()) if not v.checks.empty else 0


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(v: Verdicts, heading: str) -> str:
    counts = v.counts()
    lines = [
        f"{heading}\n",
        "Does the paper hold on this run? One row per claim of `baselines/claims.yaml` and per "
        "table (or cell) of this config it was tested on: "
        + ", ".join(f"{k} {counts[k]}" for k in VERDICTS)
        + ".\n",
        rule_text(v.rule, _n_tested(v)) + "\n",
        "| Claim | Paper | Data | This run measured | Test | Verdict | Reason |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, r in v.rows.iterrows():
        claim = f"**{r['claim']}** ({r['scope']}): {r['statement']}" if r["scope"] != "-" else (
            f"**{r['claim']}**: {r['statement']}")  # fmt: skip
        cells = [claim, r["source"], r["data"], r["measured"], r["test"], f"**{r['verdict']}**",
                 r["reason"]]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    sub = "#" * (heading.count("#") + 1)
    lines += [f"\n{sub} Claims and where the paper makes them\n"]
    for claim in v.claims:
        quotes = " ".join(f'"{q}"' for q in claim["quote"])
        lines.append(f"- **{claim['id']}** ({claim['source']}): {quotes}")
    lines += [f"\n{sub} Comparisons behind the verdicts\n"]
    if v.checks.empty:
        lines.append("No comparison: no claim was tested on a pair of this run's methods.")
    else:
        lines.append(
            "Means over the pairs used (F1 in percent); differences a - b; `p_ttest` the paired "
            "t-test, `p_holm` its Holm-corrected value over the run (empty: not tested), "
            "`p_wilcoxon` the Wilcoxon signed-rank test for reference. Also in "
            "`results/verdicts.checks.csv`.\n"
        )
        shown = v.checks.drop(columns=["lower_is_better"])
        header = list(shown.columns)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join("---" for _ in header) + " |")
        for _, r in shown.iterrows():
            cells = [_num(r[c]) if isinstance(r[c], float) else _cell(r[c]) for c in header]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.3g}"


# The fragment is the front page of Snakemake's report, whose layout centres a short description
# beside the rule graph: let the table take the width and start at the top (the rule graph below).
HTML_STYLE = """
div.items-center.justify-center.h-screen.overflow-auto {
  align-items: flex-start !important; justify-content: flex-start !important; }
div.grow.flex.gap-3.p-3.items-start { flex-wrap: wrap; }
div.prose.max-w-lg { max-width: none !important; }
table.aunce-verdicts { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
table.aunce-verdicts th, table.aunce-verdicts td {
  border: 1px solid #ccc; padding: 0.25rem 0.4rem; vertical-align: top; text-align: left; }
table.aunce-verdicts td.verdict { font-weight: bold; white-space: nowrap; }
td.verdict-supported { background: #dcf5dc; }
td.verdict-contradicted { background: #f8d7d7; }
td.verdict-inconclusive { background: #eeeeee; }
"""


def _html(v: Verdicts) -> str:
    """The verdict table as an HTML fragment (the Snakemake report's front page includes it)."""
    esc = html.escape
    counts = v.counts()
    rows = []
    for _, r in v.rows.iterrows():
        scope = "" if r["scope"] == "-" else f" <em>({esc(r['scope'])})</em>"
        rows.append(
            f'<tr data-claim="{esc(r["claim"])}"><td><strong>{esc(r["claim"])}</strong>{scope}'
            f"<br>{esc(r['statement'])}</td><td>{esc(r['source'])}</td><td>{esc(r['data'])}</td>"
            f"<td>{esc(r['measured'])}</td><td>{esc(r['test'])}</td>"
            f'<td class="verdict verdict-{esc(r["verdict"])}">{esc(r["verdict"])}</td>'
            f"<td>{esc(r['reason'])}</td></tr>"
        )
    quotes = "".join(
        f"<li><strong>{esc(c['id'])}</strong> ({esc(c['source'])}): "
        + " ".join(f"&ldquo;{esc(q)}&rdquo;" for q in c["quote"])
        + "</li>"
        for c in v.claims
    )
    rule = esc(rule_text(v.rule, _n_tested(v))).replace("**", "")
    summary = ", ".join(f"{k} {counts[k]}" for k in VERDICTS)
    return (
        f"<style>{HTML_STYLE}</style>\n"
        f'<div class="aunce-verdicts" id="aunce-verdicts">\n'
        f"<h2>Verdicts: does the paper hold on this run?</h2>\n"
        f"<p>{summary}. {rule}</p>\n"
        '<table class="aunce-verdicts"><thead><tr><th>Claim</th><th>Paper</th><th>Data</th>'
        "<th>This run measured</th><th>Test</th><th>Verdict</th><th>Reason</th></tr></thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody></table>\n"
        f"<details><summary>Claims and where the paper makes them</summary><ul>{quotes}</ul>"
        "</details>\n</div>\n"
    )


def write_verdicts(
    verdicts: Verdicts,
    md: str | os.PathLike | None = None,
    csv: str | os.PathLike | None = None,
    checks: str | os.PathLike | None = None,
    html_path: str | os.PathLike | None = None,
) -> None:
    """Write the verdicts atomically: Markdown, CSV of the verdict rows, CSV of the comparisons,
    and the HTML fragment; each only when its path is given."""
    if md:
        write_text(md, verdicts.markdown())
    if csv:
        write_text(csv, verdicts.rows.to_csv(index=False))
    if checks:
        write_text(checks, verdicts.checks.to_csv(index=False, float_format="%.6g"))
    if html_path:
        write_text(html_path, verdicts.html())
