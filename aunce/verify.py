"""``aunce verify``: every file of a results folder that carries a content hash, checked in full.

Steps check what they read as they read it (aunce.io.check_digest, aunce.data.cache.open_cache);
this walks a whole results folder at once, for a copy that came over a network or from a backup,
or after a disk error:

- every file with a SHA-256 sidecar ``<file>.sha256``: checkpoints, ``encoder.pt``,
  ``embeddings.npz``, warm-start ``backbone.pt``;
- every cache (a folder with ``cache.json``): the size and SHA-256 of each of its files.

With ``fix``, a damaged file is removed with its sidecar and a damaged cache is marked damaged
(aunce.data.cache.mark_damaged), so that the workflow (``make run``) makes them again and reruns
what was made from them. Without ``fix`` nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aunce import AunceError
from aunce.io import DIGEST_SUFFIX, DamagedFile, check_digest, digest_path


@dataclass
class Report:
    """What :func:`verify_results` found: files that passed, and (path, problem) of the others."""

    root: Path
    checked: list[Path] = field(default_factory=list)
    damaged: list[tuple[Path, str]] = field(default_factory=list)
    fixed: bool = False

    def lines(self) -> list[str]:
        out = [problem for _, problem in self.damaged]  # each names its file: "<path>: damaged, ..."
        if self.fixed and self.damaged:
            out.append(
                f"removed the {len(self.damaged)} damaged file(s) (a cache: marked damaged); "
                "`make run` makes them again and reruns what was made from them"
            )
        out.append(
            f"{self.root}: {len(self.checked)} file(s) and cache(s) checked, "
            f"{len(self.damaged)} damaged"
        )
        return out


def verify_results(root: str | Path = "results", *, fix: bool = False) -> Report:
    """Check every hashed file and every cache below ``root``; see the module docstring."""
    from aunce.data.cache import META, cache_folder, verify_cache

    root = Path(root)
    if not root.is_dir():
        raise AunceError(f"{root}: no such results folder")
    report = Report(root, fixed=fix)
    for sidecar in sorted(root.rglob(f"*{DIGEST_SUFFIX}")):
        path = sidecar.with_name(sidecar.name.removesuffix(DIGEST_SUFFIX))
        if not path.exists() or sidecar.name.startswith("."):
            continue  # the sidecar of a temp() file already deleted, or a temporary one
        try:
            check_digest(path, remedy="remove it (aunce verify --fix) and run make run")
        except DamagedFile as err:
            report.damaged.append((path, str(err)))
            if fix:
                path.unlink(missing_ok=True)
                digest_path(path).unlink(missing_ok=True)
        else:
            report.checked.append(path)
    for meta in sorted(root.rglob(META)):
        folder = cache_folder(meta)
        try:
            verify_cache(folder, mark=fix)
        except AunceError as err:
            report.damaged.append((folder, str(err)))
        else:
            report.checked.append(folder)
    return report
