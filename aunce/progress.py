"""Where a training job is: run i of N, the epoch, and when the run and the job should end.

A job of the workflow (``aunce pretrain``, ``aunce train-eval``, ``aunce warmstart``) trains one or
more runs (a method on one fold with one seed), each for some epochs. The job says up front how
many epochs each of its runs has (:meth:`JobProgress.expect`); each epoch's log line then starts
with ``run i/N  epoch e/E`` and ends with ``ETA run H:MM:SS, job H:MM:SS``: the run's epochs left
at its own seconds per epoch, and the job's epochs left at the wall-clock time per epoch since the
job's first run began (which counts each run's set-up, and in a ``train-eval`` job the embedding
and evaluation of the methods done so far). The job's ETA counts pretraining epochs: the embedding
and evaluation of its last method follow them.
``aunce status`` (:mod:`aunce.status`) reads these lines back with :data:`EPOCH_LINE`.
"""

from __future__ import annotations

import re
import time

#: An epoch line as :func:`epoch_line` writes it (the log's time stamp and level before it).
EPOCH_LINE = re.compile(
    r"run (?P<run>\d+)/(?P<runs>\d+)\s+epoch (?P<epoch>\d+)/(?P<epochs>\d+)\b.*"
    r"ETA run (?P<eta_run>\d+:\d\d:\d\d), job (?P<eta_job>\d+:\d\d:\d\d)"
)


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS (rounded to the second)."""
    total = max(0, round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def seconds_of(text: str) -> int:
    """H:MM:SS back to seconds."""
    hours, minutes, seconds = (int(x) for x in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


class JobProgress:
    """The runs of one job and the epochs measured so far (one per process: :data:`JOB`)."""

    def __init__(self) -> None:
        self.planned: list[int] = []  # epochs of each run of the job, in the order they run
        self.current = 0  # the run in progress, 1-based (0: none yet)
        self.done_before = 0  # epochs of the current run trained before this process (a resume)
        self.seconds: dict[int, list[float]] = {}  # per run, seconds of each epoch trained here
        self.started: float | None = None  # when the job's first run began (time.monotonic)

    def expect(self, epochs_per_run: list[int]) -> None:
        """Add runs the job will train, with their epochs, in order."""
        self.planned.extend(int(e) for e in epochs_per_run)

    def start_run(self, epochs: int, done: int = 0, now: float | None = None) -> str:
        """The next run begins (``done`` epochs already trained: a resumed run); returns 'run i/N'.
        A run the job did not announce (a library call) is added to the plan."""
        if self.started is None:
            self.started = time.monotonic() if now is None else now
        self.current += 1
        if self.current > len(self.planned):
            self.planned.append(int(epochs))
        else:
            self.planned[self.current - 1] = int(epochs)
        self.done_before = int(done)
        self.seconds.setdefault(self.current, [])
        return self.where()

    def where(self) -> str:
        return f"run {self.current}/{len(self.planned)}"

    def epoch_line(self, epoch: int, seconds: float, now: float | None = None) -> tuple[str, str]:
        """Record an epoch of the current run (``seconds`` long, ending ``now``):
        ('run i/N  epoch e/E', 'ETA run H:MM:SS, job H:MM:SS')."""
        now = time.monotonic() if now is None else now
        self.seconds[self.current].append(float(seconds))
        epochs = self.planned[self.current - 1]
        mine = self.seconds[self.current]
        trained = sum(len(run) for run in self.seconds.values())
        per_epoch_job = max(now - self.started, 0.0) / trained
        run_left = sum(mine) / len(mine) * (epochs - epoch)
        job_left = run_left + per_epoch_job * sum(self.planned[self.current :])
        head = f"{self.where()}  epoch {epoch}/{epochs}"
        return head, f"ETA run {clock(run_left)}, job {clock(job_left)}"


#: The job this process runs.
JOB = JobProgress()
