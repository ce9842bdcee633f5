"""Concurrency stress of the records: several processes submit and finish tasks against one data dir
while others keep opening it (each open recovers tasks of dead owners). Every owner writes down
the final state it saw for each of its tasks; afterwards the database must say exactly the same.

Shared by tests/test_fault_injection.py (small) and bench/faults.py (bigger)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nixdeck.core.tasks.errors import TaskNotFound
from nixdeck.core.tasks.store import TaskStore

WORKER = r"""
import asyncio, json, sys
from pathlib import Path
from nixdeck.core.ops import all_operations
from nixdeck.core.ops.run_command import RunCommandSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.store import TaskStore

data_dir, count, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])

async def main() -> None:
    store = TaskStore(data_dir)
    engine = TaskEngine(store, max_concurrent=8)
    for op in all_operations():
        engine.register(op)
    ids = []
    for i in range(count):
        argv = ["true"] if i % 3 else ["sh", "-c", "exit 3"]
        ids.append(await engine.submit("run_command", RunCommandSubmission(argv=argv)))
    finals = {}
    for tid in ids:
        finals[tid] = (await engine.wait(tid)).state.value
    await engine.close()
    store.close()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(finals))
    tmp.replace(out)

asyncio.run(main())
"""

RECOVERER = r"""
import sys, time
from pathlib import Path
from nixdeck.core.tasks.store import TaskStore
data_dir, seconds = Path(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
while time.monotonic() < end:
    TaskStore(data_dir).close()
"""


@dataclass
class StressOutcome:
    workers: int
    tasks: int
    lost_records: list[str] = field(default_factory=list)
    wrong_states: list[str] = field(default_factory=list)
    failed_workers: list[str] = field(default_factory=list)


def run_stress(data_dir: Path, *, workers: int = 4, tasks_each: int = 30, recoverers: int = 2,
               seconds: float = 20.0) -> StressOutcome:  # fmt: skip
    """Run the stress; ``seconds`` bounds how long the recoverers keep opening the data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    TaskStore(data_dir).close()  # create the schema once
    env = {**os.environ, "NIXDECK_DATA_DIR": str(data_dir)}
    outs = [data_dir / f"worker-{i}.json" for i in range(workers)]
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), str(tasks_each), str(o)], env=env,
                         stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        for o in outs
    ]
    recs = [
        subprocess.Popen([sys.executable, "-c", RECOVERER, str(data_dir), str(seconds)], env=env,
                         stdin=subprocess.DEVNULL)  # fmt: skip
        for _ in range(recoverers)
    ]
    result = StressOutcome(workers, workers * tasks_each)
    deadline = time.monotonic() + seconds + 120
    for i, p in enumerate(procs):
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            result.failed_workers.append(f"worker {i} exited {p.returncode}: {err.decode(errors='replace')[-300:]}")
    for r in recs:
        r.terminate()
        r.wait()
    store = TaskStore(data_dir, recover=False)
    try:
        for i, out in enumerate(outs):
            if not out.exists():
                continue
            for tid, state in json.loads(out.read_text()).items():
                try:
                    stored = store.get(int(tid)).state.value
                except TaskNotFound:
                    result.lost_records.append(f"task {tid} of worker {i}")
                    continue
                if stored != state:
                    result.wrong_states.append(f"task {tid}: owner saw {state}, the database says {stored}")
    finally:
        store.close()
    return result
