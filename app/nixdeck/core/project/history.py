"""Project changes as task-history records (the CLI and the window record them the same way).

A change made through NixDeck (device added, tags changed, inventory imported, project opened...)
becomes an immediate, already finished ``record`` task whose details carry the ``Change`` kind, so
the history shows who changed what and when. Changes that did nothing are not recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind
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
