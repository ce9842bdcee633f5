"""Crash recovery: a killed NixDeck's tasks become interrupted and its processes end; a live NixDeck's
tasks are never touched, and can be cancelled from another process through the database."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from engine_helpers import (
    cli_json,
    db_rows,
    group_pids,
    live_with_marker,
    nixdeck,
    nixdeck_bg,
    pid_alive,
    wait_for,
)
from nixdeck.core.tasks import recovery
from nixdeck.core.tasks.model import TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.procs import start_ticks
from nixdeck.core.tasks.store import TaskStore


def _running_with_pid(data_dir: Path, marker: str) -> tuple[int, int] | None:
    """(task id, process pid) once the task whose argv holds `marker` runs its process."""
    rows = db_rows(
        data_dir,
        "SELECT t.id, p.pid FROM tasks t JOIN processes p ON p.task_id = t.id "
        "WHERE t.state = 'running' AND p.pid IS NOT NULL AND p.argv LIKE ?",
        (f"%{marker}%",),
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def _sleeper(marker: str) -> list[str]:
    # `sh -c 'exec sleep 300' MARKER`: the marker sits in the argv and in /proc cmdline of sh
    return ["run", "--", "sh", "-c", "sleep 300; :", marker]


def test_kill_9_recovery(data_dir: Path) -> None:
    done = nixdeck(data_dir, "run", "--", "sh", "-c", "echo before")
    assert done.returncode == 0, done.stderr
    failed = nixdeck(data_dir, "run", "--", "sh", "-c", "exit 3")
    assert failed.returncode == 1
    before = cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--all"))

    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    with nixdeck_bg(data_dir, *_sleeper(marker)) as proc:
        tid, sh_pid = wait_for(lambda: _running_with_pid(data_dir, marker), "the task to run")
        assert live_with_marker(marker), "the command runs"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the command and its sleep survived their NixDeck (they run in their own session)
    assert pid_alive(sh_pid)
    wait_for(lambda: len(group_pids(sh_pid)) == 2, "sh and its sleep")

    store = TaskStore(data_dir)
    try:
        assert store.recovered == [tid]
        t = store.get(tid)
        assert t.state == TaskState.INTERRUPTED
        assert t.error is not None and "ended while the task was running" in t.error
        assert t.ended is not None and t.owner_pid is None
        [p] = store.processes(tid)
        assert p.ended is not None
        [job] = store.jobs(tid)
        assert job.steps[0].state == TaskState.INTERRUPTED
        assert t.phase == "interrupted during run"  # a final summary, not its last live phrase
    finally:
        store.close()
    assert not pid_alive(sh_pid)
    assert group_pids(sh_pid) == [], "the sleep is gone too"
    assert live_with_marker(marker) == []

    after = {t["id"]: t for t in cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--all"))}
    for t in before:
        assert after[t["id"]] == t, "finished tasks are untouched"
    assert after[tid]["state"] == "interrupted"
    # the log of the killed task is still there
    shown = cli_json(nixdeck(data_dir, "tasks", "show", str(tid), "--json"))
    assert shown["task"]["state"] == "interrupted"
    # a second open recovers nothing more
    store = TaskStore(data_dir)
    assert store.recovered == []
    store.close()


def test_live_task_of_another_nixdeck_is_untouched_then_cancelled_from_cli(data_dir: Path) -> None:
    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    with nixdeck_bg(data_dir, *_sleeper(marker)) as proc:
        tid, sh_pid = wait_for(lambda: _running_with_pid(data_dir, marker), "the task to run")

        store = TaskStore(data_dir)
        try:
            assert store.recovered == []
            assert store.get(tid).state == TaskState.RUNNING
        finally:
            store.close()
        assert pid_alive(sh_pid) and proc.poll() is None

        cancel = nixdeck(data_dir, "tasks", "cancel", str(tid))
        assert cancel.returncode == 0, cancel.stderr
        assert "canceled" in cancel.stdout
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "canceled" in err

    t = cli_json(nixdeck(data_dir, "tasks", "show", str(tid), "--json"))["task"]
    assert t["state"] == "canceled"
    assert not pid_alive(sh_pid) and group_pids(sh_pid) == []
    assert live_with_marker(marker) == []
    again = nixdeck(data_dir, "tasks", "cancel", str(tid))
    assert again.returncode == 0 and "already ended" in again.stdout


def test_cancel_of_a_dead_owner_recovers(data_dir: Path) -> None:
    """`tasks cancel` on a task whose NixDeck was killed ends it interrupted (nothing to ask)."""
    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    with nixdeck_bg(data_dir, *_sleeper(marker)) as proc:
        tid, sh_pid = wait_for(lambda: _running_with_pid(data_dir, marker), "the task to run")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # `tasks cancel` opens the store, whose recovery ends it at once
    out = nixdeck(data_dir, "tasks", "cancel", str(tid))
    assert out.returncode == 0, out.stderr
    assert "interrupted" in out.stdout
    assert not pid_alive(sh_pid)


def test_recovery_never_overwrites_a_task_its_owner_finished_meanwhile(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race held open: recovery reads a running task, its owner finishes it and exits, then
    recovery finds the owner gone. The compare-and-set update leaves the owner's result alone."""
    owner = subprocess.Popen(["sleep", "300"])
    ticks = start_ticks(owner.pid)
    gone = subprocess.Popen(["true"])
    gone.wait()
    setup = TaskStore(data_dir)
    racing = setup.insert_task(TaskRecord(kind="record", title="racing", state=TaskState.RUNNING,
                                          owner_pid=owner.pid, owner_start=ticks)).id
    dead = setup.insert_task(TaskRecord(kind="record", title="dead", state=TaskState.RUNNING,
                                        owner_pid=gone.pid, owner_start=12345)).id
    setup.close()
    real_is_alive = recovery.is_alive

    def owner_finishes_in_between(pid: int | None, tk: int | None) -> bool:
        if pid == owner.pid:
            # the owner's own connection records its result, then the owner exits
            mine = TaskStore(data_dir, recover=False)
            mine.update_task(racing, state=TaskState.COMPLETED, result={"store_path": "/nix/store/x"},
                             ended=utcnow(), owner_pid=None, owner_start=None)
            mine.close()
            owner.kill()
            owner.wait()
        return real_is_alive(pid, tk)

    monkeypatch.setattr(recovery, "is_alive", owner_finishes_in_between)
    store = TaskStore(data_dir)
    try:
        assert store.recovered == [dead]
        t = store.get(racing)
        assert t.state == TaskState.COMPLETED and t.result == {"store_path": "/nix/store/x"} and t.error is None
        assert store.get(dead).state == TaskState.INTERRUPTED
    finally:
        store.close()
