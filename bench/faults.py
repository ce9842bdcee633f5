"""Fault injection at scale: kill -9, SIGTERM and cancel of a real `nixdeck deploy` at every phase of
a deploy to several real sshd devices, plus a concurrency stress of the records.

    .venv/bin/python bench/faults.py [--devices 4] [--rounds 1] [--stress-workers 12]

Prints one line per trial and a last line
`RESULT trials=… inconsistent_devices=… orphans=… lost_records=… wrong_states=…` (all zero is the bar).
Needs root (each simulated device has its own /nix), nix and sshd, as `make test` sets up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
os.environ.setdefault("NO_COLOR", "1")

from fault_harness import FAULTS, PHASES, run_trial  # noqa: E402
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission  # noqa: E402
from nixdeck.core.tasks.engine import TaskEngine  # noqa: E402
from nixdeck.core.tasks.model import TaskKind, TaskState  # noqa: E402
from stress_harness import run_stress  # noqa: E402
from test_deploy_support import make_world, run_engine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1, help="trials per fault and phase")
    ap.add_argument("--stress-workers", type=int, default=12)
    ap.add_argument("--stress-tasks", type=int, default=5, help="tasks per stress worker")
    args = ap.parse_args()
    devices = [f"node{i}" for i in range(1, args.devices + 1)]
    totals = {"inconsistent_devices": 0, "orphans": 0, "lost_records": 0, "wrong_states": 0}
    trials = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nixdeck-faults-") as tmp:
        base = Path(tmp)
        cache = base / "xdg-cache"
        cache.mkdir()
        os.environ["XDG_CACHE_HOME"] = str(cache)
        for fault in FAULTS:
            data_dir = base / f"data-{fault}"
            data_dir.mkdir()
            os.environ["NIXDECK_DATA_DIR"] = str(data_dir)
            world = make_world(base / fault, data_dir, devices, nodes=devices, confirm_timeout=2)
            try:
                sub = DeployDevicesSubmission(project_dir=world.project_dir, devices=devices)

                async def first(engine: TaskEngine, sub: DeployDevicesSubmission = sub) -> TaskState:
                    tid = await engine.submit(TaskKind.DEPLOY_DEVICES.value, sub)
                    return (await engine.wait(tid)).state

                if run_engine(data_dir, first) != TaskState.COMPLETED:
                    print(f"{fault}: the first deploy failed", file=sys.stderr)
                    return 1
                n = 0
                for _ in range(args.rounds):
                    for phase in PHASES:
                        out = run_trial(world, devices, fault, phase, n)
                        n += 1
                        trials += 1
                        print(out.describe(), flush=True)
                        for key in totals:
                            totals[key] += len(getattr(out, key))
            finally:
                world.fleet.stop()
        stress = run_stress(base / "stress", workers=args.stress_workers, tasks_each=args.stress_tasks,
                            recoverers=2, seconds=20)  # fmt: skip
        print(f"stress: {stress.tasks} tasks from {stress.workers} processes; lost {len(stress.lost_records)}, "
              f"wrong {len(stress.wrong_states)}; failed workers {len(stress.failed_workers)}", flush=True)
        for line in (*stress.lost_records, *stress.wrong_states, *stress.failed_workers)[:10]:
            print("  " + line)
        totals["lost_records"] += len(stress.lost_records)
        totals["wrong_states"] += len(stress.wrong_states) + len(stress.failed_workers)
    figures = " ".join(f"{k}={v}" for k, v in totals.items())
    print(f"RESULT trials={trials} devices={len(devices)} stress_tasks={stress.tasks} {figures} "
          f"seconds={time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
