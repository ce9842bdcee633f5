"""Probe Devices: read what each device runs (see `core.fleet.probe`), keep it per project and device,
and say how it drifted from NixDeck's builds. Silent by default when run in the background (the
window's periodic probe, after a deploy); read-only, so it takes no device lock and no slot.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from nixdeck.core.fleet.drift import builds_for, drift
from nixdeck.core.fleet.probe import DeviceState, probe_device
from nixdeck.core.fleet.state_store import FleetStateStore
from nixdeck.core.ops.remote import device_settings, device_target, known_hosts, open_project
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind, project_key
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

DEFAULT_LIMIT = 8


class ProbeDevicesSubmission(Submission):
    """``devices`` empty: every device of the inventory that has a target."""

    project_dir: str
    devices: list[str] = Field(default_factory=list)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=256)


def state_summary(state: DeviceState) -> dict[str, Any]:
    """The figures of a probe that a person reads first (the whole state is in the fleet store)."""
    gen = state.running_generation
    return {
        "online": state.online,
        "reason": state.reason,
        "current": state.current,
        "booted": state.booted,
        "generation": gen.number if gen else None,
        "generation_created": gen.created.isoformat() if gen and gen.created else None,
        "profile_generation": state.profile_generation,
        "nixos_version": state.nixos_version,
        "uptime_s": state.uptime_s,
        "store_free_bytes": state.store_free_bytes,
        "failed_units": state.failed_units,
        "lacks": state.lacks,
        "probed_at": state.probed_at.isoformat(),
    }


class ProbeDevices(Operation):
    kind = TaskKind.PROBE_DEVICES.value
    submission_type = ProbeDevicesSubmission
    default_timeout = 300.0
    uses_slot = False
    locks_devices = False  # reads only; a deploy may run beside it

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, ProbeDevicesSubmission)
        return "Probe " + (", ".join(submission.devices)[:70] if submission.devices else "all devices")

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, ProbeDevicesSubmission)
        return list(submission.devices)

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, ProbeDevicesSubmission)
        ctx.plan("probe", ["probe", "drift"])
        project = await open_project(sub.project_dir)
        key = project_key(str(project.path))
        names = list(sub.devices) or [d.name for d in project.devices if d.settings.host]
        if not names:
            raise UserError("no device to probe: none has a target yet")
        hosts = known_hosts(ctx)
        gate = asyncio.Semaphore(sub.limit)
        states: dict[str, DeviceState] = {}
        done = 0

        async def one(name: str) -> None:
            nonlocal done
            async with gate:
                try:
                    device_settings(project, name)
                    target = device_target(project, name)
                except UserError as e:
                    states[name] = DeviceState(project=key, device=name, probed_at=_now(), online=False, reason=str(e))
                else:
                    state = await probe_device(target, hosts, project=key)
                    states[name] = state.model_copy(update={"device": name})
                done += 1
                ctx.progress(done / len(names), f"probed {done}/{len(names)}")

        async with ctx.step("probe", job="probe", detail=f"{len(names)} devices"):
            await asyncio.gather(*(one(n) for n in names))
        results: dict[str, Any] = {}
        async with ctx.step("drift", job="probe"):
            with FleetStateStore(ctx.engine.store.data_dir) as fleet:
                for name in names:
                    state = states[name]
                    fleet.record(state)
                    d = drift(state, builds_for(ctx.engine.store, key, name))
                    results[name] = {**state_summary(state), **d.to_json()}
        offline = [n for n in names if not states[n].online]
        ctx.set_result(project=key, devices=results, offline=offline)
        if offline:
            ctx.progress(1.0, f"{len(names) - len(offline)}/{len(names)} online")
        else:
            ctx.progress(1.0, f"{len(names)}/{len(names)} online")


def _now() -> datetime:
    return datetime.now(UTC)


OPERATIONS: list[Operation] = [ProbeDevices()]
