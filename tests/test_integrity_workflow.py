"""The workflow when files are damaged, inputs change under a run, code changes, or names and
paths hold shell characters (docs/recovery.md). Tiny configs, in temporary folders."""

import os
import re
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from conftest import BIN, REPO, SMOKE, snakemake
from test_integrity import garble_tensor

pytestmark = pytest.mark.workflow

ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


def smoke(**changes):
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg.update(changes)
    return cfg


def write(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def out(proc):
    return proc.stdout + proc.stderr


def commands(proc) -> list[str]:
    """The shell commands a dry run with -p prints."""
    return re.findall(r"^\s*(?:Shell command: )?(aunce .*)$", out(proc), re.M)


def planned(proc) -> dict[str, int]:
    """The job counts of a dry run's table, by rule."""
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", out(proc), re.M)
            if m[0] != "total"}  # fmt: skip


# --- code versions: a comment reruns nothing, a preset change reruns what imports presets --------
def test_a_comment_reruns_nothing_a_preset_change_reruns_what_uses_presets(smoke_run, tmp_path):
    """On a finished smoke run, a copy of the package with a comment and a reworded docstring in
    aunce/io.py (which every step imports) and a new subcommand in aunce/cli.py plans nothing; a
    change to aunce/presets.py plans every training job (the losses import the presets)."""
    package = tmp_path / "copy" / "aunce"
    shutil.copytree(REPO / "aunce", package, ignore=shutil.ignore_patterns("__pycache__"))
    # the package reads the project's tables beside it (baselines/: claims, Table 9, stds)
    (package.parent / "baselines").symlink_to(REPO / "baselines")
    # the Snakefile and the jobs import the copy: first on sys.path, before the project's folder
    # (which Snakemake then does not put first, as it is already there)
    env = dict(ENV, PYTHONPATH=os.pathsep.join([str(package.parent), str(REPO)]))
    io = package / "io.py"
    text = io.read_text()
    text = text.replace("def write_text(", "# a comment\ndef write_text(  # and another\n    ", 1)
    text = text.replace('"""The SHA-256 of a file\'s bytes', '"""The SHA-256, reworded, of the', 1)
    assert text != io.read_text()
    io.write_text(text)
    cli = package / "cli.py"  # another subcommand: no stage runs it
    text = cli.read_text().replace(
        "\n    return parser\n",
        '\n    p = sub.add_parser("hello")\n'
        "    p.set_defaults(func=cmd_hello)\n    return parser\n",
        1,
    )
    cli.write_text(text + '\n\ndef cmd_hello(args) -> None:\n    print("hello")\n')
    proc = snakemake(smoke_run, "all", "-n", "--cores", "1", env=env)
    assert proc.returncode == 0 and "Nothing to be done" in out(proc), out(proc)[-3000:]

    presets = package / "presets.py"
    presets.write_text(presets.read_text() + "\nUNUSED_SETTING = 1\n")
    proc = snakemake(smoke_run, "all", "-n", "--cores", "1", env=env)
    jobs = planned(proc)
    assert proc.returncode == 0, out(proc)[-3000:]
    # every training job (the losses import the presets), and what reads their outputs
    assert sum(n for rule, n in jobs.items() if rule.startswith("train_eval_")) == 5, jobs
    assert jobs.get("pretrain_bp4d_megraph_pcell0") == 1, jobs
    assert "synthesize" not in jobs and "cache" not in jobs and "warmstart" not in jobs


# --- settings reach jobs as files named by their content -----------------------------------------
def test_settings_files_keep_commands_short_and_a_changed_setting_reruns(smoke_run, tmp_path):
    cfg = smoke()
    cfg["linear_eval"]["lr"] = 0.02
    config = write(tmp_path / "changed.yaml", cfg)
    # another config in the same folder: consent (the results-folder guard, aunce.folder)
    proc = snakemake(smoke_run, "all", "-n", "-p", "--cores", "1", "--config", "overwrite=true",
                     configfile=config)  # fmt: skip
    assert proc.returncode == 0, out(proc)[-3000:]
    jobs = planned(proc)  # the jobs whose settings hold linear_eval: training and cross-evaluation
    assert sum(n for rule, n in jobs.items() if rule.startswith("train_eval_")) == 5, jobs
    assert sum(n for rule, n in jobs.items() if rule.startswith("cross_eval_")) == 3, jobs
    assert "synthesize" not in jobs and "warmstart" not in jobs and "pretrain_" not in "".join(jobs)
    lines = commands(proc)
    assert len(lines) == sum(jobs.values()) - 1  # every job but `all`
    assert max(map(len, lines)) < 400  # no JSON (kilobytes before) on the command line
    settings = re.findall(r"--settings (results/settings/train_eval-[0-9a-f]{16}\.json)",
                          out(proc))  # fmt: skip
    assert settings and all((smoke_run / s).is_file() for s in settings)


# --- config files that do not load: make run checks them first ----------------------------------
def test_make_run_checks_the_config_before_snakemake(tmp_path):
    """`make run` runs `aunce check-config` first: a config that does not load is one line naming
    the file and the line (tests/test_integrity.py), not Snakemake's traceback."""
    proc = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, env=ENV)
    lines = proc.stdout.splitlines()
    check = next(i for i, x in enumerate(lines) if "aunce check-config" in x)
    assert check < next(i for i, x in enumerate(lines) if "snakemake all" in x)
    bad = tmp_path / "tabs.yaml"
    bad.write_text("seeds: [1]\npretrain:\n\tepochs: 2\n")
    proc = subprocess.run([str(BIN / "aunce"), "check-config", str(bad)], capture_output=True,
                          text=True, env=ENV)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{bad}: line 3: a tab character" in proc.stderr


# --- names cannot reach a shell ------------------------------------------------------------------
def test_hostile_names_are_refused_before_any_job(tmp_path):
    cfg = smoke()
    cfg["datasets"] = {"x$(touch PWNED)": cfg["datasets"]["bp4d"]}
    cfg["tables"] = {"table1": {"kind": "occurrence", "datasets": ["x$(touch PWNED)"]}}
    config = write(tmp_path / "hostile.yaml", cfg)
    work = tmp_path / "work"
    for args in (("-n", "-p"), ("--cores", "1")):
        proc = snakemake(work, *args, configfile=config)
        assert proc.returncode != 0
        assert "datasets: 'x$(touch PWNED)' is not a valid name" in out(proc)
        assert "Traceback" not in out(proc)
    assert not (work / "PWNED").exists() and not (tmp_path / "PWNED").exists()
    assert not (work / "results").exists()


def list_layout(root, source):
    """A list-layout dataset (ME-GraphAU's list files) at ``root`` from a synthetic one."""
    from aunce.data import au_names, read_dataset

    manifest = read_dataset("synthetic", source)
    aus = au_names(manifest)
    (root / "list").mkdir(parents=True)
    paths = []
    for _, row in manifest.iterrows():
        rel = f"{row['subject']}/{row['sequence']}/{int(row['frame'])}.png"
        (root / "img" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / row["image"], root / "img" / rel)
        paths.append(rel)
    labels = manifest[aus].astype(int).astype(str).agg(" ".join, axis=1).tolist()
    for k in (1, 2, 3):
        test = (manifest["test_fold"] == k).to_numpy()
        for split, keep in (("train", ~test), ("test", test)):
            rows = [i for i in range(len(paths)) if keep[i]]
            (root / f"list/BP4D_{split}_img_path_fold{k}.txt").write_text(
                "".join(paths[i] + "\n" for i in rows)
            )
            (root / f"list/BP4D_{split}_label_fold{k}.txt").write_text(
                "".join(labels[i] + "\n" for i in rows))  # fmt: skip


def test_a_dataset_folder_with_shell_characters_stays_one_argument(tmp_path):
    from aunce.data.synthetic import generate

    source = generate("bp4d", tmp_path / "synthetic", n_subjects=3, frames_per_subject=4,
                      workers=1)  # fmt: skip
    root = tmp_path / "BP4D $(touch PWNED) `touch PWNED2` 'q\" ;touch PWNED3"
    list_layout(root, source)
    cfg = smoke()
    cfg["datasets"] = {"bp4d": {"source": "list", "root": str(root), "list_name": "BP4D"}}
    cfg["tables"] = {"table1": {"kind": "occurrence", "datasets": ["bp4d"]}}
    config = write(tmp_path / "paths.yaml", cfg)
    work = tmp_path / "work"
    target = "results/tables/table1.md"
    proc = snakemake(work, "-n", "-p", "--cores", "1", target, configfile=config)
    assert proc.returncode == 0, out(proc)[-3000:]
    command = next(x for x in commands(proc) if x.startswith("aunce cache"))
    assert "--root " + shlex_quote(str(root)) in command
    proc = snakemake(work, "--cores", "1", target, configfile=config)
    assert proc.returncode == 0, out(proc)[-3000:]
    assert (work / target).is_file()
    assert not [p for p in (tmp_path, work, REPO) for n in ("PWNED", "PWNED2", "PWNED3")
                if (p / n).exists()]  # fmt: skip


def shlex_quote(text):
    import shlex

    return shlex.quote(text)


# --- a damaged cache is incomplete to the workflow -----------------------------------------------
def test_a_damaged_cache_is_built_again_with_what_depends_on_it(tmp_path):
    cfg = smoke()
    cfg["datasets"] = {"bp4d": cfg["datasets"]["bp4d"]}
    cfg["tables"] = {"table1": {"kind": "occurrence", "datasets": ["bp4d"]}}
    config = write(tmp_path / "cache.yaml", cfg)
    work, target = tmp_path / "work", "results/tables/table1.md"
    aunce = [str(BIN / "aunce"), "verify", str(work / "results")]

    def run(*args):
        proc = snakemake(work, "--cores", "1", *args, target, configfile=config)
        assert proc.returncode == 0, out(proc)[-3000:]
        return proc

    run()
    table = (work / "results/tables/table1.csv").read_bytes()
    images = work / "results/cache/bp4d/images.npy"
    size = images.stat().st_size
    os.truncate(images, size // 2)  # a copy cut short
    proc = run("-n")
    assert (f"aunce: results/cache/bp4d: damaged, images.npy has {size // 2} bytes, {size} when it "
            "was built; this run builds it again") in out(proc)  # fmt: skip
    assert planned(proc) == {"cache": 1, "table": 1}, out(proc)[-3000:]
    run()
    assert images.stat().st_size == size
    assert (work / "results/tables/table1.csv").read_bytes() == table
    assert subprocess.run(aunce, capture_output=True, env=ENV).returncode == 0

    data = bytearray(images.read_bytes())  # a byte changed in place: the sizes cannot see it
    data[size // 2] ^= 0xFF
    images.write_bytes(bytes(data))
    assert "Nothing to be done" in out(run("-n"))
    proc = subprocess.run(aunce, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2 and "images.npy does not match its SHA-256" in proc.stdout
    proc = subprocess.run(
        aunce[:2] + ["--fix"] + aunce[2:], capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 0, proc.stderr
    assert planned(run("-n")) == {"cache": 1, "table": 1}
    run()
    assert (work / "results/tables/table1.csv").read_bytes() == table


# --- a garbled checkpoint, and a checkpoint whose warm start changed: trained afresh ------------
def test_a_garbled_checkpoint_and_a_changed_warm_start_end_as_a_clean_run(tmp_path):
    """Killed while its second run trains, a job leaves the first run's finished checkpoint and
    the second's partial one. The first is then garbled (same size), and the warm start the runs
    began from is trained again with other settings. `make run` (unlock, then the workflow) must
    not restore the garbled run nor resume the other on the old backbone: both train afresh and
    end byte-identical to the same job run again without interruption (`snakemake -f`)."""
    cfg = smoke(seeds=[1, 2])
    cfg["datasets"] = {"bp4d": cfg["datasets"]["bp4d"]}
    cfg["encoders"] = {"megraph": cfg["encoders"]["megraph"]}  # pretrained: warm
    cfg["methods"] = {"wce": cfg["methods"]["wce"]}
    cfg["pretrain"]["epochs"] = 6  # a kill lands inside the second run
    cfg["tables"] = {"table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["wce"],
                                "folds": [1]}}  # fmt: skip
    config = write(tmp_path / "run.yaml", cfg)
    work = tmp_path / "work"
    cell = "results/eval/bp4d/megraph/wce/fold-1"
    target = f"{cell}/seed-2/metrics.json"
    checkpoints = work / "results/checkpoints/pretrain/bp4d/megraph/wce/fold-1"

    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
           f"--configfile={config}", "--cores", "1", target]  # fmt: skip
    run = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 600
    while not (checkpoints / "seed-2" / "checkpoint.pt").exists():  # the first run has finished
        assert run.poll() is None and time.monotonic() < deadline, "no checkpoint of seed 2"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (work / target).exists(), "the job finished before the kill: nothing was tested"

    garble_tensor(checkpoints / "seed-1" / "checkpoint.pt")  # torch.load would not notice
    cfg["warm_start"]["epochs"] = 2  # the backbone both runs started from is trained again
    write(config, cfg)

    unlock = subprocess.run([str(BIN / "aunce"), "unlock-stale", "--directory", str(work)],
                            capture_output=True, text=True, env=ENV)  # fmt: skip
    assert unlock.returncode == 0, unlock.stderr
    # the warm start's settings changed: the results-folder guard wants consent (aunce.folder)
    proc = snakemake(work, "--cores", "1", target, "--config", "overwrite=true", configfile=config)
    assert proc.returncode == 0, out(proc)[-3000:]
    assert re.search(r"^warmstart\s+1$", out(proc), re.M)  # the backbone, trained again
    log = "".join(p.read_text() for p in (work / "results/logs/train_eval").rglob("*.log"))
    assert "seed-1/checkpoint.pt: damaged, its bytes do not match the SHA-256" in log, log[-3000:]
    assert "training method wce fold 1 seed 1 afresh" in log
    assert (
        "seed-2/checkpoint.pt: checkpoint of other settings, data or code; training afresh" in log
    )
    assert "resumed" not in log and "restored" not in log

    def outputs():
        files = {
            p.relative_to(work): p.read_bytes() for p in (work / cell).rglob("*") if p.is_file()
        }
        for seed in (1, 2):
            history = work / f"results/pretrain/bp4d/megraph/wce/fold-1/seed-{seed}/history.csv"
            files[history] = pd.read_csv(history).drop(columns=["seconds", "frames_per_second"])
        return files

    recovered = outputs()
    proc = snakemake(work, "--cores", "1", "-f", target, configfile=config)
    assert proc.returncode == 0, out(proc)[-3000:]
    straight = outputs()
    assert sorted(recovered) == sorted(straight)
    assert sum(str(k).endswith("metrics.json") for k in straight) == 2
    for key, value in straight.items():
        if isinstance(value, pd.DataFrame):
            assert len(value) == 6 and value.equals(recovered[key]), key
        else:
            assert recovered[key] == value, key
