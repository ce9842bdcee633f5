"""Task engine throughput: record-only tasks, trivial subprocess tasks, and output capture.

Usage: .venv/bin/python bench/engine.py [--records N] [--procs N] [--capture-mb MB]
The last line is `RESULT record_tasks_per_s=… subprocess_tasks_per_s=… capture_mb_per_s=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from nixdeck.core.ops.run_command import RunCommand, RunCommandSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import Event, OutputAppended
from nixdeck.core.tasks.store import TaskStore


def bench_records(data_dir: Path, n: int) -> float:
    async def go() -> float:
        store = TaskStore(data_dir)
        engine = TaskEngine(store)
        t0 = time.perf_counter()
        for i in range(n):
            engine.record(f"device d{i} added", {"device": f"d{i}", "host": f"10.0.{i // 250}.{i % 250}"},
                          devices=[f"d{i}"])
        dt = time.perf_counter() - t0
        await engine.close()
        store.close()
        return n / dt

    return asyncio.run(go())


def bench_procs(data_dir: Path, n: int) -> float:
    async def go() -> float:
        store = TaskStore(data_dir)
        engine = TaskEngine(store)
        engine.register(RunCommand())
        t0 = time.perf_counter()
        ids = [await engine.submit("run_command", RunCommandSubmission(argv=["true"])) for _ in range(n)]
        for tid in ids:
            t = await engine.wait(tid)
            assert t.state.ok, t
        dt = time.perf_counter() - t0
        await engine.close()
        store.close()
        return n / dt

    return asyncio.run(go())


def bench_capture(data_dir: Path, mb: int) -> float:
    async def go() -> float:
        store = TaskStore(data_dir)
        engine = TaskEngine(store)
        engine.register(RunCommand())
        seen = [0]

        def on(ev: Event) -> None:
            if isinstance(ev, OutputAppended):
                seen[0] += len(ev.text)

        engine.subscribe(on)
        gen = f'yes "$(printf "%0100d" 0)" | head -c {mb}M'
        t0 = time.perf_counter()
        t = await engine.wait(await engine.submit("run_command", RunCommandSubmission(argv=["sh", "-c", gen])))
        dt = time.perf_counter() - t0
        assert t.state.ok and seen[0] >= mb * 1024 * 1024, (t, seen)
        await engine.close()
        store.close()
        return mb / dt

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--procs", type=int, default=1_000)
    ap.add_argument("--capture-mb", type=int, default=1024)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nixdeck-bench-"))
    try:
        rec = bench_records(root / "records", args.records)
        print(f"record: {args.records} tasks, {rec:.0f}/s", flush=True)
        procs = bench_procs(root / "procs", args.procs)
        print(f"subprocess: {args.procs} tasks of `true`, {procs:.0f}/s", flush=True)
        cap = bench_capture(root / "capture", args.capture_mb)
        print(f"capture: {args.capture_mb} MB, {cap:.0f} MB/s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"RESULT record_tasks_per_s={rec:.0f} subprocess_tasks_per_s={procs:.0f} capture_mb_per_s={cap:.0f}")


if __name__ == "__main__":
    main()
