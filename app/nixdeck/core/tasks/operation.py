"""Operation: what a task kind runs. One subclass per kind lives in `core/ops`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskRecord, TaskState
from nixdeck.core.tasks.submission import EmptySubmission, Submission

if TYPE_CHECKING:
    from nixdeck.core.tasks.context import TaskContext


class Operation:
    """Base of every task kind.

    Class attributes declare how the engine schedules it: `uses_slot` (counts against the global
    concurrency cap; a parent that only waits for children does not), `locks_devices` (holds the
    per-device lock of every device it names, so two tasks never change one device at once).
    """

    kind: ClassVar[str]
    submission_type: ClassVar[type[Submission]] = EmptySubmission
    default_timeout: ClassVar[float | None] = 3600.0
    uses_slot: ClassVar[bool] = True
    locks_devices: ClassVar[bool] = False

    def title(self, submission: Submission) -> str:
        return self.kind.replace("_", " ").capitalize()

    def devices(self, submission: Submission) -> list[str]:
        return []

    async def run(self, ctx: TaskContext) -> None:
        raise NotImplementedError

    def final_state(
        self, task: TaskRecord, own: TaskState, children: Sequence[TaskRecord], has_warnings: bool
    ) -> TaskState | None:
        """A parent's final state from its children; None: the engine's rule (``derive_parent_state``).
        An automation run overrides it (a retried step's failed attempt does not fail the run)."""
        return None

    def rerun_failed(self, submission: Submission, failed_children: list[TaskRecord]) -> Submission:
        """The submission that re-runs only the failed children of a parent task."""
        raise UserError(f"{self.kind} tasks have no children to re-run")
