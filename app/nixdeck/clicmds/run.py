"""`nixdeck run [--device D] [--timeout S] [--retries N] -- CMD…`: a local command as a task."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from pydantic import SecretStr

from nixdeck.clicmds.common import EXIT_USAGE, count, run_tasks_live, seconds
from nixdeck.core.ops.run_command import RunCommandSubmission
from nixdeck.core.tasks.engine import TaskEngine


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a local command as a tracked task")
    p.add_argument("--device", help="the device this command concerns (holds its lock)")
    p.add_argument("--timeout", type=seconds, help="seconds before the task times out")
    p.add_argument("--retries", type=count(0, 100), default=0, help="attempts after a failure, with backoff")
    p.add_argument("--cwd")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="add to the environment")
    p.add_argument("--secret-env", action="append", default=[], metavar="NAME",
                   help="pass NAME from this environment; its value is never stored or shown")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("nixdeck run: give a command after --", file=sys.stderr)
        return EXIT_USAGE
    env: dict[str, str] = {}
    for item in args.env:
        k, sep, v = item.partition("=")
        if not sep or not k:
            print(f"nixdeck run: --env takes K=V, not {item!r}", file=sys.stderr)
            return EXIT_USAGE
        env[k] = v
    secrets = {}
    for name in args.secret_env:
        if name not in os.environ:
            print(f"nixdeck run: --secret-env {name}: it is not set in this environment", file=sys.stderr)
            return EXIT_USAGE
        secrets[name] = SecretStr(os.environ[name])
    sub = RunCommandSubmission(argv=argv, cwd=args.cwd, device=args.device, env=env, secret_env=secrets)

    async def submit(engine: TaskEngine) -> list[int]:
        return [await engine.submit("run_command", sub, timeout=args.timeout, retries=args.retries,
                                    silent=args.silent)]

    return asyncio.run(run_tasks_live(args, submit))
