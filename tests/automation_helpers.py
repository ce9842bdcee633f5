"""Shared setup of the automation tests: a project whose automations run real local commands
(`sys.executable -c` scripts) through the real engine with every operation registered."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import engine_helpers
from nixdeck.core.automation import start
from nixdeck.core.ops import all_operations
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskRecord

PY = sys.executable
DEVICES = '[devices.web1]\nhost = "127.0.0.1"\ntags = ["web"]\n\n[devices.db1]\nhost = "127.0.0.1"\ntags = ["db"]\n'


def q(value: Any) -> str:
    """A value as TOML (JSON strings and arrays are TOML too)."""
    return json.dumps(value)


def script(code: str, *args: str) -> str:
    """A run_command step's argv running a python script."""
    return q([PY, "-c", code, *args])


def make_project(tmp_path: Path, automations: str, *, name: str = "proj") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "flake.nix").write_text("{ outputs = _: { }; }\n")
    (root / "nixdeck.toml").write_text("version = 1\n\n" + DEVICES + "\n" + automations)
    return root


def tree(engine: TaskEngine, task_id: int) -> list[TaskRecord]:
    """The children of a task, in id order."""
    return sorted(engine.store.children(task_id), key=lambda t: t.id)


def run(data_dir: Path, project: Path, name: str | None = None, *, group: str | None = None,
        params: dict[str, Any] | None = None, text: bool = True) -> tuple[TaskRecord, list[TaskRecord], dict[int, list[TaskRecord]]]:
    """Run an automation (or a group) to its end: the parent, its children, and each child's children."""

    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, list[TaskRecord], dict[int, list[TaskRecord]]]:
        prepared = await start.prepare(project, automation=name, group=group, params=params, text=text)
        tid = await start.submit(engine, prepared)
        parent = await engine.wait(tid)
        kids = tree(engine, tid)
        return parent, kids, {k.id: tree(engine, k.id) for k in kids}

    return engine_helpers.run_engine(data_dir, scenario, ops=all_operations())
