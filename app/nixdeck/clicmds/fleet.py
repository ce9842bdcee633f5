"""`nixdeck status [DEVICE…]` (what each device runs, and its drift) and `nixdeck diff DEVICE`
(what a deploy would change on it)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from nixdeck.clicmds.common import EXIT_FAILED, EXIT_OK, make_engine, open_store, print_json
from nixdeck.clicmds.ssh import select_devices
from nixdeck.core.fleet.drift import builds_for, drift
from nixdeck.core.fleet.state_store import FleetStateStore
from nixdeck.core.ops.probe import ProbeDevicesSubmission, state_summary
from nixdeck.core.paths import default_data_dir
from nixdeck.core.project import Project, ProjectError
from nixdeck.core.project.current import resolve_project_dir
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind, TaskState, format_duration, project_key


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="what each device runs: online, generation, drift from NixDeck's builds")
    p.add_argument("devices", nargs="*", metavar="DEVICE")
    p.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    p.add_argument("--tag", action="append", default=[], metavar="T")
    p.add_argument("--cached", action="store_true", help="show the last probe of each device, probe nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    d = sub.add_parser("diff", help="what a deploy would change on a device (packages, versions, closure size)")
    d.add_argument("device", metavar="DEVICE")
    d.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_diff)


def _project(args: argparse.Namespace) -> Project:
    try:
        return Project.open(resolve_project_dir(args.project, default_data_dir()), discover_devices=False)
    except ProjectError as e:
        raise UserError(f"cannot open the project: {e}") from None


def _age(when: str | None) -> str:
    if not when:
        return "-"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(when)).total_seconds()
    return format_duration(max(0.0, seconds)) + " ago"


def _row(name: str, r: dict[str, Any]) -> list[str]:
    status = "online" if r.get("online") else "offline"
    gen = r.get("generation")
    generation = f"#{gen} ({_age(r.get('generation_created'))})" if gen is not None else "-"
    notes: list[str] = []
    if not r.get("online"):
        notes.append(str(r.get("reason") or ""))
    else:
        if r.get("failed_units"):
            notes.append(f"{r['failed_units']} failed units")
        if r.get("store_free_bytes") is not None:
            notes.append(f"{r['store_free_bytes'] / 2**30:.1f} GiB free on /nix")
        if r.get("lacks"):
            notes.append("no " + ", no ".join(r["lacks"]))
        if r.get("drift") not in ("in sync", None):
            notes.append(str(r.get("drift_reason") or ""))
    return [name, status, generation, str(r.get("drift") or "unknown"), "; ".join(n for n in notes if n)]


def _print_table(rows: list[list[str]]) -> None:
    head = ["DEVICE", "STATUS", "GENERATION", "DRIFT", "NOTES"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])


def cmd_status(args: argparse.Namespace) -> int:
    project = _project(args)
    key = project_key(str(project.path))
    names = select_devices(project, args.devices, args.tag) if (args.devices or args.tag) else [
        d.name for d in project.devices if d.settings.host
    ]
    if not names:
        print("nixdeck status: no device has a target yet (set one with nixdeck project set DEVICE host=…)",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    results: dict[str, Any]
    if args.cached:
        store = open_store(args)
        try:
            with FleetStateStore(store.data_dir) as fleet:
                results = {}
                for n in names:
                    state = fleet.latest(key, n)
                    base = state_summary(state) if state is not None else {"online": None}
                    results[n] = {**base, **drift(state, builds_for(store, key, n)).to_json()}
        finally:
            store.close()
        code = EXIT_OK
    else:
        results, code = asyncio.run(_probe(args, key, names))
    if args.json:
        print_json([{"name": n, **results.get(n, {})} for n in names])
    else:
        _print_table([_row(n, results.get(n, {})) for n in names])
    return code


async def _probe(args: argparse.Namespace, key: str, names: list[str]) -> tuple[dict[str, Any], int]:
    store = open_store(args)
    engine = make_engine(store, args)
    try:
        sub = ProbeDevicesSubmission(project_dir=key, devices=names)
        tid = await engine.submit(TaskKind.PROBE_DEVICES.value, sub, silent=True, project=key)
        try:
            task = await engine.wait(tid)
        except (KeyboardInterrupt, asyncio.CancelledError):
            await engine.cancel(tid)
            raise
    finally:
        await engine.close()
        store.close()
    if task.state not in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS):
        print(f"nixdeck status: the probe (task {task.id}) {task.state.label}: {task.error}", file=sys.stderr)
        return dict(task.result.get("devices") or {}), EXIT_FAILED
    return dict(task.result.get("devices") or {}), EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from nixdeck.clicmds.fleet_diff import run_diff

    return run_diff(args, _project(args))
