"""Fixtures for the window-shell tests: a qasync loop per test and helpers to drive it.

`qtbot.waitUntil` does not run asyncio tasks, so scenarios run as coroutines with
`loop.run_until_complete` on a `qasync.QEventLoop` built on the test's QApplication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtWidgets import QApplication

T = TypeVar("T")
HANG_GUARD = 120.0  # only against hangs; never a performance assertion


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], guard: float = HANG_GUARD) -> T:
    return loop.run_until_complete(asyncio.wait_for(coro, guard))


async def until(cond: Callable[[], Any], what: str = "condition", guard: float = HANG_GUARD) -> Any:
    """Let the loop (and Qt) run until cond() is truthy; returns its value."""
    async def poll() -> Any:
        while True:
            v = cond()
            if v:
                return v
            await asyncio.sleep(0.02)

    try:
        return await asyncio.wait_for(poll(), guard)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None
