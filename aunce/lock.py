"""Snakemake's lock after a crash: tell a stale lock from a running workflow, and remove it.

Snakemake locks its working directory while it runs (``.snakemake/locks/<n>.{input,output}.lock``)
and removes the lock when it ends; a run killed with ``kill -9``, or a machine that went down,
leaves the lock behind, and the next run stops with ``LockException`` until ``snakemake --unlock``.
``make run`` removes such a lock itself, through :func:`unlock_stale`, but only when no process on
this machine is a Snakemake, or a job of one, working in that directory, and the lock is this
user's (another user's processes may be hidden from this one). A run from another machine on a
shared file system cannot be seen from here (docs/recovery.md, "After a crash").
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from aunce import AunceError

#: a Snakemake process or a job of this workflow (every job runs the ``aunce`` command)
_WORKFLOW_PROCESS = re.compile(r"(^|[\s/])(snakemake|aunce)(\s|$)")


def lock_files(workdir: str | os.PathLike = ".") -> list[Path]:
    """The lock files Snakemake holds in ``workdir`` (none when no run holds it)."""
    return sorted((Path(workdir) / ".snakemake" / "locks").glob("*.lock"))


def workflow_processes(
    workdir: str | os.PathLike = ".", proc: str = "/proc"
) -> list[tuple[int, str]]:
    """(pid, command line) of each process on this machine that works in ``workdir`` and is a
    Snakemake or a job of this workflow, this process and its parents (``make run``) excepted.

    Raises :class:`AunceError` where processes cannot be listed (no ``/proc``)."""
    root = Path(proc)
    if not root.is_dir():
        raise AunceError(f"cannot list the processes of this machine (no {proc})")
    here = Path(workdir).resolve()
    mine = _ancestors(root)
    found = []
    for entry in root.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or another user's process
            continue
        command = " ".join(a.decode(errors="replace") for a in argv if a)
        if cwd == here and _WORKFLOW_PROCESS.search(command):
            found.append((int(entry.name), command))
    return sorted(found)


def _ancestors(proc: Path) -> set[int]:
    """This process and its parents, up to init."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat.rpartition(")")[2].split()[1])  # the field after the state: the parent
    return pids


def unlock_stale(workdir: str | os.PathLike = ".", proc: str = "/proc") -> bool:
    """Remove the lock of ``workdir`` when it is stale; True when there was one to remove.

    Raises :class:`AunceError` when a Snakemake or a job of the workflow still works there, or when
    that cannot be told."""
    locks = lock_files(workdir)
    if not locks:
        return False
    where = Path(workdir).resolve()
    foreign = [p for p in locks if p.stat().st_uid != os.geteuid()]
    if foreign and os.geteuid() != 0:  # their processes may be hidden from this user
        raise AunceError(
            f"{where} is locked by another user's Snakemake ({foreign[0]} belongs to user id "
            f"{foreign[0].stat().st_uid}); if no run of theirs works there, run `snakemake --unlock`"
        )
    try:
        running = workflow_processes(workdir, proc)
    except AunceError as err:
        raise AunceError(
            f"{where} is locked, and {err}; if no Snakemake runs there, run `snakemake --unlock`"
        ) from None
    if running:
        pid, command = running[0]
        shown = command if len(command) <= 80 else command[:77] + "..."
        raise AunceError(
            f"{where} is in use by a running Snakemake or a job of it (pid {pid}: {shown}); "
            "wait for it to finish, or stop it first"
        )
    shutil.rmtree(locks[0].parent)  # what `snakemake --unlock` does (its file persistence)
    return True
