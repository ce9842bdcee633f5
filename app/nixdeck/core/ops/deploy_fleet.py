"""Deploy Devices: the fleet deploy parent (colmena-style).

Builds every selected device in ONE Nix invocation, then runs one Deploy to Device child per device,
at most ``limit`` at a time; one device's failure never stops the others. With ``waves``
(``1,10%,100%``: cumulative device counts) a wave must end before the next starts, and the rollout
halts once more than ``max_failures`` devices failed (default 0 with waves, unlimited without): the
devices not started yet get children that the engine cancels before they start, with the halt as
their reason. The result lists each
device's outcome and, for every failed one, its last 20 log lines.
"""

from __future__ import annotations

import asyncio
import math
import re

from pydantic import Field, field_validator

from nixdeck.core.ops.deploy_device import DeployDeviceSubmission, build_settings
from nixdeck.core.ops.nixrun import PartialBuildError, build_attrs
from nixdeck.core.ops.remote import open_project
from nixdeck.core.project import Project, UnknownDevice, attr_path
from nixdeck.core.project.inventory import Action
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import FAILED_STATES, TaskKind, TaskRecord, TaskState
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

DEFAULT_LIMIT = 10
_WAVE = re.compile(r"^(\d+)(%?)$")


def parse_waves(spec: list[str], count: int) -> list[int]:
    """Cumulative device counts per wave (``["1", "10%", "100%"]`` of 20 → [1, 2, 20]); the last
    wave always reaches every device. Empty spec: one wave."""
    marks: list[int] = []
    for item in spec:
        m = _WAVE.match(item.strip())
        if m is None:
            raise ValueError(f"wave {item!r} is not a count or a percentage (e.g. 1,10%,100%)")
        n = int(m.group(1))
        if m.group(2):
            if not 0 < n <= 100:
                raise ValueError(f"wave {item!r}: a percentage is 1%–100%")
            n = math.ceil(count * n / 100)
        elif n < 1:
            raise ValueError(f"wave {item!r}: a wave has at least one device")
        n = min(n, count)
        if not marks or n > marks[-1]:
            marks.append(n)
    if not marks or marks[-1] < count:
        marks.append(count)
    return marks


class DeployDevicesSubmission(Submission):
    """The devices (tags are resolved to names when submitting), how, and how carefully."""

    project_dir: str
    devices: list[str] = Field(min_length=1)
    action: Action | None = None
    limit: int = Field(default=DEFAULT_LIMIT, ge=1)
    waves: list[str] = Field(default_factory=list)
    max_failures: int | None = Field(default=None, ge=0)
    store_paths: dict[str, str] = Field(default_factory=dict)
    reboot: bool = False  # with action boot: reboot each device and wait until it runs the new system

    @field_validator("waves")
    @classmethod
    def _waves(cls, v: list[str]) -> list[str]:
        parse_waves(v, 100)
        return v

    @field_validator("devices")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


def _has_target(project: Project, device: str) -> bool:
    try:
        return project.device(device).settings.host is not None
    except UnknownDevice:
        return False


def _summary(record: TaskRecord, not_started: bool = False) -> dict[str, object]:
    r = record.result
    out: dict[str, object] = {
        "task": record.id, "state": record.state.value, "error": record.error,
        "outcome": "not started" if not_started else r.get("outcome"), "store_path": r.get("store_path"),
    }  # fmt: skip
    if r.get("failed_units"):
        out["failed_units"] = r["failed_units"]
    if record.state in FAILED_STATES:
        out["log"] = list(r.get("log", []))[-20:]
    return out


class _Rollout:
    """The children of one fleet deploy: at most ``limit`` at a time; counts failures, halts, and
    cancels (through the engine, with the halt as their reason) the children that did not start."""

    def __init__(self, ctx: TaskContext, sub: DeployDevicesSubmission, waves: int) -> None:
        self.ctx, self.sub, self.waves = ctx, sub, waves
        self.wave = 0
        self.gate = asyncio.Semaphore(sub.limit)
        self.max_failures = sub.max_failures if sub.max_failures is not None else (0 if sub.waves else None)
        self.submitted: dict[str, int] = {}  # device -> child task id
        self.records: dict[str, TaskRecord] = {}  # device -> its child's final record
        self.not_started: set[str] = set()
        self.failures = 0
        self.halted: str | None = None
        self.later = 0  # devices of the waves after the current one

    def report(self) -> None:
        """The parent's progress line for the Tasks panel: ``wave 2/3 · 7/10 done · 2 deploying · 1 failed``
        (``· 5 waiting for wave 3`` while later waves wait)."""
        n = len(self.sub.devices)
        done = len([d for d in self.records if d not in self.not_started])
        parts = [f"wave {self.wave}/{self.waves}"] if self.waves > 1 else []
        parts.append(f"{done}/{n} done")
        deploying = len(self.submitted) - len([d for d in self.submitted if d in self.records])
        if deploying:
            parts.append(f"{deploying} deploying")
        if self.failures:
            parts.append(f"{self.failures} failed")
        if self.halted is not None:
            parts.append("halted" + (f", {len(self.not_started)} not started" if self.not_started else ""))
        elif self.later:
            parts.append(f"{self.later} waiting for wave {self.wave + 1}")
        self.ctx.progress(done / n, " · ".join(parts))

    async def deploy(self, device: str, paths: dict[str, str]) -> None:
        async with self.gate:
            if self.halted is not None:
                return  # cancel_the_rest gives it a canceled child
            child = DeployDeviceSubmission(
                project_dir=self.sub.project_dir, device=device, action=self.sub.action, reboot=self.sub.reboot,
                store_path=paths.get(device), built_by=self.ctx.task_id if device in paths else None,
            )  # fmt: skip
            cid = await self.ctx.submit_child(TaskKind.DEPLOY_DEVICE.value, child)
            self.submitted[device] = cid
            self.report()
            (record,) = await self.ctx.wait_children([cid])
        self.records[device] = record
        if not record.state.ok and device not in self.not_started:
            self.failures += 1
            if self.max_failures is not None and self.failures > self.max_failures and self.halted is None:
                self.halted = (
                    f"the rollout halted after {self.failures} failed device(s) "
                    f"(more than --max-failures {self.max_failures})"
                )
                await self._cancel_waiting()
        self.report()

    async def _cancel_waiting(self) -> None:
        """Children submitted but still waiting (e.g. for a device lock another task holds) never start."""
        engine = self.ctx.engine
        for device, cid in self.submitted.items():
            if device not in self.records and engine.live(cid).state in (TaskState.PENDING, TaskState.QUEUED):
                self.not_started.add(device)
                await engine.cancel(cid, reason=self._reason())

    def _reason(self) -> str:
        return f"not started: {self.halted}"

    async def cancel_the_rest(self) -> None:
        """Every device the halted rollout never reached gets a child canceled before it starts, so
        each device's outcome (and a rerun of the failed and canceled ones) covers it."""
        engine = self.ctx.engine
        waiting: dict[str, int] = {}
        for device in self.sub.devices:
            if device in self.records or device in self.submitted:
                continue
            child = DeployDeviceSubmission(project_dir=self.sub.project_dir, device=device, action=self.sub.action,
                                           reboot=self.sub.reboot)  # fmt: skip
            cid = await self.ctx.submit_child(TaskKind.DEPLOY_DEVICE.value, child)
            await engine.cancel(cid, reason=self._reason())
            self.not_started.add(device)
            waiting[device] = cid
        for device, record in zip(waiting, await self.ctx.wait_children(list(waiting.values())), strict=True):
            self.records[device] = record


class DeployDevices(Operation):
    kind = TaskKind.DEPLOY_DEVICES.value
    submission_type = DeployDevicesSubmission
    default_timeout = None  # the children have their own
    uses_slot = False

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, DeployDevicesSubmission)
        n = len(submission.devices)
        names = ", ".join(submission.devices[:3]) + (f" +{n - 3}" if n > 3 else "")
        what = f" ({submission.action})" if submission.action else ""
        return f"Deploy {names}{what}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, DeployDevicesSubmission)
        return list(submission.devices)

    def rerun_failed(self, submission: Submission, failed_children: list[TaskRecord]) -> Submission:
        assert isinstance(submission, DeployDevicesSubmission)
        devices = [d for k in failed_children for d in k.devices]
        if not devices:
            raise UserError("no failed or canceled devices to deploy again")
        # built again: the flake may have been fixed since
        return submission.model_copy(update={"devices": devices, "store_paths": {}})

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, DeployDevicesSubmission)
        project = await open_project(sub.project_dir)
        marks = parse_waves(sub.waves, len(sub.devices))
        waves = [sub.devices[a:b] for a, b in zip([0, *marks], marks, strict=False)]
        ctx.plan("build", ["build"])
        ctx.plan("rollout", [f"wave {i + 1}" for i in range(len(waves))])
        paths = await self._build(ctx, project, sub)
        rollout = _Rollout(ctx, sub, len(waves))
        try:
            for index, wave in enumerate(waves):
                if rollout.halted is not None:
                    break
                rollout.wave = index + 1
                rollout.later = sum(len(w) for w in waves[index + 1:])
                rollout.report()
                async with ctx.step(f"wave {index + 1}", job="rollout") as step:
                    await asyncio.gather(*(rollout.deploy(d, paths) for d in wave))
                    bad = sum(1 for d in wave if d in rollout.records and not rollout.records[d].state.ok)
                    halted = rollout.halted
                    step.detail(f"{len(wave)} device(s), {bad} failed" + (f"; {halted}" if halted else ""))
            if rollout.halted is not None:
                await rollout.cancel_the_rest()
                ctx.skip_remaining("rollout", f"not started: {rollout.halted}")
            rollout.report()
        finally:
            records = rollout.records
            ctx.set_result(
                devices={d: _summary(records[d], d in rollout.not_started) for d in sub.devices if d in records},
                halted=rollout.halted,
                built=len(paths),
            )
        if rollout.halted is not None:
            raise TaskFailed(rollout.halted)

    async def _build(self, ctx: TaskContext, project: Project, sub: DeployDevicesSubmission) -> dict[str, str]:
        """Every device with a target in one `nix build`; those that fail build again in their child
        (which then fails with its own error), so one broken device never blocks the others."""
        paths = dict(sub.store_paths)
        attrs = {d: attr_path(d) for d in sub.devices if d not in paths and _has_target(project, d)}
        async with ctx.step("build", job="build") as step:
            if not attrs:
                step.detail("nothing to build here")
                return paths
            ctx.progress(0.0, f"building {len(attrs)} device(s)")
            try:
                built = await build_attrs(
                    ctx, project.path, attrs, job="build", step="build", settings=build_settings(project)
                )
                paths.update(built)  # build_attrs maps each result to its attribute by evaluation
                step.detail(f"built {len(attrs)} device(s) in one Nix invocation")
            except PartialBuildError as e:
                paths.update(e.built)
                step.detail(f"{len(e.failed)} of {len(attrs)} failed to build: {', '.join(e.failed)}")
                step.warn(str(e))
            except TaskFailed as e:
                step.detail(f"the combined build failed ({e}); each device builds in its own task")
                step.warn(f"the combined build failed: {e}")
        return paths


OPERATIONS: list[Operation] = [DeployDevices()]
