"""A project's history: its changes as task records, and each device's last build and deploy.

A change made through NixDeck (device added, tags changed, inventory imported, project opened...)
becomes an immediate, already finished ``record`` task whose details carry the ``Change`` kind, so
the history shows who changed what and when. Changes that did nothing are not recorded.

Device history is keyed by project *and* device: kiosk-1 of one project is not kiosk-1 of another
(tasks carry their project's `project_key`). The window's device table and the CLI both ask here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState, project_key
from nixdeck.core.tasks.store import TaskStore

from .project import Change, Project


def record_title(change: Change) -> str:
    s = change.summary
    return s[:1].upper() + s[1:]


def record_change(
    engine_or_store: TaskEngine | TaskStore,
    change: Change,
    project_dir: Path | str,
    *,
    details: Mapping[str, Any] | None = None,
    author: str | None = None,
) -> int | None:
    """Record ``change`` as a finished ``record`` task; its id, or ``None`` when nothing changed."""
    if not change.changed:
        return None
    engine = engine_or_store if isinstance(engine_or_store, TaskEngine) else TaskEngine(engine_or_store)
    data: dict[str, Any] = {"change": change.kind, "summary": change.summary, "project": str(project_dir)}
    data.update(details or {})
    return engine.record(
        record_title(change), data, kind=TaskKind.RECORD.value, silent=change.silent,
        devices=list(change.devices), project=str(project_dir), author=author,
    )  # fmt: skip


def opened_change(project: Project) -> Change:
    """Opening a project changes nothing on disk: a silent record, for the history's context."""
    return Change("project-opened", f"opened project {project.path}", silent=True)


def created_change(project: Project, devices: Sequence[str] = ()) -> Change:
    extra = f" with {', '.join(devices)}" if devices else ""
    return Change("project-created", f"created project {project.path}{extra}", tuple(devices))


BUILD_KINDS = (TaskKind.BUILD_DEVICE.value, TaskKind.BUILD_PROJECT.value)
DEPLOY_KINDS = (TaskKind.DEPLOY_DEVICE.value,)
# how many recent whole-project builds that name no devices (e.g. `nixdeck build` from the CLI) are looked at
PROJECT_BUILDS_SCANNED = 20


def device_outcome(t: TaskRecord, device: str) -> TaskRecord:
    """`t` as it concerns one device: a Build Project task's per-device result decides the state
    (built: completed, error: failed with that error); other tasks are their own outcome."""
    if t.kind != TaskKind.BUILD_PROJECT.value:
        return t
    devices = t.result.get("devices")
    mine = devices.get(device) if isinstance(devices, dict) else None
    if not isinstance(mine, dict):
        return t
    if mine.get("error"):
        return t.model_copy(update={"state": TaskState.FAILED, "error": str(mine["error"])})
    if mine.get("out_path"):
        state = t.state if t.state.ok else TaskState.COMPLETED
        return t.model_copy(update={"state": state, "error": None})
    return t


def _covers(t: TaskRecord, device: str) -> bool:
    devices = t.result.get("devices")
    return isinstance(devices, dict) and device in devices


class DeviceHistory:
    """Last build / last deploy of the devices of one project (`project` None: of any project)."""

    def __init__(self, store: TaskStore, project: str | Path | None) -> None:
        self.store = store
        self.project = project_key(project) if project is not None else None
        self._unnamed: list[TaskRecord] | None = None

    def _latest(self, device: str, kinds: Sequence[str]) -> TaskRecord | None:
        found = self.store.list_tasks(device=device, kinds=list(kinds), limit=1, project=self.project)
        return found[0] if found else None

    def project_builds(self) -> list[TaskRecord]:
        """Recent Build Project tasks recorded without devices (they name theirs in the result)."""
        if self._unnamed is None:
            recent = self.store.list_tasks(kinds=[TaskKind.BUILD_PROJECT.value], limit=PROJECT_BUILDS_SCANNED,
                                           project=self.project)
            self._unnamed = [t for t in recent if not t.devices]
        return self._unnamed

    def last_build(self, device: str) -> TaskRecord | None:
        candidates = [t for t in (self._latest(device, BUILD_KINDS),) if t is not None]
        candidates += [t for t in self.project_builds() if _covers(t, device)][:1]
        if not candidates:
            return None
        return device_outcome(max(candidates, key=lambda t: t.id), device)

    def last_deploy(self, device: str) -> TaskRecord | None:
        return self._latest(device, DEPLOY_KINDS)

    def as_json(self, device: str) -> dict[str, Any]:
        """`{"last_build": {...} | None, "last_deploy": ...}` for the CLI's JSON."""

        def one(t: TaskRecord | None) -> dict[str, Any] | None:
            if t is None:
                return None
            return {"task": t.id, "state": t.state.value, "ended": t.ended.isoformat() if t.ended else None,
                    "error": t.error}

        return {"last_build": one(self.last_build(device)), "last_deploy": one(self.last_deploy(device))}
