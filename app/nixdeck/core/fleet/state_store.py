"""Probe results in SQLite, per project and device, with history.

Kept in the task history's database file (one file to back up, WAL, busy timeout) in a table of
its own that this module creates: fleet state is not a task, and the task schema's migrations stay
the task store's business. The newest probe of a device is its state; older ones are its history
(bounded per device by `KEEP_PER_DEVICE`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nixdeck.core.errors import NixDeckError
from nixdeck.core.fleet.probe import DeviceState
from nixdeck.core.tasks.store import DB_NAME

KEEP_PER_DEVICE = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS device_states (
  id INTEGER PRIMARY KEY,
  project TEXT NOT NULL,
  device TEXT NOT NULL,
  probed_at TEXT NOT NULL,
  online INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS device_states_by_device ON device_states (project, device, id);
"""


class FleetStateError(NixDeckError):
    """The fleet state could not be read or written (a damaged or locked database)."""


class FleetStateStore:
    """Read and append probe results; one connection per store."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise FleetStateError(f"cannot open the fleet state in {self.path}: {e}") from e

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> FleetStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, state: DeviceState) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT INTO device_states (project, device, probed_at, online, data) VALUES (?, ?, ?, ?, ?)",
                (state.project, state.device, state.probed_at.isoformat(), int(state.online), state.model_dump_json()),
            )
            self._conn.execute(
                "DELETE FROM device_states WHERE project = ? AND device = ? AND id <= "
                "(SELECT id FROM device_states WHERE project = ? AND device = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (state.project, state.device, state.project, state.device, KEEP_PER_DEVICE),
            )
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise FleetStateError(f"cannot record the state of {state.device} in {self.path}: {e}") from e

    def latest(self, project: str, device: str) -> DeviceState | None:
        rows = self.history(project, device, limit=1)
        return rows[0] if rows else None

    def latest_online(self, project: str, device: str) -> DeviceState | None:
        """The newest probe that reached the device (what it ran when last seen)."""
        row = self._conn.execute(
            "SELECT data FROM device_states WHERE project = ? AND device = ? AND online = 1 ORDER BY id DESC LIMIT 1",
            (project, device),
        ).fetchone()
        return DeviceState.model_validate_json(row[0]) if row else None

    def history(self, project: str, device: str, limit: int = 50) -> list[DeviceState]:
        rows = self._conn.execute(
            "SELECT data FROM device_states WHERE project = ? AND device = ? ORDER BY id DESC LIMIT ?",
            (project, device, limit),
        ).fetchall()
        return [DeviceState.model_validate_json(r[0]) for r in rows]
