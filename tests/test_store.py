"""TaskStore: schema and migrations, refusing damaged or newer files untouched, filters, indexes, prune."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from nixdeck.core.paths import DataDirError
from nixdeck.core.tasks.errors import StoreError, TaskNotFound
from nixdeck.core.tasks.model import ProcessRecord, TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.schema import MIGRATIONS, SCHEMA_VERSION
from nixdeck.core.tasks.store import DB_NAME, TaskStore


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_fresh_store_has_current_schema(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    assert store.path == data_dir / DB_NAME
    v = store._conn.execute("PRAGMA user_version").fetchone()[0]
    assert v == SCHEMA_VERSION == len(MIGRATIONS)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # reopening migrates nothing and keeps the data
    store = TaskStore(data_dir)
    tid = store.insert_task(TaskRecord(kind="record", title="x", state=TaskState.COMPLETED)).id
    store.close()
    store = TaskStore(data_dir)
    assert store.get(tid).title == "x"
    store.close()


def test_migration_from_an_older_version(data_dir: Path) -> None:
    """A v0 file (empty, as an older NixDeck would hand over) is migrated step by step."""
    path = data_dir / DB_NAME
    sqlite3.connect(path).close()
    store = TaskStore(data_dir)
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    names = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tasks", "task_devices", "steps", "processes", "messages"} <= names
    store.close()


def test_newer_schema_is_refused_untouched(data_dir: Path) -> None:
    path = data_dir / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="newer NixDeck") as e:
        TaskStore(data_dir)
    assert str(path) in str(e.value)
    assert _digest(path) == before


def test_corrupt_file_is_refused_untouched(data_dir: Path) -> None:
    path = data_dir / DB_NAME
    junk = b"this is not a database\x00" * 500
    path.write_bytes(junk)
    with pytest.raises(StoreError) as e:
        TaskStore(data_dir)
    msg = str(e.value)
    assert str(path) in msg and "untouched" in msg
    assert path.read_bytes() == junk
    assert not (data_dir / (DB_NAME + "-wal")).exists() or (data_dir / (DB_NAME + "-wal")).stat().st_size == 0


def test_truncated_database_is_refused_untouched(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    for i in range(50):
        store.insert_task(TaskRecord(kind="record", title=f"t{i}" * 50, state=TaskState.COMPLETED))
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = data_dir / DB_NAME
    raw = path.read_bytes()
    # keep the header, damage the pages
    path.write_bytes(raw[:100] + b"\xff" * (len(raw) - 100))
    damaged = path.read_bytes()
    with pytest.raises(StoreError) as e:
        s = TaskStore(data_dir)
        s.list_tasks()  # pragma: no cover - only reached if opening did not notice
    assert str(path) in str(e.value)
    assert path.read_bytes() == damaged


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DataDirError, match="cannot create the data dir"):
        TaskStore(blocker / "data")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.geteuid() == 0:
            # root writes anywhere: a read-only bind is not available here, so check the message path only
            return
        with pytest.raises(DataDirError, match="not writable"):
            TaskStore(ro)
    finally:
        os.chmod(ro, 0o700)


def test_unknown_task(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    with pytest.raises(TaskNotFound, match="no task with id 999"):
        store.get(999)
    store.close()


def _add(store: TaskStore, **kw: object) -> int:
    kw.setdefault("state", TaskState.COMPLETED)
    kw.setdefault("kind", "record")
    kw.setdefault("title", "t")
    return store.insert_task(TaskRecord.model_validate(kw)).id


def test_list_filters(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    a = _add(store, kind="build_device", title="Build alpha", devices=["alpha"])
    b = _add(store, kind="deploy_devices", title="Deploy fleet", devices=["alpha", "beta"], state=TaskState.FAILED)
    c = _add(store, kind="deploy_device", title="Deploy beta", devices=["beta"], parent_id=b, state=TaskState.FAILED)
    d = _add(store, kind="record", title="device 100%_added", silent=True)
    ids = lambda ts: [t.id for t in ts]  # noqa: E731
    assert ids(store.list_tasks()) == [d, c, b, a]
    assert ids(store.list_tasks(newest_first=False, limit=2, offset=1)) == [b, c]
    assert ids(store.list_tasks(states=["failed"])) == [c, b]
    assert ids(store.list_tasks(kinds=["build_device", "record"])) == [d, a]
    assert ids(store.list_tasks(device="beta")) == [c, b]
    assert ids(store.list_tasks(device="alpha", top_level=True)) == [b, a]
    assert ids(store.list_tasks(text="deploy")) == [c, b]
    assert ids(store.list_tasks(text="100%_")) == [d], "LIKE wildcards in the text are literal"
    assert ids(store.list_tasks(text="%")) == [d]
    assert ids(store.list_tasks(include_silent=False)) == [c, b, a]
    assert ids(store.children(b)) == [c]
    assert store.child_counts([a, b]) == {b: 1}
    assert store.count_tasks(states=["failed"]) == 2
    assert store.count_tasks(device="alpha") == 2
    store.close()


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"states": ["failed"]}, "tasks_state"),
        ({"kinds": ["build_device"]}, "tasks_kind"),
        ({"device": "alpha"}, "task_devices_device"),
        ({"parent_id": 1}, "tasks_parent"),
    ],
)
def test_filters_use_indexes(data_dir: Path, filters: dict[str, object], index: str) -> None:
    store = TaskStore(data_dir)
    for i in range(200):
        _add(store, kind=f"k{i % 7}", devices=[f"d{i % 13}"], parent_id=None)
    store._conn.execute("ANALYZE")
    where, args = store._filters(
        filters.get("states"), filters.get("kinds"), filters.get("device"), None,  # type: ignore[arg-type]
        filters.get("parent_id"), False, True,  # type: ignore[arg-type]
    )
    plan = " | ".join(
        str(r[3]) for r in store._conn.execute(f"EXPLAIN QUERY PLAN SELECT * FROM tasks {where} ORDER BY id DESC", args)
    )
    assert index in plan, plan
    store.close()


def test_message_and_process_indexes_exist(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    plan = " ".join(str(r[3]) for r in store._conn.execute("EXPLAIN QUERY PLAN SELECT * FROM processes WHERE task_id = 1"))
    assert "processes_task" in plan
    plan = " ".join(str(r[3]) for r in store._conn.execute("EXPLAIN QUERY PLAN SELECT * FROM messages WHERE task_id = 1"))
    assert "messages_task" in plan
    store.close()


def test_prune_by_age_and_count_removes_logs(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    old = utcnow() - timedelta(days=40)
    old_parent = _add(store, created=old, title="old parent")
    old_child = _add(store, created=old, parent_id=old_parent, title="old child")
    recent = [_add(store, title=f"recent {i}") for i in range(5)]
    running = _add(store, created=old, state=TaskState.RUNNING, title="still running", owner_pid=os.getpid())
    for tid in (old_parent, old_child, *recent):
        d = store.log_dir(tid)
        (d / "1.stdout").write_text("log")
        store.insert_process(ProcessRecord(task_id=tid, argv=["true"]))

    assert store.prune(older_than_days=30) == 1
    for tid in (old_parent, old_child):
        with pytest.raises(TaskNotFound):
            store.get(tid)
        assert not (data_dir / "logs" / str(tid)).exists()
    assert store.processes(old_child) == []
    assert store.get(running).state == TaskState.RUNNING, "active tasks are never pruned"

    assert store.prune(keep=2) == 3
    left = [t.id for t in store.list_tasks()]
    assert left == [running, recent[4], recent[3]]
    for tid in recent[:3]:
        assert not (data_dir / "logs" / str(tid)).exists()
    assert (data_dir / "logs" / str(recent[4]) / "1.stdout").exists()
    assert store.prune(keep=10) == 0
    store.close()
