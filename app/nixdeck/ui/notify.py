"""Tell the user when a long task ends: a tray message where there is a system tray, else a banner.

`TaskNotifier.on_tasks_changed` is a bridge slot; it notices the transition of a top-level task it
saw active into a terminal state and notifies when the task ran longer than `min_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon

from nixdeck.core.tasks.model import TaskRecord, TaskState

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

    def __init__(self, icon: QIcon, fallback: Callable[[str, str, bool], None], parent: Any = None,
                 min_seconds: float = LONG_TASK_SECONDS) -> None:
        super().__init__(parent)
        self.min_seconds = min_seconds
        self._fallback = fallback
        self._active: set[int] = set()
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(icon, self)
            self.tray.setToolTip("NixDeck")
            self.tray.show()

    def on_tasks_changed(self, tasks: Sequence[Any]) -> None:
        for t in tasks:
            if not isinstance(t, TaskRecord) or t.parent_id is not None or t.silent:
                continue
            if not t.state.terminal:
                self._active.add(t.id)
            elif t.id in self._active:
                self._active.discard(t.id)
                if (t.duration or 0.0) > self.min_seconds:
                    self.notify(t)

    def notify(self, t: TaskRecord) -> None:
        title, body = summary(t)
        bad = t.state in (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.INTERRUPTED)
        if self.tray is not None:
            icon = QSystemTrayIcon.MessageIcon.Warning if bad else QSystemTrayIcon.MessageIcon.Information
            self.tray.showMessage(title, body, icon, 8000)
        else:
            self._fallback(title, body, bad)
        self.notified.emit(t.id, title, body)

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
