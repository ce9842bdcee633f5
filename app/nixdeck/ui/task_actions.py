"""Which task actions apply, and running them as engine coroutines without blocking the Qt loop.

Only adapts the engine: what Cancel/Rerun mean is decided there. Shared by the Tasks dock and the
details window so both enable the same buttons.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskNotFound
from nixdeck.core.tasks.model import FAILED_STATES, TaskRecord, TaskState
from nixdeck.core.tasks.store import TaskStore

log = logging.getLogger(__name__)


def can_cancel(task: TaskRecord) -> bool:
    return not task.state.terminal and task.state != TaskState.CANCELING


def can_rerun(engine: TaskEngine, task: TaskRecord) -> bool:
    if not task.state.terminal:
        return False
    try:
        engine.operation(task.kind)
    except NixDeckError:
        return False
    return True


def can_rerun_failed(engine: TaskEngine, store: TaskStore, task: TaskRecord) -> bool:
    if not can_rerun(engine, task) or not store.child_counts([task.id]):
        return False
    return any(k.state in FAILED_STATES or k.state == TaskState.CANCELED for k in store.children(task.id))


def run_action(
    coro: Coroutine[Any, Any, Any],
    *,
    on_done: Callable[[Any], object] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> asyncio.Future[Any]:
    """Schedule an engine coroutine on the running (qasync) loop; errors go to `on_error` as text."""

    async def go() -> Any:
        try:
            value = await coro
        except (NixDeckError, TaskNotFound) as e:
            if on_error is not None:
                on_error(str(e))
            return None
        except Exception as e:  # noqa: BLE001 - a failed click must not take the window down
            log.exception("task action failed")
            if on_error is not None:
                on_error(f"{type(e).__name__}: {e}")
            return None
        if on_done is not None:
            on_done(value)
        return value

    return asyncio.ensure_future(go())
