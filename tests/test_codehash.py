"""Code versions by meaning (aunce.codehash): a stage's hash covers the import closure of what it
runs, computed from the source, and ignores comments, docstrings and help texts."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, snakemake

from aunce.codehash import STAGES, closure, source_digest, stage_modules

IMPORTED = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s+(aunce(?:\.\w+)*)\s*$", re.M)


def digest_of(tmp_path, name, text):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return source_digest(path)


def test_comments_docstrings_and_help_texts_are_not_code(tmp_path):
    base = digest_of(tmp_path, "a", '"""Module."""\nX = 1\n\n\ndef f(p):\n    """Doc."""\n'
                     '    return p.add_argument("--x", help="an option")\n')  # fmt: skip
    same = digest_of(tmp_path, "b", '"""Another text."""\n# a comment\nX = 1  # one\n\n\n'
                     'def f(p):\n    """Other words."""\n    # why\n    return p.add_argument(\n'
                     '        "--x", help="the option, reworded"\n    )\n')  # fmt: skip
    assert same == base
    assert digest_of(tmp_path, "c", '"""Module."""\nX = 2\n') != base  # a value
    assert digest_of(tmp_path, "d", "Y = 1\n") != digest_of(tmp_path, "e", "X = 1\n")  # a name
    # a string that is not a docstring is code
    assert digest_of(tmp_path, "f", 'X = 1\nY = "text"\n') != digest_of(
        tmp_path, "g", 'X = 1\nY = "other"\n'
    )


CLI = """
def _csv(text):
    return text.split(",")


def cmd_a(args):
    return 1


def cmd_b(args):
    return 2


def build_parser():
    sub = make()
    p = sub.add_parser("a", help="the a step")
    p.add_argument("--x", type=int, default=1, help="x")
    p.set_defaults(func=cmd_a)
    p = _command(sub, "b", cmd_b, "the b step", "what b does", ["aunce b"])
    p.add_argument("--y", default=2)
    return sub
"""


@pytest.mark.parametrize(
    "edit, changes",
    [
        (("return 2", "return 3"), {"b"}),  # the function of subcommand b
        (("default=2)", "default=5)"), {"b"}),  # an option of b (made by a helper)
        (('default=1, help="x"', 'default=4, help="x"'), {"a"}),  # an option of a
        (('help="the a step"', 'help="the first step"'), set()),  # a help text
        (('"what b does", ["aunce b"]', '"b, described", ["aunce b --y 3"]'), set()),  # b's texts
        (('cmd_b, "the b step"', 'cmd_b, "the second step"'), set()),  # b's summary
        (("    return sub", '    p = sub.add_parser("c")\n    return sub'), set()),  # another
        (("return text.split", "return text.rsplit"), {"a", "b"}),  # a helper both may use
    ],
)
def test_a_stage_hashes_its_own_subcommands_of_the_command_line(edit, changes):
    """Of aunce.cli a stage hashes its own subcommands' functions and parsers and what is common;
    another subcommand, added or changed, changes it not."""
    import ast

    from aunce.codehash import _digest_of_parts, _Normalise, cli_parts

    def versions(text):
        parts = cli_parts(_Normalise().visit(ast.parse(text)))
        return {s: _digest_of_parts(parts, (f"cmd_{s}",)) for s in ("a", "b")}

    before, after = versions(CLI), versions(CLI.replace(*edit))
    assert CLI.replace(*edit) != CLI
    assert {s for s in before if before[s] != after[s]} == changes


def test_a_closure_follows_every_import_lazy_and_relative():
    pretrain = stage_modules("pretrain")
    # the losses import the presets (a preset change reruns training); the readers are imported
    # by name; a lazy import inside aunce.cli's pretrain function is followed
    assert {"aunce.presets", "aunce.losses", "aunce.train", "aunce.io", "aunce.cli",
            "aunce.data.readers.list_layout", "aunce.encoders.megraph"} <= pretrain  # fmt: skip
    assert "aunce.evaluate" not in pretrain  # another subcommand's lazy import
    assert "aunce.evaluate" in stage_modules("embed")
    tables = stage_modules("tables")
    assert "aunce.tables" in tables and "aunce.train" not in tables and "aunce.losses" not in tables
    assert closure(["aunce.data.readers.bp4d"]) >= {"aunce", "aunce.data", "aunce.data.readers",
                                                     "aunce.data.readers.common"}  # fmt: skip


def test_code_versions_are_remembered_per_source_and_computed_again_on_a_change(
    tmp_path, monkeypatch
):
    """What the workflow reads at each start (rules/common.smk, CODE) is each stage's
    code_version; kept under the package's __pycache__ by the sources' bytes, a stale file is
    never read: a changed statement is a new key and new versions, an edited store is ignored."""
    import shutil

    from aunce import codehash

    copy = tmp_path / "aunce"
    shutil.copytree(codehash.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    caches = (codehash._tree, codehash._module_imports, codehash.source_digest,
              codehash._cli_parts)  # fmt: skip

    def fresh():
        for cached in caches:
            cached.cache_clear()
        return {stage: codehash.code_version(stage) for stage in STAGES}

    monkeypatch.setattr(codehash, "PACKAGE_DIR", copy)
    try:
        want = fresh()
        assert codehash.code_versions() == want
        (store,) = (copy / "__pycache__").glob("code-versions-*.json")
        assert json.loads(store.read_text()) == want
        store.write_text(json.dumps({stage: "planted" for stage in STAGES}))
        assert codehash.code_versions() == {stage: "planted" for stage in STAGES}  # read, not made
        train = copy / "train.py"
        train.write_text(train.read_text().replace("class Preempted(", "class Preempted2(", 1))
        for cached in caches:  # a new process would parse the changed file
            cached.cache_clear()
        changed = codehash.code_versions()
        assert changed == fresh() and changed["pretrain"] != want["pretrain"]
        assert changed["tables"] == want["tables"]
        assert not store.exists() and len(list((copy / "__pycache__").glob("code-*"))) == 1
        shutil.rmtree(store.parent)
        store.parent.write_text("")  # nowhere to keep them: computed, every time
        assert codehash.code_versions() == changed == codehash.code_versions()
    finally:
        for cached in caches:
            cached.cache_clear()


def test_every_subcommand_a_rule_runs_is_a_stage():
    """Each `aunce <subcommand>` of a rule's shell: command belongs to the stage its code names."""
    commands = set()
    for smk in (REPO / "rules").glob("*.smk"):
        commands |= set(re.findall(r'"aunce ([a-z-]+) ', smk.read_text()))
    staged = {fn.removeprefix("cmd_").replace("_", "-") for fns in STAGES.values() for fn in fns}
    assert commands and commands <= staged


def imported_modules(stderr: str) -> set[str]:
    """The aunce modules a process imported, from its `python -X importtime` lines."""
    return set(IMPORTED.findall(stderr)) - {"aunce.__main__"}


def stage_of(command: str) -> str:
    fn = "cmd_" + command.replace("-", "_")
    return next(stage for stage, fns in STAGES.items() if fn in fns)


@pytest.mark.workflow
def test_every_job_of_the_smoke_run_imports_only_what_its_code_version_covers(smoke_run):
    """The smoke run's jobs ran with PYTHONPROFILEIMPORTTIME (conftest.py): each job's log lists the
    modules it imported. Each must be in the closure its rule's code version hashes."""
    proc = snakemake(smoke_run, "--detailed-summary", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines()[1:] if "\t" in line]
    checked, missing = set(), []
    for row in rows:
        log, command = row[3], row[5]
        match = re.match(r"aunce ([a-z-]+) ", command)
        if not match or log in ("-", "") or log in checked:
            continue
        checked.add(log)
        stage = stage_of(match.group(1))
        imported = imported_modules((smoke_run / log).read_text())
        assert imported, f"{log}: no import lines (PYTHONPROFILEIMPORTTIME unset?)"
        missing += [f"{log} ({stage}): {m}" for m in sorted(imported - stage_modules(stage))]
    assert len(checked) >= 15 and missing == []


def test_the_separate_training_stages_import_only_what_their_code_versions_cover(
    bp4d_cache, tmp_path
):
    """pretrain, embed and linear-eval as separate jobs (fuse_stages: false), run for real."""
    from aunce.config import load_config, resolved_linear_eval

    cfg = load_config(REPO / "config" / "smoke.yaml")
    base = {"dataset": "bp4d", "device": "cpu", "threads": 1}
    pretrain = dict(base, encoder={"name": "megraph", "size": "tiny", "feature_dim": 16},
                    method=cfg["methods"]["wce"], method_name="wce", image=cfg["image"],
                    pretrain=dict(cfg["pretrain"], epochs=1), amp="none")  # fmt: skip
    linear = dict(base, encoder={"name": "megraph"}, method_name="wce",
                  linear_eval=resolved_linear_eval(cfg, "bp4d"))  # fmt: skip
    embed = dict(base, image=cfg["image"], amp="none")
    root = tmp_path
    commands = {
        "pretrain": ["--cache", bp4d_cache, "--out", root / "pretrain", "--settings", pretrain],
        "embed": ["--cache", bp4d_cache, "--models", root / "pretrain", "--out", root / "embed",
                  "--settings", embed],
        "linear-eval": ["--embeddings", root / "embed", "--out", root / "eval",
                        "--settings", linear],
    }  # fmt: skip
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    for command, args in commands.items():
        argv = [sys.executable, "-X", "importtime", "-m", "aunce", command, "--runs", "1:0"]
        argv += [json.dumps(a) if isinstance(a, dict) else str(a) for a in args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = imported_modules(proc.stderr)
        assert "aunce.train" in imported
        assert imported <= stage_modules(stage_of(command)), command
