"""The main window on a real project: the device table, actions, Run command end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fleet_fixtures import ALL_DEVICES, copy_fleet
from nixdeck.core.tasks.model import TaskState
from nixdeck.ui.app import NixDeckApp
from nixdeck.ui.dialogs import RunCommandDialog
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return copy_fleet(tmp_path, salt="")


def test_window_lists_the_project_devices_and_filters(qloop, fleet: Path, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        names = sorted(r.name for r in w.model.rows())
        assert names == sorted(ALL_DEVICES)
        assert w.proxy.rowCount() == len(ALL_DEVICES)
        assert all(w.model.index(i, 1).data() == "no target yet" for i in range(w.model.rowCount()))
        w.text_filter.setText("web")
        assert sorted(w.proxy.index(r, 0).data() for r in range(w.proxy.rowCount())) == ["web1", "web2"]
        w.text_filter.clear()
        w.select_devices(["web1", "db1"])
        assert [r.name for r in w.selected_devices()] == ["db1", "web1"]
        # the shortcuts are where the menus say
        acts = w.commands.actions
        assert acts["build"].shortcut().toString() == "Ctrl+B"
        assert acts["deploy"].shortcut().toString() == "Ctrl+D"
        assert acts["run_command"].shortcut().toString() == "Ctrl+R"
        assert acts["open_project"].shortcut().toString() == "Ctrl+O"
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())
    # the project is remembered for the next start
    nx2 = NixDeckApp(data_dir)

    async def second() -> None:
        await nx2.start()
        assert nx2.window.project is not None and nx2.window.project.path == fleet.resolve()
        nx2.quit_now()
        await until(lambda: nx2._done is not None and nx2._done.is_set(), "shutdown")

    run(qloop, second())


def test_run_command_action_makes_a_task_that_completes(qloop, fleet: Path, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        w.select_devices(["web1"])
        w.commands.actions["run_command"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, RunCommandDialog)
        assert dlg.device_name() == "web1"
        dlg.command.setText(f"{sys.executable} -c \"print('hello from nixdeck')\"")
        assert dlg.ok_button.isEnabled()
        dlg.accept()
        tasks = await until(lambda: nx.store.list_tasks(kinds=["run_command"]), "the task is submitted")
        t = await nx.engine.wait(tasks[0].id)
        assert t.state == TaskState.COMPLETED, t.error
        assert t.devices == ["web1"]
        assert t.project == str(fleet.resolve())
        proc = nx.store.processes(t.id)[0]
        assert Path(proc.stdout_path or "").read_text() == "hello from nixdeck\n"
        # the Tasks dock shows it, completed
        await until(lambda: w.tasks_dock.state_of(t.id) == "completed", "the task is completed in the Tasks dock")
        await until(lambda: w.counts_label.text() == "Running: 0   Pending: 0", "counts are updated")
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())


def test_bad_command_line_keeps_ok_disabled(qtbot) -> None:
    dlg = RunCommandDialog(["web1"])
    qtbot.addWidget(dlg)
    dlg.command.setText("echo 'unterminated")
    assert not dlg.ok_button.isEnabled()
    assert "cannot split" in dlg.error.text()
    dlg.command.setText("echo 'fine now'")
    assert dlg.ok_button.isEnabled()
    assert dlg.argv() == ["echo", "fine now"]


def test_refused_submission_shows_why_and_submits_nothing(qloop, fleet: Path, data_dir: Path) -> None:  # noqa: F811
    from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission

    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        sub = w.commands.make("Deploy", DeployDevicesSubmission, project_dir=str(fleet), devices=[], limit=0)
        assert sub is None
        w.commands.submit("deploy_devices", "Deploy", sub)
        box = w.error_box
        assert box is not None and box.windowTitle() == "Deploy: invalid input"
        assert "devices: List should have at least 1 item" in box.text()
        assert "limit: Input should be greater than or equal to 1" in box.text()
        assert nx.store.list_tasks(include_silent=False) == []  # opening the project is a silent record
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())


def test_long_task_end_is_notified_in_the_window(qloop, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, notify_after=0.0)  # every task counts as long here
    seen: list[tuple[int, str, str]] = []
    nx.notifier.notified.connect(lambda tid, title, body: seen.append((tid, title, body)))

    async def scenario() -> None:
        await nx.start()
        from nixdeck.core.ops.run_command import RunCommandSubmission

        sub = RunCommandSubmission(argv=[sys.executable, "-c", "import time, sys; time.sleep(0.2); sys.exit(3)"])
        nx.window.ensure_operations()  # the app registers them once the window is shown
        tid = await nx.engine.submit("run_command", sub)
        await nx.engine.wait(tid)
        await until(lambda: seen, "the notification")
        assert seen[0][0] == tid and seen[0][1] == "Task failed"
        assert "exited with code 3" in seen[0][2]
        if nx.notifier.tray is None:  # no system tray offscreen: the in-window banner says it
            assert nx.window.banner.isVisible()
            assert "exited with code 3" in nx.window.banner.label.text()
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())


def test_gui_subcommand_is_registered() -> None:
    from nixdeck.cli import build_parser

    args = build_parser().parse_args(["gui", "--project", "/some/where"])
    assert args.project == "/some/where" and args.func.__name__ == "cmd_gui"


def test_window_state_is_remembered_in_the_data_dir(qloop, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)

    async def first() -> None:
        await nx.start()
        nx.window.resize(720, 540)  # within the offscreen screen (800x600)
        nx.window.table.setColumnWidth(1, 333)
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, first())
    assert (data_dir / "ui.ini").is_file()
    nx2 = NixDeckApp(data_dir)

    async def second() -> None:
        await nx2.start()
        assert nx2.window.table.columnWidth(1) == 333
        assert (nx2.window.width(), nx2.window.height()) == (720, 540)
        nx2.quit_now()
        await until(lambda: nx2._done is not None and nx2._done.is_set(), "shutdown")

    run(qloop, second())


@pytest.mark.qt_log_ignore("does not support raise", "propagateSizeHints")
def test_failures_always_notify_successes_only_when_long_and_click_opens(qloop, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)  # the default: only long successes notify
    seen: list[int] = []
    nx.notifier.notified.connect(lambda tid, title, body: seen.append(tid))

    async def scenario() -> None:
        await nx.start()
        from nixdeck.core.ops.run_command import RunCommandSubmission

        assert nx.bridge.watcher is not None  # the window also shows tasks of other processes
        nx.window.ensure_operations()
        ok = await nx.engine.submit("run_command", RunCommandSubmission(argv=[sys.executable, "-c", "pass"]))
        await nx.engine.wait(ok)
        bad = await nx.engine.submit("run_command", RunCommandSubmission(argv=[sys.executable, "-c", "exit(4)"]))
        await nx.engine.wait(bad)
        await until(lambda: seen, "the failure's notification")
        assert seen == [bad]  # the quick success said nothing; the quick failure did
        if nx.notifier.tray is None:
            banner = nx.window.banner
            assert banner.isVisible() and banner.action_button.text() == "Open task"
            banner.action_button.click()
        else:
            nx.notifier.open_last()
        assert bad in nx.window._details  # clicking opened the task
        nx.window.banner.show_message("short-lived", timeout_ms=50)
        await until(lambda: not nx.window.banner.isVisible(), "the banner hides itself")
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())
