"""Opening the task history: connect (WAL), refuse a damaged or newer file untouched, migrate once."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from nixdeck.core.tasks.errors import StoreError
from nixdeck.core.tasks.schema import MIGRATIONS, SCHEMA_VERSION
from nixdeck.core.tasks.storefaults import is_disk_full, store_error

OPEN_ATTEMPTS = 5


def open_connection(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode; a file SQLite cannot read is refused and left as it is. A file
    another NixDeck holds locked while it sets it up is tried again a few times first."""
    attempt = 1
    while True:
        try:
            return _open_connection(path)
        except StoreError as e:
            cause = e.__cause__
            busy = isinstance(cause, sqlite3.OperationalError) and ("locked" in str(cause) or "busy" in str(cause))
            if not busy or attempt >= OPEN_ATTEMPTS:
                raise
        time.sleep(0.1 * attempt)
        attempt += 1


def _open_connection(path: Path) -> sqlite3.Connection:
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        # refuse a newer file before switching it to WAL, which would rewrite its header
        refuse_newer(path, int(conn.execute("PRAGMA user_version").fetchone()[0]), conn)
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            # switching to WAL takes an exclusive lock that SQLite may refuse at once (no busy wait)
            # while another NixDeck opens the same fresh file: switch one at a time
            with open_lock(path):
                conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if is_disk_full(e, path.parent) or "locked" in str(e) or "busy" in str(e):
            raise store_error(path, e) from e
        raise StoreError(
            f"the task history {path} cannot be opened ({e}); it was left untouched — "
            "move it away to start a fresh history, or restore it from a backup"
        ) from e
    return conn


@contextlib.contextmanager
def open_lock(path: Path) -> Iterator[None]:
    """The data dir's lock for changing the database file itself (journal mode, schema)."""
    lock = os.open(path.parent / f"{path.name}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # closing the descriptor releases the lock


def refuse_newer(path: Path, version: int, conn: sqlite3.Connection) -> None:
    if version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"the task history {path} was written by a newer NixDeck (schema {version}, "
            f"this one knows {SCHEMA_VERSION}); it was left untouched"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to SCHEMA_VERSION, one migration at a time."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    refuse_newer(path, version, conn)
    if version >= SCHEMA_VERSION:
        return
    # Several NixDecks may open a fresh data dir at once (e.g. parallel CLI calls): one migrates,
    # the others wait and then find the schema current. (executescript commits whatever
    # transaction is open, so a BEGIN IMMEDIATE around it would not serialise them.)
    with open_lock(path):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        refuse_newer(path, version, conn)
        for v in range(version, SCHEMA_VERSION):
            try:
                conn.executescript("BEGIN IMMEDIATE;" + MIGRATIONS[v] + f";PRAGMA user_version = {v + 1};COMMIT;")
            except sqlite3.DatabaseError as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot migrate the task history {path} to schema {v + 1}: {e}") from e
