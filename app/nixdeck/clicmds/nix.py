"""`nixdeck build | flake update | image | vm`: Nix operations on the project's devices as tasks.

The project is `--project DIR`, else the current project (`nixdeck project open`), else the
current directory. Builds show parsed errors/warnings and a progress line, not Nix's raw output;
`vm` streams the VM's console. The exit code is non-zero when a task does not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pydantic import ValidationError

from nixdeck.clicmds.common import EXIT_USAGE, run_tasks_live, seconds
from nixdeck.core.nix.attrs import IMAGE_FORMATS
from nixdeck.core.ops.flake_update import FlakeUpdateSubmission
from nixdeck.core.ops.image import BuildImageSubmission
from nixdeck.core.ops.nix_build import BuildDeviceSubmission, BuildProjectSubmission
from nixdeck.core.ops.vm import RunVmSubmission
from nixdeck.core.paths import default_data_dir
from nixdeck.core.project.current import resolve_project_dir
from nixdeck.core.project.errors import ProjectError
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.submission import Submission


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    p.add_argument("--timeout", type=seconds, help="seconds before the task times out")
    p.add_argument("--json", action="store_true", help="print the tasks and their results as JSON")


def register(sub: Any) -> None:
    b = sub.add_parser("build", help="build devices' systems (one task per device, or --all in one Nix call)")
    _common(b)
    b.add_argument("--all", action="store_true", help="build every device in one Nix invocation")
    b.add_argument("--no-closure-size", action="store_true", help="skip measuring the closure size")
    b.add_argument("devices", nargs="*", metavar="DEVICE")
    b.set_defaults(func=cmd_build)

    f = sub.add_parser("flake", help="flake maintenance")
    fsub = f.add_subparsers(dest="flake_command", metavar="SUBCOMMAND")
    u = fsub.add_parser("update", help="update all or the named inputs; show old -> new revisions")
    _common(u)
    u.add_argument("--commit", action="store_true", help="commit flake.lock with git")
    u.add_argument("inputs", nargs="*", metavar="INPUT")
    u.set_defaults(func=cmd_flake_update)
    f.set_defaults(func=lambda a: (f.print_help(), EXIT_USAGE)[1])

    i = sub.add_parser("image", help="build an image (sd-card, iso, qcow, raw) for a device")
    _common(i)
    i.add_argument("--format", choices=IMAGE_FORMATS, default="sd-card")
    i.add_argument("device", metavar="DEVICE")
    i.set_defaults(func=cmd_image)

    v = sub.add_parser("vm", help="build and run a device's NixOS VM (Ctrl-C stops it)")
    _common(v)
    v.add_argument("device", metavar="DEVICE")
    v.set_defaults(func=cmd_vm)


def _project(args: argparse.Namespace) -> str | None:
    try:
        return str(resolve_project_dir(args.project, default_data_dir()))
    except ProjectError as e:
        print(f"nixdeck {args.command}: {e}", file=sys.stderr)
        return None


def _submit_all(args: argparse.Namespace, items: list[tuple[str, Submission]], *, show_output: bool = False) -> int:
    async def submit(engine: TaskEngine) -> list[int]:
        return [await engine.submit(kind, s, timeout=args.timeout) for kind, s in items]

    return asyncio.run(run_tasks_live(args, submit, show_output=show_output))


def _make(args: argparse.Namespace, cls: type[Submission], **values: Any) -> Submission | None:
    try:
        return cls(**values)
    except ValidationError as e:
        msgs = "; ".join(str(err.get("msg", err)) for err in e.errors())
        print(f"nixdeck {args.command}: {msgs}", file=sys.stderr)
        return None


def cmd_build(args: argparse.Namespace) -> int:
    if args.all == bool(args.devices):
        print("nixdeck build: name one or more devices, or pass --all", file=sys.stderr)
        return EXIT_USAGE
    project = _project(args)
    if project is None:
        return EXIT_USAGE
    items: list[tuple[str, Submission]] = []
    if args.all:
        s = _make(args, BuildProjectSubmission, project_dir=project)
        if s is None:
            return EXIT_USAGE
        items.append(("build_project", s))
    for d in args.devices:
        s = _make(args, BuildDeviceSubmission, project_dir=project, device=d, closure_size=not args.no_closure_size)
        if s is None:
            return EXIT_USAGE
        items.append(("build_device", s))
    return _submit_all(args, items)


def cmd_flake_update(args: argparse.Namespace) -> int:
    project = _project(args)
    if project is None:
        return EXIT_USAGE
    s = _make(args, FlakeUpdateSubmission, project_dir=project, inputs=list(args.inputs), commit=args.commit)
    return EXIT_USAGE if s is None else _submit_all(args, [("flake_update", s)])


def cmd_image(args: argparse.Namespace) -> int:
    project = _project(args)
    if project is None:
        return EXIT_USAGE
    s = _make(args, BuildImageSubmission, project_dir=project, device=args.device, format=args.format)
    return EXIT_USAGE if s is None else _submit_all(args, [("build_image", s)])


def cmd_vm(args: argparse.Namespace) -> int:
    project = _project(args)
    if project is None:
        return EXIT_USAGE
    s = _make(args, RunVmSubmission, project_dir=project, device=args.device)
    return EXIT_USAGE if s is None else _submit_all(args, [("run_vm", s)], show_output=True)


__all__ = ["register"]
