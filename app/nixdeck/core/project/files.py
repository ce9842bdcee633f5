"""Safe file writes: a crash or a full disk never leaves a half-written inventory.

``atomic_write`` writes a temporary file in the same directory, fsyncs it, keeps the previous
version as ``<name>.bak`` and renames the new file over the old one, then fsyncs the directory, so
the file is always either the old or the new content.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def digest(data: bytes | None) -> str | None:
    """SHA-256 of file content (``None`` for a missing file): detects changes made behind our back."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def read_optional(path: Path) -> bytes | None:
    """The file's bytes, or ``None`` if it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_replace(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes, *, backup: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; the previous content goes to ``<name>.bak``."""
    old = read_optional(path)
    mode = 0o644
    if old is not None:
        mode = path.stat().st_mode & 0o7777
        if backup and old != data:
            _write_replace(backup_path(path), old, mode)
    _write_replace(path, data, mode)
    _fsync_dir(path.parent)
