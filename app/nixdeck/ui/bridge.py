"""EngineBridge: core task events in, batched Qt signals out (DESIGN §1).

Core subscribers run synchronously on the engine's loop and must be quick, so the bridge only
queues; every ~100 ms it flushes what piled up as a few signals. A flood of log lines therefore
costs the views one update per tick, never one per line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import (
    Event,
    MessagesAdded,
    OutputAppended,
    StepChanged,
    TaskChanged,
    TaskCreated,
)
from nixdeck.core.tasks.model import TaskRecord
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.watch import StoreWatcher

FLUSH_MS = 100
WATCH_MS = 400  # how often the store is asked (one PRAGMA) whether another process wrote tasks
# Output text kept per (task, process, stream) between flushes. Views that must see every byte read
# the log file (it is written before the event is sent); the text is for light consumers.
MAX_PENDING_TEXT = 4 * 1024 * 1024


class EngineBridge(QObject):
    """Turns TaskEngine events (and, with `watch_store`, other processes' task writes) into batched Qt signals.

    Signals:
        tasksChanged(list): TaskRecords created or changed since the last flush, the latest
            record per task id, in the order they first changed.
        stepsChanged(int): a task (by id) whose jobs/steps changed.
        output(int, int, str, str): task id, process id, stream ("stdout"/"stderr") and the text
            appended since the last flush (complete lines, coalesced per process and stream; on a
            flood only the last MAX_PENDING_TEXT characters are kept).
        messagesAdded(int): a task (by id) that got new parsed messages.
    """

    tasksChanged = Signal(list)
    stepsChanged = Signal(int)
    output = Signal(int, int, str, str)
    messagesAdded = Signal(int)

    def __init__(self, engine: TaskEngine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._tasks: dict[int, TaskRecord] = {}
        self._steps: dict[int, None] = {}
        self._output: dict[tuple[int, int, str], deque[str]] = {}
        self._output_len: dict[tuple[int, int, str], int] = {}
        self._messages: dict[int, None] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        self._unsubscribe: Callable[[], None] | None = engine.subscribe(self._on_event)
        self.watcher: StoreWatcher | None = None
        self._watch = QTimer(self)
        self._watch.timeout.connect(self.poll_store)

    def watch_store(self, store: TaskStore, interval_ms: int = WATCH_MS) -> None:
        """Also show tasks other processes (the CLI, a scheduler) write to `store`, within a second."""
        self.watcher = StoreWatcher(store, is_local=self.engine.drives)
        self._watch.start(interval_ms)

    def poll_store(self) -> None:
        """Queue what other processes wrote since the last poll (the watch timer calls this)."""
        if self.watcher is None:
            return
        try:
            events = self.watcher.poll()
        except Exception:  # noqa: BLE001 - a busy or closing database: next tick
            return
        for ev in events:
            self._on_event(ev)
            if isinstance(ev, TaskChanged):  # its steps and messages may have changed too
                self._steps[ev.task.id] = None
                self._messages[ev.task.id] = None

    def close(self) -> None:
        """Stop listening to the engine and the store (the window is closing)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._timer.stop()
        self._watch.stop()

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, TaskCreated | TaskChanged):
            t = ev.task
            self._tasks[t.id] = t
        elif isinstance(ev, StepChanged):
            self._steps[ev.task_id] = None
        elif isinstance(ev, OutputAppended):
            key = (ev.task_id, ev.process_id, ev.stream)
            parts = self._output.setdefault(key, deque())
            parts.append(ev.text)
            n = self._output_len.get(key, 0) + len(ev.text)
            # drop the oldest text piece by piece: joining everything again on each event of a flood
            # (one event per line for remote commands) stalled the loop for seconds
            while n > MAX_PENDING_TEXT:
                excess = n - MAX_PENDING_TEXT
                if len(parts[0]) <= excess:
                    n -= len(parts.popleft())
                else:
                    parts[0] = parts[0][excess:]
                    n = MAX_PENDING_TEXT
            self._output_len[key] = n
        elif isinstance(ev, MessagesAdded):
            self._messages[ev.task_id] = None
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Emit everything queued now (the timer calls this; tests may too)."""
        tasks, self._tasks = self._tasks, {}
        steps, self._steps = self._steps, {}
        output, self._output = self._output, {}
        self._output_len = {}
        messages, self._messages = self._messages, {}
        if tasks:
            self.tasksChanged.emit(list(tasks.values()))
        for tid in steps:
            self.stepsChanged.emit(tid)
        for (tid, pid, stream), parts in output.items():
            self.output.emit(tid, pid, stream, "".join(parts))
        for tid in messages:
            self.messagesAdded.emit(tid)
