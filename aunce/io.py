"""Atomic file output: a reader never sees a half-written result.

Every file the harness produces is written to a temporary name in the same folder and renamed into
place when complete, so an interrupted job leaves either the old file or nothing. A write that fails
for want of space is an ``OSError`` naming the file meant (not its temporary name), which the
``aunce`` command prints on one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aunce import AunceError

#: free bytes below which a failed write is taken for a full disk
FULL_BELOW = 1 << 20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _naming(path, tmp_path):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs are ordinary
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        with _naming(path, tmp):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def _naming(path: Path, tmp: Path) -> Iterator[None]:
    """Errors of writing ``tmp`` name ``path``; a failure on a full disk is ENOSPC even where the
    writer reports it otherwise (``torch.save`` raises a RuntimeError)."""
    try:
        yield
    except OSError as err:
        if err.filename is None or str(tmp) in str(err.filename):
            meant = (
                str(path)
                if err.filename is None
                else str(err.filename).replace(str(tmp), str(path))
            )
            raise OSError(err.errno, err.strerror, meant) from err
        raise
    except AunceError:
        raise
    except Exception as err:
        if _disk_full(path.parent):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has (almost) no space or no inode left."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return free * st.f_frsize < FULL_BELOW or (st.f_files > 0 and st.f_ffree == 0)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise AunceError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, pathlib paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
