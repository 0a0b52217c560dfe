"""Write requirements.lock from pip's installation report (``make lock``).

``pip install --dry-run --ignore-installed --report report.json -e '.[test]'`` in a new virtual
environment resolves every package the project and its tests need, within pyproject.toml's ranges,
without installing anything; this turns the report into ``name==version`` lines, the project itself
left out. ``make setup`` (and so ``make run`` and ``make test``) installs with the lock as pip's
constraints (``-c requirements.lock``): every package it needs at the locked version.

    python scripts/lock.py report.json requirements.lock
"""

import json
import sys
from pathlib import Path

HEADER = """\
# Every package version `make run` and `make test` install (pip -c requirements.lock), resolved
# from pyproject.toml's ranges by `make lock` on {system} {machine}, Python {python}.
# pyproject.toml keeps the ranges for an installation into an environment of your own.
"""


def main(report_path: str, out_path: str) -> None:
    report = json.loads(Path(report_path).read_text())
    env = report["environment"]
    pins = sorted(
        (item["metadata"]["name"], item["metadata"]["version"])
        for item in report["install"]
        if not item.get("download_info", {}).get("dir_info", {}).get("editable")
    )
    if not pins:
        sys.exit(f"{report_path}: no package in the report")
    text = HEADER.format(system=env["platform_system"], machine=env["platform_machine"],
                         python=env["python_version"])  # fmt: skip
    text += "".join(f"{name}=={version}\n" for name, version in pins)
    tmp = Path(out_path).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out_path)
    print(f"wrote {out_path}: {len(pins)} packages")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/lock.py REPORT.json requirements.lock")
    main(*sys.argv[1:])
