"""A job's place in a chain of cluster allocations (docs/cluster.md, "Runs longer than the time
limit").

A pretraining job longer than its stage's time limit runs over several SLURM allocations: SLURM
signals it ``resources.checkpoint_lead`` seconds before each limit (``--signal=TERM@N``), it
checkpoints and stops (:class:`aunce.train.Preempted`), and Snakemake submits it again, up to the
retries its estimate needs; the next allocation resumes from the checkpoint. The workflow passes
``--allocation K/N`` (Snakemake's attempt K, the estimate's N allocations); :func:`announce`
logs it and, inside a SLURM job, appends ``_allocation_K_of_N`` to the job's comment, so that
``squeue -o "%i %k"`` shows which allocation of how many each job is.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess

from aunce import AunceError

log = logging.getLogger(__name__)
SUFFIX = re.compile(r"_allocation_\d+_of_\d+$")


def parse_allocation(text: str) -> tuple[int, int]:
    """``K/N`` as (K, N), both positive."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise AunceError(f"--allocation: expected K/N (e.g. 2/14), got '{text}'") from None
    if k < 1 or n < 1:
        raise AunceError(f"--allocation: K and N must be positive, got '{text}'")
    return k, n


def announce(text: str | None) -> None:
    """Log which allocation of how many this job is and, in a SLURM job, say so in its comment
    (best effort: a failure is logged, never fatal)."""
    if not text:
        return
    k, n = parse_allocation(text)
    job = os.environ.get("SLURM_JOB_ID")
    more = "" if k <= n else f" ({k - n} more than estimated)"
    log.info("allocation %d of %d%s%s", k, n, more, f" (SLURM job {job})" if job else "")
    if not job or not (shutil.which("squeue") and shutil.which("scontrol")):
        return
    try:
        comment = subprocess.run(["squeue", "-h", "-j", job, "-o", "%k"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout.strip()  # fmt: skip
        comment = SUFFIX.sub("", "" if comment == "(null)" else comment)
        subprocess.run(["scontrol", "update", f"JobId={job}",
                        f"Comment={comment}_allocation_{k}_of_{n}"],
                       capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("could not set the comment of SLURM job %s: %s", job, err)
