"""Errors an operation raises to end its task with a reason."""

from __future__ import annotations

from nixdeck.core.errors import NixDeckError


class TaskFailed(NixDeckError):
    """The operation failed; the message is the task's error reason."""


class UserError(TaskFailed):
    """A failure caused by the user's input or environment (unreachable device, missing target, ...).

    A *forced* run turns these into warnings and ends `completed_with_warnings`.
    """


class TaskNotFound(NixDeckError):
    """No task has this id."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task with id {task_id}")
        self.task_id = task_id


class StoreError(NixDeckError):
    """The task database cannot be opened or used."""
