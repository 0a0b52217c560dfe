"""Does the paper hold here? Each claim of baselines/claims.yaml judged on this run's own runs.

docs/report.md, "Verdicts", states the decision rule this module implements:

- A *comparison* sets two arms of the run against each other in the direction the paper states
  (arm a better than arm b: a higher F1, or for Table 9 a shorter epoch). Its unit is the trained
  model: the statistic is the difference of the arms' means over the same runs (a pair: the runs of
  the same fold and seed), and its variance comes from the spread of the models' fold and seed means
  and from the test subjects' sampling (aunce.stats.estimate); the test is two-sided, Student's t
  (aunce.stats.t_test). A comparison of margins or of within- and cross-dataset F1 compares
  independent runs (aunce.stats.difference).
- The p-values of the distinct comparisons of the run are Holm-corrected together
  (aunce.stats.holm): one family, in which a comparison that several claims make (Table 2's AUNCE
  against WCE is also a Table 8 cell) counts once.
- A comparison *agrees* with the paper when its corrected p-value is below ``alpha`` and the mean
  difference has the paper's sign, *disagrees* when it is below ``alpha`` with the other sign, and
  is otherwise not significant, undefined (no spread) or untestable (one model per arm, or no
  per-subject counts where the test subjects are shared).
- A verdict (one claim on one table, or on one cell or direction of it, and one reading of AUNCE)
  is **contradicted** when a comparison disagrees, **supported** when every comparison agrees, and
  **inconclusive** otherwise, with the reason. A claim no table of the config tests is inconclusive,
  "not run in this config".
- A claim that compares AUNCE with something else gets one verdict per reading of AUNCE the table
  holds (the paper as written, the authors' released code; aunce.presets.effective_aunce).
- Three claims are judged otherwise: the paper's own 2-std criterion against the best published
  baseline (``published``; real data only), Fig. 5's separability (one run per model: no test),
  and the A/A control (two replicates of one method: any significant difference is a false
  positive of the harness).

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
READINGS = {"paper": "paper", "released": "released code"}  # effective_aunce(...)["variant"]
NOT_RUN = "not run in this config"
ROW_COLUMNS = ["claim", "scope", "reading", "data", "statement", "source", "measured", "test",
               "verdict", "reason"]  # fmt: skip
CHECK_COLUMNS = ["claim", "scope", "reading", "a", "b", "quantity", "design", "lower_is_better",
                 "n_runs", "n_unpaired", "n_folds", "n_seeds", "n_subjects", "mean_a", "mean_b",
                 "mean_diff", "var_models", "var_subjects", "se", "df", "t", "p", "p_holm",
                 "outcome"]  # fmt: skip


# --- the claims file ----------------------------------------------------------------------------
def load_claims(path: str | os.PathLike = CLAIMS_PATH) -> dict:
    """Read and check baselines/claims.yaml: ``{"rule": {"alpha"}, "claims": [...]}``.

    Raises AunceError naming the file, the claim and the key of the first problem."""
    data = load_yaml(path) or {}
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise AunceError(f"{where}: expected a mapping with a list 'claims'")
    rule = data.get("rule") or {}
    alpha = rule.get("alpha")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0 < alpha < 1:
        raise AunceError(f"{where}: rule.alpha must be a number in (0, 1), got {alpha!r}")
    unknown = sorted(set(rule) - {"alpha"})
    if unknown:
        raise AunceError(f"{where}: rule: unknown key(s) {', '.join(unknown)} (known: alpha)")
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
        if claim["test"] == "order":
            for j, pair in enumerate(claim["pairs"]):
                if not isinstance(pair, dict) or not pair.get("better") or not pair.get("worse"):
                    raise AunceError(f"{label}: pairs[{j}] needs 'better' and 'worse'")
                bad = [m for m in pair.get("metrics", []) if m not in ORDER_METRICS]
                if bad:
                    raise AunceError(f"{label}: pairs[{j}]: unknown metric(s) {bad} "
                                     f"(known: {', '.join(ORDER_METRICS)})")  # fmt: skip
        if isinstance(claim["quote"], str):
            claim["quote"] = [claim["quote"]]
    return {"rule": {"alpha": float(alpha)}, "claims": data["claims"]}


# --- what a judgement is made of ----------------------------------------------------------------
@dataclass
class Arm:
    """One side of a comparison: a label and ``terms``, ``[(coefficient, aunce.stats.Runs)]``: a
    method's runs (one term), or a difference of two (a margin, a drop under noise). ``key``
    identifies the files and values behind it, so that Holm counts a comparison once."""

    label: str
    terms: list
    key: tuple


@dataclass
class Check:
    """One directed comparison: the paper says ``a`` beats ``b`` on ``quantity``. ``paired``: the
    arms are runs of the same folds and seeds; otherwise they are independent runs (different
    datasets, or a within- against a cross-dataset model) and their variances add."""

    a: Arm
    b: Arm
    quantity: str  # what the values are, e.g. "F1-macro (%)"
    scale: float = 100.0  # display factor (F1 is stored as a fraction)
    lower_is_better: bool = False
    unit: str = ""
    paired: bool = True
    either_way: bool = False  # the A/A control: a difference in any direction is the finding
    note: str = ""  # what was left out (Table 9: pairs run on different devices)
    result: dict = field(default_factory=dict)

    def key(self) -> tuple:
        return (frozenset((self.a.key, self.b.key)), self.quantity, self.paired)


@dataclass
class Scope:
    """One verdict row: a claim on one table (or one cell, dataset or direction of it), for one
    reading of AUNCE (``reading``: "paper", "released", or "-" where the claim sets none)."""

    claim: dict
    scope: str
    data: str  # "synthetic stand-in", "real" or "mixed"
    checks: list[Check] = field(default_factory=list)
    reading: str = "-"
    verdict: str | None = None  # set directly by the tests without a comparison
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


def _loss(plan: Plan, method: str) -> str:
    return plan.methods[method]["loss"]


def reading(plan: Plan, method: str) -> str | None:
    """The reading of AUNCE a method is ("paper" or "released"), None for another loss."""
    if _loss(plan, method) != "aunce":
        return None
    return effective_aunce(plan.methods[method])["variant"]


def _by_reading(plan: Plan, methods: list) -> dict[str, list]:
    """AUNCE methods (``(name, ...)`` tuples) grouped by reading, the paper's first."""
    out: dict[str, list] = {}
    for m in methods:
        r = reading(plan, m[0])
        if r is not None:
            out.setdefault(r, []).append(m)
    return {r: out[r] for r in sorted(out, key=lambda r: (r != "paper", r))}


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


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(claim: dict, table: str, spec: dict) -> bool:
    want = claim["tables"]
    if spec["kind"] not in _as_list(want["kind"]):
        return False
    return "paper_table" not in want or paper_table(table, spec) in _as_list(want["paper_table"])


# --- arms ---------------------------------------------------------------------------------------
@dataclass
class _Context:
    plan: Plan
    read: _Reader


def _arm(ctx: _Context, label: str, files: list[str], method: str | None = None,
         value: str = "f1_macro", aus: list[str] | None = None) -> Arm:  # fmt: skip
    """A method's runs from its metrics files (of ``method`` only, when the files hold several)."""
    from aunce.stats import runs_from_records

    found = [(p, ctx.read(p)) for p in files]
    if method is not None:
        found = [(p, r) for p, r in found if r["run"]["method"] == method]
    try:
        runs = runs_from_records([r for _, r in found], value, aus)
    except ValueError as err:
        raise AunceError(f"verdicts: {label} has {err}") from None
    return Arm(label, [(1.0, runs)], (tuple(sorted(p for p, _ in found)), value, tuple(aus or ())))


def _minus(label: str, a: Arm, b: Arm) -> Arm:
    """The arm ``a - b`` (paired by fold and seed): a margin, or a drop under noise."""
    return Arm(label, a.terms + [(-c, r) for c, r in b.terms], ("minus", a.key, b.key))


def _method_files(spec: dict, method: str) -> list[str]:
    """The metrics files of one method of an au_f1, ablation or probs table (its path names it)."""
    return [p for p in spec["inputs"]["metrics"] if f"/{method}/fold-" in p]


def _scope_name(plan: Plan, table: str, *parts: str) -> str:
    entry = plan.config["tables"][table]
    where = [" -> ".join(d for d in (entry.get("dataset"), entry.get("test_dataset")) if d)]
    where = [w for w in where if w] + ([entry["encoder"]] if entry.get("encoder") else [])
    return f"{table}: " + ", ".join(list(parts) or where)


def _not_run(claim: dict, scope: str, data: str, why: str, reading: str = "-") -> Scope:
    return Scope(claim, scope, data, reading=reading, verdict="inconclusive",
                 reason=f"{NOT_RUN}: {why}")  # fmt: skip


def _f1_quantity(aus: list[str] | None) -> str:
    return f"mean F1 of {', '.join(aus)} (%)" if aus else "F1-macro (%)"


# --- the tests: a claim on one table -> verdict rows --------------------------------------------
def _losses(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Every AUNCE method against every WCE or WFL method of the table, per cell or direction and
    per reading. An au_f1 table on real data without a baseline (config/paper.yaml's Tables 4-6)
    is judged against the best published method instead (:func:`_against_published`)."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    groups: list[tuple[str, list]] = []  # [(scope, [(method, label, arm)])]
    aus = spec.get("aus") if spec["kind"] == "cross" else None
    if spec["kind"] == "au_f1":
        members = [(m, lab, _arm(ctx, lab, _method_files(spec, m), m)) for m, lab in spec["methods"]]
        groups.append((_scope_name(plan, table), members))
    elif spec["kind"] == "grid":
        cells: dict[tuple[str, str], list] = {}
        for c in spec["cells"]:
            label = f"{c['encoder_label']} + {c['loss_label']}"
            cells.setdefault((c["dataset"], c["encoder"]), []).append(
                (c["method"], label, _arm(ctx, label, c["metrics"]))
            )
        groups += [(_scope_name(plan, table, ds, enc), members)
                   for (ds, enc), members in cells.items()]  # fmt: skip
    else:  # cross: per direction, F1 averaged over the shared AUs as Table 7 prints it
        for d in spec["directions"]:
            members = [(m, lab, _arm(ctx, lab, d["metrics"][m], aus=aus)) for m, lab in spec["methods"]]
            groups.append((_scope_name(plan, table, d["label"]), members))
    quantity = _f1_quantity(aus) if aus else "F1-macro (%)"
    if aus:
        quantity = "F1-macro over the shared AUs (%)"
    out = []
    for scope, members in groups:
        readings = _by_reading(plan, members)
        theirs = [m for m in members if _loss(plan, m[0]) in BASELINE_LOSSES]
        if not readings:
            out.append(_not_run(claim, scope, data, "the table trains no AUNCE here"))
            continue
        if not theirs:
            if spec["kind"] == "au_f1" and data == "real" and spec.get("published"):
                out += _against_published(ctx, claim, table, spec, "the best published method")
            else:
                for r in readings:
                    out.append(_not_run(claim, scope, data,
                                        "the table trains no WCE or WFL baseline here", r))  # fmt: skip
            continue
        for r, ours in readings.items():
            checks = [Check(arm_a, arm_b, quantity) for _, _, arm_a in ours for _, _, arm_b in theirs]
            out.append(Scope(claim, scope, data, checks, reading=r))
    return out


def _encoder_best(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Per dataset and reading: the claim's encoder with AUNCE against every other cell (the
    other reading's AUNCE cells, which the paper's table does not have, left out)."""
    plan, data, out = ctx.plan, data_kind(ctx.plan, table), []
    for ds in spec["datasets"]:
        cells = [c for c in spec["cells"] if c["dataset"] == ds]
        arms = {(c["encoder"], c["method"]): _arm(ctx, f"{c['encoder_label']} + {c['loss_label']}",
                                                  c["metrics"]) for c in cells}  # fmt: skip
        scope = _scope_name(plan, table, ds)
        readings = {reading(plan, m) for _, m in arms} - {None}
        if not readings:
            out.append(_not_run(claim, scope, data, f"the grid has no AUNCE cell on {ds}"))
            continue
        for r in sorted(readings, key=lambda r: (r != "paper", r)):
            best = [k for k in arms if k[0] == claim["encoder"] and reading(plan, k[1]) == r]
            others = [k for k in arms if k not in best and reading(plan, k[1]) in (None, r)]
            if not best or not others:
                why = f"no {claim['encoder']} + AUNCE cell" if not best else "a single cell"
                out.append(_not_run(claim, scope, data, f"the grid has {why} on {ds}", r))
                continue
            checks = [Check(arms[best[0]], arms[k], "F1-macro (%)") for k in others]
            out.append(Scope(claim, scope, data, checks, reading=r))
    return out


def _timing(ctx: _Context, label: str, paths: dict[tuple[str, int], str]) -> tuple[Arm, dict]:
    """Seconds per pretraining epoch of a method's runs, and the device each ran on."""
    from aunce.stats import Runs

    values, devices = {}, {}
    for key, path in paths.items():
        rec = ctx.read(path)
        values[key] = float(rec["epoch_seconds"])
        devices[key] = str(rec.get("device_name") or "not recorded")
    folds = {key: key[0] for key in values}
    arm = Arm(label, [(1.0, Runs(values, folds, folds, by_subject=False))],
              (tuple(sorted(paths.values())), "epoch_seconds", ()))  # fmt: skip
    return arm, devices


def _same_device(a: Arm, b: Arm, dev_a: dict, dev_b: dict) -> tuple[Arm, Arm, str]:
    """The two arms restricted to the runs whose pair ran on the same device (Table 9 compares
    times, which only compare on one device), and a note on what was left out."""
    from aunce.stats import Runs

    ra, rb = a.terms[0][1], b.terms[0][1]
    common = set(ra.values) & set(rb.values)
    same = {k for k in common if dev_a[k] == dev_b[k]}
    if same == common:
        return a, b, ""

    def keep(arm: Arm, runs) -> Arm:
        sub = {k: v for k, v in runs.values.items() if k in same}
        return Arm(arm.label, [(1.0, Runs(sub, runs.test_sets, runs.train_folds,
                                          by_subject=False))], (*arm.key, "same device"))  # fmt: skip

    pairs = sorted({(dev_a[k], dev_b[k]) for k in common - same})
    note = (f"{len(common - same)} of {len(common)} pairs ran on different devices ("
            + "; ".join(f"{x} vs {y}" for x, y in pairs) + ") and are left out")
    return keep(a, ra), keep(b, rb), note


def _cost(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Per dataset and reading: seconds per pretraining epoch, AUNCE against WCE and WFL (lower
    is better), pairing only the runs of one fold and seed that ran on the same device."""
    plan, data, out = ctx.plan, data_kind(ctx.plan, table), []
    encoder = plan.config["tables"][table]["encoder"]
    for ds in dict.fromkeys(r["dataset"] for r in spec["rows"]):
        arms, devices = {}, {}
        for r in (r for r in spec["rows"] if r["dataset"] == ds):
            wanted = set(r["timing"])
            paths = {}
            for fold, seed in sorted(plan.runs.get((ds, encoder, r["method"]), ())):
                path = stage_file("pretrain", ds, encoder, r["method"], fold, seed, "timing.json")
                if path in wanted:
                    paths[(str(fold), int(seed))] = path
            arms[r["method"]], devices[r["method"]] = _timing(ctx, r["label"], paths)
        readings = _by_reading(plan, [(m,) for m in arms])
        theirs = [m for m in arms if _loss(plan, m) in BASELINE_LOSSES]
        scope = _scope_name(plan, table, ds, encoder)
        if not readings or not theirs:
            out.append(_not_run(claim, scope, data, "the table times no AUNCE and WCE/WFL pair"))
            continue
        for rd, ours in readings.items():
            checks = []
            for (a,) in ours:
                for b in theirs:
                    arm_a, arm_b, note = _same_device(arms[a], arms[b], devices[a], devices[b])
                    checks.append(Check(arm_a, arm_b, "seconds per epoch", 1.0,
                                        lower_is_better=True, unit=" s", note=note))  # fmt: skip
            out.append(Scope(claim, scope, data, checks, reading=rd))
    return out


ORDER_METRICS = {"f1_macro": "F1-macro (%)", "f1_micro": "F1-micro (%)", "accuracy": "accuracy (%)"}


def _order(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Each pair of Table 10's models the claim names, ``better`` against ``worse``, on each of the
    pair's metrics (default F1-macro), or with ``aus`` on the mean F1 of those AUs."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    aus = claim.get("aus")
    labels = {lab: m for m, lab in spec["methods"]}
    scope = _scope_name(plan, table)
    base_reading = reading(plan, spec["methods"][0][0]) or "-"
    checks, missing = [], []
    arms: dict[tuple[str, str], Arm] = {}

    def arm(model: str, metric: str) -> Arm:
        if (model, metric) not in arms:
            files = _method_files(spec, labels[model])
            arms[(model, metric)] = _arm(ctx, model, files, labels[model], metric, aus)
        return arms[(model, metric)]

    for pair in claim["pairs"]:
        hi, lo = pair["better"], pair["worse"]
        if hi not in labels or lo not in labels:
            missing += [m for m in (hi, lo) if m not in labels and m not in missing]
            continue
        for metric in ([None] if aus else pair.get("metrics") or ["f1_macro"]):
            quantity = _f1_quantity(aus) if aus else ORDER_METRICS[metric]
            checks.append(Check(arm(hi, metric or "f1_macro"), arm(lo, metric or "f1_macro"),
                                quantity))  # fmt: skip
    if not checks:
        why = f"the table has none of the pairs {_pairs_text(claim)} (missing {', '.join(missing)})"
        return [_not_run(claim, scope, data, why, base_reading)]
    return [Scope(claim, scope, data, checks, reading=base_reading)]


def _pairs_text(claim: dict) -> str:
    return ", ".join(f"{p['better']} > {p['worse']}" for p in claim["pairs"])


def _best(
    ctx: _Context, claim: dict, table: str, spec: dict, target: str, setting: Callable[[str], str]
) -> list[Scope]:
    """The row whose setting (as ``setting`` names it) is ``target`` against every other row."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    if spec["kind"] == "beta":
        files = {p["method"]: p["metrics"] for p in spec["points"]}  # a shared point counts once
    else:
        files = {m: _method_files(spec, m) for m, _ in spec["methods"]}
    arms = {m: _arm(ctx, setting(m), paths, m) for m, paths in files.items()}
    best = [m for m in arms if setting(m) == target]
    scope = _scope_name(plan, table)
    base_reading = reading(plan, next(iter(files))) or "-"
    if not best or len(arms) < 2:
        why = f"no row {target}" if not best else "a single row"
        return [_not_run(claim, scope, data, f"the table has {why}", base_reading)]
    checks = [Check(arms[best[0]], arm, "F1-macro (%)") for m, arm in arms.items() if m != best[0]]
    return [Scope(claim, scope, data, checks, reading=base_reading)]


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
    """At each noise rate r > 0 and per reading: AUNCE's F1-macro change from rate 0 against a
    baseline's (a difference of differences, paired by fold and seed)."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    rates = {float(r): files for r, files in spec["inputs"]["metrics"].items()}
    scope = _scope_name(plan, table)
    if 0.0 not in rates or len(rates) < 2:
        return [_not_run(claim, scope, data, "the table needs rate 0 and a noisy rate")]
    readings = _by_reading(plan, spec["methods"])
    theirs = [(m, lab) for m, lab in spec["methods"] if _loss(plan, m) in BASELINE_LOSSES]
    if not readings or not theirs:
        return [_not_run(claim, scope, data, "the table trains no AUNCE and WCE/WFL pair")]

    def drop(method: str, label: str, rate: float) -> Arm:
        noisy = _arm(ctx, label, rates[rate], method)
        clean = _arm(ctx, label, rates[0.0], method)
        return _minus(label, noisy, clean)

    out = []
    for rate in sorted(r for r in rates if r > 0):
        for rd, ours in readings.items():
            checks = [
                Check(drop(a, la, rate), drop(b, lb, rate),
                      f"F1-macro change, 0% -> {100 * rate:g}% noise (points)")
                for a, la in ours
                for b, lb in theirs
            ]  # fmt: skip
            out.append(Scope(claim, _scope_name(plan, table, f"{100 * rate:g}% noise"), data,
                             checks, reading=rd))  # fmt: skip
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
            reason=f"a single run per model (one fold, seed {spec['seed']}): no test over "
            "folds and seeds",
        )
    ]  # fmt: skip


CRITERION = (
    "mean - B > 2 std over seeds, B the highest average of the table's published baselines "
    "(contradicted: B - mean > 2 std)"
)


def _published(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """The paper's criterion against the published baselines of Tables 2-7 (per direction of Table
    7, per reading): :func:`_against_published`."""
    return _against_published(ctx, claim, table, spec, "the best published baseline")


def _against_published(ctx: _Context, claim: dict, table: str, spec: dict,
                       what: str) -> list[Scope]:  # fmt: skip
    """AUNCE's mean F1-macro (percent; Table 7: over the shared AUs) and its sample std over seeds
    against B, the highest published average of the table's baselines (baselines/published.csv,
    the paper's own rows left out): **supported** when ``mean - B > 2 std``, **contradicted** when
    ``B - mean > 2 std``, **inconclusive** in between, with one seed (no std) and on synthetic
    stand-ins (the published numbers were measured on the real datasets)."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    where = spec.get("published")
    if not where:
        return []
    from aunce.baselines import load_published

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
                test=f"the paper's criterion against {what}",
                reason="synthetic stand-in: the published averages were measured on the real "
                "dataset, so this run is compared within itself (the other verdicts), not with them",
            ))  # fmt: skip
            continue
        best = pubs.loc[pubs["f1"].idxmax()]
        for rd, ours in _by_reading(plan, spec["methods"]).items():
            for method, mlabel in ours:
                paths = files[method] if files is not None else _method_files(spec, method)
                records = [ctx.read(p) for p in paths]
                mean, std, n_seeds = _mean_std(records, spec.get("aus"))
                gap = mean - float(best["f1"])
                measured = (f"{mlabel} {mean:.1f} ± {std:.1f} over {n_seeds} seed(s); best "
                            f"published baseline {best['method']} ({best['source']}) "
                            f"{float(best['f1']):.1f}: {gap:+.1f}")  # fmt: skip
                if n_seeds < 2 or not math.isfinite(std):
                    verdict, reason = "inconclusive", "one seed: no standard deviation"
                elif gap > 2 * std:
                    verdict, reason = "supported", f"{gap:+.1f} > 2 std ({2 * std:.1f})"
                elif -gap > 2 * std:
                    verdict, reason = "contradicted", (f"{best['method']} is {-gap:.1f} above, "
                                                       f"more than 2 std ({2 * std:.1f})")  # fmt: skip
                else:
                    verdict, reason = "inconclusive", (f"{gap:+.1f} is within 2 std "
                                                       f"({2 * std:.1f}) of {best['method']}")  # fmt: skip
                out.append(Scope(claim, f"{scope} ({mlabel})", data, reading=rd, verdict=verdict,
                                 reason=reason, measured=measured, test=CRITERION))  # fmt: skip
    return out


def _mean_std(records: list[dict], aus: list[str] | None) -> tuple[float, float, int]:
    """Mean over folds per seed, then mean and sample std over seeds, in percent."""
    from aunce.stats import aggregate, record_value

    frame = pd.DataFrame(
        [{"dataset": "d", "encoder": "e", "method": "m", "fold": r["run"]["fold"],
          "seed": r["run"]["seed"], "value": 100 * record_value(r, "f1_macro", aus)}
         for r in records]
    )  # fmt: skip
    agg = aggregate(frame, ["value"]).iloc[0]
    return float(agg["value_mean"]), float(agg["value_std"]), int(agg["n_seeds"])


def _au_tables(plan: Plan, paper: str) -> list[tuple[str, dict]]:
    return [(t, s) for t, s in plan.tables.items()
            if s["kind"] == "au_f1" and paper_table(t, s) == paper]  # fmt: skip


def _margin(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """The margin of AUNCE over a baseline (AUNCE - WCE, AUNCE - WFL: paired by fold and seed in
    its table) is larger on the ``larger`` tables than on the ``smaller`` ones: each pair of tables
    compared as independent experiments, per reading and baseline loss. Judged once, on the first
    matching table of the plan."""
    plan = ctx.plan
    first = next(t for t, s in plan.tables.items() if _matches(claim, t, s))
    if table != first:
        return []
    margins: dict[str, dict] = {}  # paper table -> {(reading, loss): (arm, table id)}
    for paper in claim["larger"] + claim["smaller"]:
        for t, s in _au_tables(plan, paper)[:1]:
            arms = {m: _arm(ctx, lab, _method_files(s, m), m) for m, lab in s["methods"]}
            found = {}
            for m, lab in s["methods"]:
                rd = reading(plan, m)
                if rd is None:
                    continue
                for b, blab in s["methods"]:
                    loss = _loss(plan, b)
                    if loss in BASELINE_LOSSES and (rd, loss) not in found:
                        arm = _minus(f"{paper} {lab} - {blab}", arms[m], arms[b])
                        found[(rd, loss)] = (arm, t)
            margins[paper] = found
    scope = "; ".join(f"{p} > {q}" for p in claim["larger"] for q in claim["smaller"])
    tables = sorted({t for f in margins.values() for _, t in f.values()})
    data = _data_of(plan, tables)
    keys = sorted({k for f in margins.values() for k in f}, key=lambda k: (k[0] != "paper", k))
    out = []
    for rd in dict.fromkeys(k[0] for k in keys):
        checks = []
        for p in claim["larger"]:
            for q in claim["smaller"]:
                for key in keys:
                    if key[0] == rd and key in margins.get(p, {}) and key in margins.get(q, {}):
                        checks.append(Check(margins[p][key][0], margins[q][key][0],
                                            "margin of F1-macro (points)", paired=False))  # fmt: skip
        if checks:
            out.append(Scope(claim, scope, data, checks, reading=rd))
    if not out:
        have = ", ".join(sorted(p for p, f in margins.items() if f)) or "none"
        out.append(_not_run(claim, scope, data, "no pair of the tables trains AUNCE and a WCE or "
                            f"WFL baseline (tables with both: {have})"))  # fmt: skip
    return out


def _data_of(plan: Plan, tables: list[str]) -> str:
    kinds = {data_kind(plan, t) for t in tables}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "-")


def _within_table(plan: Plan, dataset: str, encoder: str) -> tuple[str, dict] | None:
    """The within-dataset au_f1 table of a dataset and encoder (not a cross-dataset test)."""
    for t, s in plan.tables.items():
        entry = plan.config["tables"][t]
        if (s["kind"] == "au_f1" and entry.get("dataset") == dataset
                and not entry.get("test_dataset") and entry.get("encoder") == encoder):  # fmt: skip
            return t, s
    return None


def _cross_drop(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """Per direction and reading: AUNCE trained and tested on the target dataset (its within-dataset
    table) beats AUNCE trained on the source and tested on the target, on the shared AUs
    (independent models)."""
    plan, out = ctx.plan, []
    entry = plan.config["tables"][table]
    aus = spec["aus"]
    for d, (src, tgt) in zip(spec["directions"], entry["pairs"], strict=True):
        scope = _scope_name(plan, table, d["label"])
        within = _within_table(plan, tgt, entry["encoder"])
        data = data_kind(plan, table)
        if within is None:
            out.append(_not_run(claim, scope, data,
                                f"no within-dataset table of {tgt} with {entry['encoder']}"))  # fmt: skip
            continue
        wt, ws = within
        inside = _by_reading(plan, ws["methods"])
        across = _by_reading(plan, spec["methods"])
        data = _data_of(plan, [table, wt])
        for rd in [r for r in across if r in inside]:
            (m_in, lab_in), (m_x, lab_x) = inside[rd][0], across[rd][0]
            a = _arm(ctx, f"{lab_in} {tgt} ({wt})", _method_files(ws, m_in), m_in, aus=aus)
            b = _arm(ctx, f"{lab_x} {src} -> {tgt}", d["metrics"][m_x], aus=aus)
            check = Check(a, b, "F1-macro over the shared AUs (%)", paired=False)
            out.append(Scope(claim, scope, data, [check], reading=rd))
        if not [r for r in across if r in inside]:
            out.append(_not_run(claim, scope, data, f"{wt} and {table} share no AUNCE reading"))
    return out


def replicate_pairs(plan: Plan, methods: list[str]) -> list[tuple[str, str]]:
    """(method, replicate) pairs among ``methods``: a replicate has ``replicate: n`` and otherwise
    the settings of the method (docs/report.md, "The A/A control")."""

    def core(name: str) -> str:
        m = {k: v for k, v in plan.methods[name].items() if k not in ("label", "replicate")}
        return json.dumps([m, plan.epochs.get(name)], sort_keys=True)

    out = []
    for copy in methods:
        if plan.methods[copy].get("replicate"):
            originals = [m for m in methods if m != copy and not plan.methods[m].get("replicate")]
            out += [(m, copy) for m in originals if core(m) == core(copy)]
    return out


def _replicate(ctx: _Context, claim: dict, table: str, spec: dict) -> list[Scope]:
    """The A/A control: a method against its independent replicate (``replicate: n``), which the
    test must not tell apart."""
    plan, data = ctx.plan, data_kind(ctx.plan, table)
    names = [m for m, _ in spec.get("methods", [])]
    pairs = replicate_pairs(plan, names)
    if not pairs:
        return []
    labels = dict(spec["methods"])
    checks = [Check(_arm(ctx, labels[m], _method_files(spec, m), m),
                    _arm(ctx, labels[c], _method_files(spec, c), c), "F1-macro (%)",
                    either_way=True) for m, c in pairs]  # fmt: skip
    return [Scope(claim, _scope_name(plan, table), data, checks)]


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
    "margin": _margin,
    "cross_drop": _cross_drop,
    "replicate": _replicate,
}
REQUIRED = {
    "encoder_best": ("encoder",),
    "order": ("pairs",),
    "best_probabilities": ("best",),
    "best_beta": ("best",),
    "margin": ("larger", "smaller"),
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
            if claim["test"] == "replicate":
                what = "no method with a replicate (replicate: n) beside it in a table"
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

    def metrics(spec: dict) -> list[str]:
        found = spec["inputs"].get("metrics", [])
        return [p for ps in found.values() for p in ps] if isinstance(found, dict) else found

    for claim in claims["claims"]:
        for table, spec in plan.tables.items():
            if claim["test"] == "margin" and spec["kind"] == "au_f1" and paper_table(
                    table, spec) in claim["larger"] + claim["smaller"]:  # fmt: skip
                files += metrics(spec)
            if not _matches(claim, table, spec):
                continue
            if spec["kind"] == "tsne":
                files.append(spec["outputs"]["csv"])
            elif spec["kind"] == "cost":
                files += spec["inputs"]["timing"]
            else:
                files += metrics(spec)
            if claim["test"] in ("published", "losses") and spec.get("published"):
                files.append(spec["published"]["file"])
            if claim["test"] == "cross_drop":
                entry = plan.config["tables"][table]
                for _, tgt in entry["pairs"]:
                    within = _within_table(plan, tgt, entry["encoder"])
                    files += metrics(within[1]) if within else []
    return list(dict.fromkeys(files))


def _test(scopes: list[Scope], rule: dict) -> None:
    """Run every comparison; Holm-correct the distinct tested ones together; classify each."""
    from aunce.stats import holm

    distinct: dict[tuple, float] = {}
    for scope in scopes:
        for check in scope.checks:
            check.result = _compare(check)
            if math.isfinite(check.result["p"]):
                distinct.setdefault(check.key(), check.result["p"])
    adjusted = dict(zip(distinct, holm(list(distinct.values())), strict=True)) if distinct else {}
    for scope in scopes:
        for check in scope.checks:
            check.result["p_holm"] = float(adjusted.get(check.key(), math.nan))
            check.result["outcome"] = _outcome(check, rule)


def _compare(check: Check) -> dict:
    from aunce.stats import difference, estimate, t_test

    if check.paired:
        est = estimate(check.a.terms + [(-c, r) for c, r in check.b.terms])
        mean_a = sum(c * m for (c, _), m in zip(check.a.terms, est.term_means, strict=False))
        n_a = len(check.a.terms)
        mean_b = sum(c * m for (c, _), m in zip(check.b.terms, est.term_means[n_a:], strict=False))
        design = "paired by fold and seed"
    else:
        ea, eb = estimate(check.a.terms), estimate(check.b.terms)
        est = difference(ea, eb)
        mean_a, mean_b = ea.mean, eb.mean
        est.n_folds, est.n_seeds = max(ea.n_folds, eb.n_folds), max(ea.n_seeds, eb.n_seeds)
        design = "independent runs"
    if not est.term_means:
        mean_a = mean_b = math.nan
    parts = [f"{est.n_folds} fold(s) x {est.n_seeds} seed(s)"]
    if est.n_subjects:
        parts.append(f"{est.n_subjects} test subjects")
    components = ", ".join(f"{name} ({df} df)" for name, _, df in est.components)
    subjects = ("subjects", "test sets")  # the test subjects' part; the rest is the models'
    var_subjects = sum(v for n, v, _ in est.components if n.endswith(subjects))
    var_models = sum(v for n, v, _ in est.components if not n.endswith(subjects))
    return {
        "design": f"{design}; {'; '.join(parts)}; variance from {components or 'nothing'}",
        "n_runs": est.n_runs, "n_unpaired": est.n_unpaired, "n_folds": est.n_folds,
        "n_seeds": est.n_seeds, "n_subjects": est.n_subjects, "mean_a": mean_a, "mean_b": mean_b,
        "mean_diff": est.mean, "missing": est.missing, "components": len(est.components),
        "var_models": var_models if est.components else math.nan,
        "var_subjects": var_subjects if est.components else math.nan,
        **t_test(est),
    }  # fmt: skip


OUTCOMES = ("agrees", "disagrees", "differs", "not significant", "undefined", "too few models",
            "no subject counts", "different devices")  # fmt: skip


def _outcome(check: Check, rule: dict) -> str:
    r = check.result
    if r["n_runs"] == 0:
        return "different devices" if check.note else "too few models"
    if r["missing"]:
        return "no subject counts"
    if not r["components"]:
        return "too few models"
    if not math.isfinite(r["p"]):
        return "undefined"
    if r["p_holm"] >= rule["alpha"]:
        return "not significant"
    if check.either_way:
        return "differs"
    expected = -1 if check.lower_is_better else 1
    return "agrees" if np.sign(r["mean_diff"]) == expected else "disagrees"


def _verdict(scope: Scope, rule: dict) -> tuple[str, str]:
    outcomes = [c.result["outcome"] for c in scope.checks]
    n = len(outcomes)
    notes = "; ".join(dict.fromkeys(c.note for c in scope.checks if c.note))
    suffix = f" ({notes})" if notes else ""
    if scope.claim["test"] == "replicate":
        return _replicate_verdict(scope, outcomes)
    if "disagrees" in outcomes:
        against = [c for c in scope.checks if c.result["outcome"] == "disagrees"]
        names = ", ".join(f"{_relation(c, reverse=True)} (p_holm {c.result['p_holm']:.2g})"
                          for c in against)  # fmt: skip
        return "contradicted", f"significant against the paper: {names}{suffix}"
    if outcomes and all(o == "agrees" for o in outcomes):
        worst = max(c.result["p_holm"] for c in scope.checks)
        what = "the comparison is" if n == 1 else f"all {n} comparisons are"
        return "supported", (f"{what} significant in the paper's direction (p_holm <= {worst:.2g})"
                             f"{suffix}")  # fmt: skip
    counts = {o: outcomes.count(o) for o in OUTCOMES if o in outcomes}
    if counts == {"too few models": n}:
        return "inconclusive", ("too few models for the test: one model per arm, nothing to "
                                "estimate a spread from (more folds or seeds)")  # fmt: skip
    if counts == {"no subject counts": n}:
        return "inconclusive", scope.checks[0].result["missing"]
    if counts == {"different devices": n}:
        return "inconclusive", f"no pair ran on one device{suffix}: timings do not compare"
    if counts == {"not significant": n}:
        ps = [c.result["p_holm"] for c in scope.checks]
        what = f"p_holm = {ps[0]:.2g}" if n == 1 else f"smallest p_holm = {min(ps):.2g}"
        return "inconclusive", f"difference not significant ({what}){suffix}"
    if counts == {"undefined": n}:
        if all(c.result["mean_diff"] == 0 for c in scope.checks):
            return "inconclusive", "no difference: the arms tie on every run"
        return "inconclusive", "the test is undefined: every model gives the same difference"
    parts = [f"{k} of {n} {o}" if o != "agrees" else f"{k} of {n} significant in the paper's direction"
             for o, k in counts.items()]  # fmt: skip
    return "inconclusive", "; ".join(parts) + suffix


def _replicate_verdict(scope: Scope, outcomes: list[str]) -> tuple[str, str]:
    """The A/A control: a significant difference between replicates is a false positive of the
    harness (contradicted); no significant difference is what it should show (inconclusive: an
    A/A control never supports a claim)."""
    if "differs" in outcomes:
        found = [c for c in scope.checks if c.result["outcome"] == "differs"]
        names = ", ".join(f"{c.a.label} vs {c.b.label} (p_holm {c.result['p_holm']:.2g})"
                          for c in found)  # fmt: skip
        return "contradicted", (f"a false positive: replicates of one method differ "
                                f"significantly: {names}")  # fmt: skip
    tested = [c.result["p_holm"] for c in scope.checks if c.result["outcome"] == "not significant"]
    if tested:
        return "inconclusive", (f"no significant difference between replicates of one method "
                                f"(p_holm = {min(tested):.2g}), as an A/A control should show")  # fmt: skip
    return "inconclusive", "the replicates could not be tested: " + ", ".join(dict.fromkeys(outcomes))


def _relation(check: Check, reverse: bool = False) -> str:
    if check.either_way:
        return f"{check.a.label} = {check.b.label}"
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
    if r["n_runs"] == 0:
        return f"{check.a.label} vs {check.b.label}: no runs in common"
    diff = r["mean_diff"] * check.scale
    diff = f"{diff:+.3g}{check.unit}" if check.scale == 1.0 else f"{diff:+.1f}"
    text = (f"{check.a.label} {_fmt(r['mean_a'], check)} vs {check.b.label} "
            f"{_fmt(r['mean_b'], check)} ({diff}")  # fmt: skip
    if check.lower_is_better and r["mean_b"]:
        text += f", x{r['mean_a'] / r['mean_b']:.2f}"
    text += f"; {r['n_folds']} fold(s) x {r['n_seeds']} seed(s)"
    if r["n_subjects"]:
        text += f", {r['n_subjects']} test subjects"
    if math.isfinite(r["p_holm"]):
        text += f"; p_holm {r['p_holm']:.2g}"
    return text + ")"


def _test_text(scope: Scope) -> str:
    quantity = scope.checks[0].quantity
    relations = ", ".join(_relation(c) for c in scope.checks)
    kinds = {c.paired for c in scope.checks}
    how = ("t-test over the trained models, paired by fold and seed" if kinds == {True}
           else "t-test over the trained models, independent runs")  # fmt: skip
    return f"{quantity}: {relations}; {how}"


def _row(scope: Scope, rule: dict) -> dict:
    claim = scope.claim
    if scope.verdict is None:
        verdict, reason = _verdict(scope, rule)
        measured = "; ".join(_measured(c) for c in scope.checks)
        test = _test_text(scope)
    else:
        verdict, reason, measured, test = scope.verdict, scope.reason, scope.measured, scope.test
    return {
        "claim": claim["id"],
        "scope": scope.scope,
        "reading": READINGS.get(scope.reading, scope.reading),
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
    same = ("claim", "reading", "data", "verdict", "reason")
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
        "reading": READINGS.get(scope.reading, scope.reading),
        "a": check.a.label,
        "b": check.b.label,
        "quantity": check.quantity,
        "design": r["design"],
        "lower_is_better": check.lower_is_better,
        **{k: r[k] for k in ("n_runs", "n_unpaired", "n_folds", "n_seeds", "n_subjects")},
        **{k: r[k] * check.scale for k in ("mean_a", "mean_b", "mean_diff", "se")},
        **{k: r[k] * check.scale**2 for k in ("var_models", "var_subjects")},
        **{k: r[k] for k in ("df", "t", "p", "p_holm", "outcome")},
    }


# --- rendering ----------------------------------------------------------------------------------
def rule_text(rule: dict, n_tested: int | None = None) -> str:
    """The decision rule in one paragraph (the report and the HTML front page print it)."""
    family = ""
    if n_tested is not None:
        family = (f" over the {n_tested} distinct comparison{'s' if n_tested != 1 else ''} tested "
                  "in this run")  # fmt: skip
    return (
        "Each comparison sets two arms of this run against each other in the direction the paper "
        "states. Its unit is the trained model: the difference of the arms' means over the same "
        "folds and seeds, tested two-sided against the spread of the models' fold and seed means "
        "and, where the models share their test subjects, the test subjects' own sampling (a "
        f"jackknife); the p-value is Holm-corrected{family}. A comparison counts when its "
        f"corrected p is below {rule['alpha']:g}. **Supported**: every comparison counts in the "
        "paper's direction; **contradicted**: one counts against it; **inconclusive**: otherwise, "
        "with the reason. A claim about AUNCE gets a verdict per reading of AUNCE the run trains "
        "(the paper as written; the authors' released code). On synthetic stand-ins a verdict says "
        "whether the claim holds on the stand-ins, not on the paper's data. docs/report.md has the "
        "details."
    )


def _n_tested(v: Verdicts) -> int:
    if v.checks.empty:
        return 0
    tested = v.checks[v.checks["p_holm"].notna()]
    return int(len(tested.drop_duplicates(["a", "b", "quantity", "design", "p"])))


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
        "| Claim | Reading | Paper | Data | This run measured | Test | Verdict | Reason |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, r in v.rows.iterrows():
        claim = f"**{r['claim']}** ({r['scope']}): {r['statement']}" if r["scope"] != "-" else (
            f"**{r['claim']}**: {r['statement']}")  # fmt: skip
        cells = [claim, r["reading"], r["source"], r["data"], r["measured"], r["test"],
                 f"**{r['verdict']}**", r["reason"]]  # fmt: skip
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
            "Means over the runs used (F1 in percent); differences a - b; `design` the pairing, "
            "the runs and the variance components; `se` and `df` the standard error and degrees "
            "of freedom of the difference; `p` the two-sided t-test, `p_holm` its Holm-corrected "
            "value over the run's distinct comparisons (empty: not tested). Also in "
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
            f"<br>{esc(r['statement'])}</td><td>{esc(r['reading'])}</td>"
            f"<td>{esc(r['source'])}</td><td>{esc(r['data'])}</td>"
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
        '<table class="aunce-verdicts"><thead><tr><th>Claim</th><th>Reading</th><th>Paper</th>'
        "<th>Data</th>"
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
