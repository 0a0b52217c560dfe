"""Atomic file output: a reader never sees a half-written result; content hashes of large files.

Every file the harness produces is written to a temporary name in the same folder and renamed into
place when complete, so an interrupted job leaves either the old file or nothing. A write that fails
for want of space is an ``OSError`` naming the file meant (not its temporary name), which the
``aunce`` command prints on one line.

Large binary files that later steps trust (checkpoints, ``encoder.pt``, embeddings, warm-start
backbones) carry a content hash: a sidecar ``<file>.sha256`` in ``sha256sum`` format
(:func:`write_digest`, or ``atomic_path(..., digest=True)``), checked before the file is used
(:func:`check_digest`). A file damaged after it was written (flipped bytes, a truncation, a copy
cut short) then stops the step that would read it, instead of being used silently.

Job settings reach a job as a small JSON file named by its content (:func:`content_file`), not as
JSON on the command line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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
#: the suffix of a file's content-hash sidecar
DIGEST_SUFFIX = ".sha256"

#: files this process has written (atomically, so each one complete), for the log line of an
#: interrupted job (aunce.cli: SIGTERM)
WRITTEN: list[str] = []


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, digest: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    ``digest``: also write the SHA-256 sidecar (:func:`write_digest`), before the rename, so that
    a file in place never lacks the sidecar of its own bytes (an interruption between the two
    renames leaves an old file beside a new sidecar: a mismatch, never a silent pass)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _naming(path, tmp_path):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs are ordinary
            if digest:
                _write_sidecar(path, file_sha256(tmp_path))
            os.replace(tmp_path, path)
            WRITTEN.append(str(path))
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


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def digest_path(path: str | os.PathLike) -> Path:
    """The sidecar that holds the content hash of ``path``: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def _write_sidecar(path: Path, digest: str) -> None:
    with atomic_path(digest_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")  # the format of sha256sum (sha256sum -c works)


def write_digest(path: str | os.PathLike) -> str:
    """Hash the file ``path`` and write its sidecar ``<path>.sha256`` atomically; return the hash."""
    digest = file_sha256(path)
    _write_sidecar(Path(path), digest)
    return digest


def read_digest(path: str | os.PathLike) -> str | None:
    """The hash the sidecar of ``path`` records, or None when there is no (readable) sidecar."""
    try:
        text = digest_path(path).read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    value = text.split(maxsplit=1)[0] if text.strip() else ""
    return value.lower() if len(value) == 64 else None


#: what to do about a damaged output of the workflow (the default remedy of :func:`check_digest`)
REMAKE = "delete it and its .sha256 and run the workflow again (make run), which makes it anew"


class DamagedFile(AunceError):
    """A file whose bytes are not those its content hash records (or that has no hash to check)."""


def check_digest(path: str | os.PathLike, remedy: str | None = None) -> str:
    """Check ``path`` against its sidecar ``<path>.sha256``; return the hash.

    Raises :class:`DamagedFile` (an :class:`AunceError`) naming the file, what is wrong and what to
    do: ``remedy``, or by default :data:`REMAKE`. A missing file, a missing sidecar and a mismatch
    are each said as such."""
    path = Path(path)
    remedy = remedy or REMAKE
    if not path.is_file():
        raise DamagedFile(f"{path}: file not found")
    expected = read_digest(path)
    if expected is None:
        raise DamagedFile(
            f"{path}: no content hash beside it ({digest_path(path).name} missing or unreadable), "
            f"so it cannot be trusted; {remedy}"
        )
    actual = file_sha256(path)
    if actual != expected:
        raise DamagedFile(
            f"{path}: damaged, its bytes do not match the SHA-256 in {digest_path(path).name} "
            f"(changed after it was written: {path.stat().st_size} bytes now); {remedy}"
        )
    return actual


def content_file(folder: str | os.PathLike, stem: str, text: str) -> Path:
    """A file ``<folder>/<stem>-<hash>.json`` holding ``text``, named by the first 16 hex digits of
    its SHA-256: the same text is the same file, other text another file. Written atomically, and
    only when absent or different (so concurrent writers of one text agree); returns its path."""
    data = text.encode()
    path = Path(folder) / f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}.json"
    try:
        if path.read_bytes() == data:
            return path
    except FileNotFoundError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


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
