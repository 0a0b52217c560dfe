"""A user's own loss by import path (docs/custom-method.md), proven on tests/example_method.py:
resolved, recorded, called, pretrained with, and put in a table's rows and significance tests."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aunce import AunceError
from aunce.config import check_config, load_config
from aunce.methods import build_objective, is_custom, loss_settings, resolve_loss

REPO = Path(__file__).resolve().parent.parent
SUPCON = {
    "loss": "tests.example_method:supcon",
    "kind": "contrastive",
    "options": {"temperature": 0.2},
    "label": "SupCon",
}
SMOOTHED = {
    "loss": "tests.example_method:smoothed_wce",
    "kind": "classification",
    "options": {"smoothing": 0.2},
    "label": "WCE + smoothing",
}


@pytest.fixture(autouse=True)
def in_project_root(monkeypatch):
    """Jobs run in the project root; the resolver's sys.path change is undone after each test."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(REPO))])


def batch(b=6, k=3, d=8):
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (b, k), generator=gen)
    labels[0, 0] = labels[1, 2] = -1
    return torch.randn(b, k, d, generator=gen), torch.randn(b, k, d, generator=gen), labels


def test_resolves_by_import_path_from_the_working_directory():
    fn = resolve_loss("tests.example_method:supcon")
    assert fn is importlib.import_module("tests.example_method").supcon
    assert sys.path[0] == str(REPO)  # put there by the resolver, as `python -m` would
    assert is_custom(SUPCON) and not is_custom({"loss": "aunce"})


def test_loss_settings_record_path_kind_defaults_and_options():
    assert loss_settings(SUPCON) == {
        "loss": "tests.example_method:supcon",
        "kind": "contrastive",
        "temperature": 0.2,
    }
    assert loss_settings({**SMOOTHED, "options": {}}) == {
        "loss": "tests.example_method:smoothed_wce",
        "kind": "classification",
        "smoothing": 0.1,  # the function's default, recorded like the built-in losses' defaults
    }


@pytest.mark.parametrize("method", [SUPCON, SMOOTHED])
@pytest.mark.parametrize("weights", [True, False])
def test_objective_gives_a_finite_loss_with_gradients(method, weights):
    z, z_aug, labels = batch()
    w, minority = torch.tensor([0.5, 1.5, 1.0]), torch.tensor([1, 0, 1])
    objective = build_objective({**method, "au_weights": weights}, w, minority)
    assert objective.name == method["label"] and objective.path == method["loss"]
    contrastive = method["kind"] == "contrastive"
    assert objective.two_views is contrastive and objective.uses_head is not contrastive
    assert (
        (objective.kwargs["au_weights"] is w) if weights else objective.kwargs["au_weights"] is None
    )
    z.requires_grad_(True)
    z_aug.requires_grad_(True)
    logits = (z.sum(-1) * 0.3).detach().requires_grad_(True)  # what a per-AU head would give
    gen = torch.Generator().manual_seed(1)
    if contrastive:
        loss = objective(z, z_aug, None, labels, gen)
    else:
        loss = objective(z, None, logits, labels, gen)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [z.grad, z_aug.grad] if contrastive else [logits.grad]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    if not contrastive:  # unknown labels drop out
        assert logits.grad[0, 0] == 0 and logits.grad[1, 2] == 0


def test_a_loss_must_return_a_scalar():
    objective = build_objective(SMOOTHED, None, None)
    objective.loss = lambda logits, labels, **kw: logits  # noqa: ARG005
    with pytest.raises(AunceError, match=r"must return a scalar tensor, got shape \(2, 3\)"):
        objective(None, None, torch.zeros(2, 3), torch.zeros(2, 3), None)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"loss": "nosuch_module_xyz:fn", "kind": "contrastive"}, "no module 'nosuch_module_xyz'"),
        ({"loss": "tests.nosuch:fn", "kind": "contrastive"}, "no module 'tests.nosuch'"),
        ({"loss": "tests.example_method:nope", "kind": "contrastive"}, "no attribute 'nope'"),
        ({"loss": "tests.example_method:__doc__", "kind": "contrastive"}, "str, not callable"),
        ({"loss": "tests.example_method:supcon"}, "needs 'kind: contrastive' or"),
        ({**SUPCON, "kind": "regression"}, "kind 'regression' is not one of"),
        ({**SUPCON, "tau": 0.5}, r"tau do not apply to a loss given by import path"),
        ({**SUPCON, "options": {"temprature": 0.5}}, "unexpected keyword argument 'temprature'"),
        ({**SUPCON, "options": {"au_weights": None}}, "au_weights are reserved"),
        ({**SMOOTHED, "kind": "contrastive"}, "cannot be called as a contrastive loss"),
    ],
)
def test_bad_custom_methods_name_the_method_and_path(method, message):
    with pytest.raises(AunceError, match=message) as err:
        loss_settings(method, name="mine")
    assert f"method 'mine' (loss '{method['loss']}')" in str(err.value)
    with pytest.raises(AunceError, match=message):
        build_objective(method, None, None, name="mine")


def test_builtin_methods_take_no_kind_or_options():
    with pytest.raises(AunceError, match="'options' does not apply to loss 'wce'"):
        loss_settings({"loss": "wce", "options": {}})
    with pytest.raises(AunceError, match="unknown loss 'sup' .*package.module:function"):
        loss_settings({"loss": "sup"})


def test_schema_accepts_an_import_path_with_kind_and_options():
    base = load_config(REPO / "config" / "smoke.yaml")
    cfg = copy.deepcopy(base)
    cfg["methods"]["supcon"] = dict(SUPCON)
    check_config(cfg)
    assert cfg["methods"]["supcon"] == SUPCON and "options" not in cfg["methods"]["wce"]
    for method, message in [
        ({"loss": "tests.example_method:supcon"}, "methods.mine: 'kind' is a required property"),
        ({"loss": "wce", "kind": "classification"}, "methods.mine.kind: "),
        ({"loss": "wce", "options": {"a": 1}}, "methods.mine.options: "),
        ({"loss": "tests/example_method.py", "kind": "contrastive"}, "methods.mine.loss: "),
        ({**SUPCON, "kind": "both"}, "methods.mine.kind: 'both' is not one of"),
    ]:
        cfg = copy.deepcopy(base)
        cfg["methods"]["mine"] = method
        with pytest.raises(AunceError, match=message):
            check_config(cfg)


def pretrain_settings(method: dict) -> dict:
    cfg = load_config(REPO / "config" / "smoke.yaml")
    return {
        "dataset": "bp4d",
        "encoder": {"name": "megraph", "size": "tiny", "feature_dim": 16},
        "method": method,
        "method_name": "mine",
        "pretrain": dict(cfg["pretrain"], epochs=1, batch_size=16),
        "image": cfg["image"],
        "device": "cpu",
        "amp": "none",
        "threads": 0,
    }


@pytest.mark.parametrize("method", [SUPCON, SMOOTHED], ids=["contrastive", "classification"])
def test_pretraining_with_a_custom_method(bp4d_cache, tmp_path, method):
    import pandas as pd

    from aunce.train import pretrain, run_dir

    pretrain(bp4d_cache, pretrain_settings(method), [("1", 0)], tmp_path)
    run = run_dir(tmp_path, "1", 0)
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 1 and np.isfinite(history["loss"]).all()
    settings = json.loads((run / "settings.json").read_text())
    assert settings["loss_settings"] == loss_settings(method)
    assert settings["method"] == method
    assert (run / "encoder.pt").is_file()


def test_the_console_script_finds_a_module_in_the_working_directory(tmp_path):
    """`aunce` (a console script) puts its own folder on sys.path, not the working directory; the
    resolver adds the latter, so a job finds the modules of the folder it runs in (the project
    folder, or a run's folder), as `python -m` would."""
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    (work / "my_losses_in_work").mkdir(parents=True)  # a package only the working directory has
    (work / "my_losses_in_work" / "__init__.py").write_text("")
    (work / "my_losses_in_work" / "mine.py").write_text(
        (REPO / "tests" / "example_method.py").read_text()
    )
    script = bin_dir / "like_a_console_script.py"  # sys.path[0] is bin/, as for .venv/bin/aunce
    script.write_text(
        "import sys\n"
        "from aunce.methods import resolve_loss\n"
        "fn = resolve_loss('my_losses_in_work.mine:smoothed_wce')\n"
        "print(fn.__module__, sys.path.index(sys.argv[1]) < sys.path.index(sys.argv[2]))\n"
    )
    proc = subprocess.run([sys.executable, str(script), str(work), str(bin_dir)], cwd=work,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["my_losses_in_work.mine", "True"]


def metrics_record(path: str, rng) -> dict:
    """A metrics.json record for a plan's metrics file path .../<ds>/<enc>/<method>/fold-F/seed-S/."""
    ds, enc, method, fold, seed = path.split("/")[2:7]
    f1 = {au: float(rng.uniform(0.2, 0.8)) for au in ("AU1", "AU2")}
    return {
        "run": {
            "dataset": ds,
            "encoder": enc,
            "method": method,
            "fold": fold.removeprefix("fold-"),
            "seed": int(seed.removeprefix("seed-")),
        },
        "aus": list(f1),
        "f1": f1,
        "f1_macro": sum(f1.values()) / 2,
        "f1_micro": 0.5,
        "accuracy": 0.7,
        "exact_match": 0.3,
        "all_positive": {"f1": {"AU1": 0.3, "AU2": 0.4}, "f1_macro": 0.35},
    }


def test_a_custom_method_gets_a_table_row_and_significance_tests_against_the_builtins():
    from aunce.plan import make_plan
    from aunce.tables import build, significance

    cfg = load_config(REPO / "config" / "smoke.yaml")
    cfg["methods"]["supcon"] = dict(SUPCON)
    cfg["tables"] = {
        "table2": {
            "kind": "au_f1",
            "dataset": "bp4d",
            "encoder": "megraph",
            "methods": ["aunce", "wce", "wfl", "supcon"],
            "published": False,
        }
    }
    check_config(cfg)
    spec = make_plan(cfg).tables["table2"]
    assert ["supcon", "SupCon"] in spec["methods"]
    assert any("/supcon/" in p for p in spec["inputs"]["metrics"])
    rng = np.random.default_rng(0)
    records = {p: metrics_record(p, rng) for p in spec["inputs"]["metrics"]}
    spec["inputs"]["ceilings"] = {}  # no stand-in was generated here: no ceiling row
    table = build("table2", spec, records.__getitem__)
    assert "SupCon (this run)" in [r.label for r in table.rows]
    tests = significance(spec, records.__getitem__)
    pairs = {tuple(sorted(p)) for p in tests[["method_a", "method_b"]].itertuples(index=False)}
    assert {tuple(sorted(("supcon", m))) for m in ("aunce", "wce", "wfl")} <= pairs


def doc_overlay(tmp_path: Path) -> Path:
    """docs/custom-method.md's config/mine.yaml, exactly as the page gives it."""
    import re

    text = (REPO / "docs" / "custom-method.md").read_text()
    block = re.search(r"```yaml\n(# config/mine\.yaml.*?)```", text, re.S).group(1)
    mine = tmp_path / "mine.yaml"
    mine.write_text(block)
    return mine


@pytest.mark.parametrize("base", ["config.yaml", "smoke.yaml"])
def test_the_documented_overlay_checks_on_both_shipped_configs(tmp_path, base):
    from aunce.validate import validate_files

    plan = validate_files(REPO / "config" / base, doc_overlay(tmp_path), workdir=tmp_path)
    for table in ("table2", "table5", "table7", "table8", "table9"):  # (supcon-e24: 24 epochs)
        assert any(run[2].split("-e")[0] == "supcon" for run in plan.table_runs[table]), table


@pytest.mark.workflow
def test_the_documented_overlay_runs_and_supcon_gets_its_rows(tmp_path):
    """`config/smoke.yaml config/mine.yaml` as docs/custom-method.md gives it: `all` plans (a dry
    run; config/config.yaml too), and Table 5 (the smallest: GFT, one seed) built for real has
    SupCon's row and its paired tests against AUNCE, WCE and WFL."""
    import os

    import pandas as pd
    from conftest import BIN

    mine = doc_overlay(tmp_path)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")

    def snakemake(base, *args):
        cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
               "--cores", "1", *args, "--configfile", str(REPO / "config" / base), str(mine)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env)  # fmt: skip

    for base in ("config.yaml", "smoke.yaml"):
        proc = snakemake(base, "-n", "all")  # (targets before --configfile: it takes several)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "supcon" in proc.stdout + proc.stderr
    proc = snakemake("smoke.yaml", "results/tables/table5.md")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "work" / "results"
    table = pd.read_csv(results / "tables" / "table5.csv").set_index("row")
    assert "SupCon (this run)" in table.index and table.loc["SupCon (this run)", "Avg."] >= 0
    assert "| SupCon (this run)" in (results / "tables" / "table5.md").read_text()
    tests = pd.read_csv(results / "tables" / "table5.significance.csv")
    pairs = {tuple(sorted(p)) for p in tests[["method_a", "method_b"]].itertuples(index=False)}
    assert {tuple(sorted(("supcon", m))) for m in ("aunce", "wce", "wfl")} <= pairs
