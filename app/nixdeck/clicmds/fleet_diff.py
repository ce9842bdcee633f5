"""`nixdeck diff DEVICE`: build the device's toplevel (a recorded build task, quick when it is built
already), read its closure here and the device's current system's closure on the device, and print
what a deploy would change."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from nixdeck.clicmds.common import EXIT_FAILED, EXIT_OK, make_engine, open_store, print_json
from nixdeck.core.fleet.closure import diff_closures
from nixdeck.core.fleet.closure_query import ClosureError, device_closure, local_closure
from nixdeck.core.ops.nix_build import BuildDeviceSubmission
from nixdeck.core.ops.nixrun import find_nix_cached
from nixdeck.core.ops.remote import device_target
from nixdeck.core.project import Project
from nixdeck.core.ssh.errors import SshError
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind, TaskState


def run_diff(args: argparse.Namespace, project: Project) -> int:
    return asyncio.run(_diff(args, project))


async def _diff(args: argparse.Namespace, project: Project) -> int:
    target = device_target(project, args.device)
    store = open_store(args)
    engine = make_engine(store, args)
    try:
        sub = BuildDeviceSubmission(project_dir=str(project.path), device=args.device)
        tid = await engine.submit(TaskKind.BUILD_DEVICE.value, sub, project=str(project.path))
        built = await engine.wait(tid)
    finally:
        await engine.close()
    if built.state not in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS):
        store.close()
        print(f"nixdeck diff: building {args.device} (task {built.id}) {built.state.label}: {built.error}",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    new = str(built.result.get("out_path"))
    hosts = KnownHosts.in_data_dir(store.data_dir)
    store.close()
    started = time.monotonic()
    nix, _ = await find_nix_cached()
    try:
        new_closure = await local_closure(new, nix)
        try:
            session = await SshSession.open(target, hosts)
        except SshError as e:
            raise UserError(f"cannot reach {args.device}: {e}") from None
        try:
            current = await session.readlink("/run/current-system")
            old_closure = await device_closure(session, current) if current else []
        finally:
            await session.close()
    except ClosureError as e:
        raise UserError(f"diff of {args.device}: {e}") from None
    diff = diff_closures(old_closure, new_closure)
    seconds = time.monotonic() - started
    if args.json:
        print_json({"device": args.device, "from": current, "to": new, "build_task": built.id,
                    "seconds": round(seconds, 3), **diff.to_json()})  # fmt: skip
    else:
        print(f"{args.device}: {current or '(no system)'} → {new}")
        for line in diff.lines():
            print(line)
    return EXIT_OK
