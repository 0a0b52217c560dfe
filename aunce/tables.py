"""Tables as Markdown (tabulate) and LaTeX (booktabs), from aggregated runs.

Every number printed is a mean (and standard deviation over seeds) of this run's metrics files,
in percent; the best value per column is in bold. Rows this run trained are marked "(this run)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from tabulate import tabulate

from aunce.stats import aggregate, runs_frame


@dataclass
class Row:
    label: str
    source: str
    cells: dict[str, tuple[float, float]]  # column -> (mean, std) in percent; std NaN if undefined
    ours: bool = True


@dataclass
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def best(self) -> dict[str, float]:
        out = {}
        for col in self.columns:
            means = [
                r.cells[col][0]
                for r in self.rows
                if col in r.cells and not math.isnan(r.cells[col][0])
            ]
            if means:
                out[col] = max(means)
        return out

    def frame(self) -> pd.DataFrame:
        """Machine-readable numbers: one row per table row, ``<col>`` and ``<col>_std`` columns."""
        records = []
        for r in self.rows:
            rec = {"method": r.label, "source": r.source, "this_run": r.ours}
            for col in self.columns:
                mean, std = r.cells.get(col, (math.nan, math.nan))
                rec[col], rec[f"{col}_std"] = mean, std
            records.append(rec)
        return pd.DataFrame(records)


def au_f1_table(
    table_id: str, title: str, records: list[dict], methods: list[tuple[str, str]], notes: list[str]
) -> Table:
    """Per-AU F1 and their average for each method (``(name, label)`` pairs, in row order)."""
    agg = aggregate(runs_frame(records)).set_index("method")
    aus = list(records[0]["aus"])
    for rec in records:
        if list(rec["aus"]) != aus:
            raise ValueError(f"{table_id}: runs disagree on the AUs ({rec['aus']} vs {aus})")
    columns = aus + ["Avg."]
    rows = []
    for name, label in methods:
        if name not in agg.index:
            raise ValueError(f"{table_id}: no runs of method '{name}' among the metrics given")
        cell = agg.loc[name]
        cells = {au: (100 * cell[f"f1_{au}_mean"], 100 * cell[f"f1_{au}_std"]) for au in aus}
        cells["Avg."] = (100 * cell["f1_macro_mean"], 100 * cell["f1_macro_std"])
        rows.append(
            Row(
                f"{label} (this run)",
                f"{int(cell['n_seeds'])} seeds x {int(cell['n_folds'])} folds",
                cells,
            )
        )
    return Table(table_id, title, columns, rows, notes)


def _fmt(mean: float, std: float, bold: bool, latex: bool) -> str:
    if math.isnan(mean):
        return "-"
    m = f"{mean:.1f}"
    if bold:
        m = f"\\textbf{{{m}}}" if latex else f"**{m}**"
    if math.isnan(std):
        return m
    return f"{m} $\\pm$ {std:.1f}" if latex else f"{m} ± {std:.1f}"


def _body(table: Table, latex: bool) -> tuple[list[str], list[list[str]]]:
    best = table.best()
    header = ["Method", "Source"] + table.columns
    body = []
    for r in table.rows:
        line = [r.label, r.source]
        for col in table.columns:
            mean, std = r.cells.get(col, (math.nan, math.nan))
            line.append(
                _fmt(
                    mean,
                    std,
                    not math.isnan(mean) and round(mean, 1) == round(best.get(col, math.nan), 1),
                    latex,
                )
            )
        body.append(line)
    return header, body


def render_markdown(table: Table) -> str:
    header, body = _body(table, latex=False)
    notes = "".join(f"\n- {n}" for n in table.notes)
    grid = tabulate(body, header, tablefmt="github", disable_numparse=True)
    return f"### {table.title}\n\n{grid}\n{notes}\n"


def render_latex(table: Table) -> str:
    """A booktabs tabular (pandas Styler); notes become LaTeX comments above it."""
    header, body = _body(table, latex=True)
    esc = str.maketrans({"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#"})
    cells = [
        [c if "$" in c or "\\textbf" in c else c.translate(esc) for c in line] for line in body
    ]
    frame = pd.DataFrame(cells, columns=[h.translate(esc) for h in header])
    tabular = frame.style.hide(axis="index").to_latex(
        hrules=True, column_format="ll" + "r" * len(table.columns)
    )
    notes = "".join(f"% {n}\n" for n in table.notes)
    return f"% {table.title}\n{notes}{tabular}"
