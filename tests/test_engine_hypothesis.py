"""Property: whatever the children do and whatever gets cancelled when, a parent whose children are all
terminal is terminal too, and the derivation rules hold."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import QuickParentSub, QuickSub, make_engine
from nixdeck.core.tasks.model import FAILED_STATES, TaskState
from nixdeck.core.tasks.store import TaskStore

S = TaskState

child_st = st.builds(
    QuickSub,
    delay=st.sampled_from([0.0, 0.001, 0.01, 0.03]),
    outcome=st.sampled_from(["ok", "fail", "user", "warn", "crash"]),
)
# (target, delay): target -1 is the parent, i >= 0 the i-th child
cancel_st = st.lists(st.tuples(st.integers(-1, 4), st.sampled_from([0.0, 0.005, 0.02])), max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    children=st.lists(child_st, max_size=5),
    parent_outcome=st.sampled_from(["ok", "fail"]),
    cancels=cancel_st,
    forced=st.booleans(),
    cap=st.integers(1, 3),
)
def test_parent_terminal_when_children_terminal(
    children: list[QuickSub], parent_outcome: str, cancels: list[tuple[int, float]], forced: bool, cap: int
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nixdeck-hyp-"))
    try:
        asyncio.run(asyncio.wait_for(_scenario(tmp, children, parent_outcome, cancels, forced, cap), 60))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _scenario(
    tmp: Path, children: list[QuickSub], parent_outcome: str, cancels: list[tuple[int, float]], forced: bool, cap: int
) -> None:
    store = TaskStore(tmp)
    engine = make_engine(store, max_concurrent=cap)
    try:
        pid = await engine.submit(
            "test_quick_parent", QuickParentSub(children=children, outcome=parent_outcome), forced=forced  # type: ignore[arg-type]
        )

        async def do_cancel(target: int, delay: float) -> None:
            await asyncio.sleep(delay)
            kids = store.children(pid)
            if target < 0:
                await engine.cancel(pid)
            elif target < len(kids):
                await engine.cancel(kids[target].id)

        await asyncio.gather(*(do_cancel(t, d) for t, d in cancels))
        parent = await engine.wait(pid)
        kids = store.children(pid)

        assert parent.state.terminal, parent
        assert all(k.state.terminal for k in kids), kids
        assert store.active_tasks() == []
        assert parent.owner_pid is None and parent.ended is not None
        kid_states = [k.state for k in kids]
        if any(s in FAILED_STATES for s in kid_states) and parent.state != S.CANCELED:
            assert parent.state == S.FAILED
        if parent.state.ok:
            assert all(s.ok for s in kid_states)
            assert len(kids) == len(children)
        if not cancels:
            expect_fail = parent_outcome == "fail" or any(
                c.outcome in ("fail", "crash") or (c.outcome == "user" and not forced) for c in children
            )
            assert parent.state == (S.FAILED if expect_fail else parent.state)
            if not expect_fail:
                assert parent.state.ok
    finally:
        await engine.close()
        store.close()
