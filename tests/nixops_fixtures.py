"""Helpers for the Nix operation tests: an engine with every real operation, and waiting on tasks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from engine_helpers import run_engine
from nixdeck.core.ops import all_operations
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import MessageRecord, TaskRecord
from nixdeck.core.tasks.submission import Submission

T = TypeVar("T")


def run_ops(data_dir: Path, scenario: Callable[[TaskEngine], Awaitable[T]]) -> T:
    """Run `scenario(engine)` with every real operation registered; closes engine and store."""
    return run_engine(data_dir, scenario, ops=all_operations(), grace=2.0)


async def run_task(engine: TaskEngine, kind: str, sub: Submission, **kw: Any) -> TaskRecord:
    return await engine.wait(await engine.submit(kind, sub, **kw))


def messages(engine: TaskEngine, task_id: int, level: str | None = None) -> list[MessageRecord]:
    return [m for m in engine.store.messages(task_id) if level is None or m.level == level]


def drv_log_lines(engine: TaskEngine, task_id: int, needle: str) -> int:
    """Lines containing `needle` in all per-derivation log files of a task."""
    n = 0
    for f in engine.store.log_dir(task_id).glob("*.drv-logs/*.log"):
        with open(f, encoding="utf-8", errors="replace") as fh:
            n += sum(1 for line in fh if needle in line)
    return n
