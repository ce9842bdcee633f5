"""What a deploy would change on one device, before the deploy: build its toplevel (a recorded build
task, quick when it is built already), read that closure here and the device's current system's
closure on the device, and diff them. `nixdeck diff` does the same steps; the window's deploy dialog
runs this in the background for each selected device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nixdeck.core.fleet.closure import ClosureDiff, diff_closures
from nixdeck.core.fleet.closure_query import ClosureError, device_closure, local_closure
from nixdeck.core.ops.nix_build import BuildDeviceSubmission
from nixdeck.core.ops.nixrun import find_nix_cached
from nixdeck.core.ops.remote import device_target, open_project
from nixdeck.core.ssh.errors import SshError
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind, TaskState


@dataclass(frozen=True)
class DeviceDiff:
    device: str
    current: str | None  # what the device runs (None: no system)
    new: str  # the built toplevel
    build_task: int
    diff: ClosureDiff


async def diff_for_device(engine: Any, project_dir: str, device: str, *, silent: bool = True) -> DeviceDiff:
    """The closure diff of deploying ``device`` now. Raises UserError with the reason it cannot."""
    project = await open_project(project_dir)
    target = device_target(project, device)
    sub = BuildDeviceSubmission(project_dir=str(project.path), device=device)
    tid = await engine.submit(TaskKind.BUILD_DEVICE.value, sub, project=str(project.path), silent=silent)
    built = await engine.wait(tid)
    if built.state not in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS):
        raise UserError(f"building {device} (task {built.id}) {built.state.label}: {built.error}")
    new = str(built.result.get("out_path"))
    hosts = KnownHosts.in_data_dir(engine.store.data_dir)
    nix, _ = await find_nix_cached()
    try:
        new_closure = await local_closure(new, nix)
        try:
            session = await SshSession.open(target, hosts)
        except SshError as e:
            raise UserError(f"cannot reach {device}: {e}") from None
        try:
            current = await session.readlink("/run/current-system")
            old_closure = await device_closure(session, current) if current else []
        finally:
            await session.close()
    except ClosureError as e:
        raise UserError(f"diff of {device}: {e}") from None
    except SshError as e:
        raise UserError(f"reading {device}'s system: {e}") from None
    return DeviceDiff(device, current, new, built.id, diff_closures(old_closure, new_closure))
