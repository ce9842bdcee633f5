"""Tell the user when a task ends: a tray message where there is a system tray, else a banner.

`TaskNotifier.on_tasks_changed` is a bridge slot; the bridge only carries changes, so a top-level task
that arrives terminal has just ended (once per task). A failed, timed-out or interrupted task always notifies, however
short; one that ended well (or was canceled) only when it ran longer than `min_seconds`. Clicking
the notification (the tray message, or the banner's Open task button) opens the task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon

from nixdeck.core.tasks.model import FAILED_STATES, TaskRecord, TaskState

Fallback = Callable[[str, str, bool, Callable[[], None] | None], None]

LONG_TASK_SECONDS = 10.0


def summary(t: TaskRecord) -> tuple[str, str]:
    """(title, body) of the notification for a finished task."""
    dur = t.duration or 0.0
    took = f"{dur:.0f} s" if dur < 120 else f"{dur / 60:.0f} min"
    body = f"{t.title}: {t.state.label} after {took}"
    if t.error and not t.state.ok:
        body += f"\n{t.error}"
    return f"Task {t.state.label}", body


class TaskNotifier(QObject):
    """Notifies the end of long tasks.

    Signals:
        notified(int, str, str): task id, title, body — emitted for every notification shown.
    """

    notified = Signal(int, str, str)

    def __init__(self, icon: QIcon, fallback: Fallback, parent: Any = None,
                 min_seconds: float = LONG_TASK_SECONDS, open_task: Callable[[int], Any] | None = None) -> None:
        super().__init__(parent)
        self.min_seconds = min_seconds
        self._fallback = fallback
        self._open_task = open_task
        self._active: set[int] = set()
        self._ended: set[int] = set()
        self.last_id: int | None = None
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(icon, self)
            self.tray.setToolTip("NixDeck")
            self.tray.messageClicked.connect(self.open_last)
            self.tray.show()

    def wants(self, t: TaskRecord) -> bool:
        """Failures always; good ends (and cancels) only after a long run."""
        return t.state in FAILED_STATES or (t.duration or 0.0) > self.min_seconds

    def on_tasks_changed(self, tasks: Sequence[Any]) -> None:
        for t in tasks:
            if not isinstance(t, TaskRecord) or t.parent_id is not None or t.silent:
                continue
            if not t.state.terminal:
                self._active.add(t.id)
            elif t.id not in self._ended:
                # a quick task may arrive already ended (the bridge keeps only its latest record per flush)
                self._active.discard(t.id)
                self._ended.add(t.id)
                if self.wants(t):
                    self.notify(t)

    def notify(self, t: TaskRecord) -> None:
        title, body = summary(t)
        bad = t.state in (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.INTERRUPTED)
        self.last_id = t.id
        if self.tray is not None:
            icon = QSystemTrayIcon.MessageIcon.Warning if bad else QSystemTrayIcon.MessageIcon.Information
            self.tray.showMessage(title, body, icon, 8000)
        else:
            tid = t.id
            self._fallback(title, body, bad, (lambda: self.open(tid)) if self._open_task else None)
        self.notified.emit(t.id, title, body)

    def open(self, task_id: int) -> None:
        if self._open_task is not None:
            self._open_task(task_id)

    def open_last(self) -> None:
        """The tray message was clicked: open the task it was about."""
        if self.last_id is not None:
            self.open(self.last_id)

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
