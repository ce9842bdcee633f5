"""The task store's error boundary: damaged files, full disks and I/O errors become one clear line.

Every public TaskStore method goes through `boundary`: a `sqlite3.DatabaseError` or `OSError` (and a
row that no longer decodes) becomes a `StoreError` naming the file and what to do; the file itself
is never replaced. A full disk first gives back the store's small reserve file and retries once, so
the record of the task that ran out of space (failed, "disk full writing …") still gets written.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from nixdeck.core.tasks.errors import StoreError

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
RESERVE_NAME = "history.sqlite3.reserve"
RESERVE_SIZE = 1024 * 1024  # room for the last few records once the disk is full
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_DAMAGED = ("malformed", "not a database", "file is encrypted", "damaged record", "could not decode")
_KEEP = "it was left untouched — move it away to start a fresh history, or restore it from a backup"


class DamagedRecord(sqlite3.DatabaseError):
    """A row that SQLite returned but NixDeck cannot decode (bytes changed inside a page)."""


class DiskReserve:
    """A small preallocated file beside the database, deleted when the disk fills up."""

    def __init__(self, path: Path, size: int = RESERVE_SIZE) -> None:
        self.path = path
        self.size = size

    def ensure(self) -> None:
        """Create the reserve if it is missing; silently skipped when there is no room for it."""
        if self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, self.size)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            return
        os.close(fd)

    def release(self) -> bool:
        """Give the space back; True when there was a reserve to give."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True


def no_space_left(where: Path) -> bool:
    """True when the file system holding `where` has (almost) no free block for us."""
    try:
        st = os.statvfs(where)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def is_disk_full(e: BaseException, where: Path | None = None) -> bool:
    """A full disk: ENOSPC, SQLITE_FULL, or an SQLite I/O error on a file system with no space left
    (creating the WAL index of a full disk fails that way)."""
    if isinstance(e, OSError):
        return e.errno in _DISK_FULL
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    if "full" in str(e).lower() or _sqlite_code(e) == 13:
        return True
    return where is not None and ("i/o error" in str(e).lower() or _sqlite_code(e) == 10) and no_space_left(where)


def _sqlite_code(e: sqlite3.DatabaseError) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def store_error(db: Path, e: BaseException) -> StoreError:
    """The one line a person reads when the history cannot be used."""
    where = Path(e.filename) if isinstance(e, OSError) and e.filename else db
    if is_disk_full(e, db.parent):
        return StoreError(f"disk full writing {where}: free some space on that disk and try again "
                          "(nothing was deleted)")
    if isinstance(e, OSError):
        return StoreError(f"cannot use {where}: {e.strerror or e} (check that the data dir's disk works "
                          "and its permissions)")
    text = str(e)
    low = text.lower()
    if isinstance(e, DamagedRecord) or any(k in low for k in _DAMAGED):
        return StoreError(f"the task history {db} is damaged ({text}); {_KEEP}")
    if "locked" in low or "busy" in low:
        return StoreError(f"the task history {db} is busy ({text}): another NixDeck holds it; try again")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"cannot write the task history {db} ({text}): check its permissions")
    return StoreError(f"the task history {db} cannot be used ({text}) and may be damaged; {_KEEP}")


class _Guarded(Protocol):
    path: Path
    reserve: DiskReserve


def boundary(fn: F) -> F:
    """Turn database and I/O errors of a store method into a StoreError (one retry on a full disk)."""

    @functools.wraps(fn)
    def run(self: _Guarded, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except StoreError:
            raise
        except (sqlite3.DatabaseError, OSError) as e:
            if not (is_disk_full(e, self.path.parent) and self.reserve.release()):
                raise store_error(self.path, e) from None
        try:
            return fn(self, *args, **kwargs)
        except StoreError:
            raise
        except (sqlite3.DatabaseError, OSError) as e:
            raise store_error(self.path, e) from None

    return cast(F, run)


def decoded(table: str, row_id: Any, fn: Callable[[], R]) -> R:
    """`fn()` (a row decoder); a value that no longer decodes is a damaged record, not a traceback."""
    try:
        return fn()
    except (ValueError, TypeError, KeyError) as e:  # JSONDecodeError and pydantic's ValidationError too
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DamagedRecord(f"damaged record in {table} (id {row_id}): {first}") from None
