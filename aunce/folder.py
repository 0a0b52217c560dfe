"""One results folder per configuration: a run never mixes its outputs with another config's.

Every output of the workflow lies below ``results/`` in the folder Snakemake runs in (the project
folder, or the one given with ``snakemake --directory DIR`` / ``make run DIR=DIR``). When a run
starts, the Snakefile records the validated configuration it runs with in ``results/run.json``
(:func:`record_run`, from its ``onstart`` handler: not on a dry run). Before any job, also on a dry
run, :func:`check_folder` compares the configuration of this run with the recorded one (or, in a
folder made before the record existed, with the resolved ``results/config.yaml``); when they differ
the run stops with one line that names the settings that differ and the two ways on: another
folder, or ``--config overwrite=true`` (``make run OVERWRITE=1``) to run there anyway.
``aunce status`` reads the record to know which jobs the folder's run has (:mod:`aunce.status`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from aunce import AunceError, __version__
from aunce.io import write_text

RECORD = "results/run.json"
RESOLVED = "results/config.yaml"
#: the config key that consents to running into a folder that holds another config's results (given
#: on the command line, never saved: ``--config overwrite=true``)
CONSENT = "overwrite"


def canonical(config: dict) -> str:
    """A config as sorted JSON, so that key order and YAML's spelling do not count."""
    return json.dumps(config, sort_keys=True, default=str)


def differences(old, new, prefix: str = "") -> list[str]:
    """Key paths whose values differ between two configs (``pretrain.epochs``, ``tables.table3``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(differences(old[key], new[key], path))
        return out
    return [] if canonical(old) == canonical(new) else [prefix or "<top level>"]


def read_record(workdir: str | Path = ".") -> dict | None:
    """The folder's record (``results/run.json``): ``{config, configfiles, started, aunce}``."""
    path = Path(workdir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise AunceError(f"{path}: unreadable ({err}); delete it if this folder's run is over") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise AunceError(f"{path}: not a record of a run (no 'config' mapping)")
    return record


def check_folder(config: dict, resolved: dict, workdir: str | Path = ".",
                 overwrite: bool = False) -> None:  # fmt: skip
    """Stop (:class:`AunceError`, one line) when ``workdir/results`` holds the results of another
    configuration; ``config`` is this run's validated configuration, ``resolved`` what
    ``results/config.yaml`` holds for it (the datasets tables derive included)."""
    if overwrite:
        return
    workdir = Path(workdir)
    record = read_record(workdir)
    if record is not None:
        old, new, source = record["config"], config, RECORD
        made_by = " + ".join(record.get("configfiles") or []) or "another config"
    elif (workdir / RESOLVED).is_file():
        import yaml

        try:
            old = yaml.safe_load((workdir / RESOLVED).read_text())
        except (OSError, yaml.YAMLError):
            return  # not a config this harness wrote: nothing to compare with
        new, source, made_by = resolved, RESOLVED, "another config"
    else:
        return
    changed = differences(old, new)
    if not changed:
        return
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    raise AunceError(
        f"{(workdir / 'results').resolve()} holds the results of {made_by} ({source}; differs in "
        f"{shown}): run this config in another folder (snakemake --directory DIR ..., or make run "
        f"DIR=...), or add --config {CONSENT}=true (make run OVERWRITE=1) to run it here anyway"
    )


def record_run(config: dict, configfiles: list[str], workdir: str | Path = ".") -> Path:
    """Write ``results/run.json``: the configuration this folder's results are made with."""
    path = Path(workdir) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": config, "configfiles": list(configfiles), "aunce": __version__,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    write_text(path, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return path


def project_on_path(project: str | Path, workdir: str | Path = ".") -> None:
    """For a run in another folder than the project's (``--directory``): put the project folder
    after the others on ``sys.path`` and ``PYTHONPATH`` (the jobs'), so that a module of the project
    folder (a loss given as ``my_losses:my_loss``) is found as from the project folder."""
    project = str(Path(project).resolve())
    if Path(workdir).resolve() == Path(project):
        return
    if project not in sys.path:
        sys.path.append(project)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if project not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, project])
