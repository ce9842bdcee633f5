"""TaskStore: the SQLite (WAL) task history in the data dir, with log files beside it.

The database holds metadata (tasks, steps, processes, parsed messages); raw stdout/stderr live in
append-only files under `logs/<task id>/`, so a 1 GB build log costs disk, not memory.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nixdeck.core.paths import ensure_data_dir
from nixdeck.core.tasks.errors import StoreError, TaskNotFound
from nixdeck.core.tasks.model import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    JobRecord,
    MessageRecord,
    ProcessRecord,
    StepRecord,
    TaskRecord,
    TaskState,
    utcnow,
)
from nixdeck.core.tasks.procs import is_alive, own_identity, terminate_groups_blocking
from nixdeck.core.tasks.schema import MIGRATIONS, SCHEMA_VERSION
from nixdeck.core.tasks.summary import final_phase, finish_steps

DB_NAME = "history.sqlite3"
_JSON_FIELDS = ("devices", "warnings", "result", "submission")
_TASK_COLUMNS = (
    "kind title state author created started ended project devices parent_id origin_id forced silent "
    "timeout error warnings result submission progress phase attempt max_attempts owner_pid owner_start "
    "cancel_requested"
).split()


def _ts(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


class TaskStore:
    """Persistent task history. One instance per process; safe beside other NixDeck processes (WAL)."""

    def __init__(self, data_dir: Path | None = None, *, recover: bool = True) -> None:
        self.data_dir = ensure_data_dir(data_dir)
        self.path = self.data_dir / DB_NAME
        self.logs_dir = self.data_dir / "logs"
        self._conn = self._connect()
        self._migrate()
        self.recovered: list[int] = self.recover() if recover else []

    # -- connection and schema ------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            # refuse a newer file before switching it to WAL, which would rewrite its header
            self._refuse_newer(int(conn.execute("PRAGMA user_version").fetchone()[0]), conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"the task history {self.path} cannot be opened ({e}); it was left untouched — "
                "move it away to start a fresh history, or restore it from a backup"
            ) from e
        return conn

    def _refuse_newer(self, version: int, conn: sqlite3.Connection) -> None:
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the task history {self.path} was written by a newer NixDeck (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); it was left untouched"
            )

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        self._refuse_newer(version, self._conn)
        if version >= SCHEMA_VERSION:
            return
        # Several NixDecks may open a fresh data dir at once (e.g. parallel CLI calls): one migrates,
        # the others wait and then find the schema current. (executescript commits whatever
        # transaction is open, so a BEGIN IMMEDIATE around it would not serialise them.)
        lock = os.open(self.data_dir / f"{DB_NAME}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            self._refuse_newer(version, self._conn)
            for v in range(version, SCHEMA_VERSION):
                try:
                    self._conn.executescript(
                        "BEGIN IMMEDIATE;" + MIGRATIONS[v] + f";PRAGMA user_version = {v + 1};COMMIT;"
                    )
                except sqlite3.DatabaseError as e:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise StoreError(f"cannot migrate the task history {self.path} to schema {v + 1}: {e}") from e
        finally:
            os.close(lock)  # closing the descriptor releases the lock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on error."""
        conn = self._conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    # -- tasks --------------------------------------------------------------------------------
    def _task_values(self, t: TaskRecord) -> list[Any]:
        d = t.model_dump(mode="json")
        out: list[Any] = []
        for c in _TASK_COLUMNS:
            v = d[c]
            if c in _JSON_FIELDS:
                v = json.dumps(v, sort_keys=True)
            elif isinstance(v, bool):
                v = int(v)
            out.append(v)
        return out

    def insert_task(self, task: TaskRecord) -> TaskRecord:
        """Store a new task and return it with its id."""
        with self.transaction() as c:
            cur = c.execute(
                f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) VALUES ({', '.join('?' * len(_TASK_COLUMNS))})",
                self._task_values(task),
            )
            task_id = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT OR IGNORE INTO task_devices (task_id, device) VALUES (?, ?)",
                [(task_id, d) for d in task.devices],
            )
        return task.model_copy(update={"id": task_id})

    def update_task(self, task_id: int, **fields: Any) -> None:
        """Change some columns of a task (values as the model holds them)."""
        if not fields:
            return
        cols, vals = [], []
        for k, v in fields.items():
            if k not in _TASK_COLUMNS:
                raise KeyError(k)
            if k in _JSON_FIELDS:
                v = json.dumps(v, sort_keys=True, default=str)
            elif isinstance(v, datetime):
                v = v.isoformat()
            elif isinstance(v, TaskState):
                v = v.value
            elif isinstance(v, bool):
                v = int(v)
            cols.append(f"{k} = ?")
            vals.append(v)
        with self.transaction() as c:
            c.execute(f"UPDATE tasks SET {', '.join(cols)} WHERE id = ?", (*vals, task_id))

    def _row_to_task(self, r: sqlite3.Row) -> TaskRecord:
        d = dict(r)
        for k in _JSON_FIELDS:
            d[k] = json.loads(d[k])
        for k in ("forced", "silent", "cancel_requested"):
            d[k] = bool(d[k])
        return TaskRecord.model_validate(d)

    def get(self, task_id: int) -> TaskRecord:
        r = self._conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if r is None:
            raise TaskNotFound(task_id)
        return self._row_to_task(r)

    def list_tasks(
        self,
        *,
        states: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        device: str | None = None,
        text: str | None = None,
        parent_id: int | None = None,
        top_level: bool = False,
        include_silent: bool = True,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        project: str | None = None,
    ) -> list[TaskRecord]:
        """Tasks matching the filters, newest first by default (`project`: that project's only)."""
        where, args = self._filters(states, kinds, device, text, parent_id, top_level, include_silent)
        if project is not None:
            where, args = (f"{where} AND project = ?" if where else "WHERE project = ?"), [*args, project]
        sql = f"SELECT * FROM tasks {where} ORDER BY id {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        return [self._row_to_task(r) for r in self._conn.execute(sql, args)]

    def count_tasks(self, **filters: Any) -> int:
        where, args = self._filters(
            filters.get("states"),
            filters.get("kinds"),
            filters.get("device"),
            filters.get("text"),
            filters.get("parent_id"),
            filters.get("top_level", False),
            filters.get("include_silent", True),
        )
        return int(self._conn.execute(f"SELECT count(*) FROM tasks {where}", args).fetchone()[0])

    @staticmethod
    def _filters(
        states: Iterable[str] | None,
        kinds: Iterable[str] | None,
        device: str | None,
        text: str | None,
        parent_id: int | None,
        top_level: bool,
        include_silent: bool,
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        args: list[Any] = []
        if states:
            s = list(states)
            conds.append(f"state IN ({', '.join('?' * len(s))})")
            args += [str(x) for x in s]
        if kinds:
            k = list(kinds)
            conds.append(f"kind IN ({', '.join('?' * len(k))})")
            args += [str(x) for x in k]
        if device:
            conds.append("id IN (SELECT task_id FROM task_devices WHERE device = ?)")
            args.append(device)
        if text:
            conds.append("(title LIKE ? ESCAPE '\\' OR kind LIKE ? ESCAPE '\\' OR devices LIKE ? ESCAPE '\\')")
            pat = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [pat, pat, pat]
        if parent_id is not None:
            conds.append("parent_id = ?")
            args.append(parent_id)
        elif top_level:
            conds.append("parent_id IS NULL")
        if not include_silent:
            conds.append("silent = 0")
        return ("WHERE " + " AND ".join(conds)) if conds else "", args

    def children(self, task_id: int) -> list[TaskRecord]:
        return self.list_tasks(parent_id=task_id, newest_first=False)

    def reruns(self, task_id: int) -> list[TaskRecord]:
        """Tasks re-run from this one (their origin_id is its id), oldest first."""
        rows = self._conn.execute("SELECT * FROM tasks WHERE origin_id = ? ORDER BY id", (task_id,))
        return [self._row_to_task(r) for r in rows]

    def child_counts(self, ids: Sequence[int]) -> dict[int, int]:
        """How many children each of these tasks has (for lazy tree views)."""
        if not ids:
            return {}
        q = f"SELECT parent_id, count(*) FROM tasks WHERE parent_id IN ({', '.join('?' * len(ids))}) GROUP BY parent_id"
        return {int(p): int(n) for p, n in self._conn.execute(q, list(ids))}

    def active_tasks(self) -> list[TaskRecord]:
        return self.list_tasks(states=[s.value for s in ACTIVE_STATES])

    # -- steps --------------------------------------------------------------------------------
    def save_step(self, task_id: int, step: StepRecord) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO steps (task_id, job, idx, name, state, started, ended, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, job, idx) DO UPDATE SET "
                "name = excluded.name, state = excluded.state, started = excluded.started, "
                "ended = excluded.ended, detail = excluded.detail",
                (task_id, step.job, step.index, step.name, step.state.value, _ts(step.started), _ts(step.ended), step.detail),
            )

    def jobs(self, task_id: int) -> list[JobRecord]:
        jobs: dict[str, JobRecord] = {}
        for r in self._conn.execute("SELECT * FROM steps WHERE task_id = ? ORDER BY rowid", (task_id,)):
            step = StepRecord(
                job=r["job"], index=r["idx"], name=r["name"], state=TaskState(r["state"]),
                started=_dt(r["started"]), ended=_dt(r["ended"]), detail=r["detail"],
            )
            jobs.setdefault(step.job, JobRecord(name=step.job)).steps.append(step)
        for j in jobs.values():
            j.steps.sort(key=lambda s: s.index)
        return list(jobs.values())

    # -- processes ----------------------------------------------------------------------------
    def insert_process(self, p: ProcessRecord) -> ProcessRecord:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO processes (task_id, job, step, attempt, argv, cwd, env, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (p.task_id, p.job, p.step, p.attempt, json.dumps(p.argv), p.cwd, json.dumps(p.env), _ts(p.started)),
            )
        return p.model_copy(update={"id": int(cur.lastrowid or 0)})

    def update_process(self, process_id: int, **fields: Any) -> None:
        cols, vals = [], []
        for k, v in fields.items():
            if isinstance(v, datetime):
                v = v.isoformat()
            elif isinstance(v, list | dict):
                v = json.dumps(v)
            cols.append(f"{k} = ?")
            vals.append(v)
        with self.transaction() as c:
            c.execute(f"UPDATE processes SET {', '.join(cols)} WHERE id = ?", (*vals, process_id))

    def processes(self, task_id: int) -> list[ProcessRecord]:
        out = []
        for r in self._conn.execute("SELECT * FROM processes WHERE task_id = ? ORDER BY id", (task_id,)):
            d = dict(r)
            d["argv"] = json.loads(d["argv"])
            d["env"] = json.loads(d["env"])
            d["remote"] = json.loads(d.get("remote") or "{}")
            out.append(ProcessRecord.model_validate(d))
        return out

    # -- messages -----------------------------------------------------------------------------
    def add_messages(self, task_id: int, messages: Iterable[MessageRecord]) -> None:
        rows = [
            (task_id, m.level, m.message, m.file, m.line, m.column, json.dumps(m.trace), m.source, _ts(m.created))
            for m in messages
        ]
        if not rows:
            return
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO messages (task_id, level, message, file, line, col, trace, source, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def messages(self, task_id: int, levels: Iterable[str] | None = None) -> list[MessageRecord]:
        sql, args = "SELECT * FROM messages WHERE task_id = ?", list[Any]([task_id])
        if levels:
            lv = list(levels)
            sql += f" AND level IN ({', '.join('?' * len(lv))})"
            args += lv
        out = []
        for r in self._conn.execute(sql + " ORDER BY id", args):
            out.append(
                MessageRecord(
                    task_id=r["task_id"], level=r["level"], message=r["message"], file=r["file"], line=r["line"],
                    column=r["col"], trace=json.loads(r["trace"]), source=r["source"], created=_dt(r["created"]) or utcnow(),
                )
            )
        return out

    # -- logs ---------------------------------------------------------------------------------
    def log_dir(self, task_id: int) -> Path:
        d = self.logs_dir / str(task_id)
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- recovery and retention ---------------------------------------------------------------
    def recover(self, grace: float = 3.0) -> list[int]:
        """Mark tasks whose owner process is gone as interrupted and end their leftover processes
        (SIGTERM, then SIGKILL after one shared `grace` period).

        A task owned by a live NixDeck (pid and start time match) is never touched.
        """
        me = own_identity()
        stale: list[TaskRecord] = []
        for t in self.active_tasks():
            if (t.owner_pid, t.owner_start) == me:
                continue
            if t.owner_pid is not None and is_alive(t.owner_pid, t.owner_start):
                continue
            stale.append(t)
        now = utcnow()
        leftovers = [p for t in stale for p in self.processes(t.id) if p.ended is None and p.pid is not None]
        terminate_groups_blocking([(p.pid, p.start_ticks) for p in leftovers if p.pid is not None], grace)
        for p in leftovers:
            self.update_process(p.id, ended=now)
        for t in stale:
            steps = [s for j in self.jobs(t.id) for s in j.steps]
            for s in finish_steps(steps):  # never started: skipped; running: interrupted
                s.ended = s.ended or (now if s.state == TaskState.INTERRUPTED else None)
                self.save_step(t.id, s)
            who = f"pid {t.owner_pid}" if t.owner_pid else "it"
            self.update_task(
                t.id,
                state=TaskState.INTERRUPTED,
                ended=now,
                error=t.error or f"NixDeck ({who}) ended while the task was {t.state.label}; its processes were stopped",
                owner_pid=None,
                owner_start=None,
                phase=final_phase(t, TaskState.INTERRUPTED, steps, []),  # not its last live phrase
            )
        return [t.id for t in stale]

    def prune(self, *, older_than_days: float | None = None, keep: int | None = None) -> int:
        """Delete finished top-level tasks (with children and log files) by age and/or count."""
        term = [s.value for s in TERMINAL_STATES]
        q = f"SELECT id FROM tasks WHERE parent_id IS NULL AND state IN ({', '.join('?' * len(term))})"
        ids: set[int] = set()
        if older_than_days is not None:
            cutoff = (utcnow() - timedelta(days=older_than_days)).isoformat()
            ids |= {int(r[0]) for r in self._conn.execute(q + " AND created < ?", (*term, cutoff))}
        if keep is not None:
            rows = self._conn.execute(q + " ORDER BY id DESC LIMIT -1 OFFSET ?", (*term, keep))
            ids |= {int(r[0]) for r in rows}
        if not ids:
            return 0
        all_ids = set(ids)
        frontier = list(ids)
        while frontier:
            chunk = frontier[:500]
            frontier = frontier[500:]
            q2 = f"SELECT id FROM tasks WHERE parent_id IN ({', '.join('?' * len(chunk))})"
            kids = {int(r[0]) for r in self._conn.execute(q2, chunk)} - all_ids
            all_ids |= kids
            frontier += list(kids)
        with self.transaction() as c:
            ordered = sorted(all_ids)
            for i in range(0, len(ordered), 500):
                part = ordered[i : i + 500]
                c.execute(f"DELETE FROM tasks WHERE id IN ({', '.join('?' * len(part))})", part)
        for tid in all_ids:
            shutil.rmtree(self.logs_dir / str(tid), ignore_errors=True)
        return len(ids)
