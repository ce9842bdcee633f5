"""Task state machine: outcomes, parent derivation, cascade cancel, timeout, process-group cleanup."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from engine_helpers import (
    SPAWN_TREE,
    ParentSub,
    QuickOp,
    QuickParentSub,
    QuickSub,
    ScriptSub,
    async_wait_for,
    live_with_marker,
    pid_alive,
    run_engine,
    script,
    wait_for,
)
from nixdeck.core.tasks.engine import TaskEngine, derive_parent_state
from nixdeck.core.tasks.events import Event, TaskChanged
from nixdeck.core.tasks.model import TaskState
from nixdeck.core.tasks.store import TaskStore

S = TaskState


def test_script_outcomes(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> dict[str, TaskState]:
        ids = {
            "ok": await engine.submit("test_script", ScriptSub(code="print('hello')")),
            "exit1": await engine.submit("test_script", ScriptSub(code="import sys; sys.exit(1)")),
            "user": await engine.submit("test_script", ScriptSub(user_error="device unreachable")),
            "forced": await engine.submit("test_script", ScriptSub(user_error="device unreachable"), forced=True),
        }
        out = {k: (await engine.wait(v)).state for k, v in ids.items()}
        t = engine.store.get(ids["exit1"])
        assert t.error is not None and "exited with code 1" in t.error
        t = engine.store.get(ids["user"])
        assert t.error == "device unreachable"
        t = engine.store.get(ids["forced"])
        assert t.warnings == ["device unreachable"] and t.error is None
        ok = engine.store.get(ids["ok"])
        assert ok.started is not None and ok.ended is not None and ok.result == {"exit_code": 0}
        assert ok.owner_pid is None
        [p] = engine.store.processes(ids["ok"])
        assert Path(p.stdout_path or "").read_text() == "hello\n" and p.exit_code == 0
        [job] = engine.store.jobs(ids["ok"])
        assert [s.state for s in job.steps] == [S.COMPLETED]
        return out

    states = run_engine(data_dir, scenario)
    assert states == {"ok": S.COMPLETED, "exit1": S.FAILED, "user": S.FAILED, "forced": S.COMPLETED_WITH_WARNINGS}


def test_state_sequence_is_recorded(data_dir: Path) -> None:
    seen: list[TaskState] = []

    async def scenario(engine: TaskEngine) -> None:
        def on(ev: Event) -> None:
            if isinstance(ev, TaskChanged):
                seen.append(ev.task.state)

        engine.subscribe(on)
        await engine.wait(await engine.submit("test_script", ScriptSub()))

    run_engine(data_dir, scenario)
    dedup = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert dedup == [S.QUEUED, S.RUNNING, S.COMPLETED]


def test_derive_parent_state_table() -> None:
    assert derive_parent_state(S.COMPLETED, [S.COMPLETED, S.COMPLETED]) == S.COMPLETED
    assert derive_parent_state(S.COMPLETED, [S.COMPLETED, S.COMPLETED_WITH_WARNINGS]) == S.COMPLETED_WITH_WARNINGS
    assert derive_parent_state(S.COMPLETED, [S.COMPLETED], has_warnings=True) == S.COMPLETED_WITH_WARNINGS
    assert derive_parent_state(S.COMPLETED, [S.COMPLETED, S.FAILED]) == S.FAILED
    assert derive_parent_state(S.COMPLETED, [S.TIMED_OUT]) == S.FAILED
    assert derive_parent_state(S.COMPLETED, [S.CANCELED, S.COMPLETED]) == S.CANCELED
    assert derive_parent_state(S.CANCELED, [S.COMPLETED]) == S.CANCELED
    assert derive_parent_state(S.FAILED, [S.COMPLETED]) == S.FAILED


def test_parent_derives_from_children(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> None:
        good = await engine.submit("test_parent", ParentSub(children=[ScriptSub(), ScriptSub()]))
        warn = await engine.submit("test_parent", ParentSub(children=[ScriptSub(), ScriptSub(user_error="x")]),
                                   forced=True)
        bad = await engine.submit("test_parent", ParentSub(children=[ScriptSub(), ScriptSub(code="raise SystemExit(3)")]))
        assert (await engine.wait(good)).state == S.COMPLETED
        w = await engine.wait(warn)
        assert w.state == S.COMPLETED_WITH_WARNINGS
        assert all(k.forced for k in engine.store.children(warn)), "forced is inherited by children"
        b = await engine.wait(bad)
        assert b.state == S.FAILED and b.error is not None and "1 of 2 failed" in b.error
        kids = engine.store.children(bad)
        assert [k.parent_id for k in kids] == [bad, bad]
        assert sorted(k.state for k in kids) == sorted([S.COMPLETED, S.FAILED])

    run_engine(data_dir, scenario)


def test_cascade_cancel_ends_children_and_processes(data_dir: Path, tmp_path: Path) -> None:
    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    pidfile = tmp_path / "pids"

    async def scenario(engine: TaskEngine) -> None:
        kids = [ScriptSub(code=SPAWN_TREE, args=[marker, str(pidfile)]) for _ in range(2)]
        kids.append(ScriptSub(code="pass"))
        pid = await engine.submit("test_parent", ParentSub(children=kids))
        await async_wait_for(lambda: len(live_with_marker(marker)) >= 6, "both process trees")
        # the quick child must have ended on its own first: it stays completed through the cascade
        await async_wait_for(
            lambda: [k.state for k in engine.store.children(pid)].count(S.COMPLETED) == 1, "the quick child"
        )
        assert await engine.cancel(pid)
        p = await engine.wait(pid)
        assert p.state == S.CANCELED
        states = [k.state for k in engine.store.children(pid)]
        assert all(s.terminal for s in states)
        assert states.count(S.CANCELED) == 2
        assert not await engine.cancel(pid), "cancelling an ended task is a no-op"

    run_engine(data_dir, scenario)
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 4
    assert [p for p in pids if pid_alive(p)] == []
    assert live_with_marker(marker) == []


def test_cancel_kills_grandchildren_that_ignore_sigterm(data_dir: Path, tmp_path: Path) -> None:
    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    pidfile = tmp_path / "pids"

    async def scenario(engine: TaskEngine) -> None:
        tid = await engine.submit("test_script", ScriptSub(code=SPAWN_TREE, args=[marker, str(pidfile)]))
        await async_wait_for(lambda: Path(str(pidfile) + ".ready").exists(), "the process tree")
        await async_wait_for(lambda: len(live_with_marker(marker)) >= 3, "the great-grandchild")
        await engine.cancel(tid)
        t = await engine.wait(tid)
        assert t.state == S.CANCELED
        [p] = engine.store.processes(tid)
        assert p.ended is not None
        [job] = engine.store.jobs(tid)
        assert job.steps[0].state == S.CANCELED

    run_engine(data_dir, scenario, grace=0.3)
    assert live_with_marker(marker) == []


def test_timeout_ends_task_and_group(data_dir: Path, tmp_path: Path) -> None:
    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    pidfile = tmp_path / "pids"

    async def scenario(engine: TaskEngine) -> None:
        tid = await engine.submit("test_script", ScriptSub(code=SPAWN_TREE, args=[marker, str(pidfile)]), timeout=1.0)
        t = await engine.wait(tid)
        assert t.state == S.TIMED_OUT
        assert t.error is not None and "timed out" in t.error
        [job] = engine.store.jobs(tid)
        assert job.steps[0].state == S.TIMED_OUT

    run_engine(data_dir, scenario, grace=0.3)
    assert live_with_marker(marker) == []
    assert all(not pid_alive(int(p)) for p in pidfile.read_text().split())


def test_timeout_of_parent_cancels_children(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> None:
        pid = await engine.submit(
            "test_parent", ParentSub(children=[ScriptSub(code=script("time.sleep(300)"))]), timeout=0.5
        )
        p = await engine.wait(pid)
        assert p.state == S.TIMED_OUT
        [k] = engine.store.children(pid)
        assert k.state == S.CANCELED

    run_engine(data_dir, scenario)


def test_leftover_background_process_is_ended(data_dir: Path, tmp_path: Path) -> None:
    """A command that exits but leaves a daemon-ish child in its group leaves nothing running."""
    marker = f"nixdeck-test-{uuid.uuid4().hex}"
    code = script(
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', sys.argv[1]],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    )

    async def scenario(engine: TaskEngine) -> None:
        t = await engine.wait(await engine.submit("test_script", ScriptSub(code=code, args=[marker])))
        assert t.state == S.COMPLETED

    run_engine(data_dir, scenario)
    wait_for(lambda: live_with_marker(marker) == [], "the leftover to end", limit=10)


def test_cancel_pending_and_queued(data_dir: Path) -> None:
    """Cancelling tasks that wait for a device lock or a slot ends them canceled without running."""

    async def scenario(engine: TaskEngine) -> None:
        blocker = await engine.submit("test_script", ScriptSub(code=script("time.sleep(300)"), devices=["d1"]))
        await async_wait_for(lambda: engine.live(blocker).state == S.RUNNING, "blocker running")
        waiting_lock = await engine.submit("test_script", ScriptSub(devices=["d1"]))
        waiting_slot = await engine.submit("test_script", ScriptSub())
        await asyncio.sleep(0.05)
        assert engine.live(waiting_lock).state == S.PENDING
        assert engine.live(waiting_slot).state == S.QUEUED
        for tid in (waiting_lock, waiting_slot, blocker):
            await engine.cancel(tid)
        for tid in (waiting_lock, waiting_slot, blocker):
            assert (await engine.wait(tid)).state == S.CANCELED
        assert engine.store.processes(waiting_lock) == []

    run_engine(data_dir, scenario, max_concurrent=1)


def test_engine_close_interrupts_nothing_left(data_dir: Path) -> None:
    """Closing the engine cancels what it runs; every task ends terminal."""

    async def scenario(engine: TaskEngine) -> list[int]:
        ids = [await engine.submit("test_quick_parent", QuickParentSub(children=[QuickSub(delay=30)] * 2))]
        ids.append(await engine.submit("test_script", ScriptSub(code=script("time.sleep(300)"))))
        await asyncio.sleep(0.2)
        return ids

    ids = run_engine(data_dir, scenario)
    from nixdeck.core.tasks.store import TaskStore

    store = TaskStore(data_dir)
    assert store.active_tasks() == []
    assert all(store.get(i).state == S.CANCELED for i in ids)
    store.close()


def test_cancel_right_after_submit_ends_canceled_with_reason(tmp_path: Path) -> None:
    """A task canceled before its driver ever ran still ends canceled (never stuck pending)."""

    async def scenario() -> None:
        store = TaskStore(tmp_path / "d")
        engine = TaskEngine(store)
        engine.register(QuickOp())
        tid = await engine.submit(QuickOp.kind, QuickSub(delay=5))
        assert await engine.cancel(tid, reason="halted by the rollout")
        t = await asyncio.wait_for(engine.wait(tid), 10)
        assert t.state == TaskState.CANCELED
        assert t.error == "halted by the rollout"
        await engine.close()

    asyncio.run(scenario())
