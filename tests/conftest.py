import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "config" / "schema.yaml"


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
