import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    the SLURM test, which compares its tables with these."""
    workdir = tmp_path_factory.mktemp("smoke")
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
    os.environ.setdefault("OMP_NUM_THREADS", "2")


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
