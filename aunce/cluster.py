"""A job's place in a chain of cluster allocations (docs/cluster.md, "Runs longer than the time
limit").

A pretraining job longer than its stage's time limit runs over several SLURM allocations. When an
allocation starts, the job reads from SLURM how long it has left (``squeue -o %L``) and stops
itself ``resources.checkpoint_lead`` seconds before the end (:func:`stop_before_end`): a timer
sends the job its own SIGTERM, it checkpoints and stops (:class:`aunce.train.Preempted`), and
Snakemake submits it again, up to the retries its estimate needs; the next allocation resumes from
the checkpoint. SLURM's own signal (``--signal=TERM@N``) is asked for 60 s later than that, as a
fallback where the job cannot read its time: SLURM sends it up to 60 s early, so that it would
otherwise come at a different moment in each allocation.

The workflow passes ``--allocation K/N`` (Snakemake's attempt K, the estimate's N allocations);
:func:`announce` logs it and, inside a SLURM job, appends ``_allocation_K_of_N`` to the job's
comment, so that ``squeue -o "%i %k"`` shows which allocation of how many each job is.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time

from aunce import AunceError

log = logging.getLogger(__name__)
SUFFIX = re.compile(r"_allocation_\d+_of_\d+$")
#: How much earlier than asked SLURM may send a job's ``--signal`` ("due to the resolution of event
#: handling by Slurm, the signal may be sent up to 60 seconds earlier than specified", sbatch(1)).
SIGNAL_EARLY = 60
#: squeue's ``%L`` (time left): ``[days-][hours:]minutes:seconds``, or a word (UNLIMITED, NOT_SET).
TIME_LEFT = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)")


def parse_allocation(text: str) -> tuple[int, int]:
    """``K/N`` as (K, N), both positive."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise AunceError(f"--allocation: expected K/N (e.g. 2/14), got '{text}'") from None
    if k < 1 or n < 1:
        raise AunceError(f"--allocation: K and N must be positive, got '{text}'")
    return k, n


def parse_time_left(text: str) -> int | None:
    """squeue's ``%L`` in seconds (``1-02:03:04``, ``2:03:04``, ``3:04``); None for a job without
    a time limit or one SLURM has not set."""
    found = TIME_LEFT.fullmatch(text.strip())
    if not found:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def signal_lead(checkpoint_lead: int) -> int | None:
    """The lead of SLURM's fallback signal (``--signal=TERM@N``): ``checkpoint_lead`` less
    :data:`SIGNAL_EARLY`, so that even an early signal comes after the job has stopped itself;
    None when that leaves nothing (SLURM's SIGTERM at the time limit is then the fallback)."""
    lead = checkpoint_lead - SIGNAL_EARLY
    return lead if lead > 0 else None


def _squeue(job: str, fmt: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", fmt], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()  # fmt: skip


def announce(text: str | None, checkpoint_lead: int | None = None) -> None:
    """Log which allocation of how many this job is and, in a SLURM job, say so in its comment
    and (with ``checkpoint_lead``) stop the job that many seconds before the allocation ends
    (:func:`stop_before_end`). Best effort: a failure to talk to SLURM is logged, never fatal."""
    if not text:
        return
    k, n = parse_allocation(text)
    job = os.environ.get("SLURM_JOB_ID")
    more = "" if k <= n else f" ({k - n} more than estimated)"
    log.info("allocation %d of %d%s%s", k, n, more, f" (SLURM job {job})" if job else "")
    if not job or not (shutil.which("squeue") and shutil.which("scontrol")):
        return
    try:
        comment, _, left = _squeue(job, "%k|%L").rpartition("|")
        comment = SUFFIX.sub("", "" if comment == "(null)" else comment)
        subprocess.run(["scontrol", "update", f"JobId={job}",
                        f"Comment={comment}_allocation_{k}_of_{n}"],
                       capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("could not read or set SLURM job %s's comment and time: %s", job, err)
        return
    if checkpoint_lead is not None:
        stop_before_end(parse_time_left(left), checkpoint_lead)


def stop_before_end(left: int | None, checkpoint_lead: int) -> threading.Timer | None:
    """Send this process SIGTERM ``checkpoint_lead`` seconds before its allocation ends, ``left``
    seconds from now (a daemon timer; the SIGTERM path checkpoints and stops the job). None, with
    a log line, when the allocation has no end or ends sooner than that: SLURM's signal stops it."""
    if left is None:
        log.info("the allocation has no time limit: the job does not stop itself")
        return None
    wait = left - checkpoint_lead
    if wait <= 0:
        log.warning("the allocation ends in %d s, within resources.checkpoint_lead %d s: the job "
                    "does not stop itself (SLURM's signal stops it)", left, checkpoint_lead)  # fmt: skip
        return None
    at = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
    log.info("the allocation ends in %d s; the job checkpoints and stops itself at %s, %d s "
             "before", left, at, checkpoint_lead)  # fmt: skip
    timer = threading.Timer(wait, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    return timer
