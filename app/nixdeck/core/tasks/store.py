"""TaskStore: the SQLite (WAL) task history in the data dir, with log files beside it.

The database holds metadata (tasks, steps, processes, parsed messages); raw stdout/stderr live in
append-only files under `logs/<task id>/`, so a 1 GB build log costs disk, not memory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from nixdeck.core.paths import ensure_data_dir
from nixdeck.core.tasks.errors import StoreError, TaskNotFound
from nixdeck.core.tasks.model import (
    ACTIVE_STATES,
    JobRecord,
    MessageRecord,
    ProcessRecord,
    StepRecord,
    TaskRecord,
    TaskState,
    utcnow,
)
from nixdeck.core.tasks.storefaults import (
    RESERVE_NAME,
    DiskReserve,
    boundary,
    decoded,
    is_disk_full,
    store_error,
)
from nixdeck.core.tasks.storeopen import migrate, open_connection

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


def _step_of(r: sqlite3.Row) -> StepRecord:
    return StepRecord(
        job=r["job"], index=r["idx"], name=r["name"], state=TaskState(r["state"]),
        started=_dt(r["started"]), ended=_dt(r["ended"]), detail=r["detail"],
    )  # fmt: skip


class TaskStore:
    """Persistent task history. One instance per process; safe beside other NixDeck processes (WAL)."""

    def __init__(self, data_dir: Path | None = None, *, recover: bool = True) -> None:
        self.data_dir = ensure_data_dir(data_dir)
        self.path = self.data_dir / DB_NAME
        self.logs_dir = self.data_dir / "logs"
        self.reserve = DiskReserve(self.data_dir / RESERVE_NAME)
        try:
            self._conn = open_connection(self.path)
        except StoreError as e:
            # a full disk cannot even create the WAL index: give back the reserve and try once more
            if not (is_disk_full(e.__cause__ or e, self.data_dir) and self.reserve.release()):
                raise
            self._conn = open_connection(self.path)
        try:
            migrate(self._conn, self.path)
        except (sqlite3.DatabaseError, OSError) as e:
            self._conn.close()
            raise store_error(self.path, e) from None
        except BaseException:
            self._conn.close()
            raise
        self.reserve.ensure()
        try:
            self.recovered: list[int] = self.recover() if recover else []
        except BaseException:
            self._conn.close()
            raise

    # -- connection ---------------------------------------------------------------------------
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
            # SQLite may have rolled back by itself (a full disk): a second ROLLBACK would hide why
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
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

    @boundary
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

    @boundary
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
        def decode() -> TaskRecord:
            d = dict(r)
            for k in _JSON_FIELDS:
                d[k] = json.loads(d[k])
            for k in ("forced", "silent", "cancel_requested"):
                d[k] = bool(d[k])
            return TaskRecord.model_validate(d)

        return decoded("tasks", r["id"], decode)

    @boundary
    def get(self, task_id: int) -> TaskRecord:
        if not 0 < task_id < 2**63:  # SQLite integers are 64-bit: a bigger id is no task, not an error
            raise TaskNotFound(task_id)
        r = self._conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if r is None:
            raise TaskNotFound(task_id)
        return self._row_to_task(r)

    @boundary
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

    @boundary
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

    @boundary
    def children(self, task_id: int) -> list[TaskRecord]:
        return self.list_tasks(parent_id=task_id, newest_first=False)

    @boundary
    def reruns(self, task_id: int) -> list[TaskRecord]:
        """Tasks re-run from this one (their origin_id is its id), oldest first."""
        rows = self._conn.execute("SELECT * FROM tasks WHERE origin_id = ? ORDER BY id", (task_id,))
        return [self._row_to_task(r) for r in rows]

    @boundary
    def child_counts(self, ids: Sequence[int]) -> dict[int, int]:
        """How many children each of these tasks has (for lazy tree views)."""
        if not ids:
            return {}
        q = f"SELECT parent_id, count(*) FROM tasks WHERE parent_id IN ({', '.join('?' * len(ids))}) GROUP BY parent_id"
        return {int(p): int(n) for p, n in self._conn.execute(q, list(ids))}

    @boundary
    def active_tasks(self) -> list[TaskRecord]:
        return self.list_tasks(states=[s.value for s in ACTIVE_STATES])

    # -- steps --------------------------------------------------------------------------------
    @boundary
    def save_step(self, task_id: int, step: StepRecord) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO steps (task_id, job, idx, name, state, started, ended, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, job, idx) DO UPDATE SET "
                "name = excluded.name, state = excluded.state, started = excluded.started, "
                "ended = excluded.ended, detail = excluded.detail",
                (task_id, step.job, step.index, step.name, step.state.value, _ts(step.started), _ts(step.ended), step.detail),
            )

    @boundary
    def jobs(self, task_id: int) -> list[JobRecord]:
        jobs: dict[str, JobRecord] = {}
        for r in self._conn.execute("SELECT * FROM steps WHERE task_id = ? ORDER BY rowid", (task_id,)):
            step = decoded("steps", task_id, functools.partial(_step_of, r))
            jobs.setdefault(step.job, JobRecord(name=step.job)).steps.append(step)
        for j in jobs.values():
            j.steps.sort(key=lambda s: s.index)
        return list(jobs.values())

    # -- processes ----------------------------------------------------------------------------
    @boundary
    def insert_process(self, p: ProcessRecord) -> ProcessRecord:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO processes (task_id, job, step, attempt, argv, cwd, env, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (p.task_id, p.job, p.step, p.attempt, json.dumps(p.argv), p.cwd, json.dumps(p.env), _ts(p.started)),
            )
        return p.model_copy(update={"id": int(cur.lastrowid or 0)})

    @boundary
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

    @boundary
    def processes(self, task_id: int) -> list[ProcessRecord]:
        out = []
        for r in self._conn.execute("SELECT * FROM processes WHERE task_id = ? ORDER BY id", (task_id,)):
            d = dict(r)

            def decode(d: dict[str, Any] = d) -> ProcessRecord:
                return ProcessRecord.model_validate(d | {"argv": json.loads(d["argv"]), "env": json.loads(d["env"]),
                                                         "remote": json.loads(d.get("remote") or "{}")})

            out.append(decoded("processes", d["id"], decode))
        return out

    # -- messages -----------------------------------------------------------------------------
    @boundary
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

    @boundary
    def messages(self, task_id: int, levels: Iterable[str] | None = None) -> list[MessageRecord]:
        sql, args = "SELECT * FROM messages WHERE task_id = ?", list[Any]([task_id])
        if levels:
            lv = list(levels)
            sql += f" AND level IN ({', '.join('?' * len(lv))})"
            args += lv
        out = []
        for r in self._conn.execute(sql + " ORDER BY id", args):
            def decode(r: sqlite3.Row = r) -> MessageRecord:
                return MessageRecord(
                    task_id=r["task_id"], level=r["level"], message=r["message"], file=r["file"], line=r["line"],
                    column=r["col"], trace=json.loads(r["trace"]), source=r["source"],
                    created=_dt(r["created"]) or utcnow(),
                )  # fmt: skip

            out.append(decoded("messages", r["id"], decode))
        return out

    # -- logs ---------------------------------------------------------------------------------
    @boundary
    def log_dir(self, task_id: int) -> Path:
        d = self.logs_dir / str(task_id)
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- recovery and retention ---------------------------------------------------------------
    @boundary
    def recover(self, grace: float = 3.0) -> list[int]:
        """Mark tasks whose owner process is gone as interrupted and end their leftover processes
        (SIGTERM, then SIGKILL after one shared `grace` period); see `recovery.recover`."""
        from nixdeck.core.tasks.recovery import recover

        return recover(self, grace)

    @boundary
    def claim_interrupted(self, t: TaskRecord, error: str, now: datetime) -> bool:
        """Mark `t` interrupted only if it is still in the state and owner it was read with (a
        compare-and-set: an owner that finished it meanwhile keeps its result)."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE tasks SET state = ?, ended = ?, error = ?, owner_pid = NULL, owner_start = NULL "
                "WHERE id = ? AND state = ? AND owner_pid IS ? AND owner_start IS ?",
                (TaskState.INTERRUPTED.value, now.isoformat(), error, t.id, t.state.value, t.owner_pid, t.owner_start),
            )
        return cur.rowcount == 1

    @boundary
    def open_processes_of_interrupted(self) -> list[ProcessRecord]:
        """Processes not yet marked ended of tasks that recovery ended (also one it did not finish)."""
        rows = self._conn.execute(
            "SELECT DISTINCT task_id FROM processes WHERE ended IS NULL AND pid IS NOT NULL "
            "AND task_id IN (SELECT id FROM tasks WHERE state = ?)", (TaskState.INTERRUPTED.value,)
        ).fetchall()
        return [p for (tid,) in rows for p in self.processes(int(tid)) if p.ended is None and p.pid is not None]

    @boundary
    def prune(self, *, older_than_days: float | None = None, keep: int | None = None) -> int:
        """Delete finished top-level tasks (with children and log files) by age and/or count."""
        from nixdeck.core.tasks.retention import prune

        return prune(self, older_than_days=older_than_days, keep=keep)
