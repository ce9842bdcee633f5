"""App start and stop: quitting with running tasks, one instance per data dir, the exception hook."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from nixdeck.core.ops.run_command import RunCommandSubmission
from nixdeck.core.tasks.model import TaskState
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.app import EXIT_ALREADY_RUNNING, NixDeckApp, SingleInstance
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")

SLEEPER = [sys.executable, "-c", "import time\nprint('started', flush=True)\ntime.sleep(600)"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_quit_with_a_running_task_asks_then_cancels_it(qloop, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)

    async def scenario() -> int:
        await nx.start()
        nx.window.ensure_operations()  # the app registers them once the window is shown
        tid = await nx.engine.submit("run_command", RunCommandSubmission(argv=SLEEPER))
        await until(lambda: nx.store.processes(tid) and nx.store.processes(tid)[0].pid, "the process started")
        pid = nx.store.processes(tid)[0].pid
        assert pid is not None and not _gone(pid)
        nx.window.close()  # the window's close button asks, it does not close
        await until(lambda: nx.quit_box is not None and nx.quit_box.isVisible(), "the question")
        assert nx.window.isVisible()
        # "Keep running" keeps everything as it was
        nx.quit_box.button(QMessageBox.StandardButton.No).click()
        await asyncio.sleep(0.1)
        assert nx.engine.live(tid).state == TaskState.RUNNING and nx.window.isVisible()
        # ask again and accept
        nx.window.commands.actions["quit"].trigger()
        await until(lambda: nx.quit_box is not None and nx.quit_box.isVisible(), "the question again")
        nx.quit_box.button(QMessageBox.StandardButton.Yes).click()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")
        assert not nx.window.isVisible()
        return pid

    pid = run(qloop, scenario())
    store = TaskStore(data_dir)
    (t,) = store.list_tasks(kinds=["run_command"])
    assert t.state == TaskState.CANCELED
    assert _gone(pid)
    store.close()


def test_second_instance_is_refused_and_raises_the_first(qloop, data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)
    instance = SingleInstance(data_dir)
    assert instance.acquire()
    assert not SingleInstance(data_dir).acquire()  # the same check a second process makes
    raised: list[bool] = []
    instance.raiseRequested.connect(lambda: raised.append(True))

    async def scenario() -> tuple[int, str]:
        await nx.start()
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nixdeck", "--data-dir", str(data_dir), "gui",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        _out, err = await proc.communicate()
        await until(lambda: raised, "the first instance is asked to raise its window")
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")
        return proc.returncode or 0, err.decode()

    code, err = run(qloop, scenario())
    instance.release()
    assert code == EXIT_ALREADY_RUNNING
    assert f"NixDeck is already running for {data_dir}" in err
    # released: the next start may own the data dir
    again = SingleInstance(data_dir)
    assert again.acquire()
    again.release()


def test_uncaught_errors_show_in_the_window(qloop, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)

    def broken_slot() -> None:
        raise ValueError("boom from a Qt slot")

    def broken_callback() -> None:
        raise RuntimeError("boom from an asyncio callback")

    async def scenario() -> None:
        await nx.start()
        QTimer.singleShot(0, broken_slot)
        await until(lambda: nx.reporter.count >= 1, "the slot error is reported")
        assert "boom from a Qt slot" in nx.window.statusBar().currentMessage()
        box = nx.window.error_box
        assert box is not None and box.isVisible() and not box.isModal()
        assert "ValueError: boom from a Qt slot" in box.text()
        asyncio.get_running_loop().call_soon(broken_callback)
        await until(lambda: nx.reporter.count >= 2, "the loop error is reported")
        assert "boom from an asyncio callback" in box.text()  # appended to the open message
        assert nx.window.isVisible()  # still alive
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())
    logged = [r.getMessage() for r in caplog.records if r.name == "nixdeck.ui.app"]
    assert any("unexpected error" in m for m in logged)
