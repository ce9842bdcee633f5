"""Finished tasks say how they ended (final phases, skipped steps); waiting tasks say why they wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine_helpers import (
    TEST_OPS,
    ParentSub,
    QuickSub,
    ScriptSub,
    async_wait_for,
    cli_json,
    make_engine,
    nixdeck,
    run_engine,
    script,
)
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskFailed
from nixdeck.core.tasks.model import TaskState
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.submission import Submission

S = TaskState


class PlannedSub(Submission):
    fail_at: str = "a"


class PlannedOp(Operation):
    """Three planned steps; fails in `fail_at`, so the later ones never run."""

    kind = "test_planned"
    submission_type = PlannedSub

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, PlannedSub)
        ctx.plan("main", ["a", "b", "c"])
        for name in ("a", "b", "c"):
            async with ctx.step(name):
                ctx.progress(0.5, f"doing {name} on /nix/store/abc-live-phrase")
                if name == sub.fail_at:
                    raise TaskFailed(f"{name} broke")


OPS: list[Operation] = [*TEST_OPS, PlannedOp()]


def test_final_phases_replace_live_phrases(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> dict[str, int]:
        ids = {
            "exit2": await engine.submit("test_script", ScriptSub(code="import sys; sys.exit(2)")),
            "ok": await engine.submit("test_script", ScriptSub()),
            "planned": await engine.submit("test_planned", PlannedSub(fail_at="a")),
            "planned_ok": await engine.submit("test_planned", PlannedSub(fail_at="none")),
            "quick": await engine.submit("test_quick", QuickSub()),
            "parent": await engine.submit("test_parent", ParentSub(children=[ScriptSub(), ScriptSub(code="raise SystemExit(3)")])),
            "sleeper": await engine.submit("test_script", ScriptSub(code=script("time.sleep(300)"))),
        }
        await async_wait_for(lambda: engine.store.processes(ids["sleeper"]), "the sleeper to start")
        await engine.cancel(ids["sleeper"])
        for tid in ids.values():
            await engine.wait(tid)
        return ids

    ids = run_engine(data_dir, scenario, ops=OPS)
    store = TaskStore(data_dir)
    try:
        t = {k: store.get(v) for k, v in ids.items()}
        assert t["exit2"].state == S.FAILED and t["exit2"].phase == "exited 2"
        assert t["ok"].phase == "exited 0"
        assert t["planned"].phase == "failed during a"
        assert t["planned_ok"].state == S.COMPLETED and t["planned_ok"].phase == "done"
        assert t["quick"].phase == "done"
        assert t["parent"].phase == "1/2 done · 1 failed"
        assert t["sleeper"].state == S.CANCELED and t["sleeper"].phase == "canceled during script"
        # a step that never ran ends skipped, not pending
        (job,) = store.jobs(ids["planned"])
        assert [s.state for s in job.steps] == [S.FAILED, S.SKIPPED, S.SKIPPED]
        assert all(t.progress == 1.0 for t in (t["ok"], t["planned_ok"], t["quick"]))
    finally:
        store.close()


def test_phase_in_tasks_list_json_and_show(data_dir: Path) -> None:
    nixdeck(data_dir, "run", "--json", "--", "sh", "-c", "exit 7")
    [t] = cli_json(nixdeck(data_dir, "tasks", "list", "--json"))
    assert t["phase"] == "exited 7"
    shown = nixdeck(data_dir, "tasks", "show", str(t["id"]))
    assert "phase      exited 7" in shown.stdout


def test_waiting_tasks_say_why(data_dir: Path) -> None:
    """Waiting for a device lock (held in this or another process) or for a slot is said, with whom."""

    async def scenario(engine: TaskEngine) -> None:
        blocker = await engine.submit("test_script", ScriptSub(code=script("time.sleep(300)"), devices=["d1"]))
        await async_wait_for(lambda: engine.live(blocker).state == S.RUNNING, "blocker running")
        waiting_lock = await engine.submit("test_script", ScriptSub(devices=["d1"]))
        waiting_slot = await engine.submit("test_script", ScriptSub())
        await async_wait_for(lambda: engine.live(waiting_lock).phase and engine.live(waiting_slot).phase, "phases")
        assert engine.live(waiting_lock).phase == f"waiting for d1 (locked by task #{blocker})"
        assert engine.store.get(waiting_lock).phase == f"waiting for d1 (locked by task #{blocker})"
        assert engine.live(waiting_slot).phase == "waiting for a slot (1 running, cap 1)"
        shown = await asyncio.to_thread(nixdeck, data_dir, "tasks", "show", str(waiting_slot))
        assert "waiting for a slot (1 running, cap 1)" in shown.stdout

        # another process (engine) waits for the same device: it reads the holder from the lock file
        store2 = TaskStore(data_dir)
        other = make_engine(store2, ops=OPS)
        try:
            far = await other.submit("test_script", ScriptSub(devices=["d1"]))
            await async_wait_for(lambda: other.live(far).phase, "the other engine's phase")
            assert other.live(far).phase == f"waiting for d1 (locked by task #{blocker})"
            await other.cancel(far)
            assert (await other.wait(far)).phase == "canceled while waiting"
        finally:
            await other.close()
            store2.close()
        for tid in (waiting_lock, waiting_slot, blocker):
            await engine.cancel(tid)
        for tid in (waiting_lock, waiting_slot, blocker):
            await engine.wait(tid)

    run_engine(data_dir, scenario, max_concurrent=1, ops=OPS)
