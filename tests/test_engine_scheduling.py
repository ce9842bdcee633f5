"""Engine scheduling: rerun and origin links, device locks, the concurrency cap, retry with backoff."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from engine_helpers import (
    ParentSub,
    ScriptSub,
    async_wait_for,
    interval_script,
    max_overlap,
    read_intervals,
    run_engine,
    script,
)
from nixdeck.core.ops.run_command import RunCommandSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.events import Event, TaskChanged
from nixdeck.core.tasks.model import TaskState

S = TaskState


def test_rerun_and_forced_rerun(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> None:
        first = await engine.submit("test_script", ScriptSub(args=["a"], user_error="device d1 unreachable"))
        t1 = await engine.wait(first)
        assert t1.state == S.FAILED and t1.error == "device d1 unreachable"

        again = await engine.rerun(first)
        t2 = await engine.wait(again)
        assert (t2.state, t2.origin_id, t2.forced, t2.title) == (S.FAILED, first, False, t1.title)
        assert t2.submission == t1.submission

        forced = await engine.rerun(again, force=True)
        t3 = await engine.wait(forced)
        assert (t3.state, t3.origin_id, t3.forced) == (S.COMPLETED_WITH_WARNINGS, again, True)
        assert t3.warnings == ["device d1 unreachable"] and t3.error is None
        [job] = engine.store.jobs(forced)
        assert job.steps[0].state == S.COMPLETED

        with pytest.raises(UserError, match="no failed children"):
            await engine.rerun(first, failed_only=True)

    run_engine(data_dir, scenario)


def test_rerun_refused_while_running_and_with_secrets(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> None:
        live = await engine.submit("test_script", ScriptSub(code=script("time.sleep(300)")))
        with pytest.raises(UserError, match="still"):
            await engine.rerun(live)
        await engine.cancel(live)
        await engine.wait(live)
        sec = await engine.submit(
            "run_command", RunCommandSubmission(argv=["true"], secret_env={"K": SecretStr("v3ry-s3cret")})
        )
        await engine.wait(sec)

    def with_run_command(engine: TaskEngine) -> None:
        from nixdeck.core.ops.run_command import RunCommand

        engine.register(RunCommand())

    async def wrapped(engine: TaskEngine) -> None:
        with_run_command(engine)
        await scenario(engine)

    run_engine(data_dir, wrapped)

    async def rerun_from_history(engine: TaskEngine) -> None:
        with_run_command(engine)
        sec = engine.store.list_tasks(kinds=["run_command"])[0]
        with pytest.raises(UserError, match="secrets"):
            await engine.rerun(sec.id)

    run_engine(data_dir, rerun_from_history)


def test_rerun_failed_children_only(data_dir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    flaky = script(f"sys.exit(0 if os.path.exists({str(flag)!r}) else 4)")

    async def scenario(engine: TaskEngine) -> None:
        kids = [ScriptSub(args=["one"]), ScriptSub(code=flaky, args=["two"]), ScriptSub(args=["three"])]
        parent = await engine.submit("test_parent", ParentSub(children=kids))
        p = await engine.wait(parent)
        assert p.state == S.FAILED
        flag.touch()
        again = await engine.rerun(parent, failed_only=True)
        p2 = await engine.wait(again)
        assert p2.state == S.COMPLETED and p2.origin_id == parent
        kids2 = engine.store.children(again)
        assert [k.title for k in kids2] == ["script two"]
        assert all(k.parent_id == again for k in kids2)
        # the whole parent can be re-run too (all three children again)
        full = await engine.wait(await engine.rerun(parent))
        assert full.state == S.COMPLETED and len(engine.store.children(full.id)) == 3

    run_engine(data_dir, scenario)


def test_device_lock_serialises_one_device(data_dir: Path, tmp_path: Path) -> None:
    same = tmp_path / "same"
    barrier = tmp_path / "barrier"
    # two tasks on different devices must be able to run at once: each waits for the other's file
    meet = script(
        f"""
me, other = sys.argv[1], sys.argv[2]
open(os.path.join({str(barrier)!r}, me), 'w').close()
while not os.path.exists(os.path.join({str(barrier)!r}, other)):
    time.sleep(0.01)
"""
    )
    barrier.mkdir()

    async def scenario(engine: TaskEngine) -> None:
        ids = [
            await engine.submit("test_script", ScriptSub(code=interval_script(same, 0.1), devices=["dev-a"]))
            for _ in range(4)
        ]
        ids.append(await engine.submit("test_script", ScriptSub(code=meet, args=["b", "c"], devices=["dev-b"])))
        ids.append(await engine.submit("test_script", ScriptSub(code=meet, args=["c", "b"], devices=["dev-c"])))
        for tid in ids:
            assert (await asyncio.wait_for(engine.wait(tid), 60)).state == S.COMPLETED

    run_engine(data_dir, scenario, max_concurrent=4)
    iv = read_intervals(same)
    assert len(iv) == 4
    assert max_overlap(iv) == 1, iv


def test_device_lock_across_engines(data_dir: Path, tmp_path: Path) -> None:
    """Two engines (as two NixDeck processes would) never run tasks on one device at once (flock)."""
    same = tmp_path / "same"

    async def scenario(engine: TaskEngine) -> None:
        from engine_helpers import make_engine
        from nixdeck.core.tasks.store import TaskStore

        store2 = TaskStore(data_dir)
        other = make_engine(store2)
        sub = ScriptSub(code=interval_script(same, 0.1), devices=["dev-a"])
        ids = [(engine, await engine.submit("test_script", sub)) for _ in range(2)]
        ids += [(other, await other.submit("test_script", sub)) for _ in range(2)]
        for e, tid in ids:
            assert (await e.wait(tid)).state == S.COMPLETED
        await other.close()
        store2.close()

    run_engine(data_dir, scenario)
    iv = read_intervals(same)
    assert len(iv) == 4 and max_overlap(iv) == 1, iv


def test_global_concurrency_cap(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "iv"

    async def scenario(engine: TaskEngine) -> None:
        ids = [await engine.submit("test_script", ScriptSub(code=interval_script(log, 0.1))) for _ in range(6)]
        await async_wait_for(lambda: any(engine.live(i).state == S.QUEUED for i in ids), "a queued task")
        for tid in ids:
            assert (await engine.wait(tid)).state == S.COMPLETED

    run_engine(data_dir, scenario, max_concurrent=2)
    iv = read_intervals(log)
    assert len(iv) == 6 and max_overlap(iv) <= 2, iv


def test_parent_does_not_take_a_slot(data_dir: Path) -> None:
    """With a cap of 1, a parent waiting for its children must not starve them."""

    async def scenario(engine: TaskEngine) -> None:
        p = await engine.submit("test_parent", ParentSub(children=[ScriptSub(), ScriptSub()]))
        assert (await asyncio.wait_for(engine.wait(p), 60)).state == S.COMPLETED

    run_engine(data_dir, scenario, max_concurrent=1)


def test_retry_with_backoff(data_dir: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    flaky = script(
        f"""
p = {str(counter)!r}
n = int(open(p).read()) + 1 if os.path.exists(p) else 1
open(p, 'w').write(str(n))
sys.exit(0 if n >= 3 else 5)
"""
    )
    seen: dict[int, list[tuple[TaskState, int]]] = {}

    async def scenario(engine: TaskEngine) -> None:
        def on(ev: Event) -> None:
            if isinstance(ev, TaskChanged):
                seen.setdefault(ev.task.id, []).append((ev.task.state, ev.task.attempt))

        engine.subscribe(on)
        ok = await engine.submit("test_script", ScriptSub(code=flaky), retries=3)
        t = await engine.wait(ok)
        assert (t.state, t.attempt, t.max_attempts, t.error) == (S.COMPLETED, 3, 4, None)
        assert [p.attempt for p in engine.store.processes(ok)] == [1, 2, 3]
        states = [s for s, _ in seen[ok]]
        dedup = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
        assert dedup == [S.QUEUED, S.RUNNING, S.BACKED_OFF, S.RUNNING, S.BACKED_OFF, S.RUNNING, S.COMPLETED]

        bad = await engine.submit("test_script", ScriptSub(code="import sys; sys.exit(9)"), retries=1)
        t = await engine.wait(bad)
        assert (t.state, t.attempt) == (S.FAILED, 2)
        assert t.error is not None and "code 9" in t.error

        # user errors are retried like any failure; a forced run ends with a warning at once
        user = await engine.submit("test_script", ScriptSub(user_error="nope"), retries=2, forced=True)
        t = await engine.wait(user)
        assert (t.state, t.attempt) == (S.COMPLETED_WITH_WARNINGS, 1)

    run_engine(data_dir, scenario)


def test_cancel_during_backoff(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> None:
        tid = await engine.submit("test_script", ScriptSub(code="import sys; sys.exit(1)"), retries=5)
        await async_wait_for(lambda: engine.live(tid).state == S.BACKED_OFF, "backed off")
        await engine.cancel(tid)
        t = await engine.wait(tid)
        assert t.state == S.CANCELED and t.attempt == 1

    run_engine(data_dir, scenario, retry_delay=30.0)


def test_timeout_is_not_retried(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> None:
        tid = await engine.submit("test_script", ScriptSub(code=script("time.sleep(300)")), retries=3, timeout=0.3)
        t = await engine.wait(tid)
        assert (t.state, t.attempt) == (S.TIMED_OUT, 1)

    run_engine(data_dir, scenario)
