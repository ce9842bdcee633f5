"""Automations over the real operations: the test fleet built by real nix, SSH commands and deploys
on real sshd devices (`worlds`), and the demo's shipped automations through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from automation_helpers import tree
from fleet_fixtures import commit_all
from nixdeck.core.automation import start
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_demo import cli_start, nixdeck
from test_deploy_support import DeployWorld, fixture_worlds  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

Worlds = Callable[..., DeployWorld]

CHECK_FLEET = """
[automations.check-fleet]
params = { devices = { type = "string", default = "@all" }, marker = { type = "string", default = "fail-check" } }
steps = [
  { name = "check", op = "ssh_command", with = { devices = "${params.devices}", argv = ["sh", "-c", "test ! -e $NIX_CONF_DIR/${params.marker}"] }, on_failure = "continue" },
  { name = "rebuild", op = "build", with = { devices = "${steps.check.result.failed}" }, when = "size(steps.check.result.failed) > 0" },
]

[groups.nightly]
description = "update, build, canary, rest"

[automations.update]
group = "nightly"
steps = [
  { name = "update", op = "flake_update" },
  { name = "build", op = "build", with = { devices = "@all" }, when = "steps.update.state == 'completed'" },
]

[automations.canary]
group = "nightly"
depends_on = ["update"]
steps = [ { op = "deploy", with = { devices = "@canary" } } ]

[automations.rest]
group = "nightly"
depends_on = ["canary"]
steps = [ { op = "deploy", with = { devices = ["@web", "db1"], waves = "1,100%" } } ]
"""


def setup(world: DeployWorld) -> None:
    inv = world.flake / "nixdeck.toml"
    inv.write_text(inv.read_text() + CHECK_FLEET)
    from nixdeck.core.project import Project

    project = Project.open(world.flake, discover_devices=False)
    project.tag(["web1"], "canary")
    project.tag([d for d in ("web1", "web2") if d in project.inventory.devices], "web")
    commit_all(world.flake, "automations")


def run(world: DeployWorld, name: str | None = None, group: str | None = None
        ) -> tuple[TaskRecord, list[TaskRecord], dict[int, list[TaskRecord]]]:
    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, list[TaskRecord], dict[int, list[TaskRecord]]]:
        tid = await start.submit(engine, await start.prepare(world.flake, automation=name, group=group))
        parent = await engine.wait(tid)
        kids = tree(engine, tid)
        return parent, kids, {k.id: tree(engine, k.id) for k in kids}

    return world.run(scenario)


def test_check_fleet_builds_only_the_failing_devices(worlds: Worlds) -> None:
    world = worlds(["web1", "web2", "db1"])
    setup(world)
    (world.device("db1").nix_conf_dir / "fail-check").write_text("")
    parent, kids, grand = run(world, "check-fleet")
    check, rebuild = kids
    assert (check.kind, check.state) == (TaskKind.SSH_COMMANDS.value, TaskState.FAILED)
    assert sorted(k.devices[0] for k in grand[check.id]) == ["db1", "web1", "web2"]
    assert (rebuild.kind, rebuild.devices, rebuild.state) == (TaskKind.BUILD_DEVICE.value, ["db1"], TaskState.COMPLETED)
    assert rebuild.result["out_path"].startswith("/nix/store/")
    assert parent.state == TaskState.COMPLETED_WITH_WARNINGS, parent.error  # the check's failure was continued

    # nothing failing: the build is a skipped child with its reason
    (world.device("db1").nix_conf_dir / "fail-check").unlink()
    parent, kids, _ = run(world, "check-fleet")
    assert parent.state == TaskState.COMPLETED, parent.error
    assert [k.state for k in kids] == [TaskState.COMPLETED, TaskState.SKIPPED]
    assert kids[1].error == "when 'size(steps.check.result.failed) > 0' is false"


def test_nightly_group_updates_builds_and_deploys_canary_first(worlds: Worlds) -> None:
    world = worlds(["web1", "web2", "db1"])
    setup(world)
    parent, kids, grand = run(world, group="nightly")
    assert parent.state in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS), parent.error
    by = {k.title.removeprefix("Automation "): k for k in kids}
    assert [by[n].state.ok for n in ("update", "canary", "rest")] == [True, True, True]
    assert by["canary"].started >= by["update"].ended and by["rest"].started >= by["canary"].ended  # type: ignore[operator]
    kinds = [k.kind for k in grand[by["update"].id]]
    assert kinds == [TaskKind.FLAKE_UPDATE.value, TaskKind.BUILD_PROJECT.value]
    (canary_deploy,) = grand[by["canary"].id]
    assert canary_deploy.kind == TaskKind.DEPLOY_DEVICES.value and canary_deploy.devices == ["web1"]
    (rest_deploy,) = grand[by["rest"].id]
    assert rest_deploy.devices == ["web1", "web2", "db1"]
    for name in ("web1", "web2", "db1"):
        assert world.current_system(name) is not None, name


def test_removed_device_fails_the_step_naming_it(worlds: Worlds) -> None:
    world = worlds(["web1"])
    setup(world)
    from nixdeck.core.project import Project

    Project.open(world.flake, discover_devices=False).remove_device("web1")
    commit_all(world.flake, "web1 retired")
    parent, kids, _ = run(world, "canary")
    assert parent.state == TaskState.FAILED
    assert "no device has the tag 'canary'" in (kids[0].error or "")


def test_demo_automations_work_offline(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli_start(data)
    try:
        res = nixdeck(data, "auto", "list", "--json")
        assert res.returncode == 0, res.stderr
        listed = json.loads(res.stdout)
        assert {a["name"] for a in listed["automations"]} >= {"check-fleet", "nightly-update", "nightly-rest"}
        assert all(a["ok"] for a in listed["automations"])
        res = nixdeck(data, "auto", "run", "check-fleet", "--json")
        assert res.returncode == 0, res.stderr
        (run_record,) = json.loads(res.stdout)
        assert run_record["state"] in ("completed", "completed_with_warnings")
        res = nixdeck(data, "auto", "run", "--group", "nightly", "--json")
        assert res.returncode == 0, res.stderr
        (group,) = json.loads(res.stdout)
        assert group["result"]["members"] == {"nightly-update": "completed", "nightly-build": "completed",
                                              "nightly-canary": "completed", "nightly-rest": "completed"}
        # every device now runs a system: the check passes and the build is skipped
        res = nixdeck(data, "auto", "run", "check-fleet", "--json")
        assert res.returncode == 0 and json.loads(res.stdout)[0]["state"] == "completed", res.stderr
    finally:
        nixdeck(data, "demo", "stop")
