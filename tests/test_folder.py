"""One results folder per configuration (aunce.folder), `--config` overrides that work, and a
"did you mean" for misspelt keys and names."""

import copy
import os
import subprocess

import pytest
import yaml
from conftest import BIN, REPO, SMOKE, snakemake

from aunce import AunceError
from aunce.config import check_config, load_config, load_yaml, retype_overrides
from aunce.folder import check_folder, differences, record_run
from aunce.hints import did_you_mean

DEFAULT = REPO / "config" / "config.yaml"


def test_differences_name_the_key_paths():
    old = {"seeds": [1, 2], "pretrain": {"epochs": 10, "lr": 1e-3}, "tables": {"t2": {"a": 1}}}
    new = copy.deepcopy(old)
    assert differences(old, new) == []
    new["pretrain"]["epochs"] = 3
    new["tables"]["t3"] = {}
    new["seeds"] = (1, 2)  # YAML and JSON spell a list alike
    assert differences(old, new) == ["pretrain.epochs", "tables.t3"]


def test_a_folder_with_another_configs_record_stops_with_one_line(tmp_path):
    default, smoke = load_config(DEFAULT), load_config(SMOKE)
    check_folder(smoke, smoke, tmp_path)  # an empty folder: nothing to compare with
    record_run(default, ["config/config.yaml"], tmp_path)
    check_folder(copy.deepcopy(default), default, tmp_path)  # the same config goes on
    with pytest.raises(AunceError) as err:
        check_folder(smoke, smoke, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'results'} holds the results of config/config.yaml "
                              "(results/run.json; differs in ")  # fmt: skip
    assert message.endswith("run this config in another folder (snakemake --directory DIR ..., "
                            "or make run DIR=...), or add --config overwrite=true (make run "
                            "OVERWRITE=1) to run it here anyway")  # fmt: skip
    check_folder(smoke, smoke, tmp_path, overwrite=True)


@pytest.mark.workflow
def test_smoke_into_the_defaults_folder_stops_and_runs_beside_it(tmp_path):
    """The default's run records its settings when it starts (a real run of its first job);
    config/smoke.yaml into the same folder stops before any job, also on a dry run, with one
    line; in another folder (--directory, the output-folder setting) it runs beside it, and
    with --config overwrite=true it may run there."""
    work = tmp_path / "project"
    proc = snakemake(work, "--cores", "1", "results/config.yaml", configfile=DEFAULT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = (work / "results" / "run.json").read_bytes()
    made = sorted(p.relative_to(work) for p in (work / "results").rglob("*"))
    for args in (("-n",), ()):
        proc = snakemake(work, "--cores", "1", *args)  # the smoke config
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        lines = [x for x in out.splitlines() if "holds the results of" in x]
        assert len(lines) == 1 and "differs in datasets." in lines[0], out
        assert "Job stats" not in out
    assert (work / "results" / "run.json").read_bytes() == record
    assert sorted(p.relative_to(work) for p in (work / "results").rglob("*")) == made  # nothing new

    beside = work / "runs" / "smoke"  # snakemake --directory runs/smoke, make run DIR=runs/smoke
    proc = snakemake(beside, "--cores", "1", "results/config.yaml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert yaml.safe_load((beside / "results/config.yaml").read_text())["seeds"] == [1, 2]
    assert (work / "results" / "run.json").read_bytes() == record  # the default's untouched
    proc = snakemake(beside, "-n", "--cores", "1", "all")
    assert proc.returncode == 0 and "Job stats" in proc.stdout + proc.stderr
    proc = snakemake(work, "-n", "--cores", "1", "--config", "overwrite=true")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_make_run_puts_a_run_in_the_folder_dir_names():
    proc = subprocess.run(["make", "-n", "run", "DIR=runs/smoke", "CONFIG=config/smoke.yaml",
                           "OVERWRITE=1"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert 'aunce unlock-stale --directory "runs/smoke"' in proc.stdout
    assert ('snakemake all --cores 1 --resources gpu=1 --configfile config/smoke.yaml '
            '--directory "runs/smoke" --config overwrite=true') in proc.stdout  # fmt: skip
    proc = subprocess.run(["make", "-n", "status", "DIR=runs/smoke"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert 'aunce status "runs/smoke"' in proc.stdout


def test_nested_overrides_are_read_as_yaml_where_the_schema_wants_it():
    """`--config 'pretrain={"epochs": 3}'`: Snakemake gives '3'; the schema wants an integer."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    overrides = parse_config(['pretrain={"epochs": 3, "lr": 1.0e-2, "drop_last": false}',
                              "seeds=[1,2]", 'tables={"table2": {"folds": [1]}}'])  # fmt: skip
    assert overrides["pretrain"]["epochs"] == "3" and overrides["seeds"] == ["1", "2"]
    config = load_yaml(SMOKE)
    update_config(config, overrides)
    with pytest.raises(AunceError, match="pretrain.epochs: '3' is not of type 'integer'"):
        check_config(copy.deepcopy(config))
    retype_overrides(config, overrides)
    check_config(config)
    assert config["pretrain"]["epochs"] == 3 and config["pretrain"]["lr"] == 0.01
    assert config["pretrain"]["drop_last"] is False and config["seeds"] == [1, 2]
    assert config["tables"]["table2"]["folds"] == ["1"]  # a fold is a name: it stays a string
    assert config["pretrain"]["batch_size"] == 16  # the rest of the mapping is kept


@pytest.mark.workflow
def test_the_documented_override_works_on_the_command_line(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "1", "results/tables/table2.md",
                     "--config", 'pretrain={"epochs": 3}', "seeds=[1]")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["pretrain"].update(learnin_rate=0.1),
     "pretrain.learnin_rate: unknown key (did you mean 'lr'? allowed here: "),
    (lambda c: c.update(devce="cpu"), "devce: unknown key (did you mean 'device'? "),
    (lambda c: c.update(device="cdua"),
     "device: 'cdua' is not one of ['cpu', 'cuda', 'auto'] (did you mean 'cuda'?)"),
    (lambda c: c["tables"]["table2"].update(methods=["aunce", "wcd"]),
     "tables.table2.methods: 'wcd' is not defined under 'methods' (did you mean 'wce'? defined: "),
    (lambda c: c["methods"].update(mine={"loss": "wfc"}),
     "methods.mine.loss: 'wfc' is not aunce, wce, wfl or the import path of a function of yours "
     "(did you mean 'wfl'? "),
])  # fmt: skip
def test_a_misspelt_key_or_name_gets_a_did_you_mean(change, message):
    config = load_yaml(SMOKE)
    change(config)
    with pytest.raises(AunceError) as err:
        check_config(config)
    assert message in str(err.value)


def test_did_you_mean_is_silent_when_nothing_is_close():
    assert did_you_mean("zzz", ["lr", "epochs"]) == ""
    assert did_you_mean("epoch", ["lr", "epochs"]) == "did you mean 'epochs'? "


def test_a_misspelt_command_gets_a_did_you_mean():
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(BIN / "aunce"), "stauts"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.rstrip().endswith("did you mean 'status'?")


def test_a_folder_from_before_the_record_is_compared_by_its_resolved_config(tmp_path):
    """A results folder with results/config.yaml (the resolved config, noise tables' datasets
    included) but no results/run.json: its resolved config is what a run is compared with."""
    from aunce.plan import make_plan

    def resolved(path):
        config = load_config(path)
        return config, dict(copy.deepcopy(config), datasets=make_plan(copy.deepcopy(config)).datasets)

    default, default_resolved = resolved(DEFAULT)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "config.yaml").write_text(yaml.safe_dump(default_resolved))
    check_folder(default, default_resolved, tmp_path)
    smoke, smoke_resolved = resolved(SMOKE)
    with pytest.raises(AunceError, match=r"holds the results of another config \(results/config"):
        check_folder(smoke, smoke_resolved, tmp_path)
