import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "config" / "schema.yaml"
SMOKE = REPO / "config" / "smoke.yaml"


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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke config run once locally (`snakemake all --cores 1 --resources gpu=1`) in a temporary
    folder; shared by the workflow tests and the SLURM test, which compares its tables with these."""
    workdir = tmp_path_factory.mktemp("smoke")
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           f"--configfile={SMOKE}", "all", "--cores", "1", "--resources", "gpu=1"]
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "2")
