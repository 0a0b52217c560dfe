"""results/report.md: every table and figure, the reproduction delta, the audit, deviations, provenance.

One public entry point, :func:`write_report` (and :func:`build_report`, its text). The spec (built in
rules/common.smk) names every file read; nothing here recomputes a run's numbers: tables come from
their CSV and Markdown files, published numbers from baselines/published.csv.

- Reproduction delta: for each row this run trained whose label (without " (this run)") equals a
  method the paper reports itself (source "this paper") in the same paper table and dataset, this
  run minus the paper, per column.
- The paper's criterion (protocol.md): this run's mean beats a published number when the improvement
  exceeds twice this run's standard deviation over seeds (aunce.stats.beats_published).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from aunce import AunceError
from aunce.baselines import audit, load_published
from aunce.config import load_yaml
from aunce.io import write_text
from aunce.stats import beats_published


def _read(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise AunceError(f"report: missing input {path}") from None


def _grid(frame: pd.DataFrame, digits: int = 1) -> str:
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False,
                    floatfmt=f".{digits}f", disable_numparse=False)  # fmt: skip


def _columns(table: pd.DataFrame) -> list[str]:
    return [
        c for c in table.columns if c not in ("row", "source", "kind") and not c.endswith("_std")
    ]


def _published_for(published: pd.DataFrame, entry: dict) -> pd.DataFrame:
    if not entry.get("paper_table"):
        return published.iloc[0:0]
    rows = published[published["table"] == entry["paper_table"]]
    if entry.get("dataset"):
        rows = rows[rows["dataset"] == entry["dataset"]]
    return rows


def reproduction_delta(table: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """This run minus the paper, per column, for rows whose method the paper reports itself."""
    own = published[published["source"] == "this paper"]
    cols, out = _columns(table), []
    for _, row in table[table["kind"] == "this run"].iterrows():
        label = row["row"].split(" (this run)")[0]
        paper = own[own["method"] == label]
        if paper.empty:
            continue
        values = {
            ("Avg." if au == "avg" else au): f1
            for au, f1 in zip(paper["au"], paper["f1"], strict=True)
        }
        rec = {"row": row["row"]}
        for col in cols:
            if col in values and not math.isnan(row[col]):
                rec[col] = row[col] - values[col]
        if len(rec) > 1:
            out.append(rec)
    return pd.DataFrame(out)


def criterion(table: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """The paper's criterion on the average: this run's rows against each published row."""
    if "Avg." not in table.columns:
        return pd.DataFrame()
    avgs = published[published["au"] == "avg"]
    out = []
    for _, row in table[table["kind"] == "this run"].iterrows():
        for _, pub in avgs.iterrows():
            mean, std = row["Avg."], row.get("Avg._std", math.nan)
            out.append(
                {
                    "this run": row["row"],
                    "mean": mean,
                    "std": std,
                    "published": f"{pub['method']} ({pub['source']})",
                    "published avg": pub["f1"],
                    "beats by > 2 std": "yes" if beats_published(mean, std, pub["f1"]) else "no",
                }
            )
    return pd.DataFrame(out)


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            out.update(_flatten(v, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


SECTIONS_APART = ("datasets", "tables", "methods")


def deviations(resolved: dict, paper: dict) -> pd.DataFrame:
    """Every dotted key whose value differs between the resolved config and the paper config
    (defaults filled in both), leaving out datasets, tables and methods (listed by name apart)."""
    from aunce.config import SCHEMA_PATH, fill_defaults

    paper = dict(paper)
    fill_defaults(paper, load_yaml(SCHEMA_PATH))
    resolved = {k: v for k, v in resolved.items() if k not in SECTIONS_APART}
    paper = {k: v for k, v in paper.items() if k not in SECTIONS_APART}
    a, b = _flatten(resolved), _flatten(paper)
    keys = sorted(set(a) | set(b))
    rows = [
        {"key": k, "this run": a.get(k, "(absent)"), "paper protocol": b.get(k, "(absent)")}
        for k in keys
        if a.get(k, "(absent)") != b.get(k, "(absent)")
    ]
    return pd.DataFrame(rows, columns=["key", "this run", "paper protocol"])


def build_report(spec: dict) -> str:
    published = load_published(spec["published"])
    prov = spec["provenance"]
    parts = [
        f"# {spec['title']}\n",
        f"Code {prov['code']}; config {', '.join(prov['configs'])}; seeds "
        f"{', '.join(map(str, prov['seeds']))}. Every number below marked (this run) was measured "
        "by this run (the metrics files named in each table's log); every number marked "
        "(published) is printed in the paper, with its source (baselines/published.csv).\n",
        "## Contents\n",
        "".join(f"- [{t['id']}](#{t['id']})\n" for t in spec["tables"])
        + "".join(f"- [{f['id']}](#{f['id']})\n" for f in spec["figures"])
        + "- [Audit of published averages](#audit-of-published-averages)\n"
        + "- [Protocol deviations of this config](#protocol-deviations-of-this-config)\n",
    ]
    for entry in spec["tables"]:
        parts.append(f"## {entry['id']}\n")
        parts.append(_read(entry["md"]))
        table = pd.read_csv(entry["csv"])
        pub = _published_for(published, entry)
        if not pub.empty:
            delta = reproduction_delta(table, pub)
            if not delta.empty:
                parts.append("\n**Reproduction delta** (this run minus the paper's own row):\n\n")
                parts.append(_grid(delta) + "\n")
            crit = criterion(table, pub)
            if not crit.empty:
                wins = int((crit["beats by > 2 std"] == "yes").sum())
                parts.append(
                    f"\n**The paper's criterion** (improvement > 2 std over seeds): this run beats "
                    f"{wins} of {len(crit)} (row, published baseline) pairs on the average.\n\n"
                )
                parts.append(_grid(crit) + "\n")
        if entry.get("significance"):
            tests = pd.read_csv(entry["significance"])
            if not tests.empty:
                macro = tests[tests["value"] == "f1_macro"]
                cols = ["dataset", "encoder", "method_a", "method_b", "n_pairs", "mean_diff",
                        "p_ttest_holm", "p_wilcoxon_holm", "effect_size"]  # fmt: skip
                parts.append(
                    "\n**Significance** (F1-macro, paired by fold and seed, Holm-corrected over "
                    f"the table; per-AU tests in `{Path(entry['significance']).name}`):\n\n"
                )
                parts.append(_grid(macro[cols], 4) + "\n")
        parts.append("\n")
    for fig in spec["figures"]:
        parts.append(f"## {fig['id']}\n\n")
        md = _read(fig["md"]) if fig.get("md") else ""
        parts.append(md.replace(f"]({Path(fig['png']).name})", f"]({fig['png']})") + "\n")
    found = audit(published)
    parts.append("## Audit of published averages\n\n")
    parts.append(
        "Rows of the paper whose printed average differs from the mean of its printed per-AU F1 by "
        "more than rounding (0.05), as `aunce audit baselines/published.csv` prints them:\n\n"
    )
    parts.append((_grid(found, 2) if not found.empty else "None.") + "\n\n")
    parts.append("## Protocol deviations of this config\n\n")
    resolved, paper = load_yaml(spec["resolved_config"]), load_yaml(spec["paper_config"])
    dev = deviations(resolved, paper)
    parts.append(
        f"Every setting of `{spec['resolved_config']}` that differs from `config/paper.yaml` "
        f"({len(dev)}, defaults filled in); docs/deviations.md says why the CPU default changes "
        "each. Datasets, methods and tables are listed apart below.\n\n"
    )
    parts.append((tabulate(dev, headers="keys", tablefmt="github", showindex=False,
                           disable_numparse=True) if not dev.empty else "None.") + "\n")  # fmt: skip
    parts.append("\n" + _sections_apart(resolved, paper) + "\n")
    return "\n".join(parts)


def _sections_apart(resolved: dict, paper: dict) -> str:
    lines = ["Datasets (this run / paper protocol):\n"]
    for name in sorted(set(resolved.get("datasets", {})) | set(paper.get("datasets", {}))):
        mine, theirs = resolved.get("datasets", {}).get(name), paper.get("datasets", {}).get(name)

        def show(ds):
            if ds is None:
                return "(absent)"
            if ds["source"] == "synthetic":
                s = ds.get("synthetic", {})
                return (
                    f"synthetic stand-in of {s.get('profile')}, {s.get('n_subjects')} subjects x "
                    f"{s.get('frames_per_subject')} frames, label noise {s.get('label_noise', 0)}"
                )
            return f"{ds['source']} at {ds.get('root')}"

        lines.append(f"- {name}: {show(mine)} / {show(theirs)}")
    lines.append(
        "\nMethods only in one config: "
        + (
            ", ".join(sorted(set(resolved.get("methods", {})) ^ set(paper.get("methods", {}))))
            or "none"
        )
        + "."
    )
    short = [
        f"{t} ({', '.join(f'{k} {v}' for k, v in spec.items() if k in ('folds', 'seeds', 'epochs'))})"
        for t, spec in resolved.get("tables", {}).items()
        if any(k in spec for k in ("folds", "seeds", "epochs"))
    ]
    lines.append("\nTables run on a shortened budget: " + ("; ".join(short) or "none") + ".")
    return "\n".join(lines)


def write_report(spec: dict, out: str | os.PathLike) -> Path:
    """Build the report and write it atomically."""
    write_text(out, build_report(spec))
    return Path(out)
