"""Tasks of other processes in the window: how soon the StoreWatcher sees them, and what a poll costs.

A second process (a real `python -c` writer, as the CLI would be) inserts a task and later ends it,
each after a random pause; the watcher polls every WATCH_MS like the window's bridge does, on a
history of N tasks. Reported: the worst delay from the other process's commit to the poll that
reports it (the window shows it on the next bridge flush, ≤ 100 ms later), and the cost of a poll
when nothing changed (one `PRAGMA data_version`) and when something did (one indexed query).

Usage: .venv/bin/python bench/live_tasks.py [--history N] [--rounds N]
The last line is `RESULT seen_max_ms=… seen_p50_ms=… idle_poll_us=… changed_poll_us=…`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nixdeck.core.tasks.model import TaskRecord, TaskState
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.watch import StoreWatcher
from nixdeck.ui.bridge import WATCH_MS

WRITER = r"""
import json, random, sys, time
from pathlib import Path
from nixdeck.core.tasks.model import TaskRecord, TaskState
from nixdeck.core.tasks.store import TaskStore
store = TaskStore(Path(sys.argv[1]), recover=False)
for i in range(int(sys.argv[2])):
    time.sleep(random.uniform(0.05, 0.6))
    t = store.insert_task(TaskRecord(kind="run_command", title=f"cli {i}", state=TaskState.RUNNING))
    print(json.dumps({"id": t.id, "at": time.time()}), flush=True)
    time.sleep(random.uniform(0.05, 0.6))
    store.update_task(t.id, state=TaskState.COMPLETED, phase="exited 0")
    print(json.dumps({"id": t.id, "at": time.time(), "end": True}), flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="nixdeck-live-"))
    try:
        store = TaskStore(data)
        with store.transaction():
            for i in range(args.history):
                store.insert_task(TaskRecord(kind="build_device", title=f"old {i}", state=TaskState.COMPLETED))
        watcher = StoreWatcher(store)
        t0 = time.perf_counter()
        for _ in range(2000):
            watcher.poll()
        idle_us = (time.perf_counter() - t0) / 2000 * 1e6
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(args.rounds)],
                                  stdout=subprocess.PIPE, text=True)
        seen: dict[tuple[int, bool], float] = {}
        changed_costs: list[float] = []
        while writer.poll() is None or len(seen) < 2 * args.rounds:
            t = time.perf_counter()
            events = watcher.poll()
            if events:
                changed_costs.append(time.perf_counter() - t)
            now = time.time()
            for ev in events:
                seen.setdefault((ev.task.id, False), now)  # an ended task was also seen created
                if ev.task.state.terminal:
                    seen.setdefault((ev.task.id, True), now)
            if len(seen) >= 2 * args.rounds:
                break
            time.sleep(WATCH_MS / 1000)
        out, _ = writer.communicate(timeout=60)
        delays = []
        for line in out.splitlines():
            rec = json.loads(line)
            key = (rec["id"], bool(rec.get("end")))
            delays.append((seen[key] - rec["at"]) * 1000)
        store.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    changed_us = statistics.median(changed_costs) * 1e6 if changed_costs else 0.0
    print(f"history {args.history} tasks, {len(delays)} changes seen, poll every {WATCH_MS} ms")
    print(f"RESULT seen_max_ms={max(delays):.0f} seen_p50_ms={statistics.median(delays):.0f} "
          f"idle_poll_us={idle_us:.1f} changed_poll_us={changed_us:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
