"""Run Command: a local command as a task, output streamed live (the generic command task)."""

from __future__ import annotations

import shlex

from pydantic import Field, SecretStr, field_validator

from nixdeck.core.project.validate import NIX_ATTR_RE
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission


class RunCommandSubmission(Submission):
    """What to run: argv (never a shell string), where, with which added environment."""

    argv: list[str] = Field(min_length=1)
    cwd: str | None = None
    device: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str | None) -> str | None:
        # the device's lock file is named after it: the same rule as device names, checked up front
        if v is not None and not (len(v) <= 63 and NIX_ATTR_RE.fullmatch(v)):
            shown = repr(v if len(v) <= 40 else v[:40] + "…")
            raise ValueError(f"{shown} is not a device name (a letter or _, then letters, digits, _, ' or -; "
                             "at most 63 characters)")
        return v

    @field_validator("argv")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v[0]:
            raise ValueError("the command is empty")
        return v


class RunCommand(Operation):
    kind = TaskKind.RUN_COMMAND.value
    submission_type = RunCommandSubmission
    default_timeout = 3600.0
    locks_devices = True

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, RunCommandSubmission)
        text = shlex.join(submission.argv)
        return f"Run {text if len(text) <= 60 else text[:57] + '...'}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, RunCommandSubmission)
        return [submission.device] if submission.device else []

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, RunCommandSubmission)
        env = dict(sub.env)
        env.update({k: v.get_secret_value() for k, v in sub.secret_env.items()})
        async with ctx.step("run", job="command"):
            res = await ctx.run_process(
                sub.argv, cwd=sub.cwd, env=env, secret_env=list(sub.secret_env), job="command", step="run"
            )
        ctx.set_result(exit_code=res.exit_code)


OPERATIONS: list[Operation] = [RunCommand()]
