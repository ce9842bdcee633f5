"""Dialogs behave like Qt dialogs: Enter is OK (never Browse…), errors do not move the fields,
labels are not clipped; detail windows close with Esc and Ctrl+W and open on the screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from fleet_fixtures import copy_fleet
from nixdeck.ui.app import NixDeckApp
from nixdeck.ui.dialogs import HostKeyDialog
from nixdeck.ui.inventory_dialogs import DeviceDialog, ProjectSettingsDialog
from ui_inventory_fixtures import shut_down, started
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints", "does not support raise")


def test_enter_is_ok_and_errors_do_not_move_fields(qloop, tmp_path: Path, data_dir: Path) -> None:  # noqa: F811
    fleet = copy_fleet(tmp_path, salt="")
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await started(nx)
        w = nx.window
        w.select_devices(["web1"])
        w.commands.actions["edit_device"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, DeviceDialog)
        browse = dlg.fields["identity_file"].browse
        assert not browse.autoDefault() and not browse.isDefault()
        port = dlg.fields["port"].edit
        tags = dlg.fields["tags"].edit
        dlg.fields["identity_file"].edit.setFocus()
        port.setText("99999")  # refused by validation
        QTest.keyClick(dlg.fields["identity_file"].edit, Qt.Key.Key_Return)
        await until(lambda: dlg.fields["port"].error.isVisible(), "the validation error")
        assert dlg.isVisible() and dlg.fields["identity_file"].picker is None  # Enter never browses
        await until(lambda: True, "a layout pass")
        before = tags.mapTo(dlg, tags.rect().topLeft())
        port.setFocus()
        QTest.keyClick(port, Qt.Key.Key_Backspace)  # typing a fix clears the error ...
        assert not dlg.fields["port"].error.isVisible()
        await until(lambda: True, "a layout pass")
        assert tags.mapTo(dlg, tags.rect().topLeft()) == before  # ... and the fields below stay put
        port.setText("2222")
        QTest.keyClick(port, Qt.Key.Key_Enter)
        await until(lambda: not dlg.isVisible(), "Enter accepts")
        assert dlg.fields["identity_file"].picker is None

        w.commands.actions["project_settings"].trigger()
        ps = w.commands.dialog
        assert isinstance(ps, ProjectSettingsDialog)
        for f in ps.fields.values():
            b = getattr(f, "browse", None)
            assert b is None or not b.autoDefault()
        ps.reject()
        await shut_down(nx)

    run(qloop, scenario())


def test_host_key_dialog_label_is_not_clipped(qtbot, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QApplication, QLabel

    dlg = HostKeyDialog("kiosk-1", "127.0.0.11", 22)
    qtbot.addWidget(dlg)
    dlg.show()  # shown while fetching: one short line; the longer texts come later
    QApplication.processEvents()
    dlg.show_key("SHA256:KZcv/PCVEKLJaoLCAkyJX84zE++9Gkp8fbTfR8UINCc", "changed", ["SHA256:old" * 6])
    QApplication.processEvents()
    for label in dlg.findChildren(QLabel):
        if label.isVisible() and label.text():
            need = label.heightForWidth(label.width()) if label.wordWrap() else label.sizeHint().height()
            assert label.height() >= need, (label.text(), label.height(), need)
    dlg.grab().save(str(tmp_path / "trust.png"))


def test_detail_windows_close_with_esc_and_ctrl_w_and_open_on_screen(qloop, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        tid = nx.engine.record("Something happened", {}, silent=False)
        w.move(-5000, -5000)  # a window far off the screen must not drag its details along
        win = w.open_task_details(tid)
        assert win is not None
        screen = QGuiApplication.primaryScreen().availableGeometry()
        assert screen.contains(win.frameGeometry().topLeft()) or screen.intersects(win.frameGeometry())
        again = w.open_task_details(tid)
        assert again is win  # opening it again raises the same window
        QTest.keyClick(win, Qt.Key.Key_Escape)
        await until(lambda: tid not in w._details, "Esc closes it")
        win = w.open_task_details(tid)
        assert win is not None
        QTest.keySequence(win, "Ctrl+W")
        await until(lambda: tid not in w._details, "Ctrl+W closes it")
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())
