"""Shared helpers for the task-engine tests: small test operations and process-table checks.

The operations run real subprocesses (`sys.executable -c` scripts) or only sleep; nothing of
NixDeck itself is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field

from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import TaskRecord
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.procs import group_members
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.submission import Submission

T = TypeVar("T")
PY = sys.executable
APP_DIR = str(Path(__file__).resolve().parents[1] / "app")


# -- operations ---------------------------------------------------------------------------------
class ScriptSub(Submission):
    """A python script run as `sys.executable -c code *args`; optional UserError after it succeeds."""

    code: str = "pass"
    args: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)
    user_error: str | None = None


class ScriptOp(Operation):
    kind = "test_script"
    submission_type = ScriptSub
    default_timeout = 120.0
    locks_devices = True

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, ScriptSub)
        return f"script {' '.join(submission.args)}".strip()

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, ScriptSub)
        return list(submission.devices)

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, ScriptSub)
        async with ctx.step("script"):
            res = await ctx.run_process([PY, "-c", sub.code, *sub.args], step="script")
        ctx.set_result(exit_code=res.exit_code)
        if sub.user_error:
            raise UserError(sub.user_error)


class ParentSub(Submission):
    children: list[ScriptSub] = Field(default_factory=list)


class ParentOp(Operation):
    """A fleet-like parent: submits one child per entry and waits for all of them."""

    kind = "test_parent"
    submission_type = ParentSub
    uses_slot = False

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, ParentSub)
        for child in sub.children:
            await ctx.submit_child("test_script", child)
        await ctx.wait_children()

    def rerun_failed(self, submission: Submission, failed_children: list[TaskRecord]) -> Submission:
        return ParentSub(children=[ScriptSub.model_validate(k.submission) for k in failed_children])


Outcome = Literal["ok", "fail", "user", "warn", "crash"]


class QuickSub(Submission):
    """A child that spawns no process: sleeps, then ends as `outcome` says."""

    delay: float = 0.0
    outcome: Outcome = "ok"


class QuickOp(Operation):
    kind = "test_quick"
    submission_type = QuickSub
    default_timeout = 60.0

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, QuickSub)
        await asyncio.sleep(sub.delay)
        if sub.outcome == "fail":
            raise TaskFailed("quick failure")
        if sub.outcome == "user":
            raise UserError("quick user error")
        if sub.outcome == "warn":
            ctx.warn("quick warning")
        if sub.outcome == "crash":
            raise RuntimeError("quick bug")


class QuickParentSub(Submission):
    children: list[QuickSub] = Field(default_factory=list)
    outcome: Outcome = "ok"


class QuickParentOp(Operation):
    kind = "test_quick_parent"
    submission_type = QuickParentSub
    uses_slot = False

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, QuickParentSub)
        for child in sub.children:
            await ctx.submit_child("test_quick", child)
        await ctx.wait_children()
        if sub.outcome == "fail":
            raise TaskFailed("parent failure")


TEST_OPS: list[Operation] = [ScriptOp(), ParentOp(), QuickOp(), QuickParentOp()]


def make_engine(store: TaskStore, *, ops: Iterable[Operation] | None = None, **kw: Any) -> TaskEngine:
    """An engine with short grace/retry/poll times and the test operations (or `ops`)."""
    kw.setdefault("grace", 1.0)
    kw.setdefault("retry_delay", 0.05)
    kw.setdefault("cancel_poll", 0.1)
    engine = TaskEngine(store, **kw)
    for op in TEST_OPS if ops is None else ops:
        engine.register(op)
    return engine


def run_engine(data_dir: Path, scenario: Callable[[TaskEngine], Awaitable[T]], **kw: Any) -> T:
    """Run `scenario(engine)` on a fresh loop with a fresh store; closes both afterwards."""

    async def main() -> T:
        store = TaskStore(data_dir)
        engine = make_engine(store, **kw)
        try:
            return await scenario(engine)
        finally:
            await engine.close()
            store.close()

    return asyncio.run(main())


# -- scripts ------------------------------------------------------------------------------------
def script(body: str) -> str:
    """Python source with the usual imports."""
    return "import os, sys, time, subprocess, signal\n" + body


SPAWN_TREE = script(
    """
marker, pidfile = sys.argv[1], sys.argv[2]
# a grandchild that ignores SIGTERM, and a great-grandchild under it
code = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', sys.argv[1]]); time.sleep(300)")
g = subprocess.Popen([sys.executable, '-c', code, marker])
with open(pidfile, 'a') as f:
    f.write(f"{os.getpid()}\\n{g.pid}\\n")
time.sleep(0.3)
open(pidfile + '.ready', 'w').close()
time.sleep(300)
"""
)


# -- process table ------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """True when pid exists and is not a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 :].split()[0] != b"Z"


def live_with_marker(marker: str) -> list[int]:
    """Pids (not zombies) whose command line contains `marker`."""
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) pids in process group `pgid`."""
    return group_members(pgid)


def wait_for(cond: Callable[[], T], what: str, limit: float = 60.0, step: float = 0.05) -> T:
    """Poll until cond() is truthy; a hang bound only (fails with `what`), never a timing assert."""
    end = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(step)


async def async_wait_for(cond: Callable[[], Any], what: str, limit: float = 60.0) -> Any:
    end = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def read_intervals(path: Path) -> list[tuple[int, int]]:
    """Lines "start end" (monotonic ns) written by interval scripts."""
    out = []
    for ln in path.read_text().splitlines():
        a, b = ln.split()
        out.append((int(a), int(b)))
    return out


def interval_script(path: Path, hold: float = 0.15) -> str:
    """A script that records its running interval (CLOCK_MONOTONIC is system-wide) into `path`."""
    return script(
        f"""
s = time.monotonic_ns(); time.sleep({hold}); e = time.monotonic_ns()
with open({str(path)!r}, 'a') as f:
    f.write(f"{{s}} {{e}}\\n")
"""
    )


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


# -- the CLI as another process -----------------------------------------------------------------
def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["NIXDECK_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = APP_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def nixdeck(data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m nixdeck ARGS` to completion."""
    return subprocess.run(
        [PY, "-m", "nixdeck", *args], env=env or cli_env(data_dir), capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def nixdeck_bg(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`python -m nixdeck ARGS` in the background; killed at the end if still running."""
    p = subprocess.Popen(
        [PY, "-m", "nixdeck", *args], env=env or cli_env(data_dir), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def db_rows(data_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the history without opening a TaskStore (which would run recovery)."""
    conn = sqlite3.connect(data_dir / "history.sqlite3", timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def cli_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
