"""`nixdeck ssh trust DEVICE [--replace] [--yes]` and `nixdeck ssh run DEVICE…|--tag T… -- CMD…`.

Trust fetches the key the device presents (without trusting it), shows its fingerprint and records
it in NixDeck's known_hosts only after the user confirms on a terminal (``--yes`` for scripts that
checked the fingerprint some other way). A changed key is refused with both fingerprints unless
``--replace``. Host-key checking itself is never turned off.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from nixdeck.clicmds.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    count,
    make_engine,
    open_store,
    run_tasks_live,
    seconds,
)
from nixdeck.core.ops.remote import device_target
from nixdeck.core.ops.ssh_command import SshCommandsSubmission, SshCommandSubmission
from nixdeck.core.paths import default_data_dir
from nixdeck.core.project import Project, ProjectError
from nixdeck.core.project.current import resolve_project_dir
from nixdeck.core.ssh.errors import SshError
from nixdeck.core.ssh.knownhosts import HostKeyState, KnownHosts, fetch_host_key, fingerprint
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind


def register(sub: Any) -> None:
    p = sub.add_parser("ssh", help="trust device host keys, run commands on devices")
    ssh = p.add_subparsers(dest="ssh_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_USAGE)[1])

    t = ssh.add_parser("trust", help="show a device's host key fingerprint and trust it on confirmation")
    t.add_argument("device")
    t.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    t.add_argument("--replace", action="store_true", help="replace a different key trusted before")
    t.add_argument("--yes", action="store_true", help="trust without asking (you checked the fingerprint)")
    t.set_defaults(func=cmd_trust)

    r = ssh.add_parser("run", help="run a command on devices (in parallel), as tracked tasks",
                       usage="nixdeck ssh run [--project DIR] [--timeout S] [--limit N] DEVICE…|--tag T… -- CMD…")
    r.add_argument("--project", metavar="DIR", help="the flake directory (default: the current project)")
    r.add_argument("--timeout", type=seconds, help="seconds before the remote command is killed")
    r.add_argument("--limit", type=count(1, 10**5), default=20, help="devices at a time (default 20)")
    r.add_argument("--json", action="store_true")
    r.add_argument("rest", nargs=argparse.REMAINDER, metavar="DEVICE…|--tag T… -- CMD…")
    r.set_defaults(func=cmd_run)


def _project(path: str | None) -> Project:
    try:
        return Project.open(resolve_project_dir(path, default_data_dir()), discover_devices=False)
    except ProjectError as e:
        raise UserError(f"cannot open the project: {e}") from None


def _ask(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_trust(args: argparse.Namespace) -> int:
    project = _project(args.project)
    target = device_target(project, args.device)
    store = open_store(args)
    hosts = KnownHosts.in_data_dir(store.data_dir)
    try:
        key = asyncio.run(fetch_host_key(target.host, target.port, timeout=target.connect_timeout))
    except SshError as e:
        print(f"nixdeck: {e}", file=sys.stderr)
        store.close()
        return EXIT_FAILED
    check = hosts.state(target.host, target.port, key)
    shown = f"{args.device} ({target.label}) presents {key.get_algorithm()} key {fingerprint(key)}"
    if check.state is HostKeyState.TRUSTED:
        print(f"{shown}: already trusted")
        store.close()
        return EXIT_OK
    if check.state is HostKeyState.CHANGED and not args.replace:
        print(f"nixdeck: {hosts.changed_error(check, device=args.device)}", file=sys.stderr)
        store.close()
        return EXIT_FAILED
    print(shown)
    if check.state is HostKeyState.CHANGED:
        print(f"It REPLACES the key trusted before: {', '.join(e.fingerprint for e in check.known)}")
    print("Compare it with the device's own: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
    if not args.yes:
        if not sys.stdin.isatty():
            print("nixdeck: not asking without a terminal: check the fingerprint, then pass --yes", file=sys.stderr)
            store.close()
            return EXIT_USAGE
        if not _ask("Trust this key? [y/N] "):
            print("not trusted")
            store.close()
            return EXIT_FAILED
    hosts.trust(target.host, target.port, key, replace=args.replace)
    replaced = " (replacing the old key)" if check.state is HostKeyState.CHANGED else ""
    engine = make_engine(store, args)
    engine.record(
        f"Trusted the host key of {args.device}{replaced}",
        {"device": args.device, "host": target.host, "port": target.port, "fingerprint": fingerprint(key),
         "replaced": [e.fingerprint for e in check.known]},
        devices=[args.device], silent=False, project=str(project.path),
    )  # fmt: skip
    store.close()
    print(f"trusted {fingerprint(key)} for {args.device}{replaced}")
    return EXIT_OK


def split_run_args(rest: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(devices, tags, command) from ``DEVICE… [--tag T]… -- CMD…``."""
    if "--" not in rest:
        raise UserError("give the command after --, e.g. nixdeck ssh run web1 -- uptime")
    cut = rest.index("--")
    before, command = rest[:cut], rest[cut + 1 :]
    devices: list[str] = []
    tags: list[str] = []
    items = iter(before)
    for item in items:
        if item == "--tag":
            tag = next(items, None)
            if tag is None:
                raise UserError("--tag needs a tag name")
            tags.append(tag)
        elif item.startswith("--tag="):
            tags.append(item.split("=", 1)[1])
        elif item.startswith("-"):
            raise UserError(f"unknown option {item} (options go before the devices)")
        else:
            devices.append(item)
    if not command:
        raise UserError("the command after -- is empty")
    return devices, tags, command


def select_devices(project: Project, devices: list[str], tags: list[str]) -> list[str]:
    """Named devices plus every inventory device carrying one of ``tags``, in order, once each."""
    chosen = list(devices)
    for tag in tags:
        tagged = [d.name for d in project.devices if tag in d.tags]
        if not tagged:
            raise UserError(f"no device has the tag {tag!r}")
        chosen += tagged
    return list(dict.fromkeys(chosen))


def cmd_run(args: argparse.Namespace) -> int:
    devices, tags, command = split_run_args(list(args.rest))
    project = _project(args.project)
    chosen = select_devices(project, devices, tags)
    if not chosen:
        raise UserError("name the devices (or --tag T) to run the command on")

    async def submit(engine: TaskEngine) -> list[int]:
        if len(chosen) == 1:
            one = SshCommandSubmission(
                project_dir=str(project.path), device=chosen[0], argv=command, command_timeout=args.timeout
            )
            return [await engine.submit(TaskKind.SSH_COMMAND.value, one, project=str(project.path))]
        many = SshCommandsSubmission(
            project_dir=str(project.path), devices=chosen, argv=command, command_timeout=args.timeout,
            limit=args.limit,
        )  # fmt: skip
        return [await engine.submit(TaskKind.SSH_COMMANDS.value, many, project=str(project.path))]

    return asyncio.run(run_tasks_live(args, submit))
