"""Automations: the cost of opening a project with many definitions, of a dry run, and of the
style-preserving inventory edit once the file holds them.

Usage: .venv/bin/python bench/automations.py [--automations N] [--steps S] [--devices D]
The last line is `RESULT validate_ms=… dry_run_ms=… device_edit_ms=…` (N definitions of S steps each,
every `when` a CEL expression; the device edit rewrites one key of a D-device file).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from nixdeck.core.automation import catalog, plan, start
from nixdeck.core.project import Project


def write_project(root: Path, automations: int, steps: int, devices: int) -> None:
    lines = ["# a big fleet\nversion = 1\n"]
    for i in range(devices):
        lines.append(f'\n[devices.d{i}]  # device {i}\nhost = "10.0.{i // 250}.{i % 250 + 1}"\ntags = ["t{i % 7}"]\n')
    for a in range(automations):
        body = ", ".join(
            f'{{ name = "s{s}", op = "build", with = {{ devices = "@t{s % 7}" }}'
            + (f', when = "steps.s{s - 1}.state == \'completed\' && params.n > {s}"' if s else "") + " }"
            for s in range(steps)
        )
        lines.append(f'\n[automations.a{a}]\nparams = {{ n = {{ type = "number", default = 3 }} }}\nsteps = [ {body} ]\n')
    root.mkdir()
    (root / "flake.nix").write_text("{ outputs = _: { }; }\n")
    (root / "nixdeck.toml").write_text("".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--automations", type=int, default=500)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--devices", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nixdeck-bench-auto-"))
    try:
        root = tmp / "p"
        write_project(root, args.automations, args.steps, args.devices)
        project = Project.open(root, discover_devices=False)
        t0 = time.perf_counter()
        cat = catalog.from_inventory(project.inventory)
        validate_ms = (time.perf_counter() - t0) * 1000
        assert all(e.ok for e in cat.automations.values())
        t0 = time.perf_counter()
        prepared = asyncio.run(start.prepare(root, automation="a0"))
        asyncio.run(plan.plan(prepared))
        dry_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        project.set_fields("d0", {"port": "2222"})
        edit_ms = (time.perf_counter() - t0) * 1000
        assert "# device 1" in (root / "nixdeck.toml").read_text()
        print(f"{args.automations} automations x {args.steps} steps, {args.devices} devices")
        print(f"RESULT validate_ms={validate_ms:.0f} dry_run_ms={dry_ms:.0f} device_edit_ms={edit_ms:.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
