"""Exact installs: requirements.lock pins every package within pyproject.toml's ranges, `make`
installs with it, and the environment the tests run in is the locked one."""

import subprocess
import tomllib
from importlib import metadata

from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_requirement_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = lock()
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (text, pins[name])
    assert isinstance(project["license"], str)  # an SPDX expression: no deprecation warning


def test_make_installs_from_the_lock():
    proc = subprocess.run(["make", "-n", "-B", "setup"], cwd=REPO, capture_output=True, text=True)
    assert "pip install --quiet -c requirements.lock -e '.[test]'" in proc.stdout


def test_the_tests_run_in_the_locked_environment():
    """Every locked package that is installed has the locked version (local labels aside: a CPU
    build of torch, 2.14.1+cpu, is 2.14.1)."""
    wrong = {}
    for name, version in lock().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed.split("+")[0] != version:
            wrong[name] = (installed, version)
    assert not wrong, f"installed versions differ from requirements.lock: {wrong} (make setup)"
