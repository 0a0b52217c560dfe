import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "config" / "schema.yaml"
BIN = Path(sys.executable).parent
SMOKE = REPO / "config" / "smoke.yaml"


def snakemake(workdir, *args, configfile=SMOKE, env=None):
    """Snakemake on the project's Snakefile in ``workdir`` (a --configfile replaces the default)."""
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    if configfile is not None:
        cmd += [f"--configfile={configfile}"]  # `=`: a bare --configfile would swallow targets
    env = env or dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke config run once locally (`snakemake all --cores 1 --resources gpu=1`) in a temporary
    folder, once per test session; shared by the workflow tests, the HTML report's browser test and
    the SLURM test, which compares its tables with these. With `pytest -n` (`make test`) the
    workers share one run: the first to ask makes it, under a file lock, the others wait for it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return _run_smoke(tmp_path_factory.mktemp("smoke"))
    shared = tmp_path_factory.getbasetemp().parent  # the session's folder, above every worker's
    with FileLock(str(shared / "smoke.lock")):
        workdir, done = shared / "smoke", shared / "smoke.done"
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a failed attempt of another worker
            workdir.mkdir()
            _run_smoke(workdir)
            done.write_text(worker)
    return workdir


def _run_smoke(workdir: Path) -> Path:
    # each job's log also lists the modules it imports (python -X importtime): test_codehash.py
    # checks them against the code version of the job's stage
    env = dict(
        os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPROFILEIMPORTTIME="1"
    )
    proc = snakemake(workdir, "all", "--cores", "1", "--resources", "gpu=1", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def synthetic_bp4d(tmp_path_factory) -> Path:
    """A small synthetic BP4D stand-in, generated once per test session."""
    from aunce.data.synthetic import generate

    return generate(
        "bp4d",
        tmp_path_factory.mktemp("data") / "bp4d",
        seed=0,
        n_subjects=6,
        frames_per_subject=8,
        workers=1,
    )


@pytest.fixture(scope="session")
def bp4d_cache(synthetic_bp4d, tmp_path_factory) -> Path:
    from aunce.data.cache import build_cache

    return build_cache("synthetic", synthetic_bp4d, tmp_path_factory.mktemp("cache") / "bp4d", 64)


def pytest_configure(config):
    # two torch threads in one process; one in each of `pytest -n`'s workers (three on two
    # cores: more threads would wait on each other)
    threads = "1" if os.environ.get("PYTEST_XDIST_WORKER") is not None else "2"
    os.environ.setdefault("OMP_NUM_THREADS", threads)


#: `make test` runs the suite on a few workers (pytest -n, ``--dist loadfile
#: --no-loadscope-reorder``: a file's tests stay on one worker, and files are handed out in this
#: order, then the others in the collection's). The SLURM tests first: their cluster runs beside
#: everything else, and their two long tests go first within the file, so that the worker is
#: given no other file while they run. Then the files that take longest (``pytest
#: --durations=0``), so that no long file starts last, test_codehash.py early: its first test
#: that needs the shared smoke run makes it. Within a file, the tests that need the smoke run go
#: last, so that a worker waits for it as little as possible.
LONGEST_FIRST = (
    "test_slurm.py", "test_codehash.py", "test_paper.py", "test_workflow.py",
    "test_integrity_workflow.py", "test_custom_method.py", "test_folder.py", "test_train.py",
    "test_scale.py", "test_status.py", "test_cache.py", "test_encoders.py", "test_calibration.py",
    "test_claims.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # the workers collect, in this order
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def order(item):
        names = item.fixturenames
        return rank.get(item.path.name, len(rank)), "cluster" not in names, "smoke_run" in names

    items.sort(key=order)  # stable: the collection's order otherwise


@pytest.fixture
def roots(tmp_path):
    """Dataset roots for config/paper.yaml (empty folders; GFT's split file of 78 / 18)."""
    (tmp_path / "gft").mkdir()
    (tmp_path / "gft" / "split.csv").write_text(
        "subject,split\n" + "".join(f"S{i},{'train' if i < 78 else 'test'}\n" for i in range(96))
    )
    roots = {n: {"root": str(tmp_path / n)} for n in ("bp4d", "disfa", "bp4d_plus", "affwild2")}
    roots["gft"] = {"root": str(tmp_path / "gft"), "split_file": "split.csv"}
    path = tmp_path / "roots.yaml"
    path.write_text(yaml.safe_dump({"datasets": roots}))
    return path
