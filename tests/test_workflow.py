"""The workflow end to end on the smoke config, in a temporary folder (about a minute)."""

import json
import os
import re
import shlex
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, REPO, SMOKE, snakemake

pytestmark = pytest.mark.workflow  # smoke_run (conftest.py): the smoke config, once per session


def test_table_numbers_equal_aggregated_metrics(smoke_run):
    cfg = yaml.safe_load(SMOKE.read_text())
    seeds = cfg["seeds"]
    table = pd.read_csv(smoke_run / "results" / "tables" / "table2.csv")
    md = (smoke_run / "results" / "tables" / "table2.md").read_text()
    for method, label in (("aunce", "AUNCE"), ("wce", "WCE")):
        per_seed = {}
        for seed in seeds:
            folds = [
                json.loads(
                    (
                        smoke_run / f"results/eval/bp4d/megraph/{method}/fold-{f}/seed-{seed}/"
                        "metrics.json"
                    ).read_text()
                )
                for f in ("1", "2", "3")
            ]
            aus = folds[0]["aus"]
            per_seed[seed] = {au: np.mean([m["f1"][au] for m in folds]) for au in aus}
            per_seed[seed]["Avg."] = np.mean([m["f1_macro"] for m in folds])
        row = table[table["row"] == f"{label} (this run)"].iloc[0]
        for col in aus + ["Avg."]:
            values = [100 * per_seed[s][col] for s in seeds]
            assert row[col] == pytest.approx(np.mean(values), abs=1e-3)
            assert row[f"{col}_std"] == pytest.approx(np.std(values, ddof=1), abs=1e-3)
        line = next(x for x in md.splitlines() if x.startswith(f"| {label} (this run)"))
        avg = re.findall(r"(\d+\.\d)\**(?: ± (\d+\.\d))?", line)[-1]
        assert float(avg[0]) == pytest.approx(round(row["Avg."], 1), abs=0.051)
    tex = (smoke_run / "results" / "tables" / "table2.tex").read_text()
    assert "\\toprule" in tex and "AUNCE (this run)" in tex


def test_outputs_logs_and_resolved_config(smoke_run):
    results = smoke_run / "results"
    resolved = yaml.safe_load((results / "config.yaml").read_text())
    assert resolved["seeds"] == [1, 2] and resolved["pretrain"]["betas"] == [0.9, 0.999]
    run = results / "pretrain/bp4d/megraph/aunce/fold-2/seed-1"  # table2: all folds and seeds
    settings = json.loads((run / "settings.json").read_text())
    assert settings["fold"] == "2" and settings["seed"] == 1
    assert settings["loss_settings"]["beta_majority"] == 0.4
    assert len(settings["au_weights"]) == 12
    assert (run / "history.csv").exists() and (run / "timing.json").exists()
    logs = list((results / "logs").rglob("*.log"))
    assert any("train_eval" in str(p) for p in logs)
    assert list((results / "benchmarks" / "train_eval").rglob("*.tsv"))
    # linear evaluation "with the same settings as the pre-training phase" (weight_decay: null)
    metrics = json.loads((results / "eval/bp4d/megraph/aunce/fold-2/seed-1/metrics.json").read_text())
    assert metrics["linear_eval"]["weight_decay"] == settings["pretrain"]["weight_decay"] == 1e-6


def test_both_readings_of_aunce_train_with_their_own_loss_and_views(smoke_run):
    """table2 has the paper's reading and the released code's: each run records its loss and the
    augmentation it trained with; lambda in the linear evaluation follows each method."""
    results = smoke_run / "results"
    runs = {m: json.loads((results / f"pretrain/bp4d/megraph/{m}/fold-1/seed-1/settings.json")
                          .read_text()) for m in ("aunce", "aunce_released")}  # fmt: skip
    paper, released = runs["aunce"], runs["aunce_released"]
    assert paper["loss_settings"]["variant"] == "paper" and paper["au_weights"] is not None
    assert released["loss_settings"]["variant"] == "released" and released["au_weights"] is None
    assert paper["pretrain"]["jitter_strengths"] == [0.8, 0.8, 0.8, 0.2]
    assert paper["pretrain"]["resized_crop"] == {"scale": [0.08, 1.0], "ratio": [0.75, 4 / 3]}
    assert released["pretrain"]["jitter_strengths"] == [0.4, 0.4, 0.4, 0.1]
    assert (released["pretrain"]["blur"], released["pretrain"]["blur_kernel"]) == (1.0, 3)
    assert released["pretrain"]["resized_crop"] is None
    assert released["pretrain"]["lr"] == paper["pretrain"]["lr"]  # the rest is the config's
    for method in ("aunce", "aunce_released"):
        metrics = json.loads(
            (results / f"eval/bp4d/megraph/{method}/fold-1/seed-1/metrics.json").read_text()
        )
        assert metrics["linear_eval"]["au_weights"] is True
    table = pd.read_csv(results / "tables" / "table2.csv")
    assert {"AUNCE (this run)", "AUNCE (released code) (this run)"} <= set(table["row"])


def test_only_the_outputs_a_later_step_reads_are_kept(smoke_run):
    """keep: needed (the default): encoder.pt where cross-dataset evaluation reads it (table7: fold
    1, seed 1; table4: the model trained on all of BP4D), no embeddings.npz, fig5's samples; the
    small files of a run within what `aunce plan` assumes."""
    from aunce.summary import SMALL_FILES_PER_RUN

    results = smoke_run / "results"
    pretrain = results / "pretrain/bp4d/megraph"
    assert sorted(p.relative_to(pretrain).as_posix() for p in pretrain.rglob("encoder.pt")) == [
        "aunce/fold-1/seed-1/encoder.pt", "aunce/fold-all/seed-1/encoder.pt",
        "wce/fold-1/seed-1/encoder.pt",
    ]  # fmt: skip
    assert (pretrain / "wce/fold-2/seed-1/timing.json").exists()  # Table 9 reads it
    assert not list(results.rglob("embeddings.npz"))
    samples = sorted(results.glob("embed/bp4d/megraph/*/fold-1/seed-1/tsne_n20.npz"))
    assert [p.parts[-4] for p in samples] == ["aunce", "wce"]
    for run in (pretrain / "wce/fold-2/seed-1", results / "eval/bp4d/megraph/wce/fold-2/seed-1"):
        assert sum(f.stat().st_size for f in run.iterdir()) < SMALL_FILES_PER_RUN / 2


def test_rerun_does_nothing(smoke_run):
    proc = snakemake(smoke_run, "all", "-n", "--cores", "1")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    proc = snakemake(smoke_run, "-n", "--cores", "1", "results/tables/table2.md")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_one_table_builds_only_what_it_needs(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "1", "results/tables/table2.md")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0
    assert "resolved_config" not in out and "rule all" not in out
    for rule in ("synthesize", "cache", r"train_eval_bp4d_megraph_ecell\d+", "table"):
        assert re.search(rf"^{rule}\s+\d+$", out, re.M), rule
    assert "roi" not in out and "cross_eval" not in out and "figure" not in out  # other tables'


def test_run_granularity_lists_jobs_per_fold_and_seed(tmp_path):
    args = ("-n", "--cores", "1", "results/tables/table2.md", "--config", "granularity=run")
    proc = snakemake(tmp_path, *args, "fuse_stages=False")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0
    for fold in (1, 2, 3):
        for seed in (1, 2):
            for stage, tag in (("pretrain", ""), ("embed", "e"), ("linear_eval", "e")):
                name = f"{stage}_bp4d_megraph_{tag}fold{fold}_seed{seed}"
                # aunce, aunce_released and wce; table7's fold-1 seed-1 models of aunce and wce
                # are kept for its cross-evaluation, the other methods' are temp(): a rule each
                # (aunce.plan.pretrain_groups)
                if stage == "pretrain" and (fold, seed) == (1, 1):
                    assert re.search(rf"^{name}_kept\s+2$", out, re.M), name
                    assert re.search(rf"^{name}\s+1$", out, re.M), name
                else:
                    assert re.search(rf"^{name}\s+3$", out, re.M), name
    proc = snakemake(tmp_path, *args)  # fused: one job per run does both methods' three stages
    out = proc.stdout + proc.stderr
    assert re.search(r"^train_eval_bp4d_megraph_efold3_seed2\s+1$", out, re.M)
    assert "linear_eval_" not in out


def test_every_table_figure_and_the_report(smoke_run):
    results = smoke_run / "results"
    cfg = yaml.safe_load(SMOKE.read_text())
    for name, spec in cfg["tables"].items():
        if spec.get("kind") in ("beta", "tsne"):
            assert (results / "figures" / f"{name}.png").stat().st_size > 1000
            assert pd.read_csv(results / "figures" / f"{name}.csv").shape[0] > 0
        else:
            for ext in ("md", "tex", "csv", "significance.csv"):
                assert (results / "tables" / f"{name}.{ext}").exists(), (name, ext)
    report = (results / "report.md").read_text()
    for name in cfg["tables"]:
        assert name in report
    for absolute in (REPO, smoke_run):  # relative paths only (`../` from another working folder)
        assert not re.search(rf"(?<![\w.]){re.escape(str(absolute))}", report), absolute


def test_grid_and_cross_tables_equal_their_metrics(smoke_run):
    results = smoke_run / "results"
    grid = pd.read_csv(results / "tables" / "table8.csv").set_index("row")
    for enc, label in (("roi", "ROI"), ("megraph", "MEGraph (Onestage)")):
        for method, loss in (("wce", "WCE"), ("aunce", "AUNCE")):
            macro = [
                100
                * json.loads(
                    (results / f"eval/bp4d/{enc}/{method}/fold-1/seed-{s}/metrics.json").read_text()
                )["f1_macro"]
                for s in (1, 2)
            ]
            row = grid.loc[f"{label} + {loss} (this run)"]
            assert row["bp4d"] == pytest.approx(np.mean(macro), abs=1e-3)
            assert row["bp4d_std"] == pytest.approx(np.std(macro, ddof=1), abs=1e-3)
        base = grid.loc[f"{label} + WCE (this run)", "bp4d"]
        gain = grid.loc[f"{label} + AUNCE (this run)", "bp4d gain"]
        assert gain == pytest.approx(
            grid.loc[f"{label} + AUNCE (this run)", "bp4d"] - base, abs=1e-3
        )
    cross = pd.read_csv(results / "tables" / "table7.csv").set_index("row")
    files = sorted(
        (results / "cross/gft-to-bp4d/megraph/wce").glob("fold-split-on-*/seed-1/metrics.json")
    )
    assert len(files) == 3  # the GFT model on each BP4D test fold
    f1 = [json.loads(f.read_text())["f1"]["AU12"] for f in files]
    assert cross.loc["WCE (this run), gft -> bp4d", "AU12"] == pytest.approx(
        100 * np.mean(f1), abs=1e-3
    )
    tests = pd.read_csv(results / "tables" / "table2.significance.csv")
    macro = tests[tests["value"] == "f1_macro"].iloc[0]
    # 3 folds x 2 seeds; the test subjects from the per-subject counts every metrics.json holds
    assert macro["n_runs"] == 6 and macro["n_seeds"] == 2 and macro["n_subjects"] > 0
    assert macro["df"] == 1 and 0 <= macro["p_holm"] <= 1
    subjects = [
        json.loads((results / f"eval/bp4d/megraph/wce/fold-{f}/seed-1/metrics.json").read_text())[
            "by_subject"]["subjects"]
        for f in (1, 2, 3)
    ]  # fmt: skip
    assert sum(map(len, subjects)) == macro["n_subjects"]  # the folds' test subjects, disjoint
    assert not set(subjects[0]) & set(subjects[1])
    assert "degenerate" in grid.columns


README = (REPO / "README.md").read_text()
#: programs of README command lines that are not run: they install into .venv, or need a network
NOT_RUN = {"python3": "creates .venv", ".venv/bin/pip": "downloads from PyTorch's index"}


def readme_commands() -> list[str]:
    """Every command line of the README's ``sh`` blocks, comments dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def my_roots(tmp_path_factory):
    """The README's my_roots.yaml with placeholder folders for its roots (a dry run reads none of
    them but GFT's split file)."""
    from test_paper import gft_split

    base = tmp_path_factory.mktemp("roots")
    text = re.search(r"```yaml\n(datasets:.*?)```", README, re.S).group(1)
    roots = yaml.safe_load(text)
    for name, spec in roots["datasets"].items():
        spec["root"] = str(base / name)
        (base / name).mkdir()
        if "split_file" in spec:
            gft_split(base / name / spec["split_file"])
    path = base / "my_roots.yaml"
    path.write_text(yaml.safe_dump(roots))
    return path


@pytest.mark.parametrize("command", readme_commands())
def test_readme_commands_dry_run(tmp_path, command, my_roots):
    """Each command of the README as a dry run: Snakemake with -n in a new folder, make with -n,
    aunce parsed (and run where it only reads: plan, check-config, audit, --help)."""
    from aunce.cli import build_parser

    words = [str(my_roots) if w == "my_roots.yaml" else w for w in shlex.split(command)]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    if words[0] == "snakemake":
        configfile = None if "--configfile" in words else REPO / "config" / "config.yaml"
        words = [str(REPO / w) if w.startswith("config/") else w for w in words]
        proc = snakemake(tmp_path, "-n", *words[1:], configfile=configfile)
    elif words[0] == "make":
        proc = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
    elif words[0] == "aunce":
        if words[1:] != ["--help"]:
            build_parser().parse_args(words[1:])  # every form parses
        if words[1] not in ("plan", "check-config", "audit", "--help"):
            return
        proc = subprocess.run([str(BIN / "aunce"), *words[1:]], cwd=REPO, capture_output=True,
                              text=True, env=env)  # fmt: skip
    else:
        assert words[0] in NOT_RUN, f"a README command no test runs: {command}"
        return
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]


def test_readme_has_the_known_forms():
    commands = readme_commands()
    assert "snakemake all --cores 1 --resources gpu=1" in commands
    assert "snakemake --cores 1 results/tables/table2.md" in commands
    assert "make run" in commands and "make test" in commands


def test_readme_layout_is_the_tree():
    """README's "Repository layout" names every top-level entry of the repository and nothing
    else; config/, docs/, rules/ and profiles/ list every file or folder they hold; and every
    file or folder a line names exists."""
    block = re.search(r"### Repository layout\n\n```\n(.*?)```", README, re.S).group(1)
    entries: dict[str, str] = {}
    last = None
    for line in block.splitlines():
        if line.startswith(" "):
            entries[last] += " " + line.strip()
        else:
            last, _, rest = line.partition(" ")
            entries[last] = rest.strip()
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    top = {p.split("/")[0] + ("/" if "/" in p else "") for p in tracked if not p.startswith(".")}
    assert set(entries) == top, (sorted(set(entries) - top), sorted(top - set(entries)))
    for folder in ("config/", "docs/", "rules/", "profiles/"):
        held = {p.removeprefix(folder).split("/")[0] for p in tracked if p.startswith(folder)}
        held -= {"img"}  # docs/img: the pictures of the pages
        named = set(re.findall(r"[\w.+-]+", entries[folder]))
        assert held <= named, (folder, sorted(held - named))
    for folder, text in entries.items():
        if not folder.endswith("/"):
            continue
        for name in re.findall(r"\b([\w-]+(?:\.(?:py|smk|yaml|md|sh|rst)|/))", text):
            assert (REPO / folder / name).exists() or (REPO / name).exists(), f"{folder}{name}"


def test_readme_verdict_rows_are_the_evidence_runs():
    """The verdict rows the README shows are quoted from docs/findings.md, the evidence run's."""
    rows = [line for line in README.splitlines() if line.startswith("| table")]
    findings = (REPO / "docs" / "findings.md").read_text()
    assert len(rows) == 3 and all(row in findings for row in rows)


@pytest.mark.parametrize("doc", ["README.md", "BENCHMARKS.md", "results/README.md",
                                 *sorted(p.relative_to(REPO).as_posix()
                                         for p in (REPO / "docs").glob("*.md"))])  # fmt: skip
def test_docs_speak_of_the_project(doc):
    """No work-tracking talk in the project's pages: issue numbers, stops, sessions, agents."""
    text = (REPO / doc).read_text()
    for pattern in (r"\bissues? ?#?\d", r"\bissue-\d", r"\bthis stop\b", r"\bthis session\b",
                    r"\bagents?\b", r"\bBuild \d+\.\d"):
        assert not re.search(pattern, text, re.I), (doc, pattern)


def test_make_run_is_the_documented_command():
    proc = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True)
    assert "snakemake all --cores 1 --resources gpu=1" in proc.stdout
    unlock = proc.stdout.index("aunce unlock-stale")  # a stale lock first (docs/recovery.md, "After a crash")
    assert unlock < proc.stdout.index("snakemake all")


def test_the_workflow_profile_reruns_incomplete_jobs():
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile == {"rerun-incomplete": True}  # nothing that would override profiles/slurm


def test_config_typo_stops_before_any_job(tmp_path):
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["pretrain"]["learnin_rate"] = 0.1
    cfg["seeds"] = "3407"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "--cores", "1", configfile=bad)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "pretrain.learnin_rate: unknown key" in out
    assert "seeds: '3407' is not of type 'array'" in out
    assert not (tmp_path / "results").exists()


def test_missing_config_file(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "1", configfile=tmp_path / "nope.yaml")
    assert proc.returncode != 0 and "nope.yaml" in proc.stdout + proc.stderr
    # the default config is the project's, also for a run in another folder (--directory)
    proc = snakemake(tmp_path, "-n", "--cores", "1", "results/tables/table2.md", configfile=None)
    assert proc.returncode == 0, proc.stderr[-2000:]
    make = subprocess.run(
        ["make", "run", "CONFIG=nope.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"),
    )
    assert make.returncode != 0 and "config file 'nope.yaml' not found" in make.stderr


def test_unwritable_results_folder(tmp_path):
    (tmp_path / "results").write_text("a file where the results folder should be")
    proc = snakemake(tmp_path, "-n", "--cores", "1")
    assert proc.returncode != 0 and "is not writable" in proc.stdout + proc.stderr


def test_bad_input_stops_the_snakefile_with_its_message_and_no_traceback(tmp_path):
    """The Snakefile validates as `aunce check-config` does (aunce.validate), before any job: a
    problem of the config, and a folder the plan writes into that is blocked (Build 12.3)."""
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["tables"]["table2"]["seeds"] = [1, 7]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    proc = snakemake(work, "--cores", "1", configfile=bad)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    line = "  tables.table2.seeds: 7 is not one of the config's seeds (1, 2);"
    assert any(x.startswith(line) for x in out.splitlines()), out
    (work / "results" / "tables").write_text("a file where the tables folder should be")
    proc = snakemake(work, "--cores", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "results/tables is not writable: a file of that name is in the way" in out
    assert sorted(p.name for p in (work / "results").iterdir()) == ["tables"]  # no job ran


def test_recovery_after_kill_9_is_make_run(tmp_path):
    """A workflow killed with kill -9 leaves Snakemake's lock: the plain command stops with
    LockException; `aunce unlock-stale` (what `make run` does first) removes it, as no Snakemake
    runs there any more, and the plain command then finishes. The workflow profile
    profiles/default makes the plain command rerun incomplete jobs (docs/recovery.md, "After a crash")."""
    import signal
    import time

    target = "results/data/bp4d_plus"
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           f"--configfile={SMOKE}", "--cores", "1", target]  # fmt: skip
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    incomplete = tmp_path / ".snakemake" / "incomplete"
    deadline = time.monotonic() + 120
    while not (incomplete.is_dir() and any(incomplete.iterdir())):  # the job has started
        assert run.poll() is None and time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert list((tmp_path / ".snakemake" / "locks").glob("*.lock"))
    proc = snakemake(tmp_path, "--cores", "1", target)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "LockException" in out
    assert "Using workflow specific profile profiles/default" in out
    unlock = subprocess.run([str(BIN / "aunce"), "unlock-stale", "--directory", str(tmp_path)],
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert unlock.returncode == 0, unlock.stderr
    assert "removed the Snakemake lock left by an interrupted run" in unlock.stderr
    proc = snakemake(tmp_path, "--cores", "1", target)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / target / "dataset.json").is_file()


def test_missing_aunce_command_is_explained(tmp_path):
    env = dict(os.environ, PATH="/usr/bin:/bin")
    proc = snakemake(tmp_path, "-n", "--cores", "1", env=env)
    assert (
        proc.returncode != 0 and "the `aunce` command is not on PATH" in proc.stdout + proc.stderr
    )


def test_workflow_on_a_list_layout_dataset(tmp_path):
    """Issue 6: the workflow runs on a list-layout dataset (ME-GraphAU / AUNCE list files) given
    only its folder, with the same tables. The list tree is written from a small synthetic BP4D."""
    import shutil as sh

    from aunce.data import au_names, read_dataset
    from aunce.data.synthetic import generate

    src = generate("bp4d", tmp_path / "synthetic", n_subjects=9, frames_per_subject=8, workers=1)
    manifest = read_dataset("synthetic", src)
    root = tmp_path / "BP4D_list"
    aus = au_names(manifest)
    paths = []
    for _, row in manifest.iterrows():
        rel = f"{row['subject']}/{row['sequence']}/{int(row['frame'])}.png"
        (root / "img" / rel).parent.mkdir(parents=True, exist_ok=True)
        sh.copy(src / row["image"], root / "img" / rel)
        paths.append(rel)
    (root / "list").mkdir()
    labels = manifest[aus].astype(int).astype(str).agg(" ".join, axis=1).tolist()
    for k in (1, 2, 3):
        test = (manifest["test_fold"] == k).to_numpy()
        for split, keep in (("train", ~test), ("test", test)):
            chosen = [i for i in range(len(paths)) if keep[i]]
            (root / f"list/BP4D_{split}_img_path_fold{k}.txt").write_text(
                "".join(paths[i] + "\n" for i in chosen)
            )
            (root / f"list/BP4D_{split}_label_fold{k}.txt").write_text(
                "".join(labels[i] + "\n" for i in chosen)
            )
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["datasets"] = {"bp4d": {"source": "list", "root": str(root), "list_name": "BP4D"}}
    cfg["tables"] = {
        "table1": {"kind": "occurrence", "datasets": ["bp4d"]},
        "table2": {
            "dataset": "bp4d",
            "encoder": "megraph",
            "methods": ["aunce", "wce"],
            "seeds": [1],
        },  # fmt: skip
    }
    config = tmp_path / "list.yaml"
    config.write_text(yaml.safe_dump(cfg))
    targets = ("results/tables/table1.md", "results/tables/table2.md")
    proc = snakemake(tmp_path / "work", "--cores", "1", *targets, configfile=config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "work/results/tables/table2.csv").set_index("row")
    assert {"AUNCE (this run)", "WCE (this run)", "All-positive predictor"} <= set(table.index)
    occurrence = pd.read_csv(tmp_path / "work/results/tables/table1.csv").set_index("row")
    assert occurrence.loc["bp4d (this run)", "AU12"] > 0
    assert "bp4d (paper)" in occurrence.index  # list_name BP4D: the paper's rates beside


def test_kill_9_mid_epoch_then_make_run_resumes_byte_identical(tmp_path):
    """Issue 12's check: a workflow killed with kill -9 in the middle of a training epoch and
    recovered as the README says (`make run`: `aunce unlock-stale`, then the plain Snakemake command
    with profiles/default) resumes from its last checkpoint, says so in the job's log, and ends with
    the metrics.json and predictions that the same job run again without interruption writes
    (`snakemake -f`), byte for byte, and the same training history (its timings aside)."""
    import signal
    import time

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["pretrain"]["epochs"] = 3  # checkpoints after epochs 1, 2: a kill lands inside a later one
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cell = "results/eval/bp4d/roi/wce/fold-1"  # table 8's ROI from scratch: seeds 1 and 2
    target = f"{cell}/seed-2/metrics.json"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"

    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
           f"--configfile={config}", "--cores", "1", target]  # fmt: skip
    run = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    checkpoints = work / "results" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.rglob("checkpoint.pt")):  # the first epoch has ended
        assert run.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (work / target).exists(), "the job finished before the kill: nothing was tested"

    unlock = subprocess.run([str(BIN / "aunce"), "unlock-stale", "--directory", str(work)],
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert unlock.returncode == 0, unlock.stderr
    proc = snakemake(work, "--cores", "1", target, configfile=config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = "".join(p.read_text() for p in (work / "results" / "logs").rglob("*.log"))
    assert re.search(r": resumed from epoch [12]\b", logs), logs[-3000:]
    assert not list(checkpoints.rglob("checkpoint.pt"))  # removed once the job finished

    def outputs():
        files = {p.relative_to(work): p.read_bytes() for p in (work / cell).rglob("*") if p.is_file()}
        for seed in (1, 2):
            history = work / f"results/pretrain/bp4d/roi/wce/fold-1/seed-{seed}/history.csv"
            files[history] = pd.read_csv(history).drop(columns=["seconds", "frames_per_second"])
        return files

    resumed = outputs()
    proc = snakemake(work, "--cores", "1", "-f", target, configfile=config)  # the job, straight
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = "".join(p.read_text() for p in (work / "results/logs/train_eval").rglob("*.log"))
    assert "epoch 3/3" in logs and "resumed" not in logs  # the job's log, written again
    straight = outputs()
    assert sorted(resumed) == sorted(straight)
    assert sum(str(k).endswith("metrics.json") for k in resumed) == 2
    for key, value in straight.items():
        if isinstance(value, pd.DataFrame):  # every epoch's loss and similarity, bit for bit
            assert len(value) == 3 and value.equals(resumed[key]), key
        else:
            assert resumed[key] == value, key
