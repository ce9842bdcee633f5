"""Editing the inventory does not poison later tasks: an honest dirty-tree warning, warnings counted
once, and a reviewed commit of NixDeck's own nixdeck.toml edits."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from engine_helpers import QuickSub, run_engine
from fleet_fixtures import commit_all, copy_fleet, git
from nixdeck.core.ops.dirty_tree import explain_dirty_tree
from nixdeck.core.project.inventory_commit import commit_inventory, commit_message, inventory_diff
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskState
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.summary import add_counted


def _status(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout


def test_add_counted() -> None:
    w = add_counted([], "a")
    w = add_counted(w, "b")
    w = add_counted(w, "a")
    assert add_counted(w, "a") == ["a (×3)", "b"]


class WarnTwice(Operation):
    kind = "test_warn_twice"
    submission_type = QuickSub

    async def run(self, ctx: TaskContext) -> None:
        for _ in range(5):
            ctx.warn("Git tree '/x' is dirty")
        ctx.warn("other")


def test_identical_warnings_are_kept_once_with_a_count(data_dir: Path) -> None:
    async def scenario(engine: TaskEngine) -> list[str]:
        t = await engine.wait(await engine.submit("test_warn_twice", QuickSub()))
        assert t.state == TaskState.COMPLETED_WITH_WARNINGS
        return t.warnings

    assert run_engine(data_dir, scenario, ops=[WarnTwice()]) == ["Git tree '/x' is dirty (×5)", "other"]


def test_dirty_tree_names_files_and_tells_nixdecks_own_edit_apart(tmp_path: Path) -> None:
    fleet = copy_fleet(tmp_path)
    inv = fleet / "nixdeck.toml"
    inv.write_text('version = 1\n\n[devices.web1]\nhost = "10.0.0.1"\n')
    commit_all(fleet, "inventory")
    text = f"Git tree '{fleet}' is dirty"
    inv.write_text(inv.read_text() + 'tags = ["lab"]\n')  # as a tag edit in the window does
    users, msg = asyncio.run(explain_dirty_tree(text))
    assert not users and "only NixDeck's own inventory edit (nixdeck.toml)" in msg
    db1 = fleet / "devices" / "db1.nix"
    db1.write_text(db1.read_text() + "# a local edit\n")
    users, msg = asyncio.run(explain_dirty_tree(text))
    assert users and msg.endswith("uncommitted changes in devices/db1.nix")


def test_reviewed_commit_takes_only_nixdeck_toml(tmp_path: Path) -> None:
    fleet = copy_fleet(tmp_path)
    (fleet / "nixdeck.toml").write_text('version = 1\n\n[devices.web1]\nhost = "10.0.0.9"\n')
    db1 = fleet / "devices" / "db1.nix"
    db1.write_text(db1.read_text() + "# the user's own edit\n")
    change = asyncio.run(inventory_diff(fleet))
    assert change is not None and '+host = "10.0.0.9"' in change.diff
    msg = commit_message(["set web1 host=10.0.0.9", "set web1 host=10.0.0.9"])
    assert msg == "NixDeck: set web1 host=10.0.0.9"
    assert commit_message(["a", "b"]) == "NixDeck: 2 inventory edits\n\n- a\n- b"
    assert asyncio.run(commit_inventory(fleet, msg)) is True
    assert git(fleet, "log", "-1", "--format=%s").strip() == msg
    assert _status(fleet).split() == ["M", "devices/db1.nix"]  # the user's edit is left alone
    assert asyncio.run(inventory_diff(fleet)) is None
    with pytest.raises(ValueError):
        asyncio.run(commit_inventory(fleet, " "))


@pytest.mark.nix
def test_build_after_an_inventory_edit_is_not_completed_with_warnings(tmp_path: Path, data_dir: Path) -> None:
    from nixdeck.core.ops.nix_build import BuildDeviceSubmission
    from nixops_fixtures import messages, run_ops, run_task

    fleet = copy_fleet(tmp_path)
    inv = fleet / "nixdeck.toml"
    inv.write_text('version = 1\n\n[devices.db1]\nhost = "10.0.0.1"\n')
    commit_all(fleet, "inventory")
    inv.write_text(inv.read_text() + 'tags = ["lab"]\n')

    async def scenario(engine: TaskEngine) -> None:
        sub = BuildDeviceSubmission(project_dir=str(fleet), device="db1", closure_size=False)
        t = await run_task(engine, "build_device", sub)
        assert t.state == TaskState.COMPLETED, (t.error, t.warnings)
        infos = [m.message for m in messages(engine, t.id, "info")]
        assert any("only NixDeck's own inventory edit" in m for m in infos), infos

    run_ops(data_dir, scenario)
