"""What every CLI command shares: opening the history and engine, live progress, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from nixdeck.core.ops import all_operations
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import Event, MessagesAdded, OutputAppended, TaskChanged, TaskCreated
from nixdeck.core.tasks.model import TaskRecord, TaskState, format_duration
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.termtext import neutralise

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_SECONDS = 10 * 365 * 24 * 3600.0  # a timeout or wait beyond ten years is a typo
MAX_ID = 2**63 - 1  # SQLite integers


# -- argument types: a bad value is a one-line usage error, never a traceback further down ----------
def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def count(lo: int = 0, hi: int = 10**6) -> Callable[[str], int]:
    """An integer option between lo and hi (`--keep -1` once deleted the whole history)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10) if len(text) <= 40 else None
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"give a whole number from {lo} to {hi}, not {_shown(text)}")
        return value

    return parse


def _finite(text: str) -> float | None:
    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def seconds(text: str) -> float:
    """A positive, finite number of seconds (not `nan`, `inf` or `1e21`)."""
    value = _finite(text)
    if value is None or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"give a number of seconds above 0 and at most {MAX_SECONDS:.0f}, "
                                         f"not {_shown(text)}")
    return value


def days(text: str) -> float:
    """A finite number of days from 0 to 100 years."""
    value = _finite(text)
    if value is None or not 0 <= value <= 36500:
        raise argparse.ArgumentTypeError(f"give a number of days from 0 to 36500, not {_shown(text)}")
    return value


def task_id(text: str) -> int:
    """A task id: a whole number from 1 (a 20-digit id is no task, not a traceback)."""
    return count(1, MAX_ID)(text)


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
        self._gone = False  # the terminal went away (SIGHUP): keep running the cancel, print nothing
        self._unsub = engine.subscribe(self._on_event)

    def close(self) -> None:
        self._unsub()
        self._clear()

    def _write(self, stream: TextIO, text: str) -> None:
        if self._gone:
            return
        try:
            stream.write(text)
            stream.flush()
        except OSError:  # EIO from a closed terminal, EPIPE from a closed pipe
            self._gone = True

    def _clear(self) -> None:
        if self.tty and self._status:
            self._write(self.err, "\r\x1b[2K")
            self._status = ""

    def _line(self, text: str) -> None:
        self._clear()
        self._write(self.err, neutralise(text) + "\n")

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
                self._status = neutralise(f"[task {t.id}] {t.phase}{pct}"[:200])
                self._write(self.err, "\r\x1b[2K" + self._status)
        elif isinstance(ev, OutputAppended) and self.show_output and ev.task_id in self.watch:
            self._clear()
            # a device's OSC 52 (clipboard) or OSC 0 (title) is shown, not obeyed; colours stay
            self._write(self.out if ev.stream == "stdout" else self.err, neutralise(ev.text, keep_sgr=True))
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalCancel:
    """SIGINT, SIGTERM and SIGHUP of the CLI cancel its tasks through the engine (Nix gets SIGTERM,
    then SIGKILL after the grace period; remote commands are ended), with the signal as reason,
    instead of killing the CLI and leaving them running under init."""

    def __init__(self, engine: TaskEngine, live: LiveProgress) -> None:
        self.engine = engine
        self.live = live
        self.received: signal.Signals | None = None
        self.ids: list[int] = []
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task[bool]] = set()

    def __enter__(self) -> SignalCancel:
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in STOP_SIGNALS:
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is None:
            self.received = sig
            which = ", ".join(map(str, self.ids)) or "the new task"
            self.live._line(f"nixdeck: {sig.name} received: canceling task {which}")
        self.cancel_all()

    def watch(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)
        if self.received is not None:  # a signal arrived while the tasks were being submitted
            self.cancel_all()

    def cancel_all(self) -> None:
        assert self.received is not None
        reason = f"nixdeck received {self.received.name}"
        for tid in self.ids:
            job = self._loop.create_task(self.engine.cancel(tid, reason))
            self._pending.add(job)
            job.add_done_callback(self._pending.discard)

    @property
    def exit_code(self) -> int | None:
        return 128 + int(self.received) if self.received is not None else None


async def run_tasks_live(
    args: argparse.Namespace,
    submit: Callable[[TaskEngine], Awaitable[Sequence[int]]],
    *,
    show_output: bool = True,
) -> int:
    """Open the engine, submit task(s), show live progress until they end; a signal cancels them."""
    store = open_store(args)
    engine = make_engine(store, args)
    live = LiveProgress(engine, show_output=show_output)
    ids: list[int] = []
    try:
        with SignalCancel(engine, live) as stop:
            ids = list(await submit(engine))
            live.watch.update(ids)
            stop.watch(ids)
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
    try:
        if getattr(args, "json", False):
            print_json([r.summary_json() | {"result": r.result, "warnings": r.warnings} for r in results])
        else:
            for r in results:
                if r.result:
                    print_json(r.result, sys.stdout)
    except OSError:
        pass  # the terminal or pipe is gone; the records say how the tasks ended
    if stop.exit_code is not None:
        return stop.exit_code
    return max((exit_code_for(r) for r in results), default=EXIT_OK)
