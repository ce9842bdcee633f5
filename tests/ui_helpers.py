"""Fixtures for the task-view tests: a Qt app with a qasync loop, a real store, engine and bridge.

`qtbot.waitUntil` does not drive asyncio, so scenarios run as coroutines through `ui.run(...)`
(loop.run_until_complete on a per-test qasync loop, which also processes Qt events and timers).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from nixdeck.core.ops import all_operations
from nixdeck.core.ops.run_command import RunCommandSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.bridge import EngineBridge

T = TypeVar("T")


def py(code: str) -> list[str]:
    """argv of a fake program: this Python running `code`."""
    return [sys.executable, "-c", code]


@dataclass
class UiEnv:
    app: QApplication
    loop: qasync.QEventLoop
    store: TaskStore
    engine: TaskEngine
    bridge: EngineBridge

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def submit(self, code: str, **kw: Any) -> int:
        """Submit a run_command task running `code` in Python; returns its id."""
        return self.run(self.engine.submit("run_command", RunCommandSubmission(argv=py(code)), **kw))

    async def until(self, pred: Callable[[], Any], timeout: float = 30.0) -> None:
        """Wait (driving asyncio and Qt) until pred() is true."""
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.02)

    def wait_until(self, pred: Callable[[], Any], timeout: float = 30.0) -> None:
        self.run(self.until(pred, timeout), timeout + 5)

    def settle(self, seconds: float = 0.15) -> None:
        """Let timers (the bridge's 100 ms flush) run."""
        self.run(asyncio.sleep(seconds))


@pytest.fixture
def ui(qapp: QApplication, data_dir: Path) -> Iterator[UiEnv]:
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    store = TaskStore(data_dir)
    engine = TaskEngine(store, grace=1.0, cancel_poll=0.2)
    for op in all_operations():
        engine.register(op)
    bridge = EngineBridge(engine)
    env = UiEnv(qapp, loop, store, engine, bridge)
    try:
        yield env
    finally:
        loop.run_until_complete(engine.close())
        bridge.close()
        for w in QApplication.topLevelWidgets():
            w.close()
            w.deleteLater()
        loop.run_until_complete(asyncio.sleep(0.05))
        store.close()
        asyncio.set_event_loop(None)
        loop.close()
