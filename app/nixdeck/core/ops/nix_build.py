"""Build Device and Build Project: `nix build` of devices' system toplevels, with per-device results."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from nixdeck.core.ops.nixproject import (
    NixProjectSubmission,
    check_device_name,
    closure_size,
    device_names,
    open_nix_project,
    toplevel,
)
from nixdeck.core.ops.nixrun import PartialBuildError, build_attrs
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission


class BuildDeviceSubmission(NixProjectSubmission):
    device: str
    closure_size: bool = True

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device_name(v)


class BuildProjectSubmission(NixProjectSubmission):
    """`devices` empty: every device of the flake."""

    devices: list[str] = Field(default_factory=list)

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        return [check_device_name(d) for d in dict.fromkeys(v)]


class BuildDevice(Operation):
    kind = TaskKind.BUILD_DEVICE.value
    submission_type = BuildDeviceSubmission
    default_timeout = 4 * 3600.0

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, BuildDeviceSubmission)
        return f"Build {submission.device}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, BuildDeviceSubmission)
        return [submission.device]

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, BuildDeviceSubmission)
        job = sub.device
        ctx.plan(job, ["build", "closure size"] if sub.closure_size else ["build"])
        p = await open_nix_project(ctx, sub)
        drvs: list[dict[str, Any]] = []
        async with ctx.step("build", job=job):
            try:
                out = await build_attrs(ctx, p.path, {sub.device: toplevel(sub.device)}, job=job, step="build",
                                        settings=p.settings, env=p.env, derivations=drvs)
            finally:
                ctx.set_result(device=sub.device, derivations=drvs)
        path = out[sub.device]
        ctx.set_result(out_path=path)
        if sub.closure_size:
            async with ctx.step("closure size", job=job):
                size = await closure_size(ctx, p, path, job=job, step="closure size")
            ctx.set_result(closure_size=size)


class BuildProject(Operation):
    kind = TaskKind.BUILD_PROJECT.value
    submission_type = BuildProjectSubmission
    default_timeout = 8 * 3600.0

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, BuildProjectSubmission)
        if not submission.devices:
            return "Build all devices"
        return f"Build {', '.join(submission.devices)}"[:80]

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, BuildProjectSubmission)
        return list(submission.devices)

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, BuildProjectSubmission)
        ctx.plan("build", ["list devices", "build"])
        p = await open_nix_project(ctx, sub)
        async with ctx.step("list devices", job="build"):
            names = list(sub.devices) or await device_names(ctx, p, job="build", step="list devices")
        if not names:
            raise UserError(f"the flake in {p.path} has no nixosConfigurations")
        drvs: list[dict[str, Any]] = []
        results: dict[str, dict[str, Any]] = {}
        async with ctx.step("build", job="build", detail=f"{len(names)} devices"):
            try:
                out = await build_attrs(ctx, p.path, {n: toplevel(n) for n in names}, job="build", step="build",
                                        settings=p.settings, env=p.env, derivations=drvs)
            except PartialBuildError as e:
                results = {n: ({"out_path": e.built[n]} if n in e.built else {"error": e.failed.get(n, "not built")})
                           for n in names}
                ctx.set_result(devices=results, derivations=drvs)
                raise
            except TaskFailed as e:
                if len(names) == 1:
                    ctx.set_result(devices={names[0]: {"error": str(e)}}, derivations=drvs)
                raise
        results = {n: {"out_path": out[n]} for n in names}
        ctx.set_result(devices=results, derivations=drvs)


OPERATIONS: list[Operation] = [BuildDevice(), BuildProject()]
