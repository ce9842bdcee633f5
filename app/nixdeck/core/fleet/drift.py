"""Drift: what a device runs against what NixDeck built for it in this project.

`in sync` — it runs the latest successful build of its toplevel; `outdated` — it runs an older
build, a newer one exists; `diverged` — it runs a system NixDeck never built for it (changed by
hand, or by another tool); `needs reboot` — in sync, but booted ≠ current; `unknown` — no probe
yet, or no system on the device, or nothing built; `unreachable` — the last probe could not reach it.
The builds are read from the task history, keyed by project and device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nixdeck.core.fleet.probe import DeviceState
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState, project_key
from nixdeck.core.tasks.store import TaskStore

DRIFT_STATES = ("in sync", "outdated", "diverged", "needs reboot", "unknown", "unreachable")
SCAN = 500
_OK = (TaskState.COMPLETED.value, TaskState.COMPLETED_WITH_WARNINGS.value)


@dataclass(frozen=True)
class Build:
    """One successful build of a device's toplevel."""

    path: str
    task_id: int
    ended: datetime | None


@dataclass(frozen=True)
class Drift:
    state: str
    reason: str
    latest_build: Build | None = None
    needs_reboot: bool = False

    def to_json(self) -> dict[str, Any]:
        b = self.latest_build
        return {
            "drift": self.state,
            "drift_reason": self.reason,
            "needs_reboot": self.needs_reboot,
            "latest_build": None if b is None else {"path": b.path, "task_id": b.task_id,
                                                     "ended": b.ended.isoformat() if b.ended else None},
        }  # fmt: skip


def _path_of(task: TaskRecord, device: str) -> str | None:
    r = task.result
    if task.kind == TaskKind.BUILD_DEVICE.value:
        return r.get("out_path") if r.get("device", device) == device else None
    if task.kind == TaskKind.BUILD_PROJECT.value:
        entry = (r.get("devices") or {}).get(device)
        return entry.get("out_path") if isinstance(entry, dict) else None
    if task.kind == TaskKind.DEPLOY_DEVICE.value:
        return r.get("store_path") if r.get("device", device) == device else None
    return None


def task_project(task: TaskRecord) -> str | None:
    """The project a task acted on: its own field, else its submission's project_dir (resolved)."""
    value = task.project or (task.submission.get("project_dir") if isinstance(task.submission, dict) else None)
    return project_key(str(value)) if value else None


def builds_for(store: TaskStore, project: str, device: str) -> list[Build]:
    """Successful builds of ``device``'s toplevel in ``project``, newest first."""
    found: dict[str, Build] = {}
    per_device = store.list_tasks(
        kinds=[TaskKind.BUILD_DEVICE.value, TaskKind.DEPLOY_DEVICE.value], device=device, limit=SCAN
    )
    projects = store.list_tasks(kinds=[TaskKind.BUILD_PROJECT.value], limit=SCAN)
    for t in sorted([*per_device, *projects], key=lambda t: t.id, reverse=True):
        if task_project(t) != project_key(project):
            continue
        # a deploy's build succeeded whenever it recorded the path, even if the deploy failed later
        if t.kind != TaskKind.DEPLOY_DEVICE.value and t.state.value not in _OK:
            continue
        path = _path_of(t, device)
        if path and path not in found:
            found[path] = Build(path, t.id, t.ended)
    return list(found.values())


def drift(state: DeviceState | None, builds: list[Build]) -> Drift:
    """The drift of one device from its latest probe and its builds (newest first)."""
    latest = builds[0] if builds else None
    if state is None:
        return Drift("unknown", "never probed", latest)
    if not state.online:
        return Drift("unreachable", state.reason or "not reachable", latest)
    if state.current is None:
        return Drift("unknown", "the device runs no system NixOS knows (/run/current-system is missing)", latest)
    reboot = state.booted is not None and state.booted != state.current
    if latest is None:
        return Drift("unknown", "NixDeck has no successful build of this device in this project", None, reboot)
    if state.current == latest.path:
        if reboot:
            return Drift("needs reboot", f"booted {state.booted}, runs {state.current}", latest, True)
        return Drift("in sync", f"runs the latest build (task #{latest.task_id})", latest)
    older = next((b for b in builds[1:] if b.path == state.current), None)
    if older is not None:
        return Drift("outdated", f"runs the build of task #{older.task_id}; task #{latest.task_id} built a newer one",
                     latest, reboot)  # fmt: skip
    return Drift("diverged", f"runs {state.current}, which NixDeck never built for it in this project", latest, reboot)
