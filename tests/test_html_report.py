"""Snakemake's HTML report of the smoke run, rendered in headless Chromium: the verdict table on its
front page and Table 2 one click away, as a reader sees them (the report is a single HTML file whose
content React renders from embedded data, so only a browser shows what is really there)."""

import os
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from browser import Chromium, find_chromium
from conftest import BIN, SMOKE, snakemake

from aunce.claims import CLAIMS_PATH, VERDICTS, load_claims
from aunce.config import load_config
from aunce.plan import FIGURE_KINDS, make_plan

pytestmark = pytest.mark.workflow
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]

WAIT = """
const sleep = ms => new Promise(r => setTimeout(r, ms));
const until = async (found, what) => {
  for (let i = 0; i < 400; i++) { const v = found(); if (v) return v; await sleep(50); }
  throw new Error('timed out waiting for ' + what);
};
const visible = el => { const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.top < innerHeight && r.left < innerWidth; };
"""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed as root with apt-get when missing."""
    path = find_chromium()
    if path:
        return path
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be here (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([*APT, "update"], [*APT, "install", "-y", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            pytest.skip(f"`{' '.join(cmd)}` failed (package archive unreachable?): {tail}")
    return find_chromium() or pytest.skip("apt-get installed chromium but it is not on PATH")


@pytest.fixture(scope="module")
def html_report(smoke_run):
    out = smoke_run / "results" / "report.html"
    proc = snakemake(smoke_run, "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_report_html_builds_with_every_table_and_the_verdicts(smoke_run, html_report):
    text = html_report.read_text()
    tables = yaml.safe_load(SMOKE.read_text())["tables"]
    for i, name in enumerate(tables, start=1):
        assert f'"{i:02d} {name}"' in text, name  # one category per table or figure, in order
        assert f"results/report/{name}.html" in text
    assert '"00 Verdicts"' in text and "results/verdicts.html" in text
    assert f'"{len(tables) + 1:02d} Full report"' in text


def test_verdicts_and_table2_are_visible_in_chromium(smoke_run, html_report, chromium, tmp_path):
    verdicts = pd.read_csv(smoke_run / "results" / "verdicts.csv")
    table2 = pd.read_csv(smoke_run / "results" / "tables" / "table2.csv").set_index("row")
    claims = [c["id"] for c in load_claims(CLAIMS_PATH)["claims"]]
    with Chromium(chromium, tmp_path / "profile") as browser:
        tab = browser.open(html_report.as_uri())
        front = browser.evaluate(
            tab,
            f"""(async () => {{ {WAIT}
              const table = await until(() => document.querySelector('#aunce-verdicts table'),
                                        'the verdict table');
              return {{visible: visible(table),
                       rows: [...table.querySelectorAll('tbody tr')].map(tr => [
                         tr.dataset.claim, tr.querySelector('td.verdict').innerText.trim()]),
                       text: document.querySelector('#aunce-verdicts').innerText}};
            }})()""",
        )
        browser.screenshot(tab, tmp_path / "front.png")
        assert front["visible"], "the verdict table is not in view on the front page"
        assert [claim for claim, _ in front["rows"]] == verdicts["claim"].tolist()
        assert [v for _, v in front["rows"]] == verdicts["verdict"].tolist()
        assert {v for _, v in front["rows"]} <= set(VERDICTS)
        assert set(claims) == {claim for claim, _ in front["rows"]}  # every claim has a verdict
        assert "Verdicts: does the paper hold on this run?" in front["text"]

        # Table 2: its category in the menu, then the eye button of its page
        shown = browser.evaluate(
            tab,
            f"""(async () => {{ {WAIT}
              const item = await until(() => [...document.querySelectorAll('a span')]
                .find(s => s.textContent.trim() === '02 table2'), 'the menu item of table2');
              item.closest('a').click();
              const row = await until(() => [...document.querySelectorAll('tr')]
                .find(r => r.cells.length && r.cells[0].textContent.trim() === 'page (HTML)'),
                'the page of table2');
              row.cells[row.cells.length - 1].querySelector('a').click();
              const frame = await until(() => document.querySelector('iframe'), 'its frame');
              await until(() => visible(frame), 'the frame in view');
              return frame.src.slice(0, 15);
            }})()""",
        )
        assert shown == "data:text/html;"
        frame = browser.frame_context(tab, "data:text/html")
        page = browser.evaluate(
            tab,
            f"""(async () => {{ {WAIT}
              const t = await until(() => document.querySelector('table'), 'the table');
              return {{visible: visible(t), text: document.body.innerText}};
            }})()""",
            context=frame,
        )
        browser.screenshot(tab, tmp_path / "table2.png")
    assert page["visible"]
    assert "table2: F1 (%) per AU" in page["text"]
    for row in ("AUNCE (this run)", "WCE (this run)", "All-positive predictor"):
        assert row in page["text"]
    avg = f"{table2.loc['AUNCE (this run)', 'Avg.']:.1f} ± {table2.loc['AUNCE (this run)', 'Avg._std']:.1f}"
    assert avg in page["text"]  # the number the table CSV holds, as the reader sees it


def test_report_md_opens_with_the_verdicts_and_keeps_synthetic_apart(smoke_run):
    report = (smoke_run / "results" / "report.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    if headings[0] == "## Degenerate runs":  # a 1-epoch smoke model may be one, and opens the report
        headings = headings[1:]
    assert headings[:2] == ["## Verdicts", "## Contents"]
    verdicts = pd.read_csv(smoke_run / "results" / "verdicts.csv")
    assert verdicts["reason"].str.len().min() > 0 and set(verdicts["verdict"]) <= set(VERDICTS)
    for claim in load_claims(CLAIMS_PATH)["claims"]:
        assert f"**{claim['id']}**" in report.split("## Contents")[0]
    # every table of the smoke config is synthetic: compared within the run, never with the paper
    assert (
        "### Reproduction delta" not in report and "### Against published baselines" not in report
    )
    plan = make_plan(load_config(SMOKE))
    printed = [t for t, spec in plan.tables.items() if spec.get("published") and "md" in spec["outputs"]
               and spec["kind"] not in FIGURE_KINDS]  # fmt: skip
    assert printed and all(f"### Published numbers ({t})" in report for t in printed)


def test_verdicts_command_prints_what_the_rule_wrote(smoke_run):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["aunce", "verdicts"], cwd=smoke_run, capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (smoke_run / "results" / "verdicts.md").read_text()
