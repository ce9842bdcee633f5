"""Helpers for the inventory-editing window tests: start the app on a fixture-fleet copy, read the
inventory file back, find the record tasks the window made."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from nixdeck.core.tasks.model import TaskRecord
from nixdeck.ui.app import NixDeckApp
from ui_shell_fixtures import until


def toml(flake: Path) -> dict[str, Any]:
    return tomllib.loads((flake / "nixdeck.toml").read_text(encoding="utf-8"))


def records(nx: NixDeckApp, *, silent: bool = False) -> list[TaskRecord]:
    """Record tasks, newest first (only the visible ones unless `silent`)."""
    return nx.store.list_tasks(kinds=["record"], include_silent=silent)


def change_records(nx: NixDeckApp, kind: str) -> list[TaskRecord]:
    return [t for t in records(nx, silent=True) if t.submission.get("change") == kind]


def proxy_row(nx: NixDeckApp, name: str) -> int:
    w = nx.window
    for r in range(w.proxy.rowCount()):
        if w.proxy.index(r, 0).data() == name:
            return r
    raise AssertionError(f"{name} is not in the table")


def cell(nx: NixDeckApp, name: str, column: int) -> Any:
    m = nx.window.model
    return m.index(m.row_of(name), column).data()


async def started(nx: NixDeckApp) -> NixDeckApp:
    await nx.start()
    assert nx.window.project is not None, nx.window.statusBar().currentMessage()
    return nx


async def shut_down(nx: NixDeckApp) -> None:
    nx.quit_now()
    await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")
