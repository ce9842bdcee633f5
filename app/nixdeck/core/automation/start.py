"""Starting a run: everything is checked (the definition, each parameter value) before any task
exists, then the run is submitted as a parent task of kind ``automation``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from nixdeck.core.project import Project, ProjectError
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.submission import Submission

from . import catalog as catalog_mod
from . import params as params_mod
from .catalog import Catalog
from .durations import parse_duration
from .errors import AutomationError
from .model import Automation


class AutomationSubmission(Submission):
    """One automation (``automation``) or a group (``group``) of a project; ``params`` are typed.

    ``chain`` names the automations that started this one (a run that would start itself is
    refused); ``direct`` is False when another automation or a group starts it (private ones may
    run then)."""

    project_dir: str = Field(min_length=1)
    automation: str | None = None
    group: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    chain: list[str] = Field(default_factory=list)
    direct: bool = True

    @model_validator(mode="after")
    def _one(self) -> AutomationSubmission:
        if (self.automation is None) == (self.group is None):
            raise ValueError("give an automation or a group (one of them)")
        return self


def inventory_devices(project: Project) -> dict[str, list[str]]:
    """Device name → tags, as selectors see them (``@all`` is every device of nixdeck.toml)."""
    return {name: list(entry.tags) for name, entry in project.inventory.devices.items()}


def run_options(a: Automation) -> dict[str, Any]:
    """The engine options of a run of ``a``: its timeout and retries."""
    return {"timeout": parse_duration(a.timeout) if a.timeout is not None else None, "retries": a.retries}


@dataclass
class Prepared:
    """A checked run request, ready to submit."""

    project: Project
    catalog: Catalog
    submission: AutomationSubmission
    options: dict[str, Any]
    definition: Automation | None

    @property
    def title(self) -> str:
        s = self.submission
        return f"Automation {s.automation}" if s.automation else f"Group {s.group}"


async def open_catalog(project_dir: str | Path) -> tuple[Project, Catalog]:
    """The project (inventory only, no Nix evaluation) and its automations."""
    try:
        project = await Project.open_async(project_dir, discover_devices=False)
    except ProjectError as e:
        raise AutomationError(f"cannot open the project: {e}") from None
    return project, catalog_mod.from_inventory(project.inventory)


def check_params(cat: Catalog, project: Project, name: str, given: Mapping[str, Any], *, text: bool) -> dict[str, Any]:
    a = cat.entry(name).definition
    assert a is not None
    devices = inventory_devices(project)
    tags = {t for ts in devices.values() for t in ts}
    return params_mod.resolve(name, a.params, given, text=text, devices=devices, tags=tags)


async def prepare(project_dir: str | Path, *, automation: str | None = None, group: str | None = None,
            params: Mapping[str, Any] | None = None, text: bool = True) -> Prepared:
    """Check a run request; AutomationError (naming what is wrong) before anything runs."""
    project, cat = await open_catalog(project_dir)
    if group is not None:
        why = cat.group_refusal(group)
        if why is not None:
            raise AutomationError(why)
        if params:
            raise AutomationError("--param is for one automation, not a group (members use their defaults)")
        sub = AutomationSubmission(project_dir=str(project.path), group=group)
        return Prepared(project, cat, sub, {"timeout": None, "retries": 0}, None)
    if automation is None:
        raise AutomationError("name an automation or a group")
    a = cat.runnable(automation)
    values = check_params(cat, project, automation, params or {}, text=text)
    sub = AutomationSubmission(project_dir=str(project.path), automation=automation, params=values)
    return Prepared(project, cat, sub, run_options(a), a)


async def submit(engine: Any, prepared: Prepared, *, author: str | None = None, origin_id: int | None = None,
                 forced: bool = False) -> int:
    """Submit a prepared run; returns the parent task's id."""
    return int(await engine.submit(
        TaskKind.AUTOMATION.value, prepared.submission, title=prepared.title, project=str(prepared.project.path),
        author=author, origin_id=origin_id, forced=forced, **prepared.options,
    ))
