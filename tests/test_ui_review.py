"""Regressions found by reviewing the window: output floods, cut-off dialog texts, dialog focus,
details windows closed mid-action, links to pruned tasks, a repeating error, a corrupt ui.ini."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QWidget

from nixdeck.core.tasks.events import OutputAppended
from nixdeck.ui import bridge as bridge_mod
from nixdeck.ui.dialogs import DeployDialog, FlakeUpdateDialog, NewProjectDialog, RunCommandDialog
from nixdeck.ui.inventory_dialogs import TagDialog
from nixdeck.ui.mainwindow import MAX_ERRORS_IN_BOX, MainWindow
from ui_helpers import UiEnv, ui  # noqa: F401

pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints", "This plugin does not support raise")


def _window(env: UiEnv, ini: str = "ui.ini") -> MainWindow:
    QApplication.setQuitOnLastWindowClosed(False)  # as NixDeckApp does: teardown closes every window
    settings = QSettings(str(env.store.data_dir / ini), QSettings.Format.IniFormat)
    w = MainWindow(env.store, env.engine, env.bridge, settings)
    w.show()
    return w


@pytest.mark.timeout(20)  # a hang guard: ~0.66 s now; the old re-join of 4 MiB per line took ~50 s here
def test_output_flood_keeps_the_exact_tail_without_rejoining(ui: UiEnv) -> None:  # noqa: F811
    got: list[str] = []
    ui.bridge.output.connect(lambda _t, _p, _s, text: got.append(text))
    line = "x" * 99 + "\n"
    n = 400_000  # 40 MB of one-line events (remote commands send one event per line) in one flush
    for i in range(n):
        ui.engine.bus.emit(OutputAppended(1, 1, "stdout", line if i != n - 2 else "y" * 250 + "\n"))
    ui.bridge.flush()
    (text,) = got
    expected_tail = "y" * 250 + "\n" + line
    assert len(text) == bridge_mod.MAX_PENDING_TEXT
    assert text.endswith(expected_tail) and text.startswith("x")
    # a piece larger than what is kept is cut, not dropped
    got.clear()
    ui.engine.bus.emit(OutputAppended(1, 1, "stderr", "a" * 10))
    ui.engine.bus.emit(OutputAppended(1, 1, "stderr", "b" * (bridge_mod.MAX_PENDING_TEXT + 5)))
    ui.bridge.flush()
    assert got == ["b" * bridge_mod.MAX_PENDING_TEXT]


def _focus_chain(dlg: QWidget) -> list[QWidget]:
    chain, w = [], dlg.nextInFocusChain()
    while w is not dlg and w not in chain:
        chain.append(w)
        w = w.nextInFocusChain()
    return [w for w in chain if w.isVisibleTo(dlg) and w.isEnabled() and w.focusPolicy().value & 1]


def test_dialog_texts_are_not_cut_off_and_the_first_field_has_the_focus(ui: UiEnv) -> None:  # noqa: F811
    parent = QMainWindow()
    parent.resize(1280, 800)
    parent.show()
    flake = ui.store.data_dir / "flake"
    flake.mkdir()
    dialogs = [
        DeployDialog(["gateway", "kiosk-1", "kiosk-2"], parent=parent),
        DeployDialog([f"device-{i}" for i in range(12)], ["device-3"], parent=parent),
        TagDialog(["kiosk-1"], ["edge", "gateway", "kiosk", "lobby", "sensors"], parent=parent),
        TagDialog([f"device-{i}" for i in range(30)], ["edge", "gateway", "kiosk", "lobby", "sensors"] * 3,
                  parent=parent),
        FlakeUpdateDialog(str(flake), parent=parent),
        RunCommandDialog(["a", "b"], "a", "/tmp", selected=["a"], parent=parent),
        NewProjectDialog(parent),
    ]
    for dlg in dialogs:
        dlg.open()
        ui.settle(0.05)
        for lab in dlg.findChildren(QLabel):
            if lab.isVisible() and lab.wordWrap() and lab.text():
                assert lab.height() >= lab.heightForWidth(lab.width()), (type(dlg).__name__, lab.text())
        chain = _focus_chain(dlg)
        buttons = [w for w in chain if dlg.buttons.isAncestorOf(w)]
        assert buttons and chain[-len(buttons):] == buttons, (type(dlg).__name__, chain)  # Tab ends on the buttons
        focus = QApplication.focusWidget()
        assert focus is not None and not dlg.buttons.isAncestorOf(focus), (type(dlg).__name__, focus)
        dlg.reject()
    deploy = dialogs[0]
    assert "kiosk-2" in deploy.summary.text()  # the rollout's device line is there (it was cut off)
    new = dialogs[-1]
    assert isinstance(new, NewProjectDialog)
    directory = next(lab for lab in new.findChildren(QLabel) if "Directory" in lab.text())
    assert directory.buddy() is new.path  # Alt+D, and no literal "&" on screen


def test_closed_details_window_ignores_a_late_rerun_and_pruned_links_are_told(ui: UiEnv) -> None:  # noqa: F811
    w = _window(ui)
    tid = ui.submit("print('hi')")
    ui.run(ui.engine.wait(tid))
    details = w.open_task_details(tid)
    assert details is not None
    details.rerun_button.click()  # the rerun resolves on the loop, after the window is gone
    details.close()
    ui.settle(0.3)
    assert len(ui.store.list_tasks(kinds=["run_command"])) == 2
    assert w.error_box is None  # no "Signal source has been deleted"
    # an origin/parent link (or the Tasks dock) naming a task pruned from the history
    details = w.open_task_details(tid)
    assert details is not None
    details.overview.openTask.emit(999_999)
    ui.settle(0.05)
    assert "no longer in the history" in w.statusBar().currentMessage()
    assert w.error_box is None
    for t in ui.store.list_tasks(kinds=["run_command"]):
        ui.run(ui.engine.wait(t.id))


def test_a_repeating_error_does_not_grow_the_message_past_the_screen(ui: UiEnv) -> None:  # noqa: F811
    w = _window(ui)
    for i in range(200):
        w.show_error("Refresh failed", f"attempt {i}: database is locked")
    box = w.error_box
    assert box is not None
    assert box.text().count("database is locked") == 1 + MAX_ERRORS_IN_BOX
    assert f"{200 - 1 - MAX_ERRORS_IN_BOX} more errors" in box.informativeText()
    box.close()
    ui.settle(0.05)
    w.show_error("Other", "a fresh message")
    assert w.error_box is not None and w.error_box.informativeText() == ""


@pytest.mark.qt_log_ignore("propagateSizeHints", "QVariant::load")  # Qt's note on the garbage it skips
def test_corrupt_window_settings_are_ignored(ui: UiEnv, data_dir: Path) -> None:  # noqa: F811
    (data_dir / "ui.ini").write_bytes(b"\x00\xff[window]\ngeometry=@ByteArray(\x01\x02garbage)\nstate=12\n"
                                      b"[tasks]\nheader=@Variant(\x00\x00\x00\x7f)\nshow_silent=maybe\n[[[\n")
    w = _window(ui)
    w.restore_ui_state()
    assert w.isVisible() and not w.tasks_dock.silent_check.isChecked()
    w.save_ui_state()
