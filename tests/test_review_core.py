"""Regression tests for defects found in a review of the core and the CLI (real processes, real CLI)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from engine_helpers import PY, cli_env, db_rows, live_with_marker, nixdeck, nixdeck_bg, run_engine, wait_for
from fleet_fixtures import copy_fleet
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskRecord, TaskState
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.submission import Submission


def _running(data_dir: Path, task_id: int) -> bool:
    rows = db_rows(data_dir, "SELECT state FROM tasks WHERE id = ?", (task_id,))
    return bool(rows) and rows[0]["state"] == "running"


def test_bad_values_are_usage_errors_not_tracebacks(data_dir: Path, tmp_path: Path) -> None:
    fleet = copy_fleet(tmp_path, salt="")
    for args in (
        ["ssh", "run", "--project", str(fleet), "--limit", "0", "web1", "db1", "--", "uptime"],
        ["ssh", "run", "--project", str(fleet), "--timeout", "0", "web1", "--", "uptime"],
        ["run", "--", ""],
    ):
        res = nixdeck(data_dir, *args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and res.stderr.startswith("nixdeck "), res.stderr
    res = nixdeck(data_dir, "ssh", "run", "--project", str(fleet), "--limit", "0", "web1", "db1", "--", "uptime")
    assert "--limit" in res.stderr and "from 1 to" in res.stderr
    for args in (["--timeout", "-1"], ["--timeout", "0"], ["--retries", "-1"]):
        res = nixdeck(data_dir, "run", *args, "--", "true")
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr  # usage errors (issue 10)
        assert "give a" in res.stderr and args[0] in res.stderr, res.stderr
    assert db_rows(data_dir, "SELECT id FROM tasks") == [], "a refused value creates no task"
    res = nixdeck(data_dir, "run")
    assert res.returncode == 2 and "give a command" in res.stderr and res.stdout == ""


def test_cancel_of_a_task_whose_nixdeck_is_stopped_says_so(data_dir: Path) -> None:
    marker = f"review-stopped-{os.getpid()}"
    with nixdeck_bg(data_dir, "run", "--", PY, "-c", "import time; time.sleep(300)", marker) as runner:
        wait_for(lambda: _running(data_dir, 1) and live_with_marker(marker), "the task runs")
        os.kill(runner.pid, signal.SIGSTOP)
        try:
            res = nixdeck(data_dir, "tasks", "cancel", "1", "--wait", "0.5")
        finally:
            os.kill(runner.pid, signal.SIGCONT)
        assert res.returncode == 1, res.stderr
        assert "Traceback" not in res.stderr
        assert "still running" in res.stderr and f"pid {runner.pid}" in res.stderr
        # the request stays in the database: once it runs again, that NixDeck cancels the task
        runner.wait(60)
    assert db_rows(data_dir, "SELECT state FROM tasks WHERE id = 1")[0]["state"] == "canceled"
    assert live_with_marker(marker) == []


def test_log_follow_ends_when_the_owner_is_killed(data_dir: Path) -> None:
    marker = f"review-follow-{os.getpid()}"
    code = "import time\nprint('started', flush=True)\ntime.sleep(300)"
    with nixdeck_bg(data_dir, "run", "--", PY, "-c", code, marker) as runner:
        wait_for(lambda: _running(data_dir, 1) and live_with_marker(marker), "the task runs")
        follow = subprocess.Popen(
            [PY, "-m", "nixdeck", "tasks", "log", "1", "--follow", "--stream", "stdout"], env=cli_env(data_dir),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert follow.stdout is not None
            first = follow.stdout.readline()  # it follows: past its start-up, in its polling loop
            runner.kill()  # the NixDeck running the task dies without recording its end
            runner.wait(30)
            out, err = follow.communicate(timeout=60)
            out = first + out
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.communicate()
    assert follow.returncode == 1, err  # the followed task ended interrupted (issue 10)
    assert out == "started\n"
    task = json.loads(nixdeck(data_dir, "tasks", "show", "1", "--json").stdout)["task"]
    assert task["state"] == "interrupted"
    assert live_with_marker(marker) == [], "the orphaned process was ended"


class _SinkFailsSub(Submission):
    marker: str
    stdin_bytes: int = 0


class _SinkFailsOp(Operation):
    """Its stdout sink fails after the first chunk, as a full disk or a broken parser would."""

    kind = "review_sink_fails"
    submission_type = _SinkFailsSub
    default_timeout = 60.0

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, _SinkFailsSub)
        calls = 0

        def sink(data: bytes) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OSError(errno.ENOSPC, "No space left on device")

        code = "import sys, time\nfor i in range(100000): print('x' * 60)\ntime.sleep(300)"
        await ctx.run_process([PY, "-c", code, sub.marker], on_stdout=sink)


class _StdinOp(Operation):
    """Feeds megabytes on stdin to a process that exits without reading them."""

    kind = "review_stdin"
    submission_type = _SinkFailsSub

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, _SinkFailsSub)
        res = await ctx.run_process([PY, "-c", "print('done')", sub.marker], stdin_data=b"y" * sub.stdin_bytes)
        ctx.set_result(exit_code=res.exit_code)


def test_a_failing_output_sink_stops_the_process_and_fails_the_task(data_dir: Path) -> None:
    marker = f"review-sink-{os.getpid()}"

    async def scenario(engine: TaskEngine) -> TaskRecord:
        engine.register(_SinkFailsOp())
        tid = await engine.submit("review_sink_fails", _SinkFailsSub(marker=marker), timeout=45)
        return await engine.wait(tid)

    t = run_engine(data_dir, scenario)
    # before: the pump stopped reading, the process blocked on a full pipe until the timeout
    assert t.state == TaskState.FAILED, (t.state, t.error)
    assert t.error is not None and t.error.startswith("disk full writing "), t.error
    assert live_with_marker(marker) == []


def test_stdin_not_read_by_the_process_is_no_internal_error(data_dir: Path) -> None:
    marker = f"review-stdin-{os.getpid()}"

    async def scenario(engine: TaskEngine) -> TaskRecord:
        engine.register(_StdinOp())
        tid = await engine.submit("review_stdin", _SinkFailsSub(marker=marker, stdin_bytes=8 << 20))
        return await engine.wait(tid)

    t = run_engine(data_dir, scenario)
    assert t.state == TaskState.COMPLETED, t.error
    assert t.result == {"exit_code": 0}


def _open_store_in_step(data_dir: Path, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    barrier.wait()
    try:
        TaskStore(data_dir).close()
    except Exception as e:  # noqa: BLE001 - collected for the assert
        errors.append(e)


def test_nixdecks_opening_a_fresh_data_dir_at_once_all_succeed(tmp_path: Path) -> None:
    """Before: each one migrated the empty file; all but one failed with "table tasks already exists".

    Threads with their own connections lock the file as separate processes would (and start in step)."""
    for round_ in range(10):
        fresh = tmp_path / f"fresh-{round_}"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_open_store_in_step, args=(fresh, barrier, errors)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = db_rows(fresh, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'tasks'")
        assert len(rows) == 1


def test_a_token_in_the_users_nix_config_is_not_recorded(data_dir: Path, tmp_path: Path) -> None:
    """NIX_CONFIG is merged into every Nix call's added environment, which is stored and shown."""
    fleet = copy_fleet(tmp_path, salt="")
    token = f"ghp_review{os.getpid()}secret"
    env = cli_env(data_dir, NIX_CONFIG=f"access-tokens = github.com={token}\nwarn-dirty = false")
    res = nixdeck(data_dir, "build", "--project", str(fleet), "--no-closure-size", "--json", "web1", env=env)
    assert res.returncode == 0, res.stderr
    [t] = json.loads(res.stdout)
    show = nixdeck(data_dir, "tasks", "show", str(t["id"]), "--json")
    procs = json.loads(show.stdout)["processes"]
    assert procs and all("access-tokens = ***redacted***" in p["env"]["NIX_CONFIG"] for p in procs)
    assert "warn-dirty = false" in procs[0]["env"]["NIX_CONFIG"], "other settings stay readable"
    assert token not in show.stdout + nixdeck(data_dir, "tasks", "show", str(t["id"])).stdout
    assert db_rows(data_dir, "SELECT id FROM processes WHERE env LIKE ?", (f"%{token}%",)) == []


def test_a_mistyped_device_is_named_with_the_devices_there(tmp_path: Path) -> None:
    """`ssh run typo` must not only say "set its target" (that would add an orphan entry for a typo)."""
    fleet = copy_fleet(tmp_path, salt="")
    data = tmp_path / "data"
    (fleet / "nixdeck.toml").write_text('version = 1\n[devices.web1]\nhost = "127.0.0.250"\n')
    res = nixdeck(data, "ssh", "run", "--project", str(fleet), "wbe1", "--", "true")
    assert res.returncode == 1, res.stderr
    assert "device wbe1 is not in nixdeck.toml (devices there: web1)" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
