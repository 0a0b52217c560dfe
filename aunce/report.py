"""results/report.md: the verdicts on the paper's claims, every table and figure, the reproduction
delta and the paper's criterion against published baselines (real data only), the audit of
published averages, the protocol deviations and the provenance.

Entry points: :func:`build_report` (the Markdown text) and :func:`write_report` (written atomically).
The spec (built in rules/common.smk) names every file read; nothing here recomputes a run's
numbers: tables come from their CSV and Markdown files, published numbers from
baselines/published.csv (docs/report.md).

- Reproduction delta: for each row this run trained whose label, without " (this run)", equals a
  method the paper reports itself (source "this paper") in the same paper table and dataset, this
  run minus the paper, per AU and for the average, in F1 points.
- The paper's criterion (protocol.md, "Statistics the paper promises and does not show"): this
  run's mean beats a published average when the improvement exceeds twice this run's standard
  deviation over seeds (aunce.stats.beats_published).
- Synthetic is not the paper: a table whose data are synthetic stand-ins (``synthetic`` in its
  spec entry) gets neither comparison with the paper's real-data numbers; its methods are compared
  within the run (the significance section and the verdicts), and the report says why.
- The header names the git commit, the code hash, the UTC time and the machine; then which reading
  of AUNCE the paper's numbers come from and what each reading shows in this run; then every row
  of this run the tables mark degenerate; then the verdicts (aunce.claims, rule ``verdicts``),
  before the contents.

aunce.pages renders this report, each table and each figure as HTML pages for Snakemake's HTML
report (``snakemake --report``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from aunce import AunceError
from aunce.baselines import audit, load_published
from aunce.config import SCHEMA_PATH, fill_defaults, load_yaml
from aunce.io import write_text
from aunce.stats import COMPARISON, beats_published

THIS_RUN = " (this run)"
META = ("row", "source", "kind", "degenerate")
SIGNIFICANCE = [*COMPARISON, "p_holm"]
DELTA_DIGITS = 1
ABSENT = "(absent)"
SYNTHETIC_NOTE = (
    "This table's data are synthetic stand-ins, not the paper's dataset: the rows marked "
    "(published) were measured on the real data, so this run minus the paper and the paper's "
    "criterion against them would compare two different experiments, and neither is computed "
    "here. The methods of this run are compared with each other instead: the paired tests below "
    "and the verdicts at the top of the report. A run of config/paper.yaml on the real datasets "
    "gets both comparisons."
)


# --- the report ---------------------------------------------------------------------------------
def build_report(spec: dict) -> str:
    """The Markdown text of results/report.md.

    ``spec``: ``{"title", "tables": [{"id", "md", "csv", "paper_table", "dataset", "significance",
    "row_datasets", "synthetic"}], "figures": [{"id", "png", "md"}], "published", "resolved_config",
    "paper_config", "provenance": {"code", "configs", "seeds", "created"}, "verdicts"}``.
    ``paper_table``, ``dataset``, ``significance`` and a figure's ``md`` may be null;
    ``row_datasets`` (optional) maps a this-run row label to its published dataset where one table
    spans several (Table 7). ``synthetic`` (optional, default false): the table's data are
    synthetic stand-ins, so it is not compared with the paper's numbers. A figure's ``png`` is
    relative to the report's folder (results/). ``schema`` (optional, default config/schema.yaml)
    fills the paper config's defaults before the two configs are compared. ``verdicts`` (optional):
    the verdicts' Markdown (aunce.claims), placed after the header; ``verdicts_csv`` (optional)
    their CSV, whose Reading column the opening sentences count. ``repo`` (optional): the folder
    of the code, whose git commit the header names; ``provenance`` may give ``created`` (UTC),
    ``git`` and ``machine`` instead of the report's own.

    Raises AunceError naming a missing spec key, every missing input file, or a malformed CSV.
    """
    _require(spec, ("title", "tables", "figures", "published", "resolved_config",
                    "paper_config", "provenance"), "report spec")  # fmt: skip
    for entry in spec["tables"]:
        _require(entry, ("id", "md", "csv"), "report spec: tables entry")
    for entry in spec["figures"]:
        _require(entry, ("id", "png"), "report spec: figures entry")
    _require(spec["provenance"], ("code", "configs", "seeds"), "report spec: provenance")
    _check_inputs(spec)
    published = load_published(spec["published"])
    sections = [_header(spec), readings(spec)]
    degenerate = _degenerate_section(spec)
    if degenerate:
        sections.append(degenerate)
    if spec.get("verdicts"):
        sections.append(Path(spec["verdicts"]).read_text())
    sections.append(_contents(spec))
    sections += [_table_section(entry, published) for entry in spec["tables"]]
    sections += [_figure_section(entry) for entry in spec["figures"]]
    sections += [_audit_section(published, spec["published"]), _deviation_section(spec)]
    sections.append(_provenance_section(spec))
    return "\n".join(s.rstrip("\n") + "\n" for s in sections)


def write_report(spec: dict, out_path: str | os.PathLike) -> Path:
    """Build the report and write it atomically (a reader never sees half a report)."""
    write_text(out_path, build_report(spec))
    return Path(out_path)


# --- comparisons with published numbers ---------------------------------------------------------
def reproduction_delta(
    table: pd.DataFrame,
    published: pd.DataFrame,
    paper_table: str,
    dataset: str | None = None,
    row_datasets: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """This run minus the paper's own number, per column, for each this-run row the paper reports.

    ``table``: a table CSV (aunce.tables.Table.frame). A row with ``kind == "this run"`` is matched
    to the published rows (baselines/published.csv) of ``paper_table`` and ``dataset`` (or the
    row's entry in ``row_datasets``; any dataset when both are None) whose method equals the row's
    label up to " (this run)" and whose source is "this paper". Columns are the table's columns
    named like a published ``au`` (``AU<n>``, and ``Avg.`` for ``avg``) where both numbers exist;
    columns compared in no row are dropped. Returns the frame (``row`` then one column
    per compared column, F1 points) and one line per this-run row that has no counterpart.
    """
    own = published[published["source"] == "this paper"]
    rows, unmatched = [], []
    for _, row in _this_run(table).iterrows():
        paper, why = _published_rows(own, row, paper_table, dataset, row_datasets)
        if paper is None or paper.empty:
            unmatched.append(
                why or f"{row['row']}: the paper prints no row '{_method(row)}' of its own here"
            )
            continue
        values = dict(zip(paper["au"].map(_column), paper["f1"], strict=True))
        rec = {"row": row["row"]}
        for col in _columns(table):
            if col in values and _finite(row[col]):
                rec[col] = float(row[col]) - values[col]
        if len(rec) == 1:
            unmatched.append(f"{row['row']}: no column in common with the paper's row")
            continue
        rows.append(rec)
    columns = ["row"] + [c for c in _columns(table) if any(c in r for r in rows)]
    return pd.DataFrame(rows, columns=columns), unmatched


def criterion(
    table: pd.DataFrame,
    published: pd.DataFrame,
    paper_table: str,
    dataset: str | None = None,
    row_datasets: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The paper's criterion on the average: each this-run row against each published average.

    Published rows are those of ``paper_table`` and the row's dataset (as in
    :func:`reproduction_delta`) with ``au == "avg"``, from any source. A row holds when
    ``mean - published > 2 * std`` (aunce.stats.beats_published) with ``mean`` and ``std`` the
    table's ``Avg.`` and ``Avg._std`` (percent); it cannot hold with one seed (std undefined).
    Returns one line per (this-run row, published row) with columns ``this run, mean, std,
    published, source, published avg, improvement, criterion`` and the this-run rows skipped.
    """
    if "Avg." not in table.columns:
        return pd.DataFrame(), []
    avgs = published[published["au"] == "avg"]
    rows, skipped = [], []
    for _, row in _this_run(table).iterrows():
        mean, std = float(row["Avg."]), float(row.get("Avg._std", math.nan))
        if not _finite(mean):
            skipped.append(f"{row['row']}: no average")
            continue
        pubs, why = _published_rows(avgs, row, paper_table, dataset, row_datasets, by_method=False)
        if pubs is None:
            skipped.append(why)
            continue
        for _, pub in pubs.iterrows():
            holds = beats_published(mean, std, pub["f1"])
            verdict = "yes" if holds else ("no (one seed: no std)" if math.isnan(std) else "no")
            rows.append(
                {
                    "this run": row["row"],
                    "mean": mean,
                    "std": std,
                    "published": pub["method"],
                    "source": pub["source"],
                    "dataset": pub["dataset"],
                    "published avg": pub["f1"],
                    "improvement": mean - pub["f1"],
                    "criterion": verdict,
                }
            )
    return pd.DataFrame(rows), skipped


def _published_rows(
    published: pd.DataFrame,
    row: pd.Series,
    paper_table: str,
    dataset: str | None,
    row_datasets: dict[str, str] | None,
    by_method: bool = True,
) -> tuple[pd.DataFrame | None, str | None]:
    """Published rows for a this-run row, or None and why when its dataset is ambiguous."""
    rows = published[published["table"] == paper_table]
    dataset = (row_datasets or {}).get(row["row"], dataset)
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    if by_method:
        rows = rows[rows["method"] == _method(row)]
    datasets = sorted(set(rows["dataset"]))
    if len(datasets) > 1:
        return None, (
            f"{row['row']}: the published rows of {paper_table} span the datasets "
            f"{', '.join(datasets)} and the spec names none for this row (row_datasets)"
        )
    return rows, None


def _this_run(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["kind"] == "this run"]


def _method(row: pd.Series) -> str:
    """The method a this-run row stands for: its label up to " (this run)"."""
    return str(row["row"]).split(THIS_RUN)[0]


def _column(au: str) -> str:
    return "Avg." if au == "avg" else au


def _columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in META and not str(c).endswith("_std")]


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# --- protocol deviations ------------------------------------------------------------------------
def config_deviations(resolved: dict, paper: dict) -> pd.DataFrame:
    """Every dotted key whose value differs between two configs, sorted by key.

    Nested mappings are compared key by key; any other value (a list included) is one setting. A
    key on one side only is listed with ``(absent)`` on the other; a whole section on one side only
    is one line, ``(section of N settings)``. Columns ``key, this run, paper protocol``.
    """
    rows = []

    def walk(a, b, prefix: str) -> None:
        for key in sorted(set(a) | set(b), key=str):
            name = f"{prefix}{key}"
            va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
            if _is_section(va) and _is_section(vb):
                walk(va, vb, f"{name}.")
            # True == 1 in Python, but a flag set where a number is expected is a deviation
            elif va != vb or isinstance(va, bool) != isinstance(vb, bool):
                rows.append({"key": name, "this run": _show(va), "paper protocol": _show(vb)})

    walk(resolved or {}, paper or {}, "")
    return pd.DataFrame(rows, columns=["key", "this run", "paper protocol"])


_MISSING = object()


def _is_section(value) -> bool:
    return isinstance(value, dict) and bool(value)


def _show(value) -> str:
    if value is _MISSING:
        return ABSENT
    if _is_section(value):
        n = len(_leaves(value))
        return f"(section of {n} setting{'s' if n != 1 else ''})"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _leaves(value) -> list:
    if _is_section(value):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]


# --- sections -----------------------------------------------------------------------------------
def _header(spec: dict) -> str:
    prov = _provenance(spec)
    return (
        f"# {spec['title']}\n\n"
        f"{prov['git']}; code `{prov['code']}`; config {', '.join(f'`{c}`' for c in prov['configs'])}; "
        f"seeds {', '.join(map(str, prov['seeds']))}; created {prov['created']} on "
        f"{prov['machine']}.\n"
    )


def _provenance(spec: dict) -> dict:
    """What the header and the provenance section state: the git commit of the code (or that it
    is not a git checkout), the code hash, the configs and seeds, the UTC creation time (the spec's
    ``created`` if given) and the machine that wrote the report."""
    prov = dict(spec["provenance"])
    prov["created"] = prov.get("created") or datetime.datetime.now(datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")  # fmt: skip
    prov["git"] = prov.get("git") or git_revision(spec.get("repo"))
    prov["machine"] = prov.get("machine") or machine()
    return prov


def git_revision(repo: str | os.PathLike | None) -> str:
    """``git <commit>`` of the code the report ran (``, with uncommitted changes`` when the
    checkout has them), or why there is none."""
    if not repo:
        return "git commit not recorded (no repository given)"
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "git commit unknown (git is not available)"
    if head.returncode != 0:
        return f"not a git checkout ({repo})"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    return f"git `{head.stdout.strip()}`" + (" with uncommitted changes" if dirty else "")


def machine() -> str:
    """The machine that wrote the report: host, OS, CPU count and Python."""
    return (f"{platform.node() or 'an unnamed host'} ({platform.platform()}, {os.cpu_count()} "
            f"CPUs, Python {platform.python_version()})")  # fmt: skip


def readings(spec: dict) -> str:
    """The report's opening sentences: which reading of AUNCE the paper's numbers come from, which
    readings this run trains, and what the verdicts say for each (docs/losses.md)."""
    from aunce.presets import effective_aunce

    resolved = load_yaml(spec["resolved_config"]) or {}
    trained: dict[str, list[str]] = {"paper": [], "released": []}
    used = {m for t in (resolved.get("tables") or {}).values()
            for m in [*(t.get("methods") or []), t.get("base")] if m}  # fmt: skip
    for name, method in (resolved.get("methods") or {}).items():
        if method.get("loss") == "aunce" and name in used:
            trained[effective_aunce(method)["variant"]].append(method.get("label") or name)
    counts = {}
    if spec.get("verdicts_csv") and Path(spec["verdicts_csv"]).is_file():
        rows = pd.read_csv(spec["verdicts_csv"])
        if "reading" in rows.columns:
            for reading, group in rows.groupby("reading", sort=False):
                counts[reading] = ", ".join(f"{v} {int((group['verdict'] == v).sum())}"
                                            for v in ("supported", "contradicted", "inconclusive"))
    parts = []
    for key, name in (("paper", "paper"), ("released", "released code")):
        if trained[key]:
            said = f": {counts[name]}" if name in counts else ""
            parts.append(f"the {'paper as written' if key == 'paper' else 'released code'} as "
                         f"{', '.join(trained[key])} (verdicts{said})")  # fmt: skip
        else:
            parts.append(f"not the {'paper as written' if key == 'paper' else 'released code'}")
    return (
        "**Which AUNCE.** The paper's published numbers come from the authors' released code, not "
        "from the loss as the paper writes it: the released per-fold logs average to the paper's "
        "66.1 (BP4D) and 66.4 (DISFA), and the released loss differs from Eq. 2-4 (docs/losses.md; "
        "baselines/README.md). This run trains " + "; ".join(parts) + ". A claim about AUNCE "
        "gets one verdict per reading trained (the Reading column).\n"
    )


def _contents(spec: dict) -> str:
    lines = ["## Contents\n"]
    if _degenerate_section(spec):
        lines.append("- [Degenerate runs](#degenerate-runs)")
    if spec.get("verdicts"):
        lines.append("- [Verdicts](#verdicts)")
    lines += [f"- [{t['id']}](#{_anchor(t['id'])})" for t in spec["tables"]]
    lines += [f"- [{f['id']}](#{_anchor(f['id'])})" for f in spec["figures"]]
    lines += [
        f"- [{title}](#{_anchor(title)})"
        for title in (
            "Audit of published averages",
            "Protocol deviations of this config",
            "Provenance",
        )
    ]
    lines.append(
        "\nRows marked (this run) were measured by this run; rows marked (published) are printed "
        "in the paper, with their source (`baselines/published.csv`). Each table's notes say how "
        "its cells were computed; docs/report.md says how the comparisons below are."
    )
    return "\n".join(lines) + "\n"


def _table_section(entry: dict, published: pd.DataFrame) -> str:
    parts = [f"## {entry['id']}\n", Path(entry["md"]).read_text().rstrip("\n") + "\n"]
    table = _read_table(entry["csv"])
    paper_table, dataset = entry.get("paper_table"), entry.get("dataset")
    row_datasets = entry.get("row_datasets")
    if paper_table and entry.get("synthetic"):
        parts.append(f"### Published numbers ({entry['id']})\n")
        parts.append(SYNTHETIC_NOTE + "\n")
    elif paper_table:
        where = f"{paper_table}" + (f", {dataset}" if dataset else "")
        delta, unmatched = reproduction_delta(table, published, paper_table, dataset, row_datasets)
        parts.append(f"### Reproduction delta ({entry['id']})\n")
        if delta.empty:
            parts.append(f"No row of this run is a method the paper prints itself ({where}).\n")
        else:
            parts.append(
                f'This run minus the paper\'s own number ({where}, source "this paper"), in F1 '
                "points; positive: this run is higher.\n"
            )
            parts.append(_markdown(delta, floatfmt=f"+.{DELTA_DIGITS}f") + "\n")
        parts += _bullets("not compared", unmatched)
        crit, skipped = criterion(table, published, paper_table, dataset, row_datasets)
        parts.append(f"### Against published baselines ({entry['id']})\n")
        if crit.empty:
            parts.append(f"No published average to compare with ({where}).\n")
        else:
            holds = int((crit["criterion"] == "yes").sum())
            parts.append(
                "The paper's criterion: this run's average beats a published average when the "
                "improvement is larger than twice this run's std over seeds "
                f"(aunce.stats.beats_published). It holds for {holds} of {len(crit)} pairs. "
                "Each cell: this run's average minus the published one, in F1 points, and whether "
                "the criterion holds; with a single seed there is no std and it cannot hold.\n"
            )
            parts.append(_markdown(_criterion_grid(crit), numparse=False) + "\n")
        parts += _bullets("not compared", skipped)
    if entry.get("significance"):
        parts.append(f"### Significance ({entry['id']})\n")
        parts.append(_significance(entry["significance"]))
    return "\n".join(parts) + "\n"


def _bullets(lead: str, lines: list[str]) -> list[str]:
    """A Markdown list as one block, or nothing."""
    return ["\n".join(f"- {lead}: {line}" for line in lines) + "\n"] if lines else []


def _criterion_grid(crit: pd.DataFrame) -> pd.DataFrame:
    """The criterion lines as a grid: one row per published baseline, one column per this-run row."""
    keys = ["published", "source", "dataset", "published avg"]
    grid = crit[keys].drop_duplicates().reset_index(drop=True)
    grid["published avg"] = grid["published avg"].map(lambda v: f"{v:.1f}")
    for label, own in crit.groupby("this run", sort=False):
        mean, std = own["mean"].iloc[0], own["std"].iloc[0]
        header = f"{label}: {mean:.1f} ± {std:.1f}" if _finite(std) else f"{label}: {mean:.1f}"
        cells = {
            (r["published"], r["source"], r["dataset"]):
            f"{r['improvement']:+.1f} ({r['criterion'].split()[0]})"
            for _, r in own.iterrows()
        }  # fmt: skip
        grid[header] = [
            cells.get(key, "")
            for key in zip(grid["published"], grid["source"], grid["dataset"], strict=True)
        ]
    return grid


def _significance(path: str | os.PathLike) -> str:
    tests = _read_csv(path, SIGNIFICANCE)
    if tests.empty:
        return "No pair of methods was compared in this table.\n"
    # F1-macro here; the per-AU tests (same Holm correction) stay in the CSV
    macro = tests[tests["value"] == "f1_macro"]
    shown = (macro if not macro.empty else tests)[SIGNIFICANCE].copy()
    for col in ("mean_a", "mean_b", "mean_diff", "se"):
        shown[col] = 100 * shown[col]
    shown = shown.rename(columns={c: f"{c} (%)" for c in ("mean_a", "mean_b", "mean_diff", "se")})
    text = (
        "Tests between this run's methods (aunce.stats.significance_table; docs/report.md, \"The "
        "test\"): the unit is the trained model, pairs are the runs of the same fold and seed, "
        "differences a - b, two-sided, the variance from the spread of the models' fold and seed "
        "means and, where every model is scored on one test set, the jackknife over its test "
        "subjects; `p_holm` is Holm-corrected over the whole table (F1-macro and every AU); "
        "empty: the test is undefined (one model per arm, no spread, or no per-subject counts "
        f"for a shared test set). F1-macro rows; per-AU tests in `{Path(path).name}`."
        "\n\n"
    )
    return text + _markdown(shown, floatfmt=".3g") + "\n"


def _figure_section(entry: dict) -> str:
    png, link = entry["png"], f"![{entry['id']}]({entry['png']})"
    if not entry.get("md"):
        return f"## {entry['id']}\n\n{link}\n"
    # the figure's own Markdown links the PNG next to it; the report sits one folder up
    body = Path(entry["md"]).read_text().replace(f"]({Path(png).name})", f"]({png})")
    if f"]({png})" not in body:
        body = f"{link}\n\n{body}"
    return f"## {entry['id']}\n\n{body.rstrip(chr(10))}\n"


def _audit_section(published: pd.DataFrame, path: str) -> str:
    found = audit(published)
    text = (
        "## Audit of published averages\n\n"
        f"Rows of `{path}` whose printed average differs from the mean of their printed per-AU F1 "
        "by more than rounding (0.05; aunce.baselines.audit, also `aunce audit`). The paper says "
        "its average is that mean (Section 4.1.3).\n\n"
    )
    if found.empty:
        return text + "None.\n"
    found = found.assign(difference=found["printed"] - found["recomputed"])
    return text + _markdown(found, floatfmt=".2f") + "\n"


def _deviation_section(spec: dict) -> str:
    resolved = load_yaml(spec["resolved_config"]) or {}
    paper = load_yaml(spec["paper_config"]) or {}
    # the resolved config has the schema's defaults filled in; the paper config gets the same
    fill_defaults(paper, load_yaml(spec.get("schema") or SCHEMA_PATH))
    dev = config_deviations(resolved, paper)
    text = (
        "## Protocol deviations of this config\n\n"
        f"Every setting of `{spec['resolved_config']}` that differs from `{spec['paper_config']}` "
        f"(with the schema's defaults filled in on both sides): {len(dev)}. docs/deviations.md "
        "says why the CPU default changes each.\n\n"
    )
    if dev.empty:
        return text + "None.\n"
    return text + _markdown(dev.map(lambda v: str(v).replace("|", "\\|")), numparse=False) + "\n"


def _provenance_section(spec: dict) -> str:
    prov = _provenance(spec)
    lines = [
        "## Provenance\n",
        f"- code: {prov['git']}; package hash `{prov['code']}`",
        f"- configs: {', '.join(f'`{c}`' for c in prov['configs'])}",
        f"- seeds: {', '.join(map(str, prov['seeds']))}",
        f"- created: {prov['created']} (UTC) on {prov['machine']}",
        "- inputs (sha256, first 12 digits):",
    ]
    lines += [f"  - `{path}` {_sha256(path)}" for path, _ in _inputs(spec)]
    return "\n".join(lines) + "\n"


def _degenerate_section(spec: dict) -> str:
    """Every row of this run a table marks degenerate (aunce.tables.degenerate), with its numbers,
    before the verdicts: a reader sees a collapsed run before reading what it says."""
    found = []
    for entry in spec["tables"]:
        table = _read_table(entry["csv"])
        for _, row in table[table["degenerate"].astype(str).str.len() > 0].iterrows():
            found.append(f"- **{entry['id']}**, {row['row']}: {row['degenerate']}.")
    if not found:
        return ""
    return (
        "## Degenerate runs\n\n"
        "Rows of this run whose runs collapsed (the mean batch similarity of the embeddings in the "
        "last pretraining epoch at or above 0.99), score at or below the all-positive predictor, or "
        "score 0.0 on some AUs (docs/tables.md). Their verdicts compare a degenerate model: read "
        "them as what this run shows, not as a test of the method.\n\n" + "\n".join(found) + "\n"
    )


# --- reading ------------------------------------------------------------------------------------
def _inputs(spec: dict) -> list[tuple[str, str]]:
    """Every file the report reads, with what it is."""
    out = [
        (spec["published"], "published numbers"),
        (spec["resolved_config"], "resolved config"),
        (spec["paper_config"], "paper config"),
    ]
    if spec.get("verdicts"):
        out.append((spec["verdicts"], "verdicts"))
    if spec.get("verdicts_csv"):
        out.append((spec["verdicts_csv"], "verdicts CSV"))
    for entry in spec["tables"]:
        out += [(entry["md"], f"{entry['id']} Markdown"), (entry["csv"], f"{entry['id']} CSV")]
        if entry.get("significance"):
            out.append((entry["significance"], f"{entry['id']} significance"))
    out += [(f["md"], f"{f['id']} Markdown") for f in spec["figures"] if f.get("md")]
    return [(str(path), what) for path, what in out]


def _check_inputs(spec: dict) -> None:
    missing = [f"{path} ({what})" for path, what in _inputs(spec) if not Path(path).is_file()]
    if missing:
        raise AunceError("report: missing input file(s): " + "; ".join(missing))


def _require(mapping: dict, keys: tuple[str, ...], where: str) -> None:
    absent = [k for k in keys if k not in mapping]
    if absent:
        raise AunceError(f"{where}: missing key(s) {', '.join(absent)}")


def _read_csv(path: str | os.PathLike, columns) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise AunceError(f"{path}: empty file (expected a header {','.join(columns)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise AunceError(f"{path}: cannot read as CSV ({err})") from None
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise AunceError(f"{path}: missing column(s) {', '.join(absent)}")
    return frame


def _read_table(path: str | os.PathLike) -> pd.DataFrame:
    frame = _read_csv(path, META[:3])
    if "degenerate" not in frame.columns:  # a table written before degenerate rows were marked
        frame["degenerate"] = ""
    return frame.assign(degenerate=frame["degenerate"].fillna(""))


def _sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _markdown(frame: pd.DataFrame, floatfmt: str = "g", numparse: bool = True) -> str:
    frame = frame.astype(object).where(frame.notna(), None)  # NaN: an empty cell, not "nan"
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt,
                    missingval="", disable_numparse=not numparse)  # fmt: skip


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")
