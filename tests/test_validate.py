"""Bad input refused before any job, on one path shared by `aunce check-config` and the Snakefile
(aunce.validate): config values, custom methods, the folders the plan writes; and the stale lock."""

import copy
import os

import pytest
import yaml
from conftest import REPO, SCHEMA

from aunce import AunceError
from aunce.cli import main
from aunce.config import check_config
from aunce.lock import lock_files, unlock_stale, workflow_processes
from aunce.plan import make_plan
from aunce.validate import check_folders, output_folders, validate


def smoke():
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def refused(edit, workdir) -> str:
    """The one message with which validate() refuses the smoke config after ``edit``."""
    cfg = smoke()
    edit(cfg)
    with pytest.raises(AunceError) as err:
        validate(cfg, schema_path=SCHEMA, workdir=workdir)
    return str(err.value)


# --- config values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["methods"]["aunce"].update(beta_minority=-1.2),
         "methods.aunce.beta_minority: -1.2 is less than the minimum of 0"),
        (lambda c: c["methods"]["aunce"].update(beta_majority=-0.4),
         "methods.aunce.beta_majority: -0.4 is less than the minimum of 0"),
        (lambda c: c["tables"]["fig6"].update(minority=[1.0, -1.2]),
         "tables.fig6.minority.1: -1.2 is less than the minimum of 0"),
        (lambda c: c["tables"]["fig6"].update(majority=[-0.4]),
         "tables.fig6.majority.0: -0.4 is less than the minimum of 0"),
        (lambda c: c["methods"]["aunce"].update(positive_probs=[0.5, 0.5, 0.5, 0]),
         "methods.aunce.positive_probs: [0.5, 0.5, 0.5, 0] sum to 1.5, not 1"),
        (lambda c: c["tables"]["table2"].update(seeds=[1, 7]),
         "tables.table2.seeds: 7 is not one of the config's seeds (1, 2); add it to seeds"),
        (lambda c: c["tables"]["table2"].update(folds=[4]),
         "tables.table2.folds: '4' is not a fold of dataset 'bp4d' (its folds: 1, 2, 3)"),
        (lambda c: c["tables"]["table5"].update(folds=[1]),
         "tables.table5.folds: '1' is not a fold of dataset 'gft' (its folds: split)"),
        (lambda c: c["tables"]["table8"].update(folds=["split"]),
         "tables.table8.folds: 'split' is not a fold of dataset 'bp4d'"),
        (lambda c: c["tables"]["table7"].update(folds=[5]),
         "tables.table7.folds: '5' is not a fold of dataset 'bp4d'"),
        (lambda c: c["methods"].update(mine={"loss": "tests/example_method:supcon",
                                             "kind": "contrastive"}),
         "methods.mine.loss: 'tests/example_method:supcon' names a file; give the module with "
         "dots, 'tests.example_method:supcon'"),
        (lambda c: c["methods"].update(mine={"loss": "tests/example_method.py:supcon",
                                             "kind": "contrastive"}),
         "give the module with dots, 'tests.example_method:supcon'"),
        (lambda c: c["methods"].update(mine={"loss": "my-losses:supcon", "kind": "contrastive"}),
         "methods.mine.loss: 'my-losses:supcon' is not an import path package.module:function"),
        (lambda c: c["tables"]["table11"].update(probabilities=[[0.5, 0.5, 0.5, 0]]),
         "tables.table11.probabilities: [0.5, 0.5, 0.5, 0] is not 4 probabilities summing to 1"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_naming_the_key_and_value(tmp_path, edit, message):
    text = refused(edit, tmp_path)
    assert message in text
    assert "does not match '^" not in text  # no raw regular expression


def test_a_cross_table_selects_the_folds_of_its_cross_validated_source(tmp_path):
    cfg = smoke()  # table7: folds [1] over bp4d -> gft (bp4d's fold 1) and gft -> bp4d (gft's split)
    validate(cfg, schema_path=SCHEMA, workdir=tmp_path)
    assert ("1", "split", 1) in make_plan(cfg).cross[("bp4d", "gft", "megraph", "wce")]


def test_validate_returns_the_plan_of_make_plan(tmp_path):
    cfg = smoke()
    plan = validate(cfg, schema_path=SCHEMA, workdir=tmp_path)
    assert plan.runs == make_plan(check_config(smoke(), SCHEMA)).runs


def test_check_config_plans_like_the_snakefile(tmp_path, monkeypatch, capsys):
    """A problem only planning finds (Table 11's rows) stops `aunce check-config` too."""
    cfg = smoke()
    cfg["tables"]["table11"]["probabilities"] = [[0.5, 0.5, 0.5, 0]]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aunce check-config: error: {path}: tables.table11")


# --- custom methods: importable, callable, one call on tiny tensors -----------------------------
BAD_LOSSES = '''
import torch


def per_au(z, z_aug, labels, *, au_weights=None, minority_label=None, generator=None):
    return (z - z_aug).pow(2).sum(-1).mean(0)  # (K,): not a scalar


def crashes(z, z_aug, labels, *, au_weights=None, minority_label=None, generator=None):
    return z @ z_aug


def constant(logits, labels, *, au_weights=None):
    return torch.tensor(1.0)


NOT_A_FUNCTION = 3
'''


@pytest.mark.parametrize(
    "loss, kind, message",
    [
        ("no_such_module_xyz:loss", "contrastive", "no module 'no_such_module_xyz'"),
        ("aunce_bad_losses:missing", "contrastive",
         "module 'aunce_bad_losses' has no attribute 'missing'"),
        ("aunce_bad_losses:NOT_A_FUNCTION", "contrastive", "is a int, not callable"),
        ("aunce_bad_losses:constant", "contrastive", "cannot be called as a contrastive loss"),
        ("aunce_bad_losses:per_au", "contrastive",
         "must return a scalar tensor, got shape (3,) on a test call with z and z_aug (4, 3, 8)"),
        ("aunce_bad_losses:crashes", "contrastive",
         "a test call with z and z_aug (4, 3, 8) and labels (4, 3) failed: RuntimeError"),
        ("aunce_bad_losses:constant", "classification",
         "returned a tensor that does not depend on its inputs (logits (4, 3))"),
    ],
)  # fmt: skip
def test_custom_methods_are_called_once_at_planning(tmp_path, monkeypatch, loss, kind, message):
    (tmp_path / "aunce_bad_losses.py").write_text(BAD_LOSSES)
    monkeypatch.syspath_prepend(str(tmp_path))

    def edit(cfg):
        cfg["methods"]["mine"] = {"loss": loss, "kind": kind}
        cfg["tables"]["table2"]["methods"] = ["aunce", "mine"]

    text = refused(edit, tmp_path)
    assert text.startswith(f"method 'mine' (loss '{loss}'): ") and message in text


def test_a_good_custom_method_passes_and_an_unused_one_is_not_imported(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)

    def edit(cfg):
        cfg["methods"]["supcon"] = {"loss": "tests.example_method:supcon", "kind": "contrastive"}
        cfg["methods"]["unused"] = {"loss": "no_such_module_xyz:loss", "kind": "contrastive"}
        cfg["tables"]["table2"]["methods"] = ["aunce", "supcon"]

    cfg = smoke()
    edit(cfg)
    plan = validate(cfg, schema_path=SCHEMA, workdir=tmp_path)
    assert ("bp4d", "megraph", "supcon") in plan.runs


# --- the folders the plan writes ----------------------------------------------------------------
def test_every_folder_the_plan_writes_is_listed():
    folders = output_folders(make_plan(check_config(smoke(), SCHEMA)))
    for folder in ("results", "results/tables", "results/figures", "results/logs",
                   "results/cache", "results/eval/bp4d/megraph/aunce/fold-1/seed-2",
                   "results/embed/bp4d/megraph/aunce/fold-1/seed-2",
                   "results/cross/bp4d-to-gft/megraph/wce/fold-1-on-split/seed-1"):  # fmt: skip
        assert folder in folders, folder


@pytest.mark.parametrize("blocked", ["results", "results/tables", "results/eval/bp4d"])
def test_a_file_in_the_way_is_named(tmp_path, blocked):
    (tmp_path / blocked).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocked).write_text("not a folder")
    text = refused(lambda c: None, workdir=tmp_path)
    assert text.startswith(f"{blocked} is not writable: a file of that name is in the way")
    assert str(tmp_path) not in text  # paths relative to the working directory


def test_a_read_only_folder_is_named(tmp_path, monkeypatch):
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "tables").chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: let os.access answer as for another user
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: not str(p).endswith("tables") and real(p, mode)
        )
    try:
        text = refused(lambda c: None, workdir=tmp_path)
    finally:
        (tmp_path / "results" / "tables").chmod(0o755)
    assert text.startswith("results/tables is not writable (read-only)")
    assert not (tmp_path / "results" / "figures").exists()  # nothing created


def test_a_read_only_folder_above_existing_writable_ones_is_fine(tmp_path, monkeypatch):
    for sub in ("tables", "figures"):
        (tmp_path / "results" / sub).mkdir(parents=True)
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).endswith("results"))
    check_folders(["results/tables", "results/figures"], tmp_path)
    with pytest.raises(AunceError, match="^results is not writable .*results/logs"):
        check_folders(["results/logs"], tmp_path)


# --- the stale lock -----------------------------------------------------------------------------
def fake_proc(root, processes):
    """A /proc with the given {pid: (cwd, argv)}."""
    root.mkdir()
    for pid, (cwd, argv) in processes.items():
        (root / str(pid)).mkdir()
        os.symlink(cwd, root / str(pid) / "cwd")
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return str(root)


def locked(workdir):
    (workdir / ".snakemake" / "locks").mkdir(parents=True)
    (workdir / ".snakemake" / "locks" / "0.output.lock").write_text("results/report.md\n")


def test_a_lock_is_removed_only_when_no_workflow_runs_in_the_folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert unlock_stale(work) is False  # no lock: nothing to do
    locked(work)
    running = {
        11: (str(work), ["/venv/bin/python", "/venv/bin/snakemake", "all", "--cores", "1"]),
        12: (str(elsewhere), ["/venv/bin/python", "/venv/bin/snakemake", "all"]),
        13: (str(work), ["vim", "Snakefile"]),
    }
    proc = fake_proc(tmp_path / "proc1", running)
    assert workflow_processes(work, proc) == [(11, " ".join(running[11][1]))]
    with pytest.raises(AunceError, match=r"is in use by a running Snakemake .*\(pid 11: "):
        unlock_stale(work, proc)
    job = {14: (str(work), ["/bin/bash", "-c", "set -euo pipefail;  aunce train-eval --cache x"])}
    with pytest.raises(AunceError, match=r"pid 14: "):  # an orphaned job of a killed Snakemake
        unlock_stale(work, fake_proc(tmp_path / "proc2", job))
    assert lock_files(work)
    idle = fake_proc(tmp_path / "proc3", {12: running[12], 13: running[13]})
    assert unlock_stale(work, idle) is True and not lock_files(work)
    locked(work)
    with pytest.raises(AunceError, match="cannot list the processes .*snakemake --unlock"):
        unlock_stale(work, str(tmp_path / "no-proc"))


def test_another_users_lock_is_left_alone(tmp_path, monkeypatch):
    locked(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # not root, and not the lock's owner
    with pytest.raises(AunceError, match=r"is locked by another user's Snakemake .*user id"):
        unlock_stale(tmp_path, fake_proc(tmp_path / "proc", {}))
    assert lock_files(tmp_path)


def test_unlock_stale_on_this_machine(tmp_path, caplog):
    locked(tmp_path)
    assert main(["unlock-stale", "--directory", str(tmp_path)]) == 0
    assert not lock_files(tmp_path)
    assert "removed the Snakemake lock left by an interrupted run" in caplog.text


def test_shipped_configs_stay_valid(tmp_path):
    for name in ("config.yaml", "smoke.yaml"):
        cfg = yaml.safe_load((REPO / "config" / name).read_text())
        validate(copy.deepcopy(cfg), schema_path=SCHEMA, workdir=tmp_path)
