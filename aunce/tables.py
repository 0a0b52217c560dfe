"""Tables as Markdown (tabulate) and LaTeX (booktabs), built from this run's files.

Every number printed is computed here from the metrics files or dataset manifests a table's spec
names (the Snakemake rule declares the same files as inputs), or is a published number labelled with
its source. Rows this run trained say "(this run)"; the all-positive predictor and, on synthetic
stand-ins, the ceiling (a detector of the generator's true AU states) are reference rows.

Bold marks the best mean of a column among rows of one kind: this run's rows among themselves, the
published rows among themselves (they were measured on other data, with other budgets); reference
rows never. A row of this run is marked *degenerate* (:func:`degenerate`) when its runs' embeddings
collapsed (mean batch similarity of the last pretraining epoch >= 0.99, from history.csv), when its
F1-macro is at or below the all-positive predictor's on the same test sets, or when AUs that occur
in its test sets score 0.0; the table's notes give the numbers.

One public entry point: :func:`build` (a table id, its spec, and the files its spec names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from aunce.stats import aggregate, runs_frame

NAN = (math.nan, math.nan)


@dataclass
class Row:
    label: str
    source: str
    # column -> (mean, std), std NaN when undefined; or a text (Table 9's complexity)
    cells: dict[str, tuple[float, float] | str]
    kind: str = "this run"  # "this run", "reference" or "published"
    degenerate: str = ""  # why the row's runs are degenerate (:func:`degenerate`), or ""


@dataclass
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    highlight_best: bool = True  # bold the best mean of each column
    digits: int = 1
    column_digits: dict[str, int] = field(default_factory=dict)  # where a column needs others

    def best(self) -> dict[tuple[str, str], float]:
        """The best mean of each column within each kind of row, ``{(kind, column): mean}``: this
        run's rows and the published rows each among themselves; reference rows never."""
        out = {}
        for kind in ("this run", "published"):
            for col in self.columns:
                if col.endswith(" gain"):  # a difference, not a score: nothing to bold
                    continue
                means = [r.cells[col][0] for r in self.rows
                         if r.kind == kind and not isinstance(r.cells.get(col), str)
                         and not math.isnan(r.cells.get(col, NAN)[0])]  # fmt: skip
                if means:
                    out[(kind, col)] = max(means)
        return out

    def frame(self) -> pd.DataFrame:
        """Machine-readable numbers: one row per table row, ``<col>`` and ``<col>_std`` columns,
        and ``degenerate`` (why the row is marked, empty when it is not)."""
        records = []
        for r in self.rows:
            rec = {"row": r.label, "source": r.source, "kind": r.kind}
            for col in self.columns:
                cell = r.cells.get(col, NAN)
                rec[col], rec[f"{col}_std"] = (cell, math.nan) if isinstance(cell, str) else cell
            rec["degenerate"] = r.degenerate
            records.append(rec)
        return pd.DataFrame(records)

    def mark_degenerate(self) -> None:
        """A note per degenerate row of this run, with its numbers (docs/tables.md)."""
        marks = [f"[degenerate] {r.label}: {r.degenerate}." for r in self.rows if r.degenerate]
        self.notes[:0] = marks


# --- builders -----------------------------------------------------------------------------------
def au_f1_table(
    table_id: str,
    title: str,
    records: list[dict],
    methods: list[tuple[str, str]],
    notes: list[str],
    reference: bool = True,
    extra: list[str] = (),
    similarity=None,
) -> Table:
    """Per-AU F1 and their average for each method (``(name, label)`` pairs, in row order).

    With ``reference``, a last row gives the all-positive predictor on the same test folds.
    ``extra`` adds "F1-micro" and/or "Acc." (per-AU accuracy averaged over AUs) columns.
    ``similarity`` (see :func:`degenerate`) reads a run's last-epoch embedding similarity.
    """
    aus = _common_aus(table_id, records)
    agg = aggregate(runs_frame(records)).set_index("method")
    rows = []
    for name, label in methods:
        if name not in agg.index:
            raise ValueError(f"{table_id}: no runs of method '{name}' among the metrics given")
        cell = agg.loc[name]
        cells = {au: (100 * cell[f"f1_{au}_mean"], 100 * cell[f"f1_{au}_std"]) for au in aus}
        cells["Avg."] = (100 * cell["f1_macro_mean"], 100 * cell["f1_macro_std"])
        for col, key in (("F1-micro", "f1_micro"), ("Acc.", "accuracy")):
            if col in extra:
                cells[col] = (100 * cell[f"{key}_mean"], 100 * cell[f"{key}_std"])
        source = f"{int(cell['n_seeds'])} seed(s) x {int(cell['n_folds'])} fold(s)"
        own = [r for r in records if r["run"]["method"] == name]
        rows.append(Row(f"{label} (this run)", source, cells,
                        degenerate=degenerate(own, similarity)))  # fmt: skip
    if reference:
        rows.append(all_positive_row(records, aus))
        notes = [*notes[:-1], ALL_POSITIVE_NOTE, *notes[-1:]]
    table = Table(table_id, title, aus + ["Avg.", *extra], rows, notes)
    table.mark_degenerate()
    return table


#: Collapsed embeddings: the mean cosine similarity between different training images' per-AU
#: embeddings (history.csv, ``mean_similarity`` of the last epoch) at or above this.
COLLAPSE = 0.99
ALL_POSITIVE_NOTE = (
    "All-positive predictor: every AU called active on every test frame, with no training. Its "
    "F1 depends only on how often each AU occurs (2r / (1 + r) for an occurrence r), so it is the "
    "floor a detector must clear; a reference, not a method of this run, so never bold and never "
    "tested."
)


def degenerate(records: list[dict], similarity=None, aus: list[str] | None = None) -> str:
    """Why one row of this run is degenerate, with its numbers, or "" (docs/tables.md):

    - embeddings collapsed: a run's ``mean_similarity`` in the last epoch of its history.csv is
      at least :data:`COLLAPSE` (``similarity(record)`` gives ``(history path, value)`` or None);
    - F1-macro (over ``aus`` when given) at or below the all-positive predictor's on the same test
      sets (both: mean over seeds of the mean over folds);
    - AUs whose mean F1 prints as 0.0, where a test set has a positive frame of the AU (an AU
      without one scores 0.0 for every method, the all-positive predictor and the ceiling alike).
    """
    if not records:
        return ""
    problems = []
    if similarity is not None:
        models = dict(x for x in (similarity(r) for r in records) if x is not None)
        collapsed = sorted(v for v in models.values() if v >= COLLAPSE)
        if collapsed:
            shown = ", ".join(f"{v:.3f}" for v in collapsed[:6]) + (", ..." if len(collapsed) > 6
                                                                     else "")  # fmt: skip
            problems.append(
                f"embeddings collapsed in {len(collapsed)} of {len(models)} run(s) (mean batch "
                f"similarity in the last pretraining epoch {shown}; collapse: >= {COLLAPSE:g})"
            )
    names = aus or list(records[0]["aus"])

    def au_f1(rec: dict, au: str) -> float:
        v = rec["f1"].get(au)
        return math.nan if v is None else float(v)

    def value(rec: dict) -> float:
        if not aus:
            return float(rec["f1_macro"])
        got = [au_f1(rec, au) for au in aus]
        return float(np.nanmean(got)) if any(math.isfinite(v) for v in got) else math.nan

    per_seed: dict = {}
    floor: dict = {}
    for rec in records:
        per_seed.setdefault(rec["run"]["seed"], []).append(value(rec))
        ap = rec.get("all_positive")
        if ap:
            pos = [float(ap["f1"][au]) for au in names if au in ap["f1"]] if aus else [
                float(ap["f1_macro"])]  # fmt: skip
            floor.setdefault(str(rec["run"]["fold"]), float(np.nanmean(pos)))
    f1 = 100 * float(np.mean([np.mean(v) for v in per_seed.values()]))
    if floor:
        reference = 100 * float(np.mean(list(floor.values())))
        if f1 <= reference + 1e-9:
            what = "F1-macro" if not aus else "F1 over the shared AUs"
            problems.append(f"{what} {f1:.1f} at or below the all-positive predictor's "
                            f"{reference:.1f} on the same test sets")  # fmt: skip
    def absent(au: str) -> bool:  # no positive frame in any test set: nothing to detect
        aps = [r.get("all_positive") for r in records]
        return all(ap and float(ap["f1"].get(au, 1.0)) == 0.0 for ap in aps)

    zero = []
    for au in names:
        got = [au_f1(r, au) for r in records]
        if (any(math.isfinite(v) for v in got) and round(100 * float(np.nanmean(got)), 1) == 0.0
                and not absent(au)):  # fmt: skip
            zero.append(au)
    if zero:
        problems.append(f"{len(zero)} of {len(names)} AUs at 0.0 ({', '.join(zero)})")
    return "; ".join(problems)


def similarity_reader(spec: dict):
    """``similarity(record) -> (history path, last-epoch mean_similarity)`` for a record whose
    model's history.csv the spec names (``inputs.history``; the workflow declares them, so they
    exist), else None, as for a file not there when a table is built by hand. A cross-dataset
    record's model is its source fold's."""
    files = set(spec.get("inputs", {}).get("history", []))
    cache: dict[str, float | None] = {}

    def read(rec: dict):
        run = rec["run"]
        ds, fold = str(run["dataset"]), str(run["fold"])
        if "->" in ds:
            ds = ds.split("->")[0]
            fold = str((rec.get("source") or {}).get("fold") or fold.split("-on-")[0])
        path = (f"results/pretrain/{ds}/{run['encoder']}/{run['method']}/fold-{fold}/"
                f"seed-{run['seed']}/history.csv")  # fmt: skip
        if path not in files or not Path(path).is_file():  # not run through the workflow
            return None
        if path not in cache:
            frame = pd.read_csv(path)
            ok = len(frame) and "mean_similarity" in frame.columns
            cache[path] = float(frame["mean_similarity"].iloc[-1]) if ok else None
        return None if cache[path] is None else (path, cache[path])

    return read


def all_positive_row(records: list[dict], aus: list[str]) -> Row:
    """The all-positive predictor's F1 on the test folds the records were scored on (no std:
    it depends on the labels only)."""
    per_fold = {}
    for rec in records:
        per_fold.setdefault(rec["run"]["fold"], rec["all_positive"])
    cells = {
        au: (100 * float(np.mean([f["f1"][au] for f in per_fold.values()])), math.nan) for au in aus
    }
    cells["Avg."] = (100 * float(np.mean([f["f1_macro"] for f in per_fold.values()])), math.nan)
    return Row(
        "All-positive predictor", f"reference, {len(per_fold)} test fold(s)", cells, "reference"
    )


CEILING = "Ceiling (true AU states)"


def _ceiling_splits(records: list[dict], ceilings: dict[str, dict]) -> dict[tuple, dict] | None:
    """The ceiling of each test split the records were scored on (a cross-dataset record on its
    target's split), or None when a record's dataset has no ceiling (a real dataset)."""
    per_split = {}
    for rec in records:
        target = rec["run"]["dataset"].split("->")[-1]
        split = str(rec["run"]["fold"]).split("-on-")[-1]
        if target not in ceilings:
            return None
        splits = ceilings[target]["splits"]
        if split not in splits:
            raise ValueError(f"{target}: ceiling.json has no test split '{split}'")
        per_split.setdefault((target, split), splits[split])
    return per_split or None


def _ceiling_macro(split: dict, aus: list[str]) -> float:
    return float(np.nanmean([split["f1"][au] for au in aus]))


def ceiling_row(records: list[dict], ceilings: dict[str, dict], aus: list[str],
                extra: list[str] = ()) -> Row | None:  # fmt: skip
    """The ceiling of a synthetic stand-in on the test splits the records were scored on: the F1 of
    a detector of the generator's true AU states against the labels (aunce.data.synthetic.ceiling),
    the best any method could score. A reference row, not a method of this run; None for real data.
    ``extra``: "F1-micro" and "Acc." where the table prints them (over every AU of the dataset; a
    ceiling.json of generator version 3 holds them)."""
    per_split = _ceiling_splits(records, ceilings)
    if per_split is None:
        return None
    splits = list(per_split.values())
    cells = {au: (100 * float(np.mean([s["f1"][au] for s in splits])), math.nan) for au in aus}
    cells["Avg."] = (100 * float(np.mean([_ceiling_macro(s, aus) for s in splits])), math.nan)
    for col, key in (("F1-micro", "f1_micro"), ("Acc.", "accuracy")):
        if col in extra and all(key in s for s in splits):
            cells[col] = (100 * float(np.mean([s[key] for s in splits])), math.nan)
    names = sorted({name for _, name in per_split})
    source = f"reference, {len(per_split)} test split(s) ({', '.join(names)})"
    return Row(CEILING, source, cells, "reference")


def occurrence_table(
    table_id: str,
    title: str,
    manifests: dict[str, pd.DataFrame],
    paper_rates: dict[str, dict[int, float]],
    notes: list[str],
) -> Table:
    """Table 1: AU occurrence rates (%) of each dataset's training set, beside the paper's."""
    all_aus = sorted(
        {int(c[2:]) for df in manifests.values() for c in _au_cols(df)}
        | {au for rates in paper_rates.values() for au in rates}
    )
    columns = [f"AU{a}" for a in all_aus]
    rows = []
    for name, df in manifests.items():
        train = training_set(df)
        cells = {}
        for col in _au_cols(df):
            known = train[col] >= 0
            cells[col] = (100 * float((train.loc[known, col] == 1).mean()), math.nan)
        rows.append(Row(f"{name} (this run)", f"{len(train)} training frames", cells))
        if name in paper_rates:
            paper = {f"AU{a}": (float(v), math.nan) for a, v in paper_rates[name].items()}
            rows.append(Row(f"{name} (paper)", "Table 1 of the paper", paper, "published"))
    return Table(table_id, title, columns, rows, notes, highlight_best=False)


def noise_table(
    table_id: str,
    title: str,
    records_by_rate: dict[float, list[dict]],
    methods: list[tuple[str, str]],
    flip_rates: dict[float, float],
    notes: list[str],
    similarity=None,
    ceilings: dict[str, dict] | None = None,
) -> Table:
    """F1-macro (evaluated on the true labels) of each method at each label-noise rate, the
    all-positive predictor (a reference: it needs no labels to train), the ceiling's where the
    datasets have one (``ceilings``: dataset name -> its ceiling.json) and the measured flip rate."""
    columns = [f"{100 * rate:g}% noise" for rate in records_by_rate]
    rows = {name: Row(f"{label} (this run)", "", {}) for name, label in methods}
    for rate, col in zip(records_by_rate, columns, strict=True):
        agg = aggregate(runs_frame(records_by_rate[rate])).set_index("method")
        for name, _ in methods:
            if name not in agg.index:
                raise ValueError(f"{table_id}: no runs of method '{name}' at noise {rate}")
            cell = agg.loc[name]
            rows[name].cells[col] = (100 * cell["f1_macro_mean"], 100 * cell["f1_macro_std"])
            rows[name].source = f"{int(cell['n_seeds'])} seed(s) x {int(cell['n_folds'])} fold(s)"
            own = [r for r in records_by_rate[rate] if r["run"]["method"] == name]
            why = degenerate(own, similarity)
            if why:
                rows[name].degenerate = "; ".join(filter(None, [rows[name].degenerate,
                                                               f"{col}: {why}"]))  # fmt: skip
    measured = Row(
        "Measured flip rate (%)",
        "training labels vs true labels",
        {c: (100 * flip_rates[r], math.nan) for r, c in zip(records_by_rate, columns, strict=True)},
        "reference",
    )
    reference = Row("All-positive predictor", "reference", {}, "reference")
    top = Row(CEILING, "reference", {}, "reference")
    for rate, col in zip(records_by_rate, columns, strict=True):
        recs = records_by_rate[rate]
        reference.cells[col] = all_positive_row(recs, _common_aus(table_id, recs)).cells["Avg."]
        row = ceiling_row(recs, ceilings or {}, _common_aus(table_id, recs))
        if row is not None:
            top.cells[col] = row.cells["Avg."]
    references = [reference, top] if top.cells else [reference]
    notes = [*notes[:-1], ALL_POSITIVE_NOTE + (
        " Label noise does not move it: it is scored on the true labels of the same test frames, "
        "and a model trained on noisy labels that falls below it has learned nothing the labels "
        "did not already say by their frequency."), *notes[-1:]]  # fmt: skip
    table = Table(table_id, title, columns, [*rows.values(), *references, measured], notes)
    table.mark_degenerate()
    return table


# --- helpers ------------------------------------------------------------------------------------
def _au_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("AU") and c[2:].isdigit()]


def _common_aus(table_id: str, records: list[dict]) -> list[str]:
    if not records:
        raise ValueError(f"{table_id}: no metrics files given")
    aus = list(records[0]["aus"])
    for rec in records:
        if list(rec["aus"]) != aus:
            raise ValueError(f"{table_id}: runs disagree on the AUs ({rec['aus']} vs {aus})")
    return aus


def training_set(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows Table 1 describes: every row of a cross-validated or test-only dataset, the
    ``train`` rows of a fixed split."""
    if "split" in manifest.columns and (manifest["split"] == "train").any():
        return manifest[manifest["split"] == "train"]
    return manifest


def flip_rate(manifest: pd.DataFrame) -> float:
    """Fraction of known training labels that differ from the true ones (0 without noise)."""
    train = training_set(manifest)
    cols = [c for c in _au_cols(train) if f"{c}_clean" in train.columns]
    if not cols:
        return 0.0
    noisy = train[cols].to_numpy()
    clean = train[[f"{c}_clean" for c in cols]].to_numpy()
    known = clean >= 0
    return float((noisy[known] != clean[known]).mean())


def build(table_id: str, spec: dict, read_json) -> Table:
    """Build one table from its spec (aunce.plan); the spec names its input files by role."""
    kind, inputs = spec["kind"], spec["inputs"]
    notes = list(spec.get("notes", []))
    methods = [tuple(m) for m in spec.get("methods", [])]
    published = _published_frame(spec)
    similarity = similarity_reader(spec)
    ceilings = {name: read_json(Path(folder) / "ceiling.json")
                for name, folder in (inputs.get("ceilings") or {}).items()}  # fmt: skip
    if kind in ("au_f1", "ablation", "probs"):
        records = [read_json(p) for p in inputs["metrics"]]
        extra = {"ablation": ["F1-micro", "Acc."], "probs": ["F1-micro", "Acc."]}.get(kind, [])
        table = au_f1_table(table_id, spec["title"], records, methods, notes, extra=extra,
                            similarity=similarity)  # fmt: skip
        top = ceiling_row(records, ceilings, _common_aus(table_id, records), extra)
        if top is not None:
            table.rows.append(top)
        if kind == "probs":  # Table 11 prints the average only
            table.columns = ["Avg.", "F1-micro", "Acc."]
        table.rows += published_rows(published, table.columns)
        return table
    if kind == "occurrence":
        manifests = {
            name: pd.read_csv(Path(p) / "manifest.csv") for name, p in inputs["caches"].items()
        }
        paper = {
            name: {int(a): v for a, v in rates.items()}
            for name, rates in spec["paper_rates"].items()
        }
        return occurrence_table(table_id, spec["title"], manifests, paper, notes)
    if kind == "noise":
        records = {
            float(r): [read_json(p) for p in paths] for r, paths in inputs["metrics"].items()
        }
        flips = {float(r): flip_rate(pd.read_csv(Path(p) / "manifest.csv"))
                 for r, p in inputs["caches"].items()}  # fmt: skip
        return noise_table(table_id, spec["title"], records, methods, flips, notes, similarity,
                           ceilings)  # fmt: skip
    if kind == "cross":
        return cross_table(table_id, spec, read_json, published, similarity, ceilings)
    if kind == "grid":
        return grid_table(table_id, spec, read_json, published, similarity, ceilings)
    if kind == "cost":
        return cost_table(table_id, spec, read_json)
    raise ValueError(f"{table_id}: unknown table kind '{kind}'")


def _renamed(record: dict, method: str) -> dict:
    """A metrics.json record filed under the method name of its table row."""
    return dict(record, run=dict(record["run"], method=method))


def significance(spec: dict, read_json) -> pd.DataFrame:
    """Tests between the methods a table ran (aunce.stats.significance_table: the trained model as
    the unit, pairs of the same fold and seed), Holm-corrected over the table. Empty (header only)
    when fewer than two methods ran in a cell or the kind compares nothing (occurrence, cost)."""
    from aunce.stats import COMPARISON, significance_table

    empty = pd.DataFrame(columns=[*COMPARISON, "p_holm"])
    kind = spec["kind"]
    if kind in ("occurrence", "cost") or "metrics" not in spec["inputs"]:
        return empty
    metrics = spec["inputs"]["metrics"]
    files = [p for ps in metrics.values() for p in ps] if isinstance(metrics, dict) else metrics
    if kind == "cross":  # a row's runs may differ by direction (epochs per source): the row's name
        records = [_renamed(read_json(p), name) for d in spec["directions"]
                   for name, _ in spec["methods"] for p in d["metrics"][name]]  # fmt: skip
    else:
        records = [read_json(p) for p in files]
    names = list(dict.fromkeys(r["run"]["method"] for r in records))
    if kind == "grid":
        base = spec["baseline"]
        pairs = sorted({(m, base) for m in names if m != base})
    else:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    if not pairs:
        return empty
    return significance_table(records, pairs)


def _published_frame(spec: dict) -> pd.DataFrame | None:
    """The published rows of the spec's paper table (and dataset), or None."""
    where = spec.get("published")
    if not where:
        return None
    from aunce.baselines import load_published

    frame = load_published(where["file"])
    frame = frame[frame["table"] == where["table"]]
    if where.get("dataset"):
        frame = frame[frame["dataset"] == where["dataset"]]
    frame = frame.assign(std=math.nan)
    folder = Path(where["file"]).parent
    key = ["table", "dataset", "method", "au"]
    std_file, metrics_file = folder / "published_std.csv", folder / "published_metrics.csv"
    if std_file.exists():  # the paper's printed stds under its own rows (baselines/README.md)
        std = pd.read_csv(std_file)
        frame = frame.drop(columns="std").merge(std[key + ["std"]], on=key, how="left")
    if metrics_file.exists():  # Table 10's F1-micro and accuracy
        extra = pd.read_csv(metrics_file)
        extra = extra[extra["table"] == where["table"]]
        if where.get("dataset"):
            extra = extra[extra["dataset"] == where["dataset"]]
        names = {"f1_micro": "F1-micro", "accuracy": "Acc."}
        extra = extra.assign(au=extra["metric"].map(names), f1=extra["value"], std=math.nan)
        frame = pd.concat([frame, extra[list(frame.columns)]], ignore_index=True)
    return frame


def published_rows(frame: pd.DataFrame | None, columns: list[str]) -> list[Row]:
    """One row per published method (in file order), cells where its AU/avg is a column."""
    if frame is None or frame.empty:
        return []
    rows = []
    for (method, source), group in frame.groupby(["method", "source"], sort=False):
        std = group["std"] if "std" in group else [math.nan] * len(group)
        cells = {
            ("Avg." if au == "avg" else au): (float(f1), float(sd))
            for au, f1, sd in zip(group["au"], group["f1"], std, strict=True)
        }
        cells = {c: v for c, v in cells.items() if c in columns}
        if cells:
            rows.append(Row(f"{method} (published)", f"{source}", cells, "published"))
    return rows


def cross_table(table_id: str, spec: dict, read_json, published, similarity=None,
                ceilings=None) -> Table:
    """Table 7: per direction and method, per-AU F1 on the shared AUs, beside published rows; per
    direction the ceiling of the target's test splits where the target has one."""
    aus = spec["aus"]
    rows = []
    for d in spec["directions"]:
        scored = []
        for name, label in spec["methods"]:
            records = [read_json(p) for p in d["metrics"][name]]
            scored += records
            agg = aggregate(runs_frame(records)).iloc[0]
            cells = {au: (100 * agg[f"f1_{au}_mean"], 100 * agg[f"f1_{au}_std"]) for au in aus}
            macro = runs_frame(records)[[f"f1_{au}" for au in aus]].mean(axis=1)
            per_seed = macro.groupby(runs_frame(records)["seed"]).mean()
            cells["Avg."] = (100 * per_seed.mean(), 100 * per_seed.std(ddof=1))
            source = f"{int(agg['n_seeds'])} seed(s) x {int(agg['n_folds'])} evaluation(s)"
            rows.append(Row(f"{label} (this run), {d['label']}", source, cells,
                            degenerate=degenerate(records, similarity, aus)))  # fmt: skip
        top = ceiling_row(scored, ceilings or {}, aus)
        if top is not None:
            top.label = f"{top.label}, {d['label']}"
            rows.append(top)
        if published is not None:
            for row in published_rows(published[published["dataset"] == d["name"]], aus + ["Avg."]):
                row.label = f"{row.label}, {d['name']}"
                rows.append(row)
    table = Table(table_id, spec["title"], aus + ["Avg."], rows, list(spec["notes"]))
    table.mark_degenerate()
    return table


def grid_table(table_id: str, spec: dict, read_json, published, similarity=None,
               ceilings=None) -> Table:
    """Table 8: F1-macro per (encoder, loss) and dataset, with the gain over the baseline loss; the
    ceiling of each dataset's test splits where the dataset has one."""
    datasets = spec["datasets"]
    columns = [c for ds in datasets for c in (ds, f"{ds} gain")]
    rows: dict[tuple[str, str], Row] = {}
    means: dict[tuple[str, str, str], float] = {}
    scored: dict[str, list[dict]] = {}
    for cell in spec["cells"]:
        records = [read_json(p) for p in cell["metrics"]]
        scored.setdefault(cell["dataset"], []).extend(records)
        agg = aggregate(runs_frame(records)).iloc[0]
        key = (cell["encoder"], cell["method"])
        label = f"{cell['encoder_label']} + {cell['loss_label']} (this run)"
        source = f"{int(agg['n_seeds'])} seed(s) x {int(agg['n_folds'])} fold(s)"
        row = rows.setdefault(key, Row(label, source, {}))
        why = degenerate(records, similarity)
        if why:
            row.degenerate = "; ".join(filter(None, [row.degenerate, f"{cell['dataset']}: {why}"]))
        row.cells[cell["dataset"]] = (100 * agg["f1_macro_mean"], 100 * agg["f1_macro_std"])
        means[(cell["encoder"], cell["method"], cell["dataset"])] = 100 * agg["f1_macro_mean"]
    for (enc, _method), row in rows.items():
        for ds in datasets:
            base = means.get((enc, spec["baseline"], ds))
            if base is not None and ds in row.cells:
                row.cells[f"{ds} gain"] = (row.cells[ds][0] - base, math.nan)
    out = list(rows.values())
    top = Row(CEILING, "reference", {}, "reference")
    for ds, records in scored.items():
        row = ceiling_row(records, ceilings or {}, _common_aus(table_id, records))
        if row is not None:
            top.cells[ds] = row.cells["Avg."]
    if top.cells:
        out.append(top)
    if published is not None and not published.empty:
        kinds = {c["dataset"]: c["published_dataset"] for c in spec["cells"]}
        for (method, source), group in published.groupby(["method", "source"], sort=False):
            cells = {}
            for ds in datasets:
                hit = group[(group["dataset"] == kinds[ds]) & (group["au"] == "avg")]
                if len(hit):
                    cells[ds] = (float(hit["f1"].iloc[0]), math.nan)
            if cells:
                origin = source if source == "this paper" else f"{source} (encoder), via the paper"
                out.append(Row(f"{method} (published)", origin, cells, "published"))
    table = Table(table_id, spec["title"], columns, out, list(spec["notes"]))
    table.mark_degenerate()
    return table


COST_COLUMNS = ["complexity", "frames/s", "views/s", "s/frame", "s/epoch", "time vs first"]


def cost_table(table_id: str, spec: dict, read_json) -> Table:
    """Table 9: training cost per dataset and loss, in explicit units. ``frames/s`` counts frames,
    ``views/s`` the images the encoder processed (two per frame for AUNCE), ``s/frame`` is the
    paper's "Frame Rate" unit, ``s/epoch`` its epoch time, ``time vs first`` the epoch time over
    the first row's of the dataset; ``complexity`` the loss's cost per batch (aunce.plan.LOSS_COST).
    With ``published_cost`` the paper's own rows (baselines/published_cost.csv) follow, their
    frames/s and views/s derived from its seconds per frame."""
    rows, first = [], {}
    for r in spec["rows"]:
        timings = [read_json(p) for p in r["timing"]]
        fps = np.array([t["frames_per_second"] for t in timings], float)
        sec = np.array([t["epoch_seconds"] for t in timings], float)
        std = lambda x: float(x.std(ddof=1)) if len(x) > 1 else math.nan  # noqa: E731
        first.setdefault(r["dataset"], sec.mean())
        views = r.get("views", 1)
        cells = {
            "complexity": r.get("complexity", "-"),
            "frames/s": (float(fps.mean()), std(fps)),
            "views/s": (float(views * fps.mean()), std(views * fps)),
            "s/frame": (float((1 / fps).mean()), std(1 / fps)),
            "s/epoch": (float(sec.mean()), std(sec)),
            "time vs first": (float(sec.mean() / first[r["dataset"]]), math.nan),
        }
        rows.append(
            Row(f"{r['label']} on {r['dataset']} (this run)", f"{len(timings)} run(s)", cells)
        )
    if spec.get("published_cost"):
        rows += published_cost_rows(spec)
    return Table(table_id, spec["title"], COST_COLUMNS, rows, list(spec["notes"]), False, 1,
                 {"s/frame": 4, "time vs first": 2})  # fmt: skip


def published_cost_rows(spec: dict) -> list[Row]:
    """The paper's Table 9 for the datasets and losses of the spec's rows (by published dataset
    and loss), in the same units."""
    from aunce.baselines import load_published_cost

    wanted = {(r.get("published_dataset", r["dataset"]), r["loss"]): r for r in spec["rows"]}
    out, first = [], {}
    for p in load_published_cost(spec["published_cost"]):
        r = wanted.get((p["dataset"], p["method"].lower()))
        if r is None:
            continue
        spf, epoch = p["seconds_per_frame"], p["epoch_seconds"]
        first.setdefault(p["dataset"], epoch)
        out.append(Row(
            f"{p['method']} on {p['dataset']} (published)", f"{p['source']}, RTX 3090",
            {"complexity": r.get("complexity", "-"), "frames/s": (1 / spf, math.nan),
             "views/s": (r.get("views", 1) / spf, math.nan), "s/frame": (spf, math.nan),
             "s/epoch": (epoch, math.nan), "time vs first": (epoch / first[p["dataset"]], math.nan)},
            "published",
        ))  # fmt: skip
    return out


# --- rendering ----------------------------------------------------------------------------------
def _fmt(mean: float, std: float, bold: bool, latex: bool, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    m = f"{mean:.{digits}f}"
    if bold:
        m = f"\\textbf{{{m}}}" if latex else f"**{m}**"
    if math.isnan(std):
        return m
    return f"{m} $\\pm$ {std:.{digits}f}" if latex else f"{m} ± {std:.{digits}f}"


def _body(table: Table, latex: bool) -> tuple[list[str], list[list[str]]]:
    best = table.best() if table.highlight_best else {}
    header = ["", "Source"] + table.columns
    body = []
    for r in table.rows:
        line = [r.label + (" [degenerate]" if r.degenerate else ""), r.source]
        for col in table.columns:
            if isinstance(r.cells.get(col), str):
                line.append(r.cells[col])
                continue
            mean, std = r.cells.get(col, NAN)
            top = best.get((r.kind, col))
            is_best = (
                top is not None
                and not math.isnan(mean)
                and round(mean, table.digits) == round(top, table.digits)
            )
            line.append(_fmt(mean, std, is_best, latex, table.column_digits.get(col, table.digits)))
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
    esc = str.maketrans({"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "^": r"\^{}"})
    cells = [
        [c if "$" in c or "\\textbf" in c else c.translate(esc) for c in line] for line in body
    ]
    frame = pd.DataFrame(cells, columns=[h.translate(esc) for h in header])
    tabular = frame.style.hide(axis="index").to_latex(
        hrules=True, column_format="ll" + "r" * len(table.columns)
    )
    notes = "".join(f"% {n}\n" for n in table.notes)
    return f"% {table.title}\n{notes}{tabular}"
