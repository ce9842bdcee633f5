"""A 500 MB output stream costs disk, not memory: the runner's peak RSS stays flat (a memory bound)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from engine_helpers import cli_env

CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from nixdeck.core.ops.run_command import RunCommand, RunCommandSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import OutputAppended
from nixdeck.core.tasks.store import TaskStore

def hwm_kb():
    for ln in Path('/proc/self/status').read_text().splitlines():
        if ln.startswith('VmHWM:'):
            return int(ln.split()[1])

async def main():
    store = TaskStore(Path(sys.argv[1]))
    engine = TaskEngine(store)
    engine.register(RunCommand())
    seen = [0]
    def on(ev):
        if isinstance(ev, OutputAppended):
            seen[0] += len(ev.text)
    engine.subscribe(on)
    # warm up every code path once, so the "before" figure includes imports and buffers
    warm = await engine.submit('run_command', RunCommandSubmission(argv=['sh', '-c', 'head -c 4M /dev/zero | tr "\\0" "\\n"']))
    await engine.wait(warm)
    before = hwm_kb()
    seen[0] = 0
    # 500 MB of 101-byte lines, plus one 8 MB line without a newline (passed on in pieces)
    gen = 'yes "$(printf "%0100d" 0)" | head -c 500M; head -c 8M /dev/zero | tr "\\0" x'
    tid = await engine.submit('run_command', RunCommandSubmission(argv=['sh', '-c', gen]))
    t = await engine.wait(tid)
    after = hwm_kb()
    [p] = store.processes(tid)
    print(json.dumps({'state': t.state.value, 'before_kb': before, 'after_kb': after, 'size': p.stdout_size,
                      'seen': seen[0], 'file': p.stdout_path}))
    await engine.close()

asyncio.run(main())
"""


def test_500mb_stream_keeps_rss_flat(data_dir: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir)], env=cli_env(data_dir), capture_output=True, text=True, timeout=240
    )
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout.strip().splitlines()[-1])
    size = 500 * 1024 * 1024 + 8 * 1024 * 1024  # plus a final newline unless the last piece was cut whole
    try:
        assert r["state"] == "completed"
        assert r["size"] in (size, size + 1)
        assert Path(r["file"]).stat().st_size == r["size"]
        assert r["seen"] == r["size"], "every byte reached the subscribers"
        growth_mb = (r["after_kb"] - r["before_kb"]) / 1024
        assert growth_mb < 50, r
    finally:
        shutil.rmtree(data_dir / "logs", ignore_errors=True)
