"""Everything checked before any job runs, the same for ``aunce check-config`` and the Snakefile.

:func:`validate` takes a config as loaded (config files merged in order) and returns the workflow's
plan, or raises :class:`AunceError` naming the key, value, file or folder of the first problems:

1. the config against ``config/schema.yaml``, defaults filled in, and the checks across keys a
   schema cannot express (:func:`aunce.config.check_config`);
2. the plan (:func:`aunce.plan.make_plan`): every run, cross-dataset evaluation and table;
3. every method given by import path that a run uses (:func:`aunce.methods.check_method`):
   importable, callable, and one call on tiny tensors; this imports torch, so it runs only when
   the config has such a method;
4. every folder the plan writes into: a folder or creatable, writable, no file in the way.

A job of the workflow (one Snakemake process per job on a cluster) parses the Snakefile again;
``main_process=False`` skips checks 3 and 4 there, which the main process has done.
"""

from __future__ import annotations

import os
from pathlib import Path

from aunce import AunceError
from aunce.config import SCHEMA_PATH, check_config, load_config
from aunce.plan import PUBLISHED, Plan, make_plan

#: the stages that write one folder per run: results/<stage>/<ds>/<enc>/<method>/fold-F/seed-S
RUN_STAGES = ("pretrain", "embed", "eval")
#: folders every workflow writes besides the plan's files (per-job logs and benchmarks below them,
#: the jobs' settings files, the training checkpoints of running jobs, the verdicts and the HTML
#: report's pages)
ALWAYS = ("results", "results/logs", "results/benchmarks", "results/settings", "results/checkpoints",
          "results/report")  # fmt: skip


def validate(
    config: dict,
    *,
    schema_path: str | Path = SCHEMA_PATH,
    provenance: str = "",
    published: str = PUBLISHED,
    workdir: str | os.PathLike = ".",
    main_process: bool = True,
) -> Plan:
    """Check ``config`` (in place: defaults filled) and return its plan; see the module docstring.

    ``workdir`` is the folder the workflow runs in (results/ below it); ``provenance`` and
    ``published`` go to :func:`aunce.plan.make_plan`."""
    check_config(config, schema_path)
    plan = make_plan(config, provenance=provenance, published=published)
    if main_process:
        check_methods(plan)
        check_folders(output_folders(plan), workdir)
    return plan


def validate_files(
    *paths: str | Path, schema_path: str | Path = SCHEMA_PATH, workdir: str | os.PathLike = "."
) -> Plan:
    """:func:`validate` on config files merged in order (as ``--configfile A B``); errors name them."""
    config = load_config(*paths, schema_path=schema_path)
    try:
        return validate(config, schema_path=schema_path, workdir=workdir)
    except AunceError as err:
        raise AunceError(f"{' + '.join(map(str, paths))}: {err}") from None


def check_methods(plan: Plan) -> None:
    """:func:`aunce.methods.check_method` on each method given by import path that a run uses."""
    used = sorted({method for _, _, method in plan.runs})
    custom = [m for m in used if ":" in str(plan.methods[m].get("loss", ""))]
    if not custom:
        return  # no torch import for the built-in losses
    from aunce.methods import check_method

    for name in custom:
        check_method(plan.methods[name], name)


def output_folders(plan: Plan) -> list[str]:
    """Every folder the plan writes files into, relative to the working directory."""
    files = [path for spec in plan.tables.values() for path in spec["outputs"].values()]
    for spec in plan.tables.values():
        files += _paths(spec["inputs"])
    folders = {str(Path(f).parent) for f in files} | set(ALWAYS)
    for (ds, enc, method), runs in plan.runs.items():
        for fold, seed in runs:
            folders |= {
                f"results/{stage}/{ds}/{enc}/{method}/fold-{fold}/seed-{seed}"
                for stage in RUN_STAGES
            }
    return sorted(folders)


def _paths(value) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return [value] if isinstance(value, str) else []


def check_folders(folders: list[str], workdir: str | os.PathLike = ".") -> None:
    """Refuse folders the workflow could not write into: a file in the way of one of them or of a
    folder above it, or a folder that is not writable where something must be created or written.

    Paths in messages are relative to ``workdir``."""
    root = Path(workdir)
    state: dict[Path, str] = {}  # relative path -> "dir" (exists) or "absent"

    def look(rel: Path, target: Path) -> str:
        if rel not in state:
            path = root / rel
            if path.is_dir():
                state[rel] = "dir"
            elif path.exists() or path.is_symlink():
                raise AunceError(
                    f"{rel} is not writable: a file of that name is in the way of the folder the "
                    f"workflow writes into{_below(rel, target)}; move the file away"
                )
            else:
                state[rel] = "absent"
        return state[rel]

    for target in map(Path, folders):
        parent = Path(".")
        for rel in [*reversed(target.parents[:-1]), target]:
            if look(rel, target) == "absent":
                _require_writable(root, parent, target)  # it creates ``rel`` in ``parent``
                break
            parent = rel
        else:
            _require_writable(root, target, target)  # it writes files in ``target``


def _below(rel: Path, target: Path) -> str:
    return "" if rel == target else f" ({target})"


def _require_writable(root: Path, folder: Path, target: Path) -> None:
    if not os.access(root / folder, os.W_OK | os.X_OK):
        shown = folder if folder != Path(".") else f"the working directory {root.resolve()}"
        raise AunceError(
            f"{shown} is not writable (read-only), and the workflow writes into "
            f"{target}; fix its permissions, or run in a folder you own "
            "(snakemake --directory DIR)"
        )
