"""`nixdeck project open|new|devices|add-device|set|tag|untag|remove-device|export|import`.

Which project: `--project DIR`, else the current one remembered by `project open|new`
(`<data_dir>/current-project`), else the current directory when it holds a flake.nix.
Every change is recorded in the task history as a finished `record` task (opening is silent).

`devices --json` prints a list of objects, one per device (flake devices first, then orphaned
inventory entries), with the stable keys: name, state (ok | eval-error | orphaned | not-evaluated),
host_name, target (`user@host[:port]` or null), host, user, port, tags, has_target, error,
in_inventory and settings (every effective setting). Keys may be added, never removed or renamed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nixdeck.clicmds.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, make_engine, open_store, print_json
from nixdeck.core.paths import ensure_data_dir
from nixdeck.core.project.current import remember_current, resolve_project_dir
from nixdeck.core.project.errors import FlakeError, ProjectError
from nixdeck.core.project.history import DeviceHistory, created_change, opened_change, record_change
from nixdeck.core.project.project import Change, Device, Project

Handler = Callable[[argparse.Namespace], int]


def register(sub: Any) -> None:
    p = sub.add_parser("project", help="open or create a fleet project, list and edit its devices",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    psub = p.add_subparsers(dest="project_cmd", required=True, metavar="SUBCOMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", metavar="DIR",
                        help="the project (default: the current one, else this directory if it is a flake)")

    op = psub.add_parser("open", help="open a flake directory and make it the current project")
    op.add_argument("dir")
    op.add_argument("--no-eval", action="store_true", help="do not evaluate the flake (inventory only)")
    op.set_defaults(func=cmd_open)

    nw = psub.add_parser("new", help="create a project from the template and make it current")
    nw.add_argument("dir")
    nw.add_argument("--device", action="append", default=[], metavar="NAME", help="a device to create (repeat)")
    nw.add_argument("--no-git", action="store_true", help="do not git-init the project")
    nw.set_defaults(func=cmd_new)

    dv = psub.add_parser("devices", parents=[common], help="list the devices (flake + inventory)")
    dv.add_argument("--json", action="store_true", help="machine-readable (see `nixdeck project -h`)")
    dv.add_argument("--no-eval", action="store_true", help="inventory only: do not evaluate the flake")
    dv.add_argument("--tag", help="only devices with this tag")
    dv.set_defaults(func=cmd_devices)

    ad = psub.add_parser("add-device", parents=[common], help="add a device to the inventory")
    ad.add_argument("name")
    ad.add_argument("--host")
    ad.add_argument("--user")
    ad.add_argument("--port")
    ad.add_argument("--identity-file")
    ad.add_argument("--tag", action="append", default=[], help="a tag (repeat)")
    ad.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting")
    ad.add_argument("--module", action="store_true", help="also write devices/NAME.nix from the template")
    ad.set_defaults(func=cmd_add_device)

    st = psub.add_parser("set", parents=[common], help="set settings: DEVICE KEY=VALUE..., KEY= unsets")
    where = st.add_mutually_exclusive_group()
    where.add_argument("--defaults", action="store_true", help="set [defaults] (no DEVICE)")
    where.add_argument("--project-settings", action="store_true", help="set [project] (no DEVICE)")
    st.add_argument("items", nargs="+", metavar="[DEVICE] KEY=VALUE")
    st.set_defaults(func=cmd_set)

    for name, fn, verb in (("tag", cmd_tag, "add"), ("untag", cmd_untag, "remove")):
        tg = psub.add_parser(name, parents=[common], help=f"{verb} a tag on devices")
        tg.add_argument("tag")
        tg.add_argument("devices", nargs="+", metavar="DEVICE")
        tg.set_defaults(func=fn)

    rm = psub.add_parser("remove-device", parents=[common], help="remove a device's inventory entry")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove_device)

    ex = psub.add_parser("export", parents=[common], help="the inventory as JSON (stdout or FILE)")
    ex.add_argument("file", nargs="?")
    ex.set_defaults(func=cmd_export)

    im = psub.add_parser("import", parents=[common], help="replace the inventory with a JSON export")
    im.add_argument("file", help="a file, or - for stdin")
    im.set_defaults(func=cmd_import)


# --- shared ----------------------------------------------------------------------------------------


def report_error(command: str, exc: ProjectError) -> None:
    """A ProjectError as the user sees it: the message, then field, value and line when known."""
    err = sys.stderr
    err.write(f"nixdeck {command}: {exc}\n")
    if exc.field:
        err.write(f"  field: {exc.field}\n")
    if exc.value is not None:
        err.write(f"  value: {exc.value!r}\n")
    if exc.line is not None:
        err.write(f"  line: {exc.line}\n")


def guarded(command: str) -> Callable[[Handler], Handler]:
    """Project errors and file errors end the command with a clear message and exit 1."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except ProjectError as exc:
                report_error(command, exc)
                return EXIT_FAILED
            except OSError as exc:
                print(f"nixdeck {command}: {exc}", file=sys.stderr)
                return EXIT_FAILED

        return run

    return wrap


def data_dir() -> Path:
    return ensure_data_dir()  # cli.main put --data-dir into NIXDECK_DATA_DIR


def project_dir(args: argparse.Namespace) -> Path:
    return resolve_project_dir(getattr(args, "project", None), data_dir())


def record(args: argparse.Namespace, change: Change, directory: Path, details: Mapping[str, Any] | None = None) -> int | None:
    """Record the change in the history; returns the task id (None when nothing changed)."""
    store = open_store(args)
    try:
        return record_change(make_engine(store, args), change, directory, details=details)
    finally:
        store.close()


def done(args: argparse.Namespace, change: Change, directory: Path, details: Mapping[str, Any] | None = None) -> int:
    tid = record(args, change, directory, details)
    print(f"{change.summary} (task {tid})" if tid is not None else f"nothing to change: {change.summary}")
    return EXIT_OK


def open_project(args: argparse.Namespace, names: Sequence[str] = ()) -> Project:
    """The project without evaluating the flake, unless a named device is only known to the flake."""
    project = Project.open(project_dir(args), discover_devices=False)
    if any(n not in project.inventory.devices for n in names):
        project.refresh()
    return project


def parse_assignments(items: Sequence[str]) -> dict[str, object]:
    """`KEY=VALUE` items; `KEY=` unsets (None). Dashes in keys become underscores."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProjectError(f"setting: {item!r} is not KEY=VALUE", field="setting", value=item)
        values[key.strip().replace("-", "_")] = value if value != "" else None
    return values


def device_line(d: Device) -> str:
    target = d.target_label
    tags = ",".join(d.tags) or "-"
    return f"{d.name:<20} {d.state.value:<14} {target:<30} {tags}"


# --- subcommands -----------------------------------------------------------------------------------


@guarded("project open")
def cmd_open(args: argparse.Namespace) -> int:
    project = Project.open(args.dir, discover_devices=not args.no_eval)
    remember_current(data_dir(), project.path)
    record(args, opened_change(project), project.path)
    print(f"opened {project.path}: {len(project.devices)} device(s)"
          + (f", {len(project.orphans)} orphaned inventory entr(ies)" if project.orphans else ""))
    for w in project.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for d in (*project.devices, *project.orphans):
        print("  " + device_line(d))
    return EXIT_OK


@guarded("project new")
def cmd_new(args: argparse.Namespace) -> int:
    project = Project.new(args.dir, args.device, git=not args.no_git)
    remember_current(data_dir(), project.path)
    return done(args, created_change(project, args.device), project.path, {"devices": list(args.device)})


@guarded("project devices")
def cmd_devices(args: argparse.Namespace) -> int:
    try:
        project = Project.open(project_dir(args), discover_devices=not args.no_eval)
    except FlakeError as exc:
        report_error("project devices", exc)
        print("  (--no-eval lists the inventory without evaluating the flake)", file=sys.stderr)
        return EXIT_FAILED
    devices = [d for d in (*project.devices, *project.orphans) if args.tag is None or args.tag in d.tags]
    if args.json:
        store = open_store(args)
        try:  # each device's last build and deploy: this project's tasks only
            history = DeviceHistory(store, project.path)
            rows = [d.as_dict() | history.as_json(d.name) for d in devices]
        finally:
            store.close()
        print_json(rows, sys.stdout)  # common.print_json binds stdout at import
        return EXIT_OK
    for w in project.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{'NAME':<20} {'STATE':<14} {'TARGET':<30} TAGS")
    for d in devices:
        print(device_line(d))
        if d.error:
            first = d.error.splitlines()[0] if d.error.strip() else d.error
            print(f"{'':<20} error: {first}")
    return EXIT_OK


@guarded("project add-device")
def cmd_add_device(args: argparse.Namespace) -> int:
    values: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("user", args.user), ("port", args.port),
                          ("identity_file", args.identity_file)) if v is not None
    }  # fmt: skip
    if args.tag:
        values["tags"] = list(args.tag)
    values.update(parse_assignments(args.set))
    project = open_project(args)
    change = project.add_device(args.name, values)
    if args.module:
        module = asyncio.run(project.create_device_module_async(args.name))
        print(f"wrote {module}")
    return done(args, change, project.path, {"values": values})


@guarded("project set")
def cmd_set(args: argparse.Namespace) -> int:
    items = list(args.items)
    if args.defaults or args.project_settings:
        values = parse_assignments(items)
        project = open_project(args)
        change = project.set_defaults(values) if args.defaults else project.set_project_settings(values)
        return done(args, change, project.path, {"values": values})
    if "=" in items[0]:
        print("nixdeck project set: give the DEVICE first (or --defaults / --project-settings)", file=sys.stderr)
        return EXIT_USAGE
    device, rest = items[0], items[1:]
    if not rest:
        print("nixdeck project set: give KEY=VALUE after the device", file=sys.stderr)
        return EXIT_USAGE
    values = parse_assignments(rest)
    project = open_project(args, [device])
    return done(args, project.set_fields(device, values), project.path, {"values": values})


def _retag(args: argparse.Namespace, add: bool) -> int:
    project = open_project(args, args.devices)
    change = project.tag(args.devices, args.tag) if add else project.untag(args.devices, args.tag)
    return done(args, change, project.path, {"tag": args.tag})


@guarded("project tag")
def cmd_tag(args: argparse.Namespace) -> int:
    return _retag(args, True)


@guarded("project untag")
def cmd_untag(args: argparse.Namespace) -> int:
    return _retag(args, False)


@guarded("project remove-device")
def cmd_remove_device(args: argparse.Namespace) -> int:
    project = open_project(args)
    return done(args, project.remove_device(args.name), project.path)


@guarded("project export")
def cmd_export(args: argparse.Namespace) -> int:
    project = open_project(args)
    if args.file and args.file != "-":
        project.export_json(args.file)
        print(f"exported {project.inventory_path} to {args.file}", file=sys.stderr)
    else:
        sys.stdout.write(project.export_json())
    return EXIT_OK


@guarded("project import")
def cmd_import(args: argparse.Namespace) -> int:
    project = open_project(args)
    if args.file == "-":
        change = project.import_json_text(sys.stdin.read())
        source = "stdin"
    else:
        change = project.import_json(args.file)
        source = str(Path(args.file).resolve())
    return done(args, change, project.path, {"source": source})
