"""How long a closure diff takes for a system of a few hundred store paths (DESIGN §8).

    .venv/bin/python bench/closure_diff.py [--packages 300] [--changed 10] [--rounds 5]

A simulated device runs a system with PACKAGES packages; the new system changes the version of
CHANGED of them and adds one. Measured: the diff as `nixdeck diff` computes it after the build
(local `nix path-info` of the new system + the device's closure over SSH + the diff), median of
ROUNDS. Last line: `RESULT paths=… diff_ms=… local_ms=… device_ms=…`.
Needs root (the device has its own /nix), nix and sshd, as `make test` sets up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
os.environ.setdefault("NO_COLOR", "1")

from nixdeck.core.fleet.closure import diff_closures  # noqa: E402
from nixdeck.core.fleet.closure_query import device_closure, local_closure  # noqa: E402
from nixdeck.core.ops.deploy_device import DeployDeviceSubmission  # noqa: E402
from nixdeck.core.ops.nix_build import BuildDeviceSubmission  # noqa: E402
from nixdeck.core.ssh.knownhosts import KnownHosts  # noqa: E402
from nixdeck.core.ssh.session import SshSession  # noqa: E402
from nixdeck.core.tasks.engine import TaskEngine  # noqa: E402
from nixdeck.core.tasks.model import TaskKind, TaskState  # noqa: E402
from test_deploy_support import make_world, run_engine  # noqa: E402


def device_nix(packages: int, changed: int, version: str) -> str:
    pkgs = "\n".join(
        f'    (drv "pkg{i}-{version if i < changed else "1.0"}" "mkdir -p $out; echo {i} > $out/f")'
        for i in range(packages)
    )
    extra = '    (drv "jq-1.7" "mkdir -p $out; echo jq > $out/f")\n' if version != "1.0" else ""
    return f"""{{ drv, mkDevice, ... }}:
mkDevice {{ name = "node1"; motd = "v{version}"; packages = [
{pkgs}
{extra}  ]; }}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=300)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nixdeck-closure-diff-") as tmp:
        base = Path(tmp)
        (base / "cache").mkdir()
        os.environ["XDG_CACHE_HOME"] = str(base / "cache")
        data_dir = base / "data"
        data_dir.mkdir()
        os.environ["NIXDECK_DATA_DIR"] = str(data_dir)
        world = make_world(base, data_dir, ["node1"], nodes=["node1"])
        try:
            world.write_device("node1", device_nix(args.packages, args.changed, "1.0"))

            async def deploy(engine: TaskEngine) -> TaskState:
                sub = DeployDeviceSubmission(project_dir=world.project_dir, device="node1")
                return (await engine.wait(await engine.submit(TaskKind.DEPLOY_DEVICE.value, sub))).state

            assert run_engine(data_dir, deploy) == TaskState.COMPLETED
            world.write_device("node1", device_nix(args.packages, args.changed, "2.0"))

            async def build(engine: TaskEngine) -> str:
                sub = BuildDeviceSubmission(project_dir=world.project_dir, device="node1")
                t = await engine.wait(await engine.submit(TaskKind.BUILD_DEVICE.value, sub))
                return str(t.result["out_path"])

            new = run_engine(data_dir, build)
            hosts = KnownHosts.in_data_dir(data_dir)
            target = world.fleet.target("node1")

            async def once() -> tuple[float, float, float, int, str]:
                t0 = time.monotonic()
                new_closure = await local_closure(new)
                t1 = time.monotonic()
                session = await SshSession.open(target, hosts)
                try:
                    current = await session.readlink("/run/current-system")
                    assert current is not None
                    old_closure = await device_closure(session, current)
                finally:
                    await session.close()
                t2 = time.monotonic()
                d = diff_closures(old_closure, new_closure)
                t3 = time.monotonic()
                return t3 - t0, t1 - t0, t2 - t1, len(new_closure), d.summary()

            runs = [asyncio.run(once()) for _ in range(args.rounds)]
        finally:
            world.fleet.stop()
    total, local, remote = (statistics.median(r[i] for r in runs) for i in range(3))
    print(f"diff of {runs[0][3]} paths: {runs[0][4]}")
    print(f"RESULT paths={runs[0][3]} diff_ms={total * 1000:.0f} local_ms={local * 1000:.0f} "
          f"device_ms={remote * 1000:.0f} rounds={args.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
