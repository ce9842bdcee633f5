"""StoreWatcher: tasks other processes (the CLI, a scheduler) write show up live in this one.

SQLite's `PRAGMA data_version` changes on a connection only when *another* connection committed, so
a poll costs one pragma while nothing happens elsewhere. When it changed, one indexed query reads
just the rows that can have changed: tasks newer than the newest one seen, and the still-active
tasks of other processes. Nothing ever reads the whole table.
"""

from __future__ import annotations

from collections.abc import Callable

from nixdeck.core.tasks.events import Event, TaskChanged, TaskCreated
from nixdeck.core.tasks.model import ACTIVE_STATES
from nixdeck.core.tasks.store import TaskStore


class StoreWatcher:
    """`poll()` returns TaskCreated/TaskChanged events for what other processes wrote since the last poll.

    `is_local(task_id)` says which tasks this process drives itself (their events come from its engine).
    """

    def __init__(self, store: TaskStore, is_local: Callable[[int], bool] = lambda _tid: False) -> None:
        self.store = store
        self.is_local = is_local
        conn = store._conn
        self._version = self._data_version()
        self._max_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()[0])
        states = [s.value for s in ACTIVE_STATES]
        rows = conn.execute(f"SELECT id FROM tasks WHERE state IN ({', '.join('?' * len(states))})", states)
        self._foreign: set[int] = {int(r[0]) for r in rows if not is_local(int(r[0]))}
        self.queries = 0  # how many times the rows were read (the pragma alone does not count)

    def _data_version(self) -> int:
        return int(self.store._conn.execute("PRAGMA data_version").fetchone()[0])

    def poll(self) -> list[Event]:
        version = self._data_version()
        if version == self._version:
            return []
        self._version = version
        self.queries += 1
        watched = sorted(self._foreign)
        sql = "SELECT * FROM tasks WHERE id > ?"
        if watched:
            sql += f" OR id IN ({', '.join('?' * len(watched))})"
        rows = self.store._conn.execute(sql + " ORDER BY id", [self._max_id, *watched]).fetchall()
        events: list[Event] = []
        for r in rows:
            t = self.store._row_to_task(r)
            new = t.id > self._max_id
            self._max_id = max(self._max_id, t.id)
            if self.is_local(t.id):
                continue
            if t.state.terminal:
                self._foreign.discard(t.id)
            else:
                self._foreign.add(t.id)
            events.append(TaskCreated(t) if new else TaskChanged(t))
        return events
