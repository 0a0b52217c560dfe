"""Power before spending (aunce.power; docs/report.md, "Power"): the smallest F1 difference each
claim's folds and seeds detect with probability 0.8 at alpha 0.05, from the paper's printed
spreads or a finished run's, as `aunce plan` prints it."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from scipy import stats

from aunce import AunceError
from aunce.claims import load_claims
from aunce.cli import main
from aunce.config import load_config
from aunce.plan import make_plan
from aunce.power import detectable, load_checks, power_table

PAPER = REPO / "config" / "paper.yaml"


@pytest.mark.parametrize("df", [1, 2, 4, 9, 200])
def test_the_detectable_difference_has_power_0_8(df):
    """At the detectable difference the two-sided t-test rejects with probability 0.8: checked
    with scipy's noncentral t and, for large df, against the normal approximation 2.80 se."""
    se = 0.7
    d = detectable(se, df)
    crit = stats.t.ppf(0.975, df)
    lower = stats.nct.cdf(-crit, df, d / se)  # negligible; scipy gives NaN for df 1
    power = stats.nct.sf(crit, df, d / se) + (0.0 if math.isnan(lower) else lower)
    assert power == pytest.approx(0.8, abs=1e-6)
    if df == 200:
        assert d == pytest.approx((1.96 + 0.8416) * se, rel=0.01)
    assert math.isnan(detectable(0.0, df)) and math.isnan(detectable(se, 0))


def test_power_by_simulation():
    """The same by brute force: 20,000 t-tests of 5 normal differences of mean d, sd 1."""
    rng = np.random.default_rng(0)
    d = detectable(1 / math.sqrt(5), 4)
    x = rng.normal(d, 1, (20000, 5))
    assert np.mean(stats.ttest_1samp(x, 0, axis=1).pvalue < 0.05) == pytest.approx(0.8, abs=0.01)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Dataset roots for config/paper.yaml (nothing is read but GFT's split file)."""
    tmp = tmp_path_factory.mktemp("roots")
    split = tmp / "split.csv"
    split.write_text("subject,split\n" + "".join(
        f"S{i:03d},{'train' if i < 78 else 'test'}\n" for i in range(96)))  # fmt: skip
    cfg = {"datasets": {n: {"root": str(tmp / n)} for n in
                        ("bp4d", "disfa", "gft", "bp4d_plus", "affwild2")}}  # fmt: skip
    cfg["datasets"]["gft"]["split_file"] = str(split)
    path = tmp / "roots.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_every_claim_of_the_paper_config_has_a_row(roots):
    plan = make_plan(load_config(PAPER, roots))
    claims = load_claims()
    table = power_table(plan, claims)
    assert set(table["claim"]) == {c["id"] for c in claims["claims"]}
    row = table[(table["claim"] == "table2-bp4d")].iloc[0]
    # the paper's std of AUNCE on BP4D, 0.17, for both methods; 5 seeds; 4 df
    se = math.sqrt(2 * 0.17**2 / 5)
    assert row["se"] == pytest.approx(se) and row["df"] == 4
    assert row["detectable"] == pytest.approx(detectable(se, 4))
    assert "bp4d AUNCE - WCE (Table 8) +2.5 (perhaps: above a lower bound)" in row["paper's margin"]
    assert "lower bound" in row["variance from"]
    sampling = table[table["claim"] == "table11-best-sampling"].iloc[0]
    assert "+0.4 (not resolved)" in sampling["paper's margin"]
    # Tables 4-6 train AUNCE alone: the paper's criterion, which needs a margin over 2 std
    gft = table[table["claim"] == "table5-gft"].iloc[0]
    assert "criterion" in gft["design"] and gft["detectable"] == pytest.approx(2 * 0.29)


def test_a_finished_runs_spread_replaces_the_papers(roots, tmp_path):
    plan = make_plan(load_config(PAPER, roots))
    checks = pd.DataFrame([
        {"claim": "table2-bp4d", "scope": "table2: bp4d, megraph", "var_models": 0.5,
         "var_subjects": 0.3, "n_seeds": 3},
        {"claim": "table2-bp4d", "scope": "table2: bp4d, megraph", "var_models": 0.2,
         "var_subjects": 0.1, "n_seeds": 3},
    ])  # fmt: skip
    path = tmp_path / "verdicts.checks.csv"
    checks.to_csv(path, index=False)
    table = power_table(plan, load_claims(), load_checks(path))
    row = table[table["claim"] == "table2-bp4d"].iloc[0]
    se = math.sqrt(0.5 * 3 / 5 + 0.3)  # the seeds' spread rescaled to 5 seeds; the subjects' kept
    assert row["se"] == pytest.approx(se) and row["variance from"] == "a finished run's spread"
    (tmp_path / "bad.csv").write_text("claim,scope\nx,y\n")
    with pytest.raises(AunceError, match="not a verdicts.checks.csv of this version"):
        load_checks(tmp_path / "bad.csv")


def test_aunce_plan_prints_the_power_of_every_claim(roots, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any folder: the published numbers are the package's
    args = ["plan", "--configfile", str(PAPER), str(roots), "--results", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    section = out.split("## Power: the smallest F1 difference each claim can detect")[1]
    for claim in load_claims()["claims"]:
        assert f"| {claim['id']} " in section, claim["id"]
    assert main([*args, "--json"]) == 0
    power = json.loads(capsys.readouterr().out)["power"]
    assert {r["claim"] for r in power} == {c["id"] for c in load_claims()["claims"]}
