"""Health checks after activation, before the confirm, on real sshd devices: a check that passes on
the old system and fails on the new one rolls the device back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleet_fixtures import commit_all
from nixdeck.core.fleet.health import HealthCheck
from nixdeck.core.ops.deploy_device import DeployDeviceSubmission
from nixdeck.core.project import Project
from nixdeck.core.project.errors import InvalidValue
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_deploy_support import NODE, DeployWorld, fixture_worlds  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

HEALTHY = ["sh", "-c", "grep -q healthy /run/current-system/etc/motd || { echo 'motd says sick' >&2; exit 7; }"]


def _deploy(world: DeployWorld) -> TaskRecord:
    async def scenario(engine: TaskEngine) -> TaskRecord:
        sub = DeployDeviceSubmission(project_dir=world.project_dir, device="node1")
        return await engine.wait(await engine.submit(TaskKind.DEPLOY_DEVICE.value, sub))

    return world.run(scenario)


def _steps(world: DeployWorld, task_id: int) -> dict[str, str]:
    async def scenario(engine: TaskEngine) -> dict[str, str]:
        return {s.name: s.detail for j in engine.store.jobs(task_id) for s in j.steps}

    return world.run(scenario)


def test_a_check_that_fails_on_the_new_system_rolls_back(worlds: Callable[..., DeployWorld]) -> None:
    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    world.write_device("node1", NODE.format(name="node1", motd="healthy v1"))
    project = Project.open(world.flake, discover_devices=False)
    project.set_fields("node1", {"health_checks": [{"name": "motd", "command": HEALTHY, "retries": 1,
                                                    "interval": "0.2s", "timeout": "10s"}]})  # fmt: skip
    commit_all(world.flake, "health check")
    good = _deploy(world)
    assert good.state == TaskState.COMPLETED, good.error
    assert good.result["health"] == {"passed": ["motd"]}
    assert list(_steps(world, good.id)) == ["build", "copy", "diff", "activate", "health", "confirm"]
    old = good.result["store_path"]

    world.write_device("node1", NODE.format(name="node1", motd="sick v2"))
    bad = _deploy(world)
    assert bad.state == TaskState.FAILED
    assert "health check motd failed (after 2 attempts): exited with code 7: motd says sick" in (bad.error or "")
    assert f"rolled back to {old} (generation 1)" in (bad.error or "")
    assert world.current_system("node1") == old and world.profile_system("node1") == old

    async def health_runs(engine: TaskEngine) -> list[str]:
        return [p.step or "" for p in engine.store.processes(bad.id) if p.step == "health"]

    assert len(world.run(health_runs)) == 2  # both attempts are recorded processes with their output


def test_bad_health_checks_are_refused_naming_the_key(worlds: Callable[..., DeployWorld]) -> None:
    world = worlds(["node1"], nodes=["node1"])
    project = Project.open(world.flake, discover_devices=False)
    with pytest.raises(InvalidValue) as e:
        project.set_fields("node1", {"health_checks": [{"name": "x", "command": ["true"], "timeout": "soon"}]})
    assert "health_checks" in str(e.value) and "not a duration" in str(e.value)
    with pytest.raises(ValueError):
        HealthCheck(name="bad name!", command=["true"])
