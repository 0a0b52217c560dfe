"""The paper's published numbers (baselines/published.csv) and an audit of their printed averages.

Source: the paper's Tables 2-8, 10 and 11 (F1 in percent), one value per row, and the per-fold logs
of the authors' released code (table ``variants``); baselines/README.md records how each table was
read from the extracted text. The audit checks what the paper promises
in Section 4.1.3: "Avg." (F1-macro) is the mean of the per-AU F1 scores of the same row.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pandas as pd

from aunce import AunceError
from aunce.data.catalog import CROSS_DATASET_AUS, DATASET_AUS

COLUMNS = ("table", "dataset", "method", "source", "au", "f1")
AUDIT_COLUMNS = ("table", "dataset", "method", "printed", "recomputed")
TABLES = (
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "table8",
    "table10",
    "table11",
    "variants",  # not a paper table: the released code's per-fold logs (baselines/README.md)
)
#: Table 7 evaluates across datasets, on the AUs BP4D and GFT share.
CROSS_DATASETS = ("bp4d->gft", "gft->bp4d")
DATASETS = (*DATASET_AUS, *CROSS_DATASETS)
KEY = ("table", "dataset", "method", "au")
#: A printed average and the mean of its printed per-AU values, each rounded to one decimal, may
#: differ by half a unit of the last printed digit before the difference is more than rounding.
ROUNDING = 0.05


def _aus_of(dataset: str) -> list[int]:
    return CROSS_DATASET_AUS if dataset in CROSS_DATASETS else DATASET_AUS[dataset]


def load_published(path: str | os.PathLike) -> pd.DataFrame:
    """Read published.csv strictly: one F1 value (percent) per (table, dataset, method, au).

    ``au`` is ``AU<n>`` for a per-AU cell, with ``n`` in the dataset's AU list, or ``avg`` for the
    printed average (F1-macro). Raises :class:`aunce.AunceError` naming the file and line of the
    first problem: a wrong header, a row of the wrong width, an unknown table, dataset or AU, an
    empty method or source, a non-numeric F1 or a repeated (table, dataset, method, au).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _parse(path, csv.reader(handle))
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise AunceError(f"{path}: cannot read ({err})") from None


def _parse(path: Path, reader) -> pd.DataFrame:
    def fail(message: str) -> AunceError:
        return AunceError(f"{path}: line {max(reader.line_num, 1)}: {message}")

    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise fail(f"header must be '{','.join(COLUMNS)}', got '{','.join(header or [])}'")
    rows: list[dict] = []
    seen: dict[tuple, int] = {}
    for fields in reader:
        if len(fields) != len(COLUMNS):
            raise fail(f"expected {len(COLUMNS)} fields, got {len(fields)}")
        row = dict(zip(COLUMNS, (field.strip() for field in fields), strict=True))
        if row["table"] not in TABLES:
            raise fail(f"unknown table '{row['table']}' (known: {', '.join(TABLES)})")
        if row["dataset"] not in DATASETS:
            raise fail(f"unknown dataset '{row['dataset']}' (known: {', '.join(DATASETS)})")
        for column in ("method", "source"):
            if not row[column]:
                raise fail(f"empty {column}")
        if row["au"] != "avg" and row["au"] not in {f"AU{n}" for n in _aus_of(row["dataset"])}:
            raise fail(f"'{row['au']}' is neither 'avg' nor an AU of {row['dataset']}")
        try:
            f1 = float(row["f1"])
        except ValueError:
            raise fail(f"f1 '{row['f1']}' is not a number") from None
        if not math.isfinite(f1):
            raise fail(f"f1 '{row['f1']}' is not a finite number")
        row["f1"] = f1
        key = tuple(row[column] for column in KEY)
        if key in seen:
            raise fail(f"duplicate of line {seen[key]} ({', '.join(key)})")
        seen[key] = reader.line_num
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"f1": float})


def audit(frame: pd.DataFrame, tolerance: float = ROUNDING) -> pd.DataFrame:
    """Rows whose printed ``avg`` differs from the mean of their printed per-AU F1 by > tolerance.

    One row per (table, dataset, method) with both an ``avg`` and per-AU values, in the order they
    first appear; ``recomputed`` is that mean to two decimals. Rows that print only an average
    (Tables 8 and 11) or only per-AU values have nothing to audit.
    """
    group = ["table", "dataset", "method"]
    per_au = frame[frame["au"] != "avg"].groupby(group, sort=False)["f1"].mean()
    printed = frame[frame["au"] == "avg"].set_index(group)["f1"]
    both = per_au.rename("recomputed").to_frame().join(printed.rename("printed"), how="inner")
    # the 1e-9 keeps a difference of exactly 0.05 (61.15 vs 61.1, 0.0500000000004 in floats) inside
    disagree = both[(both["printed"] - both["recomputed"]).abs() > tolerance + 1e-9]
    out = disagree.reset_index()
    out["recomputed"] = out["recomputed"].round(2)
    return out[list(AUDIT_COLUMNS)].reset_index(drop=True)


def render_audit(frame: pd.DataFrame) -> str:
    """The audit as CSV text with the header ``table,dataset,method,printed,recomputed``."""
    return frame[list(AUDIT_COLUMNS)].to_csv(index=False, lineterminator="\n")


#: Published rows that are one model in the harness (aunce.plan runs equal settings once, and
#: tests/test_plan.py checks it merges these): ``(row, same row, why)``, rows as (table, dataset,
#: method) of published.csv.
SAME_MODEL = (
    (("table11", "bp4d", "(1,0,0,0)"), ("table10", "bp4d", "D"),
     "AU weights, betas 1.2 / 0.4, only the most similar positive"),
    (("table11", "bp4d", "(0.15,0.15,0.7,0)"), ("table2", "bp4d", "AUNCE"),
     "the full model (Table 10's E)"),
    (("table8", "bp4d", "MEGraph (Onestage) + AUNCE"), ("table2", "bp4d", "AUNCE"),
     "the full model, MEGraph encoder"),
    (("table8", "disfa", "MEGraph (Onestage) + AUNCE"), ("table3", "disfa", "AUNCE"),
     "the full model, MEGraph encoder"),
)  # fmt: skip
SAME_MODEL_COLUMNS = ("table", "dataset", "method", "printed", "same_as", "same_as_printed", "why")


def same_model_audit(frame: pd.DataFrame, tolerance: float = ROUNDING) -> pd.DataFrame:
    """Printed averages of rows that are the same model (:data:`SAME_MODEL`) and differ by more
    than rounding, one row per pair: the paper contradicting itself, not a harness finding.
    ``same_as`` names the other row as ``table/method``."""
    printed = frame[frame["au"] == "avg"].set_index(["table", "dataset", "method"])["f1"]
    rows = []
    for row, other, why in SAME_MODEL:
        if row in printed.index and other in printed.index:
            a, b = float(printed[row]), float(printed[other])
            if abs(a - b) > tolerance + 1e-9:
                rows.append((*row, a, f"{other[0]}/{other[2]}", b, why))
    return pd.DataFrame(rows, columns=list(SAME_MODEL_COLUMNS))


def render_same_model_audit(frame: pd.DataFrame) -> str:
    return frame[list(SAME_MODEL_COLUMNS)].to_csv(index=False, lineterminator="\n")


def load_published_cost(path: str | Path) -> list[dict]:
    """The paper's Table 9 (baselines/published_cost.csv): one row per dataset and loss with
    ``seconds_per_frame`` and ``epoch_seconds``; a malformed row is an error naming the line."""
    path = Path(path)
    header = ["table", "dataset", "method", "source", "seconds_per_frame", "epoch_seconds"]
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            if next(reader, None) != header:
                raise AunceError(f"{path}: line 1: header must be '{','.join(header)}'")
            rows = []
            for fields in reader:
                if len(fields) != len(header):
                    raise AunceError(f"{path}: line {reader.line_num}: expected 6 fields")
                row = dict(zip(header, fields, strict=True))
                try:
                    for key in ("seconds_per_frame", "epoch_seconds"):
                        row[key] = float(row[key])
                except ValueError:
                    raise AunceError(
                        f"{path}: line {reader.line_num}: '{row[key]}' is not a number"
                    ) from None
                rows.append(row)
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    return rows
