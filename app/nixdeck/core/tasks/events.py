"""The one event stream the CLI and the window subscribe to.

Subscribers are plain callables run synchronously on the engine's loop; they must be quick
(the window's bridge only queues them and flushes every ~100 ms).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from nixdeck.core.tasks.model import MessageRecord, StepRecord, TaskRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskCreated:
    task: TaskRecord


@dataclass(frozen=True, slots=True)
class TaskChanged:
    """Any change of a task's row: state, progress, phase, result, error."""

    task: TaskRecord


@dataclass(frozen=True, slots=True)
class StepChanged:
    task_id: int
    step: StepRecord


@dataclass(frozen=True, slots=True)
class OutputAppended:
    """Complete lines appended to a process's stdout or stderr file (already redacted)."""

    task_id: int
    process_id: int
    stream: str  # "stdout" | "stderr"
    text: str


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    task_id: int
    messages: list[MessageRecord] = field(default_factory=list)


Event = TaskCreated | TaskChanged | StepChanged | OutputAppended | MessagesAdded
Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers; a failing subscriber is logged, never breaks a task."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subs.append(fn)

        def unsubscribe() -> None:
            if fn in self._subs:
                self._subs.remove(fn)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for fn in list(self._subs):
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - a view's bug must not fail a deploy
                log.exception("event subscriber failed")
