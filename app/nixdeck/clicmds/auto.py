"""`nixdeck auto …`: list, show, run (or dry-run), enable/disable, export and import automations.

`auto run NAME [--param K=V]… [--dry-run] [--json]` and `auto run --group NAME` check the
definition and every parameter before anything runs (a bad value: exit 2, naming the parameter
and what it accepts), then follow the run live like the other commands; the exit code is 0 only
when the run completed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from nixdeck.clicmds.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, open_store, print_json, run_tasks_live
from nixdeck.core.automation import plan as plan_mod
from nixdeck.core.automation import start, transfer
from nixdeck.core.automation.catalog import Catalog, Entry
from nixdeck.core.automation.errors import AutomationError
from nixdeck.core.automation.params import accepts, parse_cli
from nixdeck.core.paths import default_data_dir
from nixdeck.core.project import Project, ProjectError
from nixdeck.core.project.current import resolve_project_dir
from nixdeck.core.project.demo import demo_fleet_path
from nixdeck.core.project.history import record_change
from nixdeck.core.project.project import Change
from nixdeck.core.tasks.engine import TaskEngine


def register(sub: Any) -> None:
    p = sub.add_parser("auto", help="user-defined automations (nixdeck.toml [automations.*], [groups.*])")
    p.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    a = p.add_subparsers(dest="auto_command", metavar="ACTION", required=True)

    ls = a.add_parser("list", help="list the automations (private and template ones with --all)")
    ls.add_argument("--all", action="store_true", help="include private automations and templates")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    sh = a.add_parser("show", help="one automation (or with --group, a group): definition, parameters, error")
    sh.add_argument("name", nargs="?")
    sh.add_argument("--group", metavar="NAME")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    run = a.add_parser("run", help="run an automation (or a group) as a task")
    run.add_argument("name", nargs="?")
    run.add_argument("--group", metavar="NAME", help="run every member of this group in dependency order")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter value")
    run.add_argument("--dry-run", action="store_true", help="show the resolved plan; run and record nothing")
    run.add_argument("--force", action="store_true", help="treat user errors (unreachable device...) as warnings")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=cmd_run)

    for verb, on in (("enable", True), ("disable", False)):
        e = a.add_parser(verb, help=f"{verb} an automation (with --group: {'activate' if on else 'freeze'} a group)")
        e.add_argument("name", nargs="?")
        e.add_argument("--group", metavar="NAME")
        e.set_defaults(func=cmd_enable, on=on)

    ex = a.add_parser("export", help="write every group and automation as one JSON document")
    ex.add_argument("file", nargs="?", help="where to write (default: standard output)")
    ex.set_defaults(func=cmd_export)

    im = a.add_parser("import", help="add the groups and automations of an export (validated first)")
    im.add_argument("file")
    im.add_argument("--replace", action="store_true", help="replace all groups and automations")
    im.set_defaults(func=cmd_import)


def _project_dir(args: argparse.Namespace) -> Path:
    """``--project``, else the current project; with neither, the demo fleet when there is one (so
    the demo's automations run right after ``nixdeck demo start`` / ``make run``)."""
    data = default_data_dir()
    try:
        return resolve_project_dir(getattr(args, "project", None), data)
    except ProjectError:
        demo = demo_fleet_path(data)
        if not (demo / "flake.nix").is_file():
            raise
        print(f"nixdeck auto: no current project; using the demo fleet {demo}", file=sys.stderr)
        return demo


def _fail(args: argparse.Namespace, e: Exception, code: int = EXIT_FAILED) -> int:
    print(f"nixdeck auto {args.auto_command}: {e}", file=sys.stderr)
    return code


def _catalog(args: argparse.Namespace) -> tuple[Project, Catalog]:
    return asyncio.run(start.open_catalog(_project_dir(args)))


def _line(e: Entry, cat: Catalog) -> str:
    s = e.summary(cat)
    flags = [f for f, on in (("private", s["private"]), ("template", s["template"]),
                             ("disabled", s["enabled"] is False)) if on]
    what = f"[{', '.join(flags)}] " if flags else ""
    if not e.ok:
        return f"{e.name:<24} BROKEN  {e.error}"
    group = f" (group {s['group']})" if s["group"] else ""
    state = "ready " if s["runnable"] else "frozen" if s["refusal"] and "frozen" in s["refusal"] else "      "
    return f"{e.name:<24} {state}  {what}{s['description'] or '-'}{group}"


def cmd_list(args: argparse.Namespace) -> int:
    try:
        _, cat = _catalog(args)
    except (AutomationError, ProjectError) as e:
        return _fail(args, e)
    shown = [e for e in cat.automations.values()
             if args.all or not e.ok or not (e.definition and (e.definition.private or e.definition.template))]
    if args.json:
        groups = {n: {"ok": g.ok, "error": g.error, "members": list(g.members),
                      "active": g.definition.active if g.definition else None,
                      "description": g.definition.description if g.definition else ""}
                  for n, g in cat.groups.items()}
        print_json({"automations": [e.summary(cat) for e in shown], "groups": groups})
        return EXIT_OK
    if not cat.automations:
        print("no automations: add [automations.NAME] tables to nixdeck.toml (see the README)")
    for e in shown:
        print(_line(e, cat))
    for n, g in cat.groups.items():
        state = "BROKEN " + (g.error or "") if not g.ok else "active" if g.definition and g.definition.active else "frozen"
        print(f"group {n}: {state}; members: {', '.join(g.members) or 'none'}")
    return EXIT_OK


def _show_group(args: argparse.Namespace, cat: Catalog) -> int:
    g = cat.group(args.group)
    d = g.definition
    data = {"name": g.name, "ok": g.ok, "error": g.error, "members": list(g.members),
            "order": cat.levels(g.name), "refusal": cat.group_refusal(g.name), "definition": g.raw}
    if args.json:
        print_json(data)
        return EXIT_OK
    state = "BROKEN " + (g.error or "") if d is None else "active" if d.active else "frozen (active = false)"
    print(f"group {g.name}: {state}" + (f" — {d.description}" if d and d.description else ""))
    print("  order: " + (" → ".join("[" + ", ".join(level) + "]" for level in data["order"]) or "no members"))
    if data["refusal"]:
        print(f"  cannot run now: {data['refusal']}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.group is None):
        print("nixdeck auto show: name an automation or give --group NAME", file=sys.stderr)
        return EXIT_USAGE
    try:
        _, cat = _catalog(args)
        if args.group is not None:
            return _show_group(args, cat)
        e = cat.entry(args.name)
    except (AutomationError, ProjectError) as exc:
        return _fail(args, exc)
    if args.json:
        print_json({**e.summary(cat), "definition": e.raw})
        return EXIT_OK
    print(_line(e, cat))
    d = e.definition
    if d is None:
        return EXIT_OK
    why = cat.refusal(e.name)
    if why:
        print(f"  cannot run now: {why}")
    for name, spec in d.params.items():
        default = f", default {spec.default!r}" if spec.default is not None else ""
        req = ", required" if spec.required else ""
        print(f"  param {name}: {accepts(spec)}{default}{req}" + (f" — {spec.description}" if spec.description else ""))
    for i, s in enumerate(d.steps):
        cond = f" when {s.when!r}" if s.when else ""
        print(f"  {s.label(i)}: {s.op} {s.with_}{cond}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.group is None):
        print("nixdeck auto run: name an automation or give --group NAME (one of them)", file=sys.stderr)
        return EXIT_USAGE
    try:
        given = parse_cli(args.param)
        prepared = asyncio.run(start.prepare(_project_dir(args), automation=args.name, group=args.group,
                                             params=given))
    except (AutomationError, ProjectError) as e:
        return _fail(args, e, EXIT_USAGE)
    if args.dry_run:
        store = open_store(args)
        try:
            plan = asyncio.run(plan_mod.plan(prepared, store))
        finally:
            store.close()
        if args.json:
            print_json(plan)
        else:
            sys.stdout.write(plan_mod.as_text(plan))
        return EXIT_OK

    async def submit(engine: TaskEngine) -> list[int]:
        return [await start.submit(engine, prepared, forced=args.force)]

    return asyncio.run(run_tasks_live(args, submit, show_output=False))


def _record(args: argparse.Namespace, change: Change, project: Project) -> None:
    store = open_store(args)
    try:
        tid = record_change(store, change, project.path)
    finally:
        store.close()
    print(f"{change.summary} (task {tid})" if tid is not None else f"nothing to change: {change.summary}")


def cmd_enable(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.group is None):
        print(f"nixdeck auto {args.auto_command}: name an automation or give --group NAME", file=sys.stderr)
        return EXIT_USAGE
    try:
        project = Project.open(_project_dir(args), discover_devices=False)
        if args.group:
            change = transfer.set_active(project, args.group, args.on)
        else:
            change = transfer.set_enabled(project, args.name, args.on)
    except (AutomationError, ProjectError) as e:
        return _fail(args, e)
    _record(args, change, project)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    try:
        project = Project.open(_project_dir(args), discover_devices=False)
        text = transfer.export(project, args.file)
    except (AutomationError, ProjectError, OSError) as e:
        return _fail(args, e)
    if args.file is None:
        sys.stdout.write(text)
    else:
        print(f"exported {len(project.inventory.automations)} automation(s), {len(project.inventory.groups)} "
              f"group(s) to {args.file}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return _fail(args, f"cannot read {args.file}: {e}")
    try:
        project = Project.open(_project_dir(args), discover_devices=False)
        change = transfer.import_text(project, text, replace=args.replace, source=args.file)
    except (AutomationError, ProjectError) as e:
        return _fail(args, e)
    _record(args, change, project)
    return EXIT_OK
