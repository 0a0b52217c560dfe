import math

import numpy as np
import pandas as pd
import pytest

from aunce.metrics import detection_metrics
from aunce.stats import aggregate, runs_frame
from aunce.tables import (
    au_f1_table,
    flip_rate,
    noise_table,
    occurrence_table,
    render_latex,
    render_markdown,
)


def test_metrics_by_hand():
    y = np.array([[1, 0], [1, -1], [0, 1], [0, 1]])
    p = np.array([[0.9, 0.2], [0.4, 0.9], [0.6, 0.7], [0.1, 0.3]])
    m = detection_metrics(y, p, ["AU1", "AU2"])
    # AU1: pred 1,0,1,0 vs 1,1,0,0 -> tp1 fp1 fn1 -> F1 0.5;
    # AU2 (row 2 unknown): pred 0,1,0 vs 0,1,1 -> tp1 fn1 -> 2/3
    assert m["f1"] == {"AU1": 0.5, "AU2": pytest.approx(2 / 3)}
    assert m["f1_macro"] == pytest.approx((0.5 + 2 / 3) / 2)
    # pooled: tp 2, fp 1, fn 2 -> 4/7
    assert m["f1_micro"] == pytest.approx(4 / 7)
    assert m["accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["exact_match"] == pytest.approx(1 / 3)  # rows 0, 2, 3 fully known; only row 0 right
    assert m["aus"] == ["AU1", "AU2"]
    # all-positive: AU1 2 of 4 positive -> 2r/(1+r) = 2/3; AU2 2 of 3 known positive -> 0.8
    assert m["all_positive"]["f1"] == {"AU1": pytest.approx(2 / 3), "AU2": pytest.approx(0.8)}


def record(method, fold, seed, au1, au2):
    return {
        "run": {
            "dataset": "bp4d",
            "encoder": "megraph",
            "method": method,
            "fold": fold,
            "seed": seed,
        },
        "aus": ["AU1", "AU2"],
        "f1": {"AU1": au1, "AU2": au2},
        "f1_macro": (au1 + au2) / 2,
        "f1_micro": 0.5,
        "accuracy": 0.7,
        "exact_match": 0.3,
        "all_positive": {
            "f1": {"AU1": 0.3, "AU2": 0.1 * int(fold)},
            "f1_macro": (0.3 + 0.1 * int(fold)) / 2,
        },
    }


def records():
    rng = np.random.default_rng(0)
    return [
        record(m, f, s, *rng.random(2))
        for m in ("aunce", "wce")
        for f in ("1", "2", "3")
        for s in (1, 2, 3)
    ]


def test_aggregate_is_mean_over_folds_then_seeds():
    recs = records()
    agg = aggregate(runs_frame(recs)).set_index("method")
    for method in ("aunce", "wce"):
        per_seed = [
            np.mean(
                [
                    r["f1_macro"]
                    for r in recs
                    if r["run"]["method"] == method and r["run"]["seed"] == s
                ]
            )
            for s in (1, 2, 3)
        ]
        assert agg.loc[method, "f1_macro_mean"] == pytest.approx(np.mean(per_seed))
        assert agg.loc[method, "f1_macro_std"] == pytest.approx(np.std(per_seed, ddof=1))
        assert agg.loc[method, "n_seeds"] == 3 and agg.loc[method, "n_folds"] == 3


def test_duplicate_runs_are_refused():
    with pytest.raises(ValueError, match="duplicate runs"):
        runs_frame([record("a", "1", 1, 0.1, 0.2)] * 2)


def test_table_numbers_and_rendering():
    recs = records()
    table = au_f1_table("table2", "t", recs, [("aunce", "AUNCE"), ("wce", "WCE")], ["a note"])
    frame = table.frame()
    assert list(frame["kind"]) == ["this run", "this run", "reference"]
    assert frame.loc[2, "AU2"] == pytest.approx(100 * (0.1 + 0.2 + 0.3) / 3)  # mean over folds
    agg = aggregate(runs_frame(recs)).set_index("method")
    assert frame.loc[0, "Avg."] == pytest.approx(100 * agg.loc["aunce", "f1_macro_mean"])
    assert frame.loc[1, "AU2_std"] == pytest.approx(100 * agg.loc["wce", "f1_AU2_std"])
    md = render_markdown(table)
    best = max(frame.loc[frame["kind"] == "this run", "Avg."])  # among this run's rows
    assert f"**{best:.1f}**" in md and "± " in md and "- a note" in md
    tex = render_latex(table)
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex
    assert f"\\textbf{{{best:.1f}}}" in tex


def test_bold_compares_like_with_like():
    """This run's rows among themselves, published rows among themselves, reference rows never:
    a synthetic row is never bold against a published real-data row, nor the all-positive
    predictor against a trained model."""
    from aunce.tables import Row, Table

    rows = [
        Row("WCE (this run)", "", {"AU1": (62.4, math.nan), "Avg.": (40.0, math.nan)}),
        Row("AUNCE (this run)", "", {"AU1": (10.0, math.nan), "Avg.": (30.0, math.nan)}),
        Row("All-positive predictor", "", {"AU1": (70.0, math.nan), "Avg.": (50.4, math.nan)},
            "reference"),
        Row("MEGraph (published)", "", {"AU1": (52.7, math.nan), "Avg.": (65.5, math.nan)},
            "published"),
        Row("JAA (published)", "", {"AU1": (47.2, math.nan), "Avg.": (60.0, math.nan)},
            "published"),
    ]  # fmt: skip
    md = render_markdown(Table("t", "t", ["AU1", "Avg."], rows))
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "**62.4**" in lines["WCE (this run)"] and "**40.0**" in lines["WCE (this run)"]
    assert "**52.7**" in lines["MEGraph (published)"] and "**65.5**" in lines["MEGraph (published)"]
    assert "**" not in lines["All-positive predictor"] and "**" not in lines["AUNCE (this run)"]
    assert "**" not in lines["JAA (published)"]


def degenerate_records(tmp_path):
    """AUNCE at 0.0 in every AU with collapsed embeddings (similarity 0.999, 1.000 in the last
    epoch), WCE learning; the all-positive predictor at 20 and 10 per fold."""
    recs, history = [], []
    for m, au1, au2, sim in (("aunce", 0.0, 0.0, [0.97, 0.999]), ("wce", 0.5, 0.4, [0.7, 0.6])):
        for f in ("1", "2"):
            for s in (1, 2):
                rec = record(m, f, s, au1, au2)
                recs.append(rec)
                path = f"results/pretrain/bp4d/megraph/{m}/fold-{f}/seed-{s}/history.csv"
                (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                last = sim[1] if (m, f, s) != ("aunce", "2", 2) else 1.0
                pd.DataFrame({"epoch": [1, 2], "mean_similarity": [sim[0], last]}).to_csv(
                    tmp_path / path, index=False)  # fmt: skip
                history.append(path)
    return recs, history


def test_degenerate_rows_are_marked_with_their_numbers(tmp_path, monkeypatch):
    from aunce.tables import build

    recs, history = degenerate_records(tmp_path)
    files = {f"m{i}.json": r for i, r in enumerate(recs)}
    spec = {"kind": "au_f1", "title": "t", "methods": [["aunce", "AUNCE"], ["wce", "WCE"]],
            "inputs": {"metrics": list(files), "history": history}, "notes": ["provenance"]}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    table = build("table5", spec, files.__getitem__)
    frame = table.frame().set_index("row")
    why = frame.loc["AUNCE (this run)", "degenerate"]
    assert why.startswith(
        "embeddings collapsed in 4 of 4 run(s) (mean batch similarity in the last pretraining "
        "epoch 0.999, 0.999, 0.999, 1.000; collapse: >= 0.99)"
    )
    assert "F1-macro 0.0 at or below the all-positive predictor's 22.5 on the same test sets" in why
    assert why.endswith("2 of 2 AUs at 0.0 (AU1, AU2)")
    assert frame.loc["WCE (this run)", "degenerate"] == ""
    md = render_markdown(table)
    assert "| AUNCE (this run) [degenerate] |" in md
    assert f"- [degenerate] AUNCE (this run): {why}." in md
    assert "- All-positive predictor: every AU called active" in md
    assert "provenance" in md.splitlines()[-1]  # the provenance note stays last


def test_an_au_without_positives_in_the_test_sets_marks_no_row():
    """An AU with no positive test frame scores 0.0 for every method (and for the all-positive
    predictor): that is the data, not a degenerate run; an AU that has positives and scores 0.0
    is."""
    from aunce.tables import degenerate

    recs = [record("wce", f, s, 0.6, 0.0) for f in ("1", "2") for s in (1, 2)]
    for r in recs:
        r["all_positive"] = {"f1": {"AU1": 0.3, "AU2": 0.0}, "f1_macro": 0.15}
    assert degenerate(recs) == ""
    recs[0]["all_positive"]["f1"]["AU2"] = 0.2  # one test set has an AU2 frame
    assert degenerate(recs) == "1 of 2 AUs at 0.0 (AU2)"


def test_degenerate_grid_and_cross_rows(tmp_path, monkeypatch):
    from aunce.tables import degenerate

    recs, _ = degenerate_records(tmp_path)
    aunce = [r for r in recs if r["run"]["method"] == "aunce"]
    assert degenerate(aunce).startswith("F1-macro 0.0 at or below")  # no histories: no collapse
    wce = [r for r in recs if r["run"]["method"] == "wce"]
    assert degenerate(wce) == ""
    assert degenerate(wce, aus=["AU1"]) == ""  # 50 over AU1 against 30
    low = [dict(r, f1={"AU1": 0.25, "AU2": 0.4}) for r in wce]
    assert degenerate(low, aus=["AU1"]).startswith("F1 over the shared AUs 25.0 at or below")


def test_single_seed_has_no_std():
    recs = [record("aunce", f, 1, 0.5, 0.6) for f in ("1", "2", "3")]
    table = au_f1_table("t", "t", recs, [("aunce", "AUNCE")], [])
    assert math.isnan(table.rows[0].cells["Avg."][1])
    assert "±" not in render_markdown(table)
    assert isinstance(table.frame(), pd.DataFrame)


def test_occurrence_table_uses_the_training_set():
    cv = pd.DataFrame({"AU1": [1, 0, 0, -1], "AU2": [1, 1, 0, 0], "test_fold": [1, 2, 3, 1]})
    fixed = pd.DataFrame({"AU1": [1, 1, 0, 0], "split": ["train", "test", "train", "test"]})
    table = occurrence_table(
        "table1", "t", {"bp4d": cv, "gft": fixed}, {"bp4d": {1: 21.1, 2: 17.1}}, []
    )
    frame = table.frame().set_index("row")
    assert frame.loc["bp4d (this run)", "AU1"] == pytest.approx(100 / 3)  # unknown left out
    assert frame.loc["bp4d (this run)", "AU2"] == pytest.approx(50.0)
    assert frame.loc["gft (this run)", "AU1"] == pytest.approx(50.0)  # train rows only
    assert (
        frame.loc["bp4d (paper)", "AU1"] == 21.1
        and frame.loc["bp4d (paper)", "kind"] == "published"
    )
    assert "**" not in render_markdown(table)  # rates are not a contest


def test_noise_table_and_flip_rate():
    manifest = pd.DataFrame(
        {"AU1": [1, 0, 0, 1], "AU1_clean": [1, 1, 0, 1], "test_fold": [1, 2, 3, 1]}
    )
    assert flip_rate(manifest) == pytest.approx(0.25)
    assert flip_rate(manifest.drop(columns="AU1_clean")) == 0.0
    recs = records()
    table = noise_table(
        "noise", "t", {0.0: recs, 0.2: recs}, [("wce", "WCE")], {0.0: 0.0, 0.2: 0.21}, []
    )
    frame = table.frame().set_index("row")
    agg = aggregate(runs_frame(recs)).set_index("method")
    assert frame.loc["WCE (this run)", "20% noise"] == pytest.approx(
        100 * agg.loc["wce", "f1_macro_mean"]
    )
    assert frame.loc["Measured flip rate (%)", "20% noise"] == pytest.approx(21.0)
    md = render_markdown(table)
    line = next(x for x in md.splitlines() if x.startswith("| All-positive predictor"))
    assert "**" not in line  # a reference, never bold
    assert "Label noise does not move it" in md


def test_cost_table_units_and_the_papers_rows(repo):
    """Table 9 in explicit units: frames/s, views/s (AUNCE: two views a frame), s/frame (the
    paper's "Frame Rate" unit), s/epoch; the paper's rows with frames/s derived from its s/frame."""
    from aunce.tables import COST_COLUMNS, cost_table

    timings = {
        "w1": {"frames_per_second": 200.0, "epoch_seconds": 10.0},
        "w2": {"frames_per_second": 100.0, "epoch_seconds": 20.0},
        "a1": {"frames_per_second": 50.0, "epoch_seconds": 40.0},
    }
    rows = [
        {"dataset": "bp4d", "published_dataset": "bp4d", "label": "WCE", "loss": "wce",
         "views": 1, "complexity": "O(B K D)", "timing": ["w1", "w2"]},
        {"dataset": "bp4d", "published_dataset": "bp4d", "label": "AUNCE", "loss": "aunce",
         "views": 2, "complexity": "O(K (2B)^2 D)", "timing": ["a1"]},
    ]  # fmt: skip
    spec = {"title": "table9", "rows": rows, "notes": ["n"],
            "published_cost": str(repo / "baselines" / "published_cost.csv")}  # fmt: skip
    table = cost_table("table9", spec, timings.__getitem__)
    assert table.columns == COST_COLUMNS
    frame = table.frame().set_index("row")
    wce, aunce = frame.loc["WCE on bp4d (this run)"], frame.loc["AUNCE on bp4d (this run)"]
    assert wce["frames/s"] == 150 and wce["frames/s_std"] == pytest.approx(np.std([200, 100], ddof=1))
    assert wce["views/s"] == 150 and aunce["views/s"] == 100 and aunce["frames/s"] == 50
    assert wce["s/frame"] == pytest.approx((1 / 200 + 1 / 100) / 2) and aunce["s/frame"] == 0.02
    assert aunce["time vs first"] == pytest.approx(40 / 15) and aunce["complexity"] == "O(K (2B)^2 D)"
    paper = frame.loc["AUNCE on bp4d (published)"]
    assert paper["s/frame"] == 0.0138 and paper["s/epoch"] == 1388
    assert paper["frames/s"] == pytest.approx(1 / 0.0138) and paper["views/s"] == pytest.approx(2 / 0.0138)
    assert frame.loc["WCE on bp4d (published)", "time vs first"] == 1.0
    assert "WFL on bp4d (published)" not in frame.index  # only the losses this table ran
    md = render_markdown(table)
    assert "| O(K (2B)^2 D) |" in md and "0.0138" in md and "1388.0" in md
    assert "O(K (2B)\\^{}2 D)" in render_latex(table)  # ^ is a LaTeX special character


def test_cross_significance_pairs_a_rows_runs_across_directions_of_other_budgets():
    """Table 7 with epochs per source: the WCE row is `wce` (BP4D -> GFT) and `wce-e24`
    (GFT -> BP4D). The tests pair the rows by their table names, per direction."""
    from aunce.tables import significance

    rng = np.random.default_rng(1)
    files = {}
    spec = {"kind": "cross", "methods": [["wce", "WCE"], ["aunce", "AUNCE"]], "directions": [],
            "inputs": {"metrics": []}}  # fmt: skip
    for direction, suffix in (("bp4d->gft", ""), ("gft->bp4d", "-e24")):
        metrics = {}
        for name in ("wce", "aunce"):
            paths = []
            for seed in (1, 2, 3):
                rec = record(name + suffix, "1", seed, *rng.random(2))
                rec["run"]["dataset"] = direction
                path = f"{direction}/{name}{suffix}/{seed}.json"
                files[path] = rec
                paths.append(path)
            metrics[name] = paths
        spec["directions"].append({"label": direction, "metrics": metrics})
        spec["inputs"]["metrics"] += [p for ps in metrics.values() for p in ps]
    table = significance(spec, files.__getitem__)
    macro = table[table["value"] == "f1_macro"]
    assert len(macro) == 2  # one WCE-AUNCE comparison per direction
    assert set(macro["method_a"]) == {"wce"} and set(macro["method_b"]) == {"aunce"}
    assert (macro["n_runs"] == 3).all()


def test_ceiling_row_averages_the_splits_the_records_were_scored_on():
    from aunce.tables import CEILING, ceiling_row, cross_table, grid_table

    def split(au1, au2):
        return {"f1": {"AU1": au1, "AU2": au2}, "f1_macro": (au1 + au2) / 2, "f1_micro": 0.9,
                "accuracy": 0.95}  # fmt: skip

    ceilings = {
        "bp4d": {"splits": {"1": split(0.9, 0.8), "2": split(0.7, 1.0), "3": split(1.0, 0.6)}},
        "gft": {"splits": {"split": split(0.5, 0.4)}},
    }
    recs = records()
    row = ceiling_row(recs, ceilings, ["AU1", "AU2"], ["F1-micro"])
    assert row.label == CEILING and row.kind == "reference"
    assert row.cells["AU1"][0] == pytest.approx(100 * (0.9 + 0.7 + 1.0) / 3)
    assert row.cells["Avg."][0] == pytest.approx(100 * (0.85 + 0.85 + 0.8) / 3)
    assert row.cells["F1-micro"][0] == pytest.approx(90.0) and "Acc." not in row.cells
    assert math.isnan(row.cells["Avg."][1])  # a property of the data: no std over seeds
    # only the splits the records used; a macro over the table's AUs (a cross table's shared ones)
    one = ceiling_row([r for r in recs if r["run"]["fold"] == "2"], ceilings, ["AU1"])
    assert one.cells["Avg."][0] == pytest.approx(70.0) and "AU2" not in one.cells
    assert ceiling_row(recs, {"gft": ceilings["gft"]}, ["AU1", "AU2"]) is None  # real data: none
    # a cross-dataset record is scored on its target's split
    cross = [dict(r, run=dict(r["run"], dataset="bp4d->gft", fold=f"{r['run']['fold']}-on-split"))
             for r in recs]  # fmt: skip
    assert ceiling_row(cross, ceilings, ["AU1"]).cells["AU1"][0] == pytest.approx(50.0)
    files = {f"{m}{i}": r for m in ("wce", "aunce") for i, r in enumerate(cross)
             if r["run"]["method"] == m}  # fmt: skip
    spec = {"aus": ["AU1", "AU2"], "methods": [["wce", "WCE"], ["aunce", "AUNCE"]], "notes": [],
            "title": "t", "directions": [{"label": "bp4d -> gft", "metrics": {
                m: [k for k in files if k.startswith(m)] for m in ("wce", "aunce")}}]}  # fmt: skip
    table = cross_table("table7", spec, files.__getitem__, None, ceilings=ceilings)
    assert [r.label for r in table.rows][-1] == f"{CEILING}, bp4d -> gft"
    assert table.rows[-1].cells["Avg."][0] == pytest.approx(45.0)
    # Table 8: one cell per dataset column
    grid = {"datasets": ["bp4d"], "baseline": "wce", "title": "t", "notes": [], "cells": [
        {"dataset": "bp4d", "encoder": "megraph", "encoder_label": "MEGraph", "method": m,
         "loss_label": m, "published_dataset": "bp4d",
         "metrics": [k for k in files if k.startswith(m)]} for m in ("wce", "aunce")]}  # fmt: skip
    native = {k: dict(r, run=dict(r["run"], dataset="bp4d", fold=r["run"]["fold"].split("-")[0]))
              for k, r in files.items()}  # fmt: skip
    table = grid_table("table8", grid, native.__getitem__, None, ceilings=ceilings)
    assert table.rows[-1].label == CEILING
    assert table.rows[-1].cells["bp4d"][0] == pytest.approx(100 * (0.85 + 0.85 + 0.8) / 3)
    # the noise table: a ceiling per rate, after the all-positive predictor
    noisy = noise_table("noise", "t", {0.0: recs}, [("wce", "WCE")], {0.0: 0.0}, [], ceilings=ceilings)
    assert [r.label for r in noisy.rows][1:3] == ["All-positive predictor", CEILING]
