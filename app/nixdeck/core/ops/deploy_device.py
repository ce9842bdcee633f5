"""Deploy to Device: build toplevel → copy the closure → activate → confirm (DESIGN §4).

Run alone it builds its own toplevel; under Deploy Devices the parent has built every device in one
Nix invocation and hands the store path over. The copy runs Nix's own ``nix copy --to ssh-ng://``
with NixDeck's ssh options (strict host keys against NixDeck's known_hosts); activation and confirm
go over asyncssh (see `activation`). The device's last log lines are kept in the result, so the fleet
parent can show them for every failed device.

Unsigned paths: ``nix copy`` to an ``ssh-ng://`` store refuses paths that carry no signature the
device trusts. Two ways out, chosen per project (``[project]`` in nixdeck.toml):

* ``signing_key = "path/to/secret-key"`` (the safe one): NixDeck signs the closure with
  ``nix store sign`` before copying, and the device lists the matching public key in
  ``trusted-public-keys``. The device then accepts only paths signed by that key.
* ``no_check_sigs = true``: pass ``--no-check-sigs``. The device takes whatever the deploying user
  sends; that is only as safe as the SSH login itself (anyone who can log in as root can already do
  anything), but it also means the store holds paths no key vouches for.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from pydantic import Field

from nixdeck.core.fleet import closure_query
from nixdeck.core.fleet.closure import ClosureDiff, diff_closures
from nixdeck.core.nix.commands import BuildSettings
from nixdeck.core.ops import activation, deploy_recovery, health
from nixdeck.core.ops.deploy_copy import JOB, copy_and_connect, run_tail
from nixdeck.core.ops.nixrun import (
    NixBuildFailed,
    NixUserError,
    build_attrs,
    find_nix_cached,
)
from nixdeck.core.ops.remote import (
    LOG_TAIL,
    device_settings,
    device_target,
    known_hosts,
    open_project,
)
from nixdeck.core.project import Project, attr_path
from nixdeck.core.project.inventory import Action
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.context import StepHandle, TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.events import TaskChanged
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

STEPS = ("build", "copy", "diff", "activate", "confirm")

class DeployDeviceSubmission(Submission):
    """One device. ``store_path`` is set when a parent already built it; ``action`` None: the device's."""

    project_dir: str
    device: str = Field(min_length=1)
    action: Action | None = None
    store_path: str | None = None
    built_by: int | None = None
    reboot: bool = False  # with action boot: reboot and wait until the device runs the new system
    reboot_timeout: float = Field(default=activation.REBOOT_TIMEOUT, gt=0)


def build_settings(project: Project) -> BuildSettings:
    p = project.inventory.project
    return BuildSettings(builders=p.builders, builders_use_substitutes=p.builders_use_substitutes, max_jobs=p.max_jobs)


async def build_one(ctx: TaskContext, project: Project, device: str, tail: collections.deque[str]) -> str:
    try:
        built = await build_attrs(
            ctx, project.path, {device: attr_path(device)}, job=JOB, step="build", settings=build_settings(project)
        )
    except (NixUserError, NixBuildFailed) as e:
        tail.extend(run_tail(e.run))
        raise
    return built[device]


class DeployDevice(Operation):
    """One device's deploy; holds the device's lock so two deploys never meet on one device."""

    kind = TaskKind.DEPLOY_DEVICE.value
    submission_type = DeployDeviceSubmission
    default_timeout = 3600.0
    uses_slot = False  # network-bound; a fleet deploy bounds its children with its own --limit
    locks_devices = True

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, DeployDeviceSubmission)
        what = f" ({submission.action})" if submission.action else ""
        return f"Deploy to {submission.device}{what}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, DeployDeviceSubmission)
        return [submission.device]

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, DeployDeviceSubmission)
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        result: dict[str, Any] = {"device": sub.device}
        try:
            await self._deploy(ctx, sub, tail, result)
        except BaseException as e:
            if isinstance(e, TaskFailed):
                tail.append(f"error: {e}")
            elif isinstance(e, asyncio.CancelledError):
                tail.append("canceled")
            ctx.skip_remaining(JOB, "canceled" if isinstance(e, asyncio.CancelledError) else "not run: an earlier step failed")
            raise
        finally:
            ctx.set_result(**result, log=list(tail))

    async def _deploy(
        self, ctx: TaskContext, sub: DeployDeviceSubmission, tail: collections.deque[str], result: dict[str, Any]
    ) -> None:
        project = await open_project(sub.project_dir)
        try:
            settings = device_settings(project, sub.device)
            target = device_target(project, sub.device)
        except UserError as e:
            ctx.plan(JOB, STEPS)
            ctx.skip_remaining(JOB, f"not started: {e}")
            raise
        action = sub.action or settings.action
        reboot = sub.reboot or (settings.reboot and action == "boot")
        confirm_on = activation.has_confirm(action) and settings.confirm
        checks = settings.health_checks if action in activation.CONFIRMED_ACTIONS else ()
        steps = [*STEPS[:-1], *(["health"] if checks else []), STEPS[-1], *(["reboot"] if reboot else [])]
        ctx.plan(JOB, steps)
        result["action"] = action
        if reboot and action != "boot":
            ctx.skip_remaining(JOB, "not started: a reboot goes with action boot")
            raise UserError(f"{sub.device}: reboot=true needs action boot (the device's action is {action})")

        def phase(text: str, fraction: float) -> None:
            ctx.progress(fraction, f"{sub.device}: {text}")
            tail.append(f"[{sub.device}] {text}")

        async with ctx.step("build", job=JOB) as step:
            if sub.store_path:
                step.detail(f"built by task {sub.built_by}" if sub.built_by else "built before this task")
                path = sub.store_path
            else:
                phase("building", 0.05)
                path = await build_one(ctx, project, sub.device, tail)
                step.detail(path)
        result["store_path"] = path

        session: SshSession | None = None
        act: activation.DeviceActivation | None = None
        diffing: asyncio.Task[tuple[str | None, ClosureDiff]] | None = None
        try:
            async with ctx.step("copy", job=JOB, detail=f"to {target.store_uri()}"):
                phase(f"copying {path} to {target.label}", 0.3)
                session = await copy_and_connect(
                    ctx, project, target, path, substitute=settings.substitute_on_destination, tail=tail
                )
            async with ctx.step("diff", job=JOB) as diff_step:
                # what the device runs now, read before anything changes; the closures are then
                # compared beside the activation (store paths do not change), costing it no time
                running = await session.readlink(activation.CURRENT_SYSTEM)
                diffing = asyncio.create_task(_closure_diff(session, running, path))
                diff_step.detail("comparing the closures beside the activation")
            earlier = deploy_recovery.unsettled(ctx.engine.store, sub.device)
            if earlier:
                phase(f"waiting for the device to end the activation of interrupted task #{earlier[0].id}", 0.65)
                for done in await deploy_recovery.settle_device(
                    ctx.engine.store, known_hosts(ctx), earlier, sub.project_dir, sub.device, target
                ):
                    ctx.engine.bus.emit(TaskChanged(done))
            window = float(settings.confirm_timeout)
            act = activation.DeviceActivation(target, known_hosts(ctx), path, action)
            result["activation"] = {"id": act.id, "dir": act.dir, "final": None}
            ctx.set_result(**result)  # stored now: whoever recovers this task finds the device's record
            async with ctx.step("activate", job=JOB, detail=action) as step:
                phase(f"activating ({action})", 0.7)
                status = await act.start(
                    ctx, session, wait_s=(window if confirm_on else 0.0) + health.budget(checks)
                    + activation.DECISION_MARGIN,
                    rollback_on=settings.rollback, job=JOB, tail=tail,
                )  # fmt: skip
                _record_before(result, status)
                code = status.switched
                if code not in (activation.SWITCH_OK, activation.SWITCH_UNITS_FAILED):
                    final = await act.settle(session)
                    _record_after(result, final)
                    what = f"exited with code {code}" if code is not None else "did not run"
                    result["outcome"] = "rolled back" if final.final == "rolled-back" else "failed"
                    raise TaskFailed(f"activation failed: switch-to-configuration {action} {what} on "
                                     f"{target.display_name}; {final.summary()}")
                if code == activation.SWITCH_UNITS_FAILED:
                    units_found = activation.failed_units(act.lines)
                    units = ", ".join(units_found) or "(unnamed)"
                    result["failed_units"] = units_found
                    step.detail(f"{action}: some units failed: {units}")
                    step.warn(f"{sub.device}: {action} succeeded but some units failed: {units}")
            await _record_diff(diffing, diff_step, result)
            if checks:
                async with ctx.step("health", job=JOB, detail=", ".join(c.name for c in checks)) as step:
                    phase(f"health checks: {', '.join(c.name for c in checks)}", 0.85)
                    failure = await health.run_checks(ctx, session, checks, job=JOB, tail=tail)
                    if failure is not None:
                        limit = activation.SETTLE_LIMIT
                        await act.decide(session, "rollback" if settings.rollback else "keep", failure, wait=limit)
                        final = act.status if act.status.final is not None else await act.settle(session)
                        _record_after(result, final)
                        result["health"] = {"failed": failure}
                        if not settings.rollback:
                            result["outcome"] = "unhealthy"
                            raise TaskFailed(f"{failure}; rollback is off for this device (setting rollback=false)")
                        result["outcome"] = "rolled back" if final.final == "rolled-back" else "rollback failed"
                        step.detail(final.summary())
                        raise TaskFailed(f"{failure}; {final.summary()}")
                    step.detail(f"{len(checks)} passed: {', '.join(c.name for c in checks)}")
                    result["health"] = {"passed": [c.name for c in checks]}
            if not confirm_on:
                async with ctx.step("confirm", job=JOB, detail=f"skipped: {activation.no_confirm_reason(action)}"):
                    won = await act.decide(session, "keep", wait=activation.SETTLE_LIMIT)
                    final = act.status if act.status.final is not None else await act.settle(session)
                    _record_after(result, final)
                if won not in ("keep", None) or final.final not in ("keep", "done"):
                    result["outcome"] = "rolled back" if final.final == "rolled-back" else "failed"
                    raise TaskFailed(f"the device did not keep the new system: {final.summary()}")
                result["outcome"] = "activated"
                if reboot:
                    async with ctx.step("reboot", job=JOB) as step:
                        phase(f"rebooting (waiting up to {sub.reboot_timeout:g} s for the new system)", 0.95)
                        booted = await activation.reboot_into(session, target, known_hosts(ctx), path,
                                                              sub.reboot_timeout)  # fmt: skip
                        step.detail(booted)
                    result["outcome"] = "rebooted"
                    phase("done (rebooted into the new system)", 1.0)
                    return
                phase(f"done ({activation.no_confirm_reason(action)})", 1.0)
                return
            async with ctx.step("confirm", job=JOB) as step:
                phase(f"confirming on a new connection (within {window:g} s)", 0.9)
                try:
                    won = await activation.confirm(target, path, window, act)
                    if won != "confirm":
                        raise TaskFailed(f"the device rolled back by itself before the confirmation arrived ({won})")
                except TaskFailed as e:
                    reason = str(e)
                    phase("not confirmed: rolling back" if settings.rollback else "not confirmed", 0.95)
                    limit = window + activation.DECISION_MARGIN + 60
                    await act.decide(session, "rollback" if settings.rollback else "keep", reason, wait=limit)
                    final = act.status if act.status.final is not None else await act.settle(session, limit=limit)
                    _record_after(result, final)
                    if not settings.rollback:
                        result["outcome"] = "unconfirmed"
                        raise TaskFailed(f"{reason}; rollback is off for this device (setting rollback=false)") from None
                    back = final.summary()
                    result["outcome"] = "rolled back" if final.final == "rolled-back" else "rollback failed"
                    result["rollback"] = back
                    step.detail(back)
                    raise TaskFailed(f"{reason}; {back}") from None
                final = act.status if act.status.final is not None else await act.settle(session, limit=30)
                _record_after(result, final)
                step.detail(f"{sub.device} answers and runs {path}")
            result["outcome"] = "confirmed"
            phase("done", 1.0)
        except BaseException as e:
            if act is not None and act.status.final is None:
                # canceled, timed out or broken after the supervisor started: the device rolls back
                # (unless it was confirmed already) and NixDeck waits for it, so the record says
                # what the device runs
                canceled = isinstance(e, asyncio.CancelledError)
                why = "the deploy was canceled" if canceled else f"the deploy failed: {e}"
                final = await asyncio.shield(act.abort(session, why))
                _record_after(result, final)
                if canceled:
                    result["outcome"] = "canceled: " + final.summary()
                tail.append(f"[{sub.device}] {'canceled' if canceled else 'failed'}: {final.summary()}")
            raise
        finally:
            if diffing is not None and not diffing.done():
                diffing.cancel()
            if session is not None:
                await asyncio.shield(session.close())


async def _closure_diff(session: SshSession, running: str | None, path: str) -> tuple[str | None, ClosureDiff]:
    """The closure diff from what the device runs to ``path`` (both in the device's store)."""
    async with asyncio.timeout(closure_query.QUERY_TIMEOUT):
        if running is None or Path(running).exists():
            # the running system was built here too (the usual case), or there is none: read the
            # closures from the local store, which costs the device nothing
            nix, _ = await find_nix_cached()
            if running is None:
                old, (new,) = [], await closure_query.local_closures(path, nix=nix)
            else:
                old, new = await closure_query.local_closures(running, path, nix=nix)
        else:
            old, new = await closure_query.device_closures(session, running, path)
    return running, diff_closures(old, new)


async def _record_diff(
    diffing: asyncio.Task[tuple[str | None, ClosureDiff]], step: StepHandle, result: dict[str, Any]
) -> None:
    try:
        running, diff = await diffing
    except (closure_query.ClosureError, TimeoutError) as e:
        step.detail(f"not computed: {e or 'it took too long'}")
        return
    result["diff"] = {"from": running, **diff.to_json()}
    step.detail(diff.summary())


def _record_before(result: dict[str, Any], status: activation.DeviceStatus) -> None:
    before = status.before
    result["previous_system"] = before.current
    result["previous_profile"] = before.profile
    result["previous_generation"] = before.generation


def _record_after(result: dict[str, Any], status: activation.DeviceStatus) -> None:
    if status.facts:
        _record_before(result, status)
    record = activation.activation_record(status)
    result["activation"] = {**result.get("activation", {}), **record}
    after = status.after
    result["device_system"] = {"current": after.current, "profile": after.profile}


OPERATIONS: list[Operation] = [DeployDevice()]
