import re
from pathlib import Path

import pandas as pd
import pytest

from aunce import AunceError
from aunce.baselines import (
    AUDIT_COLUMNS,
    COLUMNS,
    SAME_MODEL_COLUMNS,
    audit,
    load_published,
    render_audit,
    render_same_model_audit,
    same_model_audit,
)
from aunce.cli import main
from aunce.data.catalog import CROSS_DATASET_AUS, DATASET_AUS

REPO = Path(__file__).resolve().parent.parent
PUBLISHED = REPO / "baselines" / "published.csv"
METRICS = REPO / "baselines" / "published_metrics.csv"
STD = REPO / "baselines" / "published_std.csv"
PAPER = Path("/work/shared/paper/aunce-paper.txt")
HEADER = ",".join(COLUMNS)


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load_published(PUBLISHED)


def _f1(frame, table, dataset, method, au):
    cell = frame[
        (frame["table"] == table)
        & (frame["dataset"] == dataset)
        & (frame["method"] == method)
        & (frame["au"] == au)
    ]
    assert len(cell) == 1, (table, dataset, method, au)
    return cell["f1"].item()


def test_published_parses_with_exact_columns(published):
    assert list(published.columns) == list(COLUMNS)
    assert published["f1"].dtype == float
    assert PUBLISHED.read_text().splitlines()[0] == HEADER
    assert published["f1"].between(0, 100).all()
    own = published[published["method"].isin(["AUNCE", "WCE"]) & published["table"].ne("table8")]
    assert set(own["source"]) == {"this paper"}


# (methods, values per method) as printed; Table 8 prints averages only, Table 10's model E has
# no printed F1-macro, Table 11 one average per probability setting
ROW_COUNTS = {
    "table2": 19 * 13,
    "table3": 19 * 9,
    "table4": 5 * 13,
    "table5": 9 * 11,
    "table6": 5 * 13,
    "table7": 2 * 4 * 11,
    "table8": 4 * 2 * 2 + 2,
    "table10": 5 * 12 + 4,
    "table11": 10,
    "variants": 6 * 13 + 3 * 9,  # the released code's logs: BP4D (two versions) and DISFA, per fold
}


def test_row_counts_per_table(published):
    assert published.groupby("table").size().to_dict() == ROW_COUNTS
    assert len(published) == 932


def test_methods_per_table(published):
    def methods(table, dataset):
        rows = published[(published["table"] == table) & (published["dataset"] == dataset)]
        return list(dict.fromkeys(rows["method"]))

    assert methods("table2", "bp4d") == [
        "MAL", "JA-Net", "GeoConv", "MMA-Net", "SEV-Net", "ETDF", "ARL", "AC2D", "ESCDA",
        "AAR", "MEGraph", "SACL", "SimCLR", "MoCo", "EmoCo", "CLP", "KSRL", "CLEF", "AUNCE",
    ]  # fmt: skip
    assert methods("table3", "disfa") == [
        "MAL", "GeoConv", "JA-Net", "SEV-Net", "ETDF", "GLEE-Net", "ROI", "ARL", "AC2D",
        "MEGraph", "AAR", "SACL", "SIMCLR", "MoCo", "CLP", "EmoCo", "KSRL", "CLEF", "AUNCE",
    ]  # fmt: skip
    assert methods("table4", "bp4d_plus") == ["ARL", "JA-Net", "AC2D", "GLEE-Net", "AUNCE"]
    assert methods("table5", "gft") == [
        "MoCo", "SimCLR", "ARL", "JA-Net", "CLP", "AAR", "MAL", "AC2D", "AUNCE",
    ]  # fmt: skip
    assert methods("table6", "affwild2") == ["ARL", "JA-Net", "AAR", "AC2D", "AUNCE"]
    assert methods("table7", "bp4d->gft") == ["D2CA", "AC2D", "WCE", "AUNCE"]
    assert methods("table7", "gft->bp4d") == ["WCE", "AC2D", "D2CA", "AUNCE"]
    assert methods("table10", "bp4d") == ["A", "B", "C", "D", "E"]
    assert methods("table11", "bp4d") == [
        "(1,0,0,0)", "(0,1,0,0)", "(0,0,1,0)", "(0,0,0,1)", "(0.1,0.1,0.8,0)",
        "(0.15,0.15,0.7,0)", "(0.2,0.2,0.6,0)", "(0.25,0.25,0.5,0)", "(0.3,0.3,0.4,0)",
        "(0.4,0.4,0.2,0)",
    ]  # fmt: skip


def test_every_au_belongs_to_its_dataset(published):
    for (table, dataset), rows in published.groupby(["table", "dataset"]):
        aus = CROSS_DATASET_AUS if table == "table7" else DATASET_AUS[dataset]
        allowed = {f"AU{n}" for n in aus} | {"avg"}
        assert set(rows["au"]) <= allowed, (table, dataset)
        if table in ("table8", "table11"):
            assert set(rows["au"]) == {"avg"}
        else:  # every method of a per-AU table prints every AU of the header
            for method, cells in rows.groupby("method"):
                assert {f"AU{n}" for n in aus} <= set(cells["au"]), (table, dataset, method)


# Typed from the paper text by hand, independently of how published.csv was produced.
SPOT_CHECKS = [
    ("table2", "bp4d", "MAL", "AU1", 47.9),
    ("table2", "bp4d", "GeoConv", "AU15", 53.0),
    ("table2", "bp4d", "ESCDA", "AU23", 52.5),
    ("table2", "bp4d", "MEGraph", "AU14", 69.4),
    ("table2", "bp4d", "SimCLR", "avg", 49.8),
    ("table2", "bp4d", "CLEF", "AU4", 63.3),
    ("table2", "bp4d", "AUNCE", "AU12", 89.6),
    ("table2", "bp4d", "AUNCE", "avg", 66.1),
    ("table3", "disfa", "GLEE-Net", "AU4", 75.8),
    ("table3", "disfa", "ROI", "AU9", 80.5),
    ("table3", "disfa", "SIMCLR", "AU1", 21.2),
    ("table3", "disfa", "SEV-Net", "AU25", 95.7),
    ("table3", "disfa", "AUNCE", "AU26", 64.2),
    ("table3", "disfa", "AUNCE", "avg", 66.4),
    ("table4", "bp4d_plus", "GLEE-Net", "AU14", 76.6),
    ("table4", "bp4d_plus", "AUNCE", "AU10", 94.7),
    ("table4", "bp4d_plus", "AUNCE", "avg", 62.8),
    ("table5", "gft", "ARL", "AU14", 0.1),
    ("table5", "gft", "SimCLR", "AU4", 5.6),
    ("table5", "gft", "AUNCE", "AU24", 58.9),
    ("table5", "gft", "AUNCE", "avg", 63.0),
    ("table6", "affwild2", "JA-Net", "AU23", 1.4),
    ("table6", "affwild2", "AC2D", "AU24", 29.2),
    ("table6", "affwild2", "AUNCE", "AU25", 96.1),
    ("table6", "affwild2", "AUNCE", "avg", 62.2),
    ("table7", "bp4d->gft", "D2CA", "AU14", 7.6),
    ("table7", "bp4d->gft", "WCE", "avg", 42.6),
    ("table7", "bp4d->gft", "AUNCE", "AU2", 50.1),
    ("table7", "bp4d->gft", "AUNCE", "avg", 45.2),
    ("table7", "gft->bp4d", "WCE", "AU6", 20.4),
    ("table7", "gft->bp4d", "D2CA", "AU12", 71.1),
    ("table7", "gft->bp4d", "AUNCE", "AU24", 65.9),
    ("table7", "gft->bp4d", "AUNCE", "avg", 43.7),
    ("table8", "bp4d", "ResNet50 + WFL", "avg", 57.7),
    ("table8", "disfa", "ROI + WFL", "avg", 50.6),
    ("table8", "disfa", "MEGraph (Onestage) + WCE", "avg", 60.8),
    ("table8", "bp4d", "MEGraph (Onestage) + AUNCE", "avg", 66.1),
    ("table8", "disfa", "MEGraph (Onestage) + AUNCE", "avg", 66.4),
    ("table10", "bp4d", "A", "AU24", 43.4),
    ("table10", "bp4d", "C", "avg", 63.8),
    ("table10", "bp4d", "D", "AU23", 50.0),
    ("table10", "bp4d", "E", "AU1", 53.6),
    ("table11", "bp4d", "(0,0,0,1)", "avg", 17.6),
    ("table11", "bp4d", "(0.15,0.15,0.7,0)", "avg", 66.1),
    ("table11", "bp4d", "(0.4,0.4,0.2,0)", "avg", 58.8),
    # the released code's linear_test.log files (results/Graphau_<ds>_swin_nce_step_<fold>/)
    ("variants", "bp4d", "AUNCE released code fold 1", "avg", 65.35),
    ("variants", "bp4d", "AUNCE released code fold 3", "AU24", 62.65),
    ("variants", "disfa", "AUNCE released code fold 2", "AU9", 42.70),
    ("variants", "disfa", "AUNCE released code fold 3", "avg", 70.61),
    ("variants", "bp4d", "AUNCE first release fold 2", "avg", 67.05),
]


def test_released_logs_average_to_the_papers_megraph_rows(published):
    """The mean over folds of the released logs is what the paper prints for MEGraph + AUNCE
    (66.1 on BP4D, 66.4 on DISFA): one seed per fold, no spread over runs."""
    logs = published[(published["table"] == "variants") & (published["au"] == "avg")]
    for dataset, paper in (("bp4d", 66.1), ("disfa", 66.4)):
        folds = logs[(logs["dataset"] == dataset)
                     & logs["method"].str.startswith("AUNCE released code")]  # fmt: skip
        assert len(folds) == 3 and round(folds["f1"].mean(), 1) == paper


def test_spot_checked_values(published):
    assert len(SPOT_CHECKS) >= 25
    assert {t for t, *_ in SPOT_CHECKS} == set(ROW_COUNTS)
    for table, dataset, method, au, f1 in SPOT_CHECKS:
        assert _f1(published, table, dataset, method, au) == f1, (table, dataset, method, au)


def test_cells_lost_in_extraction_are_left_out(published):
    table8 = published[published["table"] == "table8"]
    assert set(table8.loc[table8["method"].str.endswith("+ AUNCE"), "method"]) == {
        "MEGraph (Onestage) + AUNCE"
    }
    # the paper's own numbers (Sec. 4.3.1), not the encoder's 2022 IJCAI paper
    assert set(table8.loc[table8["method"].str.endswith("+ AUNCE"), "source"]) == {"this paper"}
    e = published[(published["table"] == "table10") & (published["method"] == "E")]
    assert "avg" not in set(e["au"]) and len(e) == 12


def test_printed_gains_match_the_printed_values(published):
    # Table 8 prints WFL as "57.71.5↑": the gain over WCE of the same encoder and dataset
    gains = {
        ("ResNet50", "bp4d"): 1.5,
        ("ResNet50", "disfa"): 1.8,
        ("ROI", "bp4d"): 0.6,
        ("ROI", "disfa"): 2.1,
        ("JA-Net", "bp4d"): 1.4,
        ("JA-Net", "disfa"): 0.1,
        ("MEGraph (Onestage)", "bp4d"): 0.6,
        ("MEGraph (Onestage)", "disfa"): 1.0,
    }
    for (encoder, dataset), gain in gains.items():
        wfl = _f1(published, "table8", dataset, f"{encoder} + WFL", "avg")
        wce = _f1(published, "table8", dataset, f"{encoder} + WCE", "avg")
        assert wfl - wce == pytest.approx(gain), (encoder, dataset)
    # Table 10 prints B-D's F1-macro with its gain over model A
    a = _f1(published, "table10", "bp4d", "A", "avg")
    for model, gain in {"B": 0.9, "C": 3.7, "D": 4.0}.items():
        assert _f1(published, "table10", "bp4d", model, "avg") - a == pytest.approx(gain)


def test_section_4_2_1_quotes_the_printed_averages(published):
    avg = (
        published[(published["table"] == "table2") & (published["au"] == "avg")]
        .set_index("method")["f1"]
        .to_dict()
    )
    ours = avg.pop("AUNCE")
    quoted = {"MAL": 3.9, "JA-Net": 3.7, "GeoConv": 2.5, "MMA-Net": 2.7, "SEV-Net": 2.2}
    quoted |= {"ETDF": 1.0, "ARL": 5.0, "ESCDA": 0.6, "AAR": 2.3, "SACL": 0.5}
    quoted |= {"CLEF": 0.2, "SimCLR": 16.3}
    for method, gain in quoted.items():
        assert ours - avg[method] == pytest.approx(gain), method


def test_metrics_and_std_files():
    metrics = pd.read_csv(METRICS)
    assert list(metrics.columns) == ["table", "dataset", "method", "source", "metric", "value"]
    got = {(r.method, r.metric): r.value for r in metrics.itertuples()}
    assert got == {
        ("A", "f1_micro"): 57.0,
        ("A", "accuracy"): 79.1,
        ("B", "f1_micro"): 57.2,
        ("B", "accuracy"): 79.3,
        ("C", "f1_micro"): 57.6,
        ("C", "accuracy"): 79.8,
        ("D", "f1_micro"): 57.7,
        ("D", "accuracy"): 79.9,
    }
    std = pd.read_csv(STD)
    assert list(std.columns) == ["table", "dataset", "method", "au", "std"]
    assert std.groupby(["table", "dataset"]).size().to_dict() == {
        ("table2", "bp4d"): 13,
        ("table4", "bp4d_plus"): 13,
        ("table6", "affwild2"): 13,
    }
    assert set(std["method"]) == {"AUNCE"}
    assert not std.duplicated(["table", "dataset", "method", "au"]).any()
    for (_, dataset), rows in std.groupby(["table", "dataset"]):
        assert list(rows["au"]) == [f"AU{n}" for n in DATASET_AUS[dataset]] + ["avg"]
    first_last = {t: (r["std"].iloc[0], r["std"].iloc[-1]) for t, r in std.groupby("table")}
    assert first_last == {"table2": (0.15, 0.17), "table4": (0.25, 0.29), "table6": (0.25, 0.29)}


@pytest.mark.skipif(not PAPER.exists(), reason="the paper text is not available here")
def test_every_value_appears_in_the_paper_text():
    text = PAPER.read_text()
    # a WFL or ablation cell prints the value glued to its gain ("57.71.5↑"), so also accept a
    # number at the start of such a run of digits
    numbers = set(re.findall(r"(?<![\d.])\d+\.\d", text))
    raw = PUBLISHED.read_text().splitlines()[1:]
    # the variants rows come from the released code's logs, not from the paper
    missing = [
        line
        for line in raw
        if not line.startswith("variants,") and line.rsplit(",", 1)[1] not in numbers
    ]
    assert missing == []
    metrics = pd.read_csv(METRICS, dtype=str)
    std = pd.read_csv(STD, dtype=str)
    assert set(metrics["value"]) <= numbers
    assert all(f"{v})" in text for v in std["std"])


def _write(tmp_path, *lines) -> Path:
    path = tmp_path / "published.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = "table2,bp4d,MAL,2023 TAC,AU1,47.9"


@pytest.mark.parametrize(
    "lines,line,message",
    [
        (["table,dataset,method,source,au,F1", GOOD], 1, "header must be"),
        (["table,dataset,method,source,au", GOOD], 1, "header must be"),
        ([HEADER, "table9,bp4d,MAL,2023 TAC,AU1,47.9"], 2, "unknown table 'table9'"),
        ([HEADER, GOOD, "table2,bp4d,MAL,2023 TAC,AU2,n/a"], 3, "f1 'n/a' is not a number"),
        ([HEADER, GOOD, "table2,bp4d,MAL,2023 TAC,AU2,"], 3, "f1 '' is not a number"),
        ([HEADER, GOOD, "table2,bp4d,MAL,2023 TAC,AU2,nan"], 3, "not a finite number"),
        ([HEADER, GOOD, "table2,bp4d,MAL,2021 X,AU1,48.0"], 3, "duplicate of line 2"),
        ([HEADER, "table2,bp4d,MAL,2023 TAC,AU1"], 2, "expected 6 fields, got 5"),
        ([HEADER, "table2,bp4d_x,MAL,2023 TAC,AU1,47.9"], 2, "unknown dataset 'bp4d_x'"),
        ([HEADER, "table2,bp4d,MAL,2023 TAC,AU25,47.9"], 2, "'AU25' is neither"),
        ([HEADER, "table7,bp4d->gft,AC2D,2025 IJCV,AU7,1.0"], 2, "'AU7' is neither"),
        ([HEADER, "table2,bp4d,,2023 TAC,AU1,47.9"], 2, "empty method"),
    ],
)
def test_load_is_strict(tmp_path, lines, line, message):
    path = _write(tmp_path, *lines)
    with pytest.raises(AunceError) as err:
        load_published(path)
    assert str(err.value).startswith(f"{path}: line {line}: ")
    assert message in str(err.value)


def test_load_missing_or_empty_file(tmp_path):
    with pytest.raises(AunceError, match="file not found"):
        load_published(tmp_path / "nope.csv")
    with pytest.raises(AunceError, match="line 1: header must be"):
        load_published(_write(tmp_path))


def test_load_header_only_gives_an_empty_frame(tmp_path):
    frame = load_published(_write(tmp_path, HEADER))
    assert frame.empty and list(frame.columns) == list(COLUMNS)
    assert render_audit(audit(frame)) == ",".join(AUDIT_COLUMNS) + "\n"


def _frame(rows):
    return pd.DataFrame(
        [(t, "bp4d", m, "x", au, f1) for t, m, au, f1 in rows], columns=list(COLUMNS)
    )


def test_audit_on_a_hand_made_frame():
    frame = _frame(
        [
            ("table2", "exact", "AU1", 60.0),  # mean 61.0, printed 61.0
            ("table2", "exact", "AU2", 62.0),
            ("table2", "exact", "avg", 61.0),
            ("table2", "rounded", "AU1", 60.1),  # mean 60.15, printed 60.1: rounding
            ("table2", "rounded", "AU2", 60.2),
            ("table2", "rounded", "avg", 60.1),
            ("table2", "off", "AU1", 50.0),  # mean 50.5, printed 50.7
            ("table2", "off", "AU2", 51.0),
            ("table2", "off", "avg", 50.7),
            ("table3", "low", "AU1", 40.0),  # mean 40.0, printed 39.9 (beyond 0.05)
            ("table3", "low", "AU2", 40.0),
            ("table3", "low", "avg", 39.9),
            ("table8", "only-avg", "avg", 55.0),
            ("table10", "only-aus", "AU1", 70.0),
            ("table10", "third", "AU1", 10.0),  # mean 11.0, printed 12.0
            ("table10", "third", "AU2", 11.0),
            ("table10", "third", "AU4", 12.0),
            ("table10", "third", "avg", 12.0),
        ]
    )
    result = audit(frame)
    assert list(result.columns) == list(AUDIT_COLUMNS)
    assert result.values.tolist() == [
        ["table2", "bp4d", "off", 50.7, 50.5],
        ["table3", "bp4d", "low", 39.9, 40.0],
        ["table10", "bp4d", "third", 12.0, 11.0],
    ]
    assert render_audit(result) == (
        "table,dataset,method,printed,recomputed\n"
        "table2,bp4d,off,50.7,50.5\n"
        "table3,bp4d,low,39.9,40.0\n"
        "table10,bp4d,third,12.0,11.0\n"
    )
    assert audit(frame, tolerance=1.0).values.tolist() == []


# Printed averages that disagree with their own per-AU values (findings about the paper, listed
# in baselines/README.md)
FINDINGS = [
    ["table2", "bp4d", "MAL", 62.2, 62.13],
    ["table3", "disfa", "ROI", 48.5, 57.41],
    ["table4", "bp4d_plus", "AUNCE", 62.8, 62.55],
    ["table7", "gft->bp4d", "AUNCE", 43.7, 43.36],
    ["table10", "bp4d", "C", 63.8, 63.91],
]


def test_audit_of_the_published_numbers(published):
    assert audit(published).values.tolist() == FINDINGS
    readme = (REPO / "baselines" / "README.md").read_text()
    for table, dataset, method, printed, recomputed in FINDINGS:
        assert f"| {table} | {dataset} | {method} | {printed} | {recomputed} |" in readme


#: The paper contradicting itself: one model, two printed averages (the plan runs it once).
SAME_MODEL_FINDINGS = [
    ["table11", "bp4d", "(1,0,0,0)", 60.1, "table10/D", 64.1,
     "AU weights, betas 1.2 / 0.4, only the most similar positive"],
]  # fmt: skip


def test_same_model_audit_of_the_published_numbers(published):
    found = same_model_audit(published)
    assert list(found.columns) == list(SAME_MODEL_COLUMNS)
    # so the other pairs agree: Table 11's (0.15, 0.15, 0.7, 0) and Table 8's AUNCE cells are the
    # full model's 66.1 (BP4D) and 66.4 (DISFA), as Tables 2 and 3 print them
    assert found.values.tolist() == SAME_MODEL_FINDINGS
    readme = (REPO / "baselines" / "README.md").read_text()
    assert "| table11 | bp4d | (1,0,0,0) | 60.1 | table10/D | 64.1 |" in readme


def test_same_model_audit_on_a_hand_made_frame():
    rows = [("table11", "(1,0,0,0)", "avg", 60.1), ("table10", "D", "avg", 60.14),
            ("table2", "AUNCE", "avg", 66.1), ("table11", "(0.15,0.15,0.7,0)", "avg", 65.0)]
    frame = _frame(rows)  # fmt: skip
    found = same_model_audit(frame)
    assert found[["table", "method", "printed", "same_as", "same_as_printed"]].values.tolist() == [
        ["table11", "(0.15,0.15,0.7,0)", 65.0, "table2/AUNCE", 66.1]
    ]  # 60.1 vs 60.14 is rounding


def test_cli_audit(capsys, tmp_path):
    assert main(["audit", str(PUBLISHED)]) == 0
    out = capsys.readouterr().out
    assert out == render_audit(
        pd.DataFrame(FINDINGS, columns=list(AUDIT_COLUMNS))
    ) + "\n" + render_same_model_audit(
        pd.DataFrame(SAME_MODEL_FINDINGS, columns=list(SAME_MODEL_COLUMNS))
    )
    assert out.splitlines()[0] == "table,dataset,method,printed,recomputed"
    bad = _write(tmp_path, HEADER, "table12,bp4d,MAL,2023 TAC,AU1,47.9")
    assert main(["audit", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"aunce audit: error: {bad}: line 2: unknown table 'table12' "
        "(known: table2, table3, table4, table5, table6, table7, table8, table10, table11, "
        "variants)"
    ]
