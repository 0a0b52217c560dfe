import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aunce import AunceError
from aunce.baselines import COLUMNS, load_published
from aunce.report import (
    SIGNIFICANCE,
    SYNTHETIC_NOTE,
    build_report,
    config_deviations,
    criterion,
    reproduction_delta,
    write_report,
)

PUBLISHED = [
    # the paper's own row: AU1 60.0, AU2 70.0, avg 66.1 (not the mean of the two: the audit's business)
    ("table2", "bp4d", "AUNCE", "this paper", "AU1", 60.0),
    ("table2", "bp4d", "AUNCE", "this paper", "AU2", 70.0),
    ("table2", "bp4d", "AUNCE", "this paper", "avg", 66.1),
    ("table2", "bp4d", "MAL", "2023 TAC", "AU1", 50.0),
    ("table2", "bp4d", "MAL", "2023 TAC", "AU2", 55.0),
    ("table2", "bp4d", "MAL", "2023 TAC", "avg", 52.5),
    ("table2", "disfa", "AUNCE", "this paper", "avg", 63.0),  # another dataset: never compared
    ("table7", "bp4d->gft", "AUNCE", "this paper", "avg", 50.0),
    ("table7", "gft->bp4d", "AUNCE", "this paper", "avg", 44.0),
]

# a table CSV as aunce.tables.Table.frame writes it: row, source, kind, <col>, <col>_std
TABLE = pd.DataFrame(
    [
        ["AUNCE (this run)", "2 seed(s) x 3 fold(s)", "this run", 62.5, 1.0, 68.25, 0.5, 70.0, 1.0],
        ["WCE (this run)", "2 seed(s) x 3 fold(s)", "this run", 55.0, 2.0, 60.0, 2.0, 57.5, 3.0],
        ["AUNCE (published)", "this paper", "published", 60.0, None, 70.0, None, 66.1, None],
        ["All-positive predictor", "reference", "reference", 40.0, None, 30.0, None, 35.0, None],
    ],
    columns=["row", "source", "kind", "AU1", "AU1_std", "AU2", "AU2_std", "Avg.", "Avg._std"],
)

SIGNIFICANCE_ROW = {
    "dataset": "bp4d",
    "encoder": "megraph",
    "method_a": "aunce",
    "method_b": "wce",
    "value": "f1_macro",
    "n_runs": 6,
    "n_unpaired": 0,
    "n_folds": 3,
    "n_seeds": 2,
    "n_subjects": 0,
    "mean_a": 0.70,
    "mean_b": 0.575,
    "mean_diff": 0.125,
    "se": 0.0245,
    "df": 1,
    "t": 5.1,
    "p": 0.123,
    "p_holm": 0.246,
}


@pytest.fixture
def tree(tmp_path) -> dict:
    """A results tree with one table, one figure, a published subset and two configs."""
    published = tmp_path / "baselines" / "published.csv"
    published.parent.mkdir()
    pd.DataFrame(PUBLISHED, columns=list(COLUMNS)).to_csv(published, index=False)
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    TABLE.to_csv(tables / "table2.csv", index=False)
    (tables / "table2.md").write_text("### table2: F1 (%) per AU\n\n| a table |\n")
    pd.DataFrame([SIGNIFICANCE_ROW], columns=SIGNIFICANCE).to_csv(
        tables / "table2.significance.csv", index=False
    )
    figures = tmp_path / "results" / "figures"
    figures.mkdir()
    (figures / "fig6.md").write_text("### Fig. 6\n\n![fig6](fig6.png)\n")
    resolved = {
        "seeds": [1, 2],
        "device": "cpu",
        "threads": 0,
        "pretrain": {"lr": 0.001, "epochs": 1},
        "datasets": {"bp4d": {"root": "/data/bp4d"}},
        "tables": {"table2": {"methods": ["aunce", "wce"]}},
    }
    paper = {
        "seeds": [3407, 3408],
        "device": "cuda",
        "pretrain": {"lr": 1e-5, "epochs": 1},
        "datasets": {"bp4d": {"root": None}, "disfa": {"root": None, "folds": 3}},
    }
    (tmp_path / "results" / "config.yaml").write_text(yaml.safe_dump(resolved))
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    # the run's config has the schema's defaults filled in: threads 0 is no deviation
    schema = {"type": "object", "properties": {"threads": {"type": "integer", "default": 0}}}
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    spec = {
        "title": "Reproduction report",
        "tables": [
            {
                "id": "table2",
                "md": str(tables / "table2.md"),
                "csv": str(tables / "table2.csv"),
                "paper_table": "table2",
                "dataset": "bp4d",
                "significance": str(tables / "table2.significance.csv"),
            }
        ],
        "figures": [{"id": "fig6", "png": "figures/fig6.png", "md": str(figures / "fig6.md")}],
        "published": str(published),
        "resolved_config": str(tmp_path / "results" / "config.yaml"),
        "paper_config": str(tmp_path / "paper.yaml"),
        "schema": str(tmp_path / "schema.yaml"),
        "provenance": {
            "code": "0.1.0+abc123",
            "configs": ["config/config.yaml"],
            "seeds": [1, 2],
            "created": "2026-01-01T00:00:00Z",
        },
    }
    return {"spec": spec, "root": tmp_path}


def _line(report: str, start: str) -> str:
    lines = [line for line in report.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    return lines[0]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_reproduction_delta_is_this_run_minus_the_papers_own_row(tree):
    published = load_published(tree["spec"]["published"])
    delta, unmatched = reproduction_delta(TABLE, published, "table2", "bp4d")
    assert list(delta.columns) == ["row", "AU1", "AU2", "Avg."]
    assert delta.to_dict("records") == [
        {"row": "AUNCE (this run)", "AU1": 62.5 - 60.0, "AU2": 68.25 - 70.0, "Avg.": 70.0 - 66.1}
    ]
    assert unmatched == ["WCE (this run): the paper prints no row 'WCE' of its own here"]
    report = build_report(tree["spec"])
    assert _cells(_line(report, "| AUNCE (this run) |")) == [
        "AUNCE (this run)",
        "+2.5",
        "-1.8",  # 68.25 - 70 = -1.75, one decimal
        "+3.9",
    ]


def test_criterion_is_improvement_over_twice_the_std(tree):
    published = load_published(tree["spec"]["published"])
    crit, skipped = criterion(TABLE, published, "table2", "bp4d")
    assert skipped == []
    got = {(r["this run"], r["published"]): r["criterion"] for _, r in crit.iterrows()}
    assert got == {
        ("AUNCE (this run)", "AUNCE"): "yes",  # 70.0 - 66.1 = 3.9 > 2 x 1.0
        ("AUNCE (this run)", "MAL"): "yes",  # 17.5 > 2
        ("WCE (this run)", "AUNCE"): "no",  # negative
        ("WCE (this run)", "MAL"): "no",  # 5.0 < 2 x 3.0
    }
    report = build_report(tree["spec"])
    assert "It holds for 2 of 4 pairs" in report
    assert _cells(_line(report, "| MAL ")) == [
        "MAL",
        "2023 TAC",
        "bp4d",
        "52.5",
        "+17.5 (yes)",
        "+5.0 (no)",
    ]


def test_one_seed_cannot_meet_the_criterion(tree):
    published = load_published(tree["spec"]["published"])
    one_seed = TABLE.assign(**{"Avg._std": math.nan})
    crit, _ = criterion(one_seed, published, "table2", "bp4d")
    assert set(crit["criterion"]) == {"no (one seed: no std)"}


def test_rows_of_a_table_spanning_datasets_need_their_dataset(tree):
    published = load_published(tree["spec"]["published"])
    cross = pd.DataFrame(
        [["AUNCE (this run), bp4d -> gft", "1 seed(s)", "this run", 51.25, math.nan]],
        columns=["row", "source", "kind", "Avg.", "Avg._std"],
    )
    delta, unmatched = reproduction_delta(cross, published, "table7")
    assert delta.empty and "span the datasets bp4d->gft, gft->bp4d" in unmatched[0]
    rows = {"AUNCE (this run), bp4d -> gft": "bp4d->gft"}
    delta, unmatched = reproduction_delta(cross, published, "table7", row_datasets=rows)
    assert unmatched == [] and delta["Avg."].tolist() == [pytest.approx(1.25)]


def test_report_sections_significance_figure_and_audit(tree):
    report = build_report(tree["spec"])
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Contents",
        "## table2",
        "## fig6",
        "## Audit of published averages",
        "## Protocol deviations of this config",
        "## Provenance",
    ]
    assert "| a table |" in report
    assert "code `0.1.0+abc123`" in report and "created 2026-01-01T00:00:00Z on " in report
    # significance: means in percent, Holm-corrected p-values kept
    sig = _cells(_line(report, "| bp4d "))
    assert sig[:5] == ["bp4d", "megraph", "aunce", "wce", "f1_macro"]
    assert sig[10:14] == ["70", "57.5", "12.5", "2.45"] and "0.246" in sig
    # the figure's own link to fig6.png, rewritten relative to results/
    assert "![fig6](figures/fig6.png)" in report
    # audit: AUNCE's printed 66.1 is not the mean 65.0 of its printed AUs; MAL's 52.5 is
    audit = report.split("## Audit of published averages")[1].split("## Protocol")[0]
    assert _cells(_line(audit, "| table2 ")) == [
        "table2",
        "bp4d",
        "AUNCE",
        "66.10",
        "65.00",
        "1.10",
    ]
    assert "MAL" not in audit


def test_deviations_list_every_differing_dotted_key_sorted(tree):
    report = build_report(tree["spec"])
    section = report.split("## Protocol deviations of this config")[1].split("## Provenance")[0]
    rows = [_cells(line) for line in section.splitlines() if line.startswith("| ")][1:]
    assert rows == [
        ["datasets.bp4d.root", "/data/bp4d", "null"],
        ["datasets.disfa", "(absent)", "(section of 2 settings)"],
        ["device", "cpu", "cuda"],
        ["pretrain.lr", "0.001", "1e-05"],
        ["seeds", "[1, 2]", "[3407, 3408]"],
        ["tables", "(section of 1 setting)", "(absent)"],
    ]
    assert ": 6." in section


def test_config_deviations_tell_a_flag_from_a_number():
    dev = config_deviations({"a": {"b": True, "c": 1}, "d": []}, {"a": {"b": 1, "c": 1.0}})
    assert dev.values.tolist() == [["a.b", "true", "1"], ["d", "[]", "(absent)"]]


def test_missing_inputs_are_named(tree):
    spec = tree["spec"]
    Path(spec["tables"][0]["md"]).unlink()
    Path(spec["resolved_config"]).unlink()
    with pytest.raises(AunceError) as err:
        build_report(spec)
    assert "table2.md (table2 Markdown)" in str(err.value)
    assert "config.yaml (resolved config)" in str(err.value)
    with pytest.raises(AunceError, match="missing key"):
        build_report({k: v for k, v in spec.items() if k != "published"})


def test_a_malformed_table_csv_is_named(tree):
    spec = tree["spec"]
    Path(spec["tables"][0]["csv"]).write_text("a,b\n1,2\n")
    with pytest.raises(AunceError, match=r"table2\.csv: missing column\(s\) row, source, kind"):
        build_report(spec)


def test_write_report_is_atomic_and_equal_to_build(tree):
    out = tree["root"] / "results" / "report.md"
    write_report(tree["spec"], out)
    assert out.read_text() == build_report(tree["spec"])
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".part")]
    assert re.search(r"`.*published\.csv` [0-9a-f]{12}", out.read_text())  # input digests


# --- synthetic is not the paper -----------------------------------------------------------------
def test_a_synthetic_table_is_compared_within_the_run_not_with_the_paper(tree):
    tree["spec"]["tables"][0]["synthetic"] = True
    report = build_report(tree["spec"])
    section = report.split("\n## table2\n")[1].split("\n## fig6\n")[0]
    assert "### Reproduction delta" not in section and "minus the paper's own" not in section
    assert "### Against published baselines" not in section and "holds for" not in section
    assert "### Published numbers (table2)" in section and SYNTHETIC_NOTE in section
    assert "### Significance (table2)" in section  # the within-run comparison stays
    assert "| a table |" in section  # the table itself, published rows beside, is still shown


def test_a_real_data_table_keeps_the_comparison_with_the_paper(tree):
    tree["spec"]["tables"][0]["synthetic"] = False
    report = build_report(tree["spec"])
    assert "### Reproduction delta (table2)" in report
    assert "### Against published baselines (table2)" in report
    assert SYNTHETIC_NOTE not in report and "### Published numbers" not in report


def test_the_report_opens_with_the_verdicts(tree):
    verdicts = tree["root"] / "results" / "verdicts.md"
    verdicts.write_text("## Verdicts\n\n| Claim | Verdict |\n| --- | --- |\n| x | supported |\n")
    tree["spec"]["verdicts"] = str(verdicts)
    report = build_report(tree["spec"])
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Verdicts", "## Contents", "## table2"]
    assert report.index("| x | supported |") < report.index("## Contents")
    assert "- [Verdicts](#verdicts)" in report
    assert re.search(r"`.*verdicts\.md` [0-9a-f]{12}", report)  # in the provenance
    verdicts.unlink()
    with pytest.raises(AunceError, match=r"verdicts\.md \(verdicts\)"):
        build_report(tree["spec"])


# --- the header: provenance, readings, degenerate runs ------------------------------------------
def test_the_header_names_the_commit_the_time_and_the_machine(tree, repo):
    from aunce.report import git_revision

    spec = tree["spec"]
    del spec["provenance"]["created"]
    spec["repo"] = str(repo)
    report = build_report(spec)
    first = report.splitlines()[2]
    assert re.match(r"git `[0-9a-f]{12}`( with uncommitted changes)?; code `0\.1\.0\+abc123`", first)
    assert re.search(r"created 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ on .+ CPUs, Python 3", first)
    assert "- created: " in report and "(UTC) on " in report
    assert git_revision(tree["root"]) == f"not a git checkout ({tree['root']})"


def test_the_report_says_which_aunce_the_papers_numbers_come_from(tree):
    spec = tree["spec"]
    config = Path(spec["resolved_config"])
    resolved = yaml.safe_load(config.read_text())
    resolved["methods"] = {
        "aunce": {"loss": "aunce", "label": "AUNCE"},
        "aunce_released": {"loss": "aunce", "label": "AUNCE (released code)", "preset": "released"},
        "wce": {"loss": "wce", "label": "WCE"},
    }
    resolved["tables"]["table2"]["methods"] = ["aunce", "aunce_released", "wce"]
    config.write_text(yaml.safe_dump(resolved))
    verdicts = tree["root"] / "results" / "verdicts.csv"
    pd.DataFrame({"reading": ["paper", "paper", "released code", "-"],
                  "verdict": ["contradicted", "inconclusive", "supported", "inconclusive"]}).to_csv(
        verdicts, index=False)  # fmt: skip
    spec["verdicts_csv"] = str(verdicts)
    report = build_report(spec)
    opening = report.split("**Which AUNCE.**")[1].split("\n")[0]
    assert "come from the authors' released code" in opening
    assert ("the paper as written as AUNCE (verdicts: supported 0, contradicted 1, inconclusive 1)"
            in opening)  # fmt: skip
    assert ("the released code as AUNCE (released code) (verdicts: supported 1, contradicted 0, "
            "inconclusive 0)") in opening
    resolved["tables"]["table2"]["methods"] = ["aunce", "wce"]
    config.write_text(yaml.safe_dump(resolved))
    assert "; not the released code." in build_report(spec)


def test_degenerate_rows_open_the_report(tree):
    spec = tree["spec"]
    table = pd.read_csv(spec["tables"][0]["csv"])
    table["degenerate"] = ["", "embeddings collapsed in 2 of 2 run(s) (...)", "", ""][: len(table)]
    table.to_csv(spec["tables"][0]["csv"], index=False)
    report = build_report(spec)
    section = report.split("## Degenerate runs\n")[1].split("\n## ")[0]
    label = table.loc[1, "row"]
    assert f"- **table2**, {label}: embeddings collapsed in 2 of 2 run(s) (...)." in section
    assert "- [Degenerate runs](#degenerate-runs)" in report
    assert "degenerate" not in report.split("### Reproduction delta")[1].split("###")[0]


# --- HTML pages for Snakemake's report ----------------------------------------------------------
def test_markdown_page_renders_tables_and_embeds_images(tmp_path):
    import base64

    from aunce.pages import markdown_page

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    (tmp_path / "fig6.png").write_bytes(png)
    md = tmp_path / "fig6.md"
    md.write_text(
        "### Fig. 6: F1 against beta\n\n![fig6](fig6.png)\n\n"
        "| param | value | f1 |\n|---|---|---|\n| beta_minority | 1.2 | **24.1** |\n\n- a note\n"
    )
    out = tmp_path / "page" / "fig6.html"
    page = markdown_page(md, out)
    assert out.read_text() == page and page.startswith("<!doctype html>")
    assert "<title>Fig. 6: F1 against beta</title>" in page
    assert "<th>param</th>" in page and "<td><strong>24.1</strong></td>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert 'src="fig6.png"' not in page and "<li>a note</li>" in page
    (tmp_path / "fig6.png").unlink()
    with pytest.raises(AunceError, match=r"image .*fig6\.png \(linked from .*fig6\.md\) not found"):
        markdown_page(md)
    with pytest.raises(AunceError, match="missing input file"):
        markdown_page(tmp_path / "nope.md")
