"""`nixdeck diff DEVICE`: what a deploy would change on the device (see `core.fleet.deploy_diff`,
which builds its toplevel as a recorded build task, quick when it is built already)."""

from __future__ import annotations

import argparse
import asyncio
import time

from nixdeck.clicmds.common import EXIT_OK, make_engine, open_store, print_json
from nixdeck.core.fleet.deploy_diff import diff_for_device
from nixdeck.core.project import Project


def run_diff(args: argparse.Namespace, project: Project) -> int:
    return asyncio.run(_diff(args, project))


async def _diff(args: argparse.Namespace, project: Project) -> int:
    store = open_store(args)
    engine = make_engine(store, args)
    started = time.monotonic()
    try:
        d = await diff_for_device(engine, str(project.path), args.device, silent=False)
    finally:
        await engine.close()
        store.close()
    seconds = time.monotonic() - started
    if args.json:
        print_json({"device": d.device, "from": d.current, "to": d.new, "build_task": d.build_task,
                    "seconds": round(seconds, 3), **d.diff.to_json()})  # fmt: skip
    else:
        print(f"{d.device}: {d.current or '(no system)'} → {d.new}")
        for line in d.diff.lines():
            print(line)
    return EXIT_OK
