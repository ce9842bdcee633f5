"""Run SSH Command: a command on one device (`ssh_command`) or on several in parallel under a parent
(`ssh_commands`). Output is streamed and recorded, the exit status is the result; cancel kills the
command's whole process group on the device (see `SshSession.run`)."""

from __future__ import annotations

import asyncio
import shlex

from pydantic import Field, field_validator

from nixdeck.core.ops.remote import connect, describe_remote_exit, device_target, open_project, run_logged
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import TaskKind, TaskRecord
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

DEFAULT_LIMIT = 20


def _argv(v: list[str]) -> list[str]:
    if not v or not v[0]:
        raise ValueError("the command is empty")
    return v


class SshCommandSubmission(Submission):
    """One device; `argv` is quoted for the remote shell (never interpreted by a local one)."""

    project_dir: str
    device: str = Field(min_length=1)
    argv: list[str] = Field(min_length=1)
    command_timeout: float | None = Field(default=None, gt=0)

    _check_argv = field_validator("argv")(_argv)


class SshCommandsSubmission(Submission):
    """Several devices; each runs as its own `ssh_command` child, at most `limit` at a time."""

    project_dir: str
    devices: list[str] = Field(min_length=1)
    argv: list[str] = Field(min_length=1)
    command_timeout: float | None = Field(default=None, gt=0)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1)

    _check_argv = field_validator("argv")(_argv)


def _short(argv: list[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) <= 50 else text[:47] + "..."


class SshCommand(Operation):
    """A command may change the device, so it holds the device's lock (never beside a deploy)."""

    kind = TaskKind.SSH_COMMAND.value
    submission_type = SshCommandSubmission
    default_timeout = 3600.0
    uses_slot = False  # waits on the network; the parent's `limit` bounds the fan-out
    locks_devices = True

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, SshCommandSubmission)
        return f"Run `{_short(submission.argv)}` on {submission.device}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, SshCommandSubmission)
        return [submission.device]

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, SshCommandSubmission)
        ctx.plan("command", ["connect", "run"])
        async with ctx.step("connect", job="command") as step:
            project = await open_project(sub.project_dir)
            target = device_target(project, sub.device)
            step.detail(target.label)
            session = await connect(ctx, target)
        try:
            async with ctx.step("run", job="command", detail=shlex.join(sub.argv)):
                ctx.progress(None, f"running on {sub.device}")
                code = await run_logged(
                    ctx, session, sub.argv, job="command", step="run", timeout=sub.command_timeout
                )
                ctx.set_result(exit_code=code, device=sub.device)
                if code != 0:
                    raise TaskFailed(describe_remote_exit(sub.argv, code, sub.device))
        finally:
            await asyncio.shield(session.close())


class SshCommands(Operation):
    """Parent of one `ssh_command` per device; one device's failure never stops the others."""

    kind = TaskKind.SSH_COMMANDS.value
    submission_type = SshCommandsSubmission
    default_timeout = None
    uses_slot = False

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, SshCommandsSubmission)
        n = len(submission.devices)
        return f"Run `{_short(submission.argv)}` on {n} device{'s' if n != 1 else ''}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, SshCommandsSubmission)
        return list(submission.devices)

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, SshCommandsSubmission)
        gate = asyncio.Semaphore(sub.limit)
        done = 0

        async def one(device: str) -> TaskRecord:
            nonlocal done
            async with gate:
                child = SshCommandSubmission(
                    project_dir=sub.project_dir, device=device, argv=sub.argv, command_timeout=sub.command_timeout
                )
                cid = await ctx.submit_child(TaskKind.SSH_COMMAND.value, child)
                (record,) = await ctx.wait_children([cid])
            done += 1
            ctx.progress(done / len(sub.devices), f"{done} of {len(sub.devices)} devices done")
            return record

        records = await asyncio.gather(*(one(d) for d in dict.fromkeys(sub.devices)))
        ctx.set_result(
            devices={
                r.devices[0]: {"task": r.id, "state": r.state.value, "exit_code": r.result.get("exit_code"),
                               "error": r.error}
                for r in records
            }
        )  # fmt: skip

    def rerun_failed(self, submission: Submission, failed_children: list[TaskRecord]) -> Submission:
        assert isinstance(submission, SshCommandsSubmission)
        devices = [d for k in failed_children for d in k.devices]
        if not devices:
            raise UserError("no failed devices to run the command on again")
        return submission.model_copy(update={"devices": devices})


OPERATIONS: list[Operation] = [SshCommand(), SshCommands()]
