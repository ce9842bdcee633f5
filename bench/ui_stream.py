"""Benchmark of the task views (run offscreen: QT_QPA_PLATFORM=offscreen python bench/ui_stream.py).

Measures, in order:
- window_ms: launch of the real GUI (`nixdeck.ui.app`, as `python -m nixdeck` runs it) until its main
  window is shown, in a child process with its own data dir;
- max_stall_ms / last_line_ms: while a run_command task prints 200k lines over a few seconds into an
  open details window (stdout tab), the largest lateness of a 10 ms QTimer, and the delay from the
  last line being written to it being in the stdout view;
- panel_100k_ms: constructing and showing the Tasks dock over a store holding 100k tasks.
Last line: `RESULT max_stall_ms=… last_line_ms=… window_ms=… panel_100k_ms=…` (targets 50, 200, 1000, 300).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

LINES = 200_000
STREAM = f"""
import sys, time
w = sys.stdout.write
n = {LINES} - 1
batch = 1000
for b in range(0, n, batch):
    w(''.join(f'building /nix/store/0123456789abcdfghijklmnpqrsvwxyz-pkg-{{i}}: compiling src/file{{i}}.c -O2\\n'
              for i in range(b, min(n, b + batch))))
    sys.stdout.flush()
    time.sleep(0.015)
print('LAST', repr(time.time()), flush=True)
"""

CHILD = """
import sys, time
from PySide6.QtWidgets import QApplication
import nixdeck.ui.app as appmod
orig = appmod.NixDeckApp.start
async def start(self):
    await orig(self)
    QApplication.processEvents()
    print("SHOWN", self.window.isVisible(), flush=True)
    self.quit_now(cancel=True)
appmod.NixDeckApp.start = start
sys.exit(appmod.main(["--data-dir", sys.argv[1]]))
"""


def window_ms(tmp: Path) -> tuple[float, str]:
    try:
        import nixdeck.ui.app  # noqa: F401
    except ImportError:
        return -1.0, "no nixdeck.ui.app"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp / "config"))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp / "gui-data")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    shown = -1.0
    for line in proc.stdout:
        if line.startswith("SHOWN"):
            shown = (time.perf_counter() - t0) * 1000
            break
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return shown, "real GUI: nixdeck.ui.app.main until the main window is shown"


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="nixdeck-bench-"))
    os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
    w_ms, w_how = window_ms(tmp)
    print(f"window: {w_ms:.0f} ms ({w_how})", flush=True)

    import qasync
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    from nixdeck.core.ops import all_operations
    from nixdeck.core.ops.run_command import RunCommandSubmission
    from nixdeck.core.tasks.engine import TaskEngine
    from nixdeck.core.tasks.model import TaskRecord, TaskState
    from nixdeck.core.tasks.store import TaskStore
    from nixdeck.ui.bridge import EngineBridge
    from nixdeck.ui.details import TaskDetailsWindow
    from nixdeck.ui.tasks_dock import TasksDock

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    store = TaskStore(tmp / "data")
    engine = TaskEngine(store)
    for op in all_operations():
        engine.register(op)
    bridge = EngineBridge(engine)

    # -- streaming into an open details window ----------------------------------------------
    stall = {"max": 0.0, "last": time.perf_counter()}

    def tick() -> None:
        now = time.perf_counter()
        stall["max"] = max(stall["max"], now - stall["last"] - 0.010)
        stall["last"] = now

    seen: dict[str, float] = {}

    async def stream() -> None:
        tid = await engine.submit("run_command", RunCommandSubmission(argv=[sys.executable, "-c", STREAM]))
        win = TaskDetailsWindow(store, engine, bridge, tid)
        win.resize(1000, 700)
        win.show()
        win.show_tab("stdout")
        model = win.stdout.log.model

        def on_rows(*_: object) -> None:
            n = model.rowCount()
            if "t" not in seen and n and model.line_text(n - 1).startswith("LAST"):
                seen["t"] = time.time()
                seen["written"] = float(model.line_text(n - 1).split()[1])
                seen["rows"] = n

        model.rowsInserted.connect(on_rows)
        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.timeout.connect(tick)
        stall["last"] = time.perf_counter()
        timer.start(10)
        t0 = time.perf_counter()
        await engine.wait(tid)
        while "t" not in seen and time.perf_counter() - t0 < 120:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        timer.stop()
        seen["elapsed"] = time.perf_counter() - t0
        seen["following"] = float(win.stdout.log.is_following())
        win.close()

    loop.run_until_complete(stream())
    last_ms = (seen["t"] - seen["written"]) * 1000 if "t" in seen else -1.0
    print(f"stream: {seen.get('rows', 0):,.0f} lines in {seen.get('elapsed', 0):.1f} s, max stall "
          f"{stall['max'] * 1000:.0f} ms, last line shown after {last_ms:.0f} ms, following={bool(seen.get('following'))}",
          flush=True)

    # -- Tasks panel over 100k tasks ---------------------------------------------------------
    t = time.perf_counter()
    with store.transaction():
        for i in range(100_000):
            store.insert_task(TaskRecord(kind="build_device", title=f"Build dev{i % 50}", state=TaskState.COMPLETED,
                                         devices=[f"dev{i % 50}"]))
    print(f"inserted 100k tasks in {time.perf_counter() - t:.1f} s", flush=True)
    t0 = time.perf_counter()
    mw = QMainWindow()
    dock = TasksDock(store, engine, bridge)
    mw.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    mw.resize(1200, 500)
    mw.show()
    app.processEvents()
    mw.grab()  # painted
    panel_ms = (time.perf_counter() - t0) * 1000
    print(f"panel: {panel_ms:.0f} ms, {dock.model.rowCount()} rows loaded of 100k+", flush=True)
    mw.close()
    loop.run_until_complete(engine.close())
    bridge.close()
    store.close()
    print(f"RESULT max_stall_ms={stall['max'] * 1000:.0f} last_line_ms={last_ms:.0f} window_ms={w_ms:.0f} "
          f"panel_100k_ms={panel_ms:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
