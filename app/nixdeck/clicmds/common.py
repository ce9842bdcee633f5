"""What every CLI command shares: opening the history and engine, live progress, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from nixdeck.core.ops import all_operations
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import Event, MessagesAdded, OutputAppended, TaskChanged, TaskCreated
from nixdeck.core.tasks.model import TaskRecord, TaskState, format_duration
from nixdeck.core.tasks.store import TaskStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def open_store(args: argparse.Namespace) -> TaskStore:
    data_dir = getattr(args, "data_dir", None)
    return TaskStore(Path(data_dir) if data_dir else None)


def make_engine(store: TaskStore, args: argparse.Namespace | None = None) -> TaskEngine:
    author = getattr(args, "author", None) if args is not None else None
    engine = TaskEngine(store, author=author)
    for op in all_operations():
        engine.register(op)
    return engine


def print_json(data: Any, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


class LiveProgress:
    """Prints a task's progress: one rewritten line on a terminal, plain lines otherwise.

    Output of the watched tasks' processes is passed through (stdout to stdout, stderr to stderr),
    unless `show_output` is off (operations that parse their output show messages instead).
    """

    def __init__(self, engine: TaskEngine, *, show_output: bool = True, out: TextIO | None = None) -> None:
        self.engine = engine
        self.show_output = show_output
        self.out = out or sys.stdout
        self.err = sys.stderr
        self.tty = self.err.isatty()
        self.watch: set[int] = set()
        self._states: dict[int, TaskState] = {}
        self._status = ""
        self._unsub = engine.subscribe(self._on_event)

    def close(self) -> None:
        self._unsub()
        self._clear()

    def _clear(self) -> None:
        if self.tty and self._status:
            self.err.write("\r\x1b[2K")
            self.err.flush()
            self._status = ""

    def _line(self, text: str) -> None:
        self._clear()
        self.err.write(text + "\n")
        self.err.flush()

    def _watched(self, t: TaskRecord) -> bool:
        if t.id in self.watch or (t.parent_id is not None and t.parent_id in self.watch):
            self.watch.add(t.id)
            return True
        return False

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, TaskCreated | TaskChanged):
            t = ev.task
            if not self._watched(t):
                return
            if self._states.get(t.id) != t.state:
                self._states[t.id] = t.state
                extra = f": {t.error}" if t.error and t.state.terminal else ""
                self._line(f"[task {t.id}] {t.title}: {t.state.label}{extra}")
            elif self.tty:
                pct = f" {t.progress * 100:.0f}%" if t.progress is not None else ""
                self._status = f"[task {t.id}] {t.phase}{pct}"[:200]
                self.err.write("\r\x1b[2K" + self._status)
                self.err.flush()
        elif isinstance(ev, OutputAppended) and self.show_output and ev.task_id in self.watch:
            self._clear()
            stream = self.out if ev.stream == "stdout" else self.err
            stream.write(ev.text)
            stream.flush()
        elif isinstance(ev, MessagesAdded) and ev.task_id in self.watch:
            for m in ev.messages:
                if m.level in ("error", "warning"):
                    loc = f" ({m.file}:{m.line})" if m.file and m.line else ""
                    self._line(f"{m.level}: {m.message}{loc}")


def exit_code_for(t: TaskRecord) -> int:
    return EXIT_OK if t.state.ok else EXIT_FAILED


def run_async(fn: Callable[[], Awaitable[int]]) -> int:
    return asyncio.run(_guard(fn))


async def _guard(fn: Callable[[], Awaitable[int]]) -> int:
    return await fn()


async def run_tasks_live(
    args: argparse.Namespace,
    submit: Callable[[TaskEngine], Awaitable[Sequence[int]]],
    *,
    show_output: bool = True,
) -> int:
    """Open the engine, submit task(s), show live progress until they end; Ctrl-C cancels them."""
    store = open_store(args)
    engine = make_engine(store, args)
    live = LiveProgress(engine, show_output=show_output)
    ids: list[int] = []
    try:
        ids = list(await submit(engine))
        live.watch.update(ids)
        for tid in ids:
            t = engine.live(tid)
            if t.id not in live._states:
                live._on_event(TaskChanged(t))
        results = [await engine.wait(tid) for tid in ids]
    except (KeyboardInterrupt, asyncio.CancelledError):
        for tid in ids:
            await engine.cancel(tid)
        await engine.close()
        live.close()
        store.close()
        return 130
    live.close()
    await engine.close()
    store.close()
    if getattr(args, "json", False):
        print_json([r.summary_json() | {"result": r.result, "warnings": r.warnings} for r in results])
    else:
        for r in results:
            if r.result:
                print_json(r.result, sys.stdout)
    return max((exit_code_for(r) for r in results), default=EXIT_OK)
