"""A closure copy cut off halfway (the device goes down mid-transfer): the deploy fails with a reason a
person can act on, nothing is activated, and a rerun completes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Callable

import pytest

from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_deploy_support import (  # noqa: F401  (fixture)
    BIG,
    BIG_BLOB_BYTES,
    DeployWorld,
    children,
    fixture_worlds,
    read_bytes,
    wait_for,
)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

Worlds = Callable[..., DeployWorld]
DEPLOY = TaskKind.DEPLOY_DEVICES.value


def _receiver(world: DeployWorld, name: str) -> tuple[int, int] | None:
    """The device's ``nix-daemon --stdio`` that receives the copy, and how much it has read."""
    daemons = [(read_bytes(pid), pid) for pid, cmd in world.device(name).command_processes() if "nix-daemon" in cmd]
    if not daemons:
        return None
    got, pid = max(daemons)
    return pid, got


def _delete_local(paths: list[str]) -> None:
    """The blob and what refers to it leave the local store again (200 MB per run otherwise)."""
    nix_store = ["nix-store"]
    for path in paths:
        refs = subprocess.run([*nix_store, "-q", "--referrers-closure", path], capture_output=True, text=True)
        if refs.returncode == 0 and refs.stdout.split():
            subprocess.run([*nix_store, "--delete", *refs.stdout.split()], capture_output=True, text=True)


def test_copy_interrupted_halfway_activates_nothing_and_a_rerun_completes(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"])
    device = world.device("node1")

    async def first(engine: TaskEngine) -> TaskRecord:
        pid = await engine.submit(DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1"]))
        return await engine.wait(pid)

    assert world.run(first).state == TaskState.COMPLETED
    old = world.current_system("node1")
    assert old is not None
    activations = (device.sim_state_dir / "activations").read_text()

    world.write_device("node1", BIG)
    blobs: list[str] = []
    try:

        async def interrupted(engine: TaskEngine) -> tuple[int, TaskRecord, list[object]]:
            pid = await engine.submit(
                DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1"])
            )

            def halfway() -> bool:
                found = _receiver(world, "node1")
                return found is not None and found[1] > BIG_BLOB_BYTES // 8

            await wait_for(halfway, "the copy to reach the device's nix-daemon", limit=120)
            found = _receiver(world, "node1")
            assert found is not None
            os.kill(found[0], signal.SIGSTOP)  # frozen mid-transfer: the copy cannot finish now
            await asyncio.to_thread(device.stop)  # the device goes down (sshd and all it started)
            await engine.wait(pid)
            kid = children(engine, pid)["node1"]
            return pid, kid, [s for job in engine.store.jobs(kid.id) for s in job.steps]

        pid, kid, steps = world.run(interrupted)
        path = kid.result["store_path"]
        blobs = [p for p in _closure(path) if p.endswith("-node1-blob")]
        assert kid.state == TaskState.FAILED
        assert kid.error is not None
        assert "copying the closure to node1 was interrupted: the connection broke mid-copy" in kid.error, kid.error
        assert "Nothing was activated" in kid.error and "a rerun continues" in kid.error, kid.error
        by_name = {s.name: s for s in steps}  # type: ignore[attr-defined]
        assert by_name["copy"].state == TaskState.FAILED
        assert by_name["activate"].state == TaskState.SKIPPED  # never ran
        assert by_name["confirm"].state == TaskState.SKIPPED
        # nothing changed on the device
        assert world.current_system("node1") == old
        assert world.profile_system("node1") == old
        assert (device.sim_state_dir / "activations").read_text() == activations
        assert not world.has_path("node1", path)

        world.fleet.restart(device)

        async def rerun(engine: TaskEngine) -> TaskRecord:
            new = await engine.rerun(pid)
            await engine.wait(new)
            return children(engine, new)["node1"]

        again = world.run(rerun)
        assert again.state == TaskState.COMPLETED, again.error
        assert again.result["store_path"] == path
        assert world.current_system("node1") == path
        assert world.profile_system("node1") == path
    finally:
        device.stop()
        for blob in blobs:
            shutil.rmtree(device.path_on_device(blob), ignore_errors=True)
        _delete_local(blobs)


def _closure(path: str) -> list[str]:
    out = subprocess.run(["nix-store", "-qR", path], capture_output=True, text=True, check=True).stdout
    return out.split()
