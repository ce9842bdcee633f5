"""`nixdeck demo start|stop|status|run`: the demo fleet and its simulated devices.

`start` leaves one OpenSSH server per demo device running (pids in `<data_dir>/demo/devices.json`),
`stop` stops them with nothing left behind, `status` says whether each answers SSH (exit 0 only when
all do), `run` starts them, opens the window on the demo project and stops them when it closes.
`NIXDECK_DEMO_FIRST_OCTET` (or `--first-octet`) moves the devices to another 127.0.0.x block.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from nixdeck.clicmds.common import EXIT_FAILED, EXIT_OK, count, print_json
from nixdeck.clicmds.project import data_dir, guarded, record
from nixdeck.core.project.demo import DemoStart, demo_status, start_demo, stop_demo
from nixdeck.core.ssh.errors import host_label


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="the demo fleet: simulated devices on loopback")
    dsub = p.add_subparsers(dest="demo_cmd", required=True, metavar="SUBCOMMAND")

    def starting(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--first-octet", type=count(1, 250),
                            help="device i listens on 127.0.0.(N+i) (default: NIXDECK_DEMO_FIRST_OCTET or 11)")
        parser.add_argument("--reset", action="store_true", help="start from a fresh copy of the demo fleet")

    st = dsub.add_parser("start", help="start the simulated devices and leave them running")
    starting(st)
    st.set_defaults(func=cmd_start)
    sp = dsub.add_parser("stop", help="stop the simulated devices")
    sp.set_defaults(func=cmd_stop)
    ss = dsub.add_parser("status", help="list the devices and whether they answer SSH")
    ss.add_argument("--json", action="store_true")
    ss.set_defaults(func=cmd_status)
    rn = dsub.add_parser("run", help="start the devices, open the window on the demo, stop them at exit")
    starting(rn)
    rn.set_defaults(func=cmd_run)


def _start(args: argparse.Namespace) -> DemoStart:
    d = data_dir()
    started = start_demo(d, first_octet=args.first_octet, reset=args.reset)
    for change in started.changes:
        record(args, change, started.fleet)
    if started.already_running:
        print(f"the demo is already running ({len(started.devices)} devices)")
    else:
        print(f"started {len(started.devices)} simulated devices for {started.fleet}")
    for dev in started.devices:
        print(f"  {dev.name:<14} {dev.user}@{host_label(dev.host, dev.port):<22} pid {dev.pid}")
    if not started.isolated:
        print("note: not root, so the devices listen on high ports of 127.0.0.1 and share this machine's "
              "/nix store (no per-device isolation)", file=sys.stderr)
    return started


@guarded("demo start")
def cmd_start(args: argparse.Namespace) -> int:
    started = _start(args)
    print(f"open it: nixdeck gui --project {started.fleet}    stop: nixdeck demo stop")
    return EXIT_OK


@guarded("demo stop")
def cmd_stop(args: argparse.Namespace) -> int:
    stopped = stop_demo(data_dir())
    print(f"stopped {len(stopped)} simulated devices" if stopped else "the demo is not running")
    return EXIT_OK


@guarded("demo status")
def cmd_status(args: argparse.Namespace) -> int:
    statuses = demo_status(data_dir())
    if args.json:
        print_json([
            {"name": s.device.name, "host": s.device.host, "port": s.device.port, "user": s.device.user,
             "pid": s.device.pid, "isolated": s.device.isolated, "running": s.running, "answers": s.answers,
             "reason": s.reason}
            for s in statuses
        ], sys.stdout)  # fmt: skip
    elif not statuses:
        print("the demo is not running")
    for s in statuses if not args.json else []:
        state = "answers" if s.answers else f"does not answer: {s.reason}"
        print(f"{s.device.name:<14} {s.device.user}@{host_label(s.device.host, s.device.port):<22} "
              f"pid {s.device.pid:<8} {state}")
    return EXIT_OK if statuses and all(s.answers for s in statuses) else EXIT_FAILED


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_window(window: subprocess.Popen[bytes]) -> int:
    """Wait for the window; Ctrl-C / SIGTERM here closes it (TERM, then KILL after 30 s)."""
    try:
        return window.wait()
    except KeyboardInterrupt:
        window.send_signal(signal.SIGTERM)
        try:
            window.wait(timeout=30)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            window.kill()
            window.wait()
        return 130


@guarded("demo run")
def cmd_run(args: argparse.Namespace) -> int:
    """Devices, then the window as a child process (`nixdeck gui --project FLEET`, i.e.
    `nixdeck.ui.app.main`): whatever way the window ends, even a crash, this process stops the devices."""
    signal.signal(signal.SIGTERM, _interrupt)  # no Qt in this process: raising here is safe
    started = _start(args)
    sys.stdout.flush()
    window: subprocess.Popen[bytes] | None = None
    try:
        argv = [sys.executable, "-m", "nixdeck", "--data-dir", str(data_dir())]
        if getattr(args, "verbose", False):
            argv.append("--verbose")
        window = subprocess.Popen([*argv, "gui", "--project", str(started.fleet)])
        return _wait_window(window)
    finally:
        if window is not None and window.poll() is None:
            window.kill()
            window.wait()
        if not started.already_running:  # devices started by `demo start` keep running
            stopped = stop_demo(Path(data_dir()))
            print(f"stopped {len(stopped)} simulated devices", flush=True)
