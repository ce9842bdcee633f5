"""Interrupted deploys whose activation had started on the device: find out how it ended.

When NixDeck dies during a deploy, the task becomes `interrupted` (see `TaskStore.recover`), but
the device's supervisor goes on: it finishes the switch and, without a confirmation, rolls back by
itself. Whoever next holds the device's lock — the next deploy to that device, or `recover_activations`
at start-up — waits for that supervisor to end and writes what the device ended up running into the
interrupted task, so the record never says less than what happened.
"""

from __future__ import annotations

import logging
from typing import Any

from nixdeck.core.errors import NixDeckError
from nixdeck.core.ops.activation import DeviceActivation, DeviceStatus, activation_record
from nixdeck.core.ops.remote import device_target, open_project
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.tasks.events import TaskChanged
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState, project_key
from nixdeck.core.tasks.store import TaskStore

log = logging.getLogger(__name__)

SCAN_LIMIT = 50


def unsettled(store: TaskStore, device: str | None = None) -> list[TaskRecord]:
    """Interrupted device deploys whose device-side activation has no recorded end yet."""
    tasks = store.list_tasks(
        states=[TaskState.INTERRUPTED.value], kinds=[TaskKind.DEPLOY_DEVICE.value], device=device, limit=SCAN_LIMIT
    )
    return [t for t in tasks if _pending(t.result.get("activation"))]


def _pending(record: Any) -> bool:
    return isinstance(record, dict) and bool(record.get("dir")) and record.get("final") is None


def record_outcome(store: TaskStore, task: TaskRecord, status: DeviceStatus) -> TaskRecord:
    """Write how the device's activation ended into the interrupted task (result and reason)."""
    activation = {**task.result.get("activation", {}), **activation_record(status)}
    after = status.after
    result = {
        **task.result,
        "activation": activation,
        "device_system": {"current": after.current, "profile": after.profile},
        "outcome": "interrupted: " + status.summary(),
    }
    error = (task.error or "NixDeck ended while the task ran").split("; on the device:")[0]
    store.update_task(task.id, result=result, error=f"{error}; on the device: {status.summary()}")
    return store.get(task.id)


async def settle(store: TaskStore, hosts: KnownHosts, task: TaskRecord, target: SshTarget) -> TaskRecord | None:
    """Wait (bounded) for the interrupted task's activation to end on the device; record it.
    None when the device could not be reached or has not finished (the task stays unsettled)."""
    record = task.result.get("activation", {})
    act = DeviceActivation(target, hosts, str(task.result.get("store_path", "")), "switch",
                           activation_id=str(record.get("id")))  # fmt: skip
    act.dir = str(record["dir"])
    status = await act.settle(None)
    if status.missing:
        status.facts["final"] = "not-started"  # the supervisor never wrote its directory
    if status.final is None:
        return None
    return record_outcome(store, task, status)


async def settle_device(store: TaskStore, hosts: KnownHosts, tasks: list[TaskRecord], project_dir: str,
                        device: str, target: SshTarget) -> list[TaskRecord]:  # fmt: skip
    """Settle the unsettled activations (`unsettled`) of ``device`` in this project (the caller
    holds its lock)."""
    done: list[TaskRecord] = []
    for task in tasks:
        if task.result.get("device") != device or _project_dir(task) != project_key(project_dir):
            continue
        settled = await settle(store, hosts, task, target)
        if settled is not None:
            done.append(settled)
    return done


def _project_dir(task: TaskRecord) -> str | None:
    value = task.submission.get("project_dir") if isinstance(task.submission, dict) else None
    return project_key(str(value)) if value is not None else None


async def recover_activations(engine: Any) -> list[int]:
    """At start-up: settle the unsettled activations of interrupted deploys, each under its device's
    lock, so no new deploy meets a device that is still finishing or undoing an old one."""
    store: TaskStore = engine.store
    hosts = KnownHosts.in_data_dir(store.data_dir)
    settled: list[int] = []
    for task in unsettled(store):
        device = str(task.result.get("device") or (task.devices[0] if task.devices else ""))
        project_dir = _project_dir(task)
        if not device or project_dir is None:
            continue
        try:
            project = await open_project(project_dir)
            target = device_target(project, device)
        except NixDeckError as e:
            log.info("cannot settle the activation of task %s: %s", task.id, e)
            continue
        async with engine.hold_devices([device]):
            fresh = store.get(task.id)
            if not _pending(fresh.result.get("activation")):
                continue
            done = await settle(store, hosts, fresh, target)
        if done is not None:
            engine.bus.emit(TaskChanged(done))
            settled.append(done.id)
    return settled
