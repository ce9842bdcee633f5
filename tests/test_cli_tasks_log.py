"""`nixdeck tasks log`: a task's whole output, also followed live from another process."""

from __future__ import annotations

import time
from pathlib import Path

from engine_helpers import PY, db_rows, nixdeck, nixdeck_bg


def test_log_prints_every_process_stream(data_dir: Path) -> None:
    script = "import sys; print('out-1'); print('err-1', file=sys.stderr); print('out-2')"
    assert nixdeck(data_dir, "run", "--", PY, "-c", script).returncode == 0
    both = nixdeck(data_dir, "tasks", "log", "1")
    assert both.returncode == 0
    lines = [ln for ln in both.stdout.splitlines() if not ln.startswith("==> ")]
    assert lines == ["out-1", "out-2", "err-1"]
    assert [ln[:22] for ln in both.stdout.splitlines() if ln.startswith("==> ")] == [
        "==> process 1 stdout: ", "==> process 1 stderr: "]
    only = nixdeck(data_dir, "tasks", "log", "1", "--stream", "stdout")
    assert only.stdout == "out-1\nout-2\n"
    missing = nixdeck(data_dir, "tasks", "log", "42")
    assert missing.returncode == 1 and "no task with id 42" in missing.stderr and "Traceback" not in missing.stderr


def test_log_follow_until_the_task_ends(data_dir: Path) -> None:
    script = "import time\nfor i in range(4):\n    print(f'tick-{i}', flush=True); time.sleep(0.3)"
    with nixdeck_bg(data_dir, "run", "--", PY, "-c", script) as runner:
        db = data_dir / "history.sqlite3"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            db.exists() and db_rows(data_dir, "SELECT id FROM tasks WHERE id = 1 AND state = 'running'")
        ):
            time.sleep(0.05)
        follow = nixdeck(data_dir, "tasks", "log", "1", "--follow", "--stream", "stdout")
        runner.wait(60)
        state = db_rows(data_dir, "SELECT state, error FROM tasks WHERE id = 1")
    why = f"rc={follow.returncode} stderr={follow.stderr!r} task={[tuple(r) for r in state]}"
    assert follow.returncode == 0, why
    assert follow.stdout == "".join(f"tick-{i}\n" for i in range(4)), why
