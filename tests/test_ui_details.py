"""Task details window: live output, processes, messages panes, links, rerun and cancel."""

from __future__ import annotations

import shlex

import pytest
from PySide6.QtWidgets import QApplication

from nixdeck.core.tasks.events import MessagesAdded
from nixdeck.core.tasks.model import MessageRecord, TaskState
from nixdeck.ui.details import TaskDetailsWindow
from nixdeck.ui.messages_model import LevelRole, LocationRole
from ui_helpers import UiEnv, py, ui  # noqa: F401

pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints")


def _open(env: UiEnv, tid: int) -> TaskDetailsWindow:
    w = TaskDetailsWindow(env.store, env.engine, env.bridge, tid)
    w.show()
    return w


def test_live_run_command_details(ui: UiEnv) -> None:  # noqa: F811
    code = ("import sys, time\nfor i in range(300):\n    print('line', i, flush=True)\n    time.sleep(0.002)\n"
            "print('oops', file=sys.stderr)\nsys.exit(3)")
    tid = ui.submit(code)
    w = _open(ui, tid)
    w.show_tab("stdout")
    ui.wait_until(lambda: w.stdout.log.model.rowCount() > 0)
    assert w.cancel_button.isVisible() and not w.rerun_button.isVisible(), (w.task.state, w.cancel_button.isHidden())
    assert ui.run(ui.engine.wait(tid)).state == TaskState.FAILED
    ui.wait_until(lambda: w.task.state == TaskState.FAILED and w.stdout.log.model.rowCount() == 300)
    assert w.stdout.log.model.line_text(299) == "line 299"
    assert w.stdout.log.is_following()
    ui.wait_until(lambda: w.stderr.log.model.rowCount() == 1)
    assert w.stderr.log.model.line_text(0) == "oops"
    assert "exited with code 3" in w.overview.labels["Error"].text()
    assert [f.text() for f in w.processes.command_fields] == [shlex.join(py(code))]
    assert '"argv"' in w.submission.toPlainText()
    assert w.rerun_button.isVisible() and w.force_button.isVisible() and not w.cancel_button.isVisible()
    assert not w.failed_button.isVisible()
    assert w.jobs.topLevelItemCount() == 1 and w.jobs.topLevelItem(0).child(0).text(1) == "failed"


def test_cancel_button_and_rerun_origin_link(ui: UiEnv) -> None:  # noqa: F811
    tid = ui.submit("import time\nprint('hi', flush=True)\ntime.sleep(60)")
    w = _open(ui, tid)
    ui.wait_until(lambda: w.task.state == TaskState.RUNNING)
    w.cancel_button.click()
    assert ui.run(ui.engine.wait(tid)).state == TaskState.CANCELED
    ui.wait_until(lambda: w.rerun_button.isVisible())
    opened: list[int] = []
    w.openTask.connect(opened.append)
    w.rerun_button.click()
    ui.wait_until(lambda: bool(opened))
    new_id = opened[0]
    new = _open(ui, new_id)
    origin = new.overview.labels["Origin"]
    assert f'href="task:{tid}"' in origin.text() and origin.isVisible()
    links: list[int] = []
    new.openTask.connect(links.append)
    origin.linkActivated.emit(f"task:{tid}")
    assert links == [tid]
    ui.run(ui.engine.cancel(new_id))
    ui.run(ui.engine.wait(new_id))


def test_messages_panes_show_locations(ui: UiEnv, qtmodeltester) -> None:  # noqa: F811
    tid = ui.engine.record("Build alpha", {"device": "alpha"}, kind="build_device", silent=False,
                           state=TaskState.FAILED, result={"image_path": "/tmp/images/alpha.iso"})
    trace = [{"message": "while evaluating the attribute 'config'", "file": "/src/flake.nix", "line": 7, "column": 3}]
    ui.store.add_messages(tid, [
        MessageRecord(level="error", message="undefined variable 'pkgs'", file="/src/hosts/alpha.nix", line=12,
                      column=5, trace=trace, source="nix"),
        MessageRecord(level="warning", message="Git tree '/src' is dirty", source="nix"),
        MessageRecord(level="notice", message="(use '--show-trace' to show detailed location information)"),
        MessageRecord(level="info", message="evaluating derivation"),
    ])
    w = _open(ui, tid)
    qtmodeltester.check(w.messages)
    errors = w.message_panes["Errors"]
    qtmodeltester.check(errors.proxy)
    assert errors.proxy.rowCount() == 1
    idx = errors.proxy.index(0, 0)
    assert "/src/hosts/alpha.nix:12:5" in idx.data() and idx.data(LevelRole) == "error"
    assert idx.data(LocationRole) == "/src/hosts/alpha.nix:12:5"
    assert "while evaluating the attribute 'config'" in errors.detail.toPlainText()
    assert "/src/flake.nix:7:3" in errors.detail.toPlainText()
    errors.list.doubleClicked.emit(idx)
    assert QApplication.clipboard().text() == "/src/hosts/alpha.nix:12:5"
    assert w.message_panes["Warnings"].proxy.rowCount() == 1
    assert w.message_panes["Infos"].proxy.rowCount() == 2
    assert w.tabs.tabText(w.tabs.indexOf(errors)) == "Errors (1)"
    assert [b.text() for b in w.overview.result_buttons] == ["Open image folder"]
    # new messages arrive live
    late = MessageRecord(level="error", message="attribute 'beta' missing", file="/src/flake.nix", line=20)
    ui.store.add_messages(tid, [late])
    ui.engine.bus.emit(MessagesAdded(tid, [late]))
    ui.wait_until(lambda: errors.proxy.rowCount() == 2)
    assert w.tabs.tabText(w.tabs.indexOf(errors)) == "Errors (2)"
