"""`nixdeck deploy [DEVICE…] [--tag T…] [--limit N] [--action A] [--waves 1,10%,100%]
[--max-failures K] [--force]`: a fleet deploy (one Deploy to Device child per device)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pydantic import ValidationError

from nixdeck.clicmds.common import EXIT_USAGE, count, run_tasks_live
from nixdeck.clicmds.ssh import select_devices
from nixdeck.core.ops.activation import has_confirm, no_confirm_reason
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.paths import default_data_dir
from nixdeck.core.project import Project, ProjectError
from nixdeck.core.project.current import resolve_project_dir
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind

ACTIONS = ("switch", "boot", "test", "dry-activate")


def register(sub: Any) -> None:
    p = sub.add_parser("deploy", help="build and deploy devices (all of them when none is named)")
    p.add_argument("devices", nargs="*", metavar="DEVICE")
    p.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    p.add_argument("--tag", action="append", default=[], metavar="T", help="deploy the devices with this tag")
    p.add_argument("--limit", type=count(1, 10**5), default=10, help="devices deployed at a time (default 10)")
    p.add_argument("--action", choices=ACTIONS, help="switch-to-configuration action (default: each device's)")
    p.add_argument("--waves", help="cumulative wave sizes, e.g. 1,10%%,100%%: each wave must end before the next")
    p.add_argument("--max-failures", type=count(0, 10**5), metavar="K",
                   help="halt the rollout once more than K devices failed (default with --waves: 0)")
    p.add_argument("--force", action="store_true", help="treat user errors (unreachable device...) as warnings")
    p.add_argument("--reboot", action="store_true",
                   help="with --action boot: reboot each device and wait until it runs the new system")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deploy)


def cmd_deploy(args: argparse.Namespace) -> int:
    everything = not args.devices and not args.tag
    try:
        where = resolve_project_dir(args.project, default_data_dir())
        project = Project.open(where, discover_devices=everything)
    except ProjectError as e:
        raise UserError(f"cannot open the project: {e}") from None
    if everything:
        # "deploy the fleet": every device that can be reached; the others are named, not failed
        chosen = [d.name for d in project.devices if d.has_target]
        skipped = [d.name for d in project.devices if not d.has_target]
        if skipped:
            print(f"nixdeck deploy: skipping {len(skipped)} device(s) with no target yet: {', '.join(skipped)} "
                  "(set one with nixdeck project set DEVICE host=…, or name them to deploy anyway)", file=sys.stderr)
    else:
        chosen = select_devices(project, args.devices, args.tag)
    if not chosen:
        none = "none of the project's devices has a target yet" if everything and project.devices else "no device to deploy"
        print(f"nixdeck deploy: {none}", file=sys.stderr)
        return EXIT_USAGE
    waves = [w.strip() for w in args.waves.split(",") if w.strip()] if args.waves else []
    try:
        sub = DeployDevicesSubmission(
            project_dir=str(project.path), devices=chosen, action=args.action, limit=args.limit, waves=waves,
            max_failures=args.max_failures, reboot=args.reboot,
        )  # fmt: skip
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'input'}: {err['msg']}" for err in e.errors())
        print(f"nixdeck deploy: {msgs}", file=sys.stderr)
        return EXIT_USAGE
    if args.action and not has_confirm(args.action):
        print(f"nixdeck deploy: {no_confirm_reason(args.action)}", file=sys.stderr)

    async def submit(engine: TaskEngine) -> list[int]:
        return [await engine.submit(TaskKind.DEPLOY_DEVICES.value, sub, forced=args.force, project=str(project.path))]

    return asyncio.run(run_tasks_live(args, submit, show_output=False))
