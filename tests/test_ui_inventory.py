"""Editing the fleet inventory from the window: device dialog, tags, project settings, add/remove,
import/export. Real files (a copy of the fixture fleet), real nix evaluation on open, real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QLabel, QMessageBox

from fleet_fixtures import copy_fleet, git
from nixdeck.core.project.project import Project
from nixdeck.ui.app import NixDeckApp
from nixdeck.ui.devices_model import DevicesModel
from nixdeck.ui.inventory_dialogs import DeviceDialog, ProjectSettingsDialog, TagDialog
from ui_inventory_fixtures import cell, change_records, proxy_row, records, shut_down, started, toml
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return copy_fleet(tmp_path, salt="")


def edit_dialog(nx: NixDeckApp, name: str) -> DeviceDialog:
    w = nx.window
    w.select_devices([name])
    w.commands.actions["edit_device"].trigger()
    dlg = w.commands.dialog
    assert isinstance(dlg, DeviceDialog), w.statusBar().currentMessage()
    return dlg


def test_edit_device_dialog_writes_changed_fields_records_and_reloads(qloop, qtmodeltester, fleet: Path,  # noqa: F811
                                                                        data_dir: Path) -> None:
    nx = NixDeckApp(data_dir, project=str(fleet))
    inv = fleet / "nixdeck.toml"

    async def scenario() -> None:
        await started(nx)
        w = nx.window
        # opening is recorded, silently (as `nixdeck project open`)
        opened = change_records(nx, "project-opened")
        assert len(opened) == 1 and opened[0].silent and opened[0].project == str(fleet.resolve())
        assert records(nx) == []

        # double-click on a row edits that device
        w.select_devices(["web1"])
        w.table.doubleClicked.emit(w.proxy.index(proxy_row(nx, "web1"), DevicesModel.TARGET))
        dlg = w.commands.dialog
        assert isinstance(dlg, DeviceDialog) and dlg.isVisible() and dlg.windowTitle() == "Edit device web1"
        assert dlg.fields["port"].hint.text() == "inherited (built-in default)"
        assert dlg.fields["port"].edit.placeholderText() == "22"
        dlg.fields["host"].edit.setText("10.1.2.3")
        dlg.fields["port"].edit.setText("2222")
        dlg.fields["tags"].edit.setText("web, prod")
        assert dlg.fields["port"].hint.text() == "set here"
        dlg.accept()
        assert not dlg.isVisible()
        # only the changed fields are written
        assert toml(fleet)["devices"] == {"web1": {"host": "10.1.2.3", "port": 2222, "tags": ["web", "prod"]}}
        assert cell(nx, "web1", DevicesModel.TARGET) == "root@10.1.2.3:2222"
        assert cell(nx, "web1", DevicesModel.TAGS) == "web, prod"
        assert [r.name for r in w.selected_devices()] == ["web1"]  # the selection survives the reload
        assert w.tag_filter.findData("prod") >= 0
        [rec] = records(nx)
        assert rec.devices == ["web1"] and rec.submission["change"] == "device-changed"
        assert rec.submission["values"] == {"host": "10.1.2.3", "port": "2222", "tags": ["web", "prod"]}
        await until(lambda: w.tasks_dock.state_of(rec.id) == "completed", "the record is in the Tasks dock")
        assert w.tasks_dock.state_of(opened[0].id) is None
        w.tasks_dock.silent_check.setChecked(True)  # "Show silent" reveals the opening
        await until(lambda: w.tasks_dock.state_of(opened[0].id) == "completed", "the silent record is shown")
        w.tasks_dock.silent_check.setChecked(False)

        # an invalid port: the error is shown at the field, the dialog stays, nothing is written
        before = inv.read_bytes()
        dlg = edit_dialog(nx, "web1")
        assert dlg.fields["port"].edit.text() == "2222" and dlg.fields["host"].edit.text() == "10.1.2.3"
        dlg.fields["user"].edit.setText("deploy")
        dlg.fields["port"].edit.setText("70000")
        dlg.accept()
        assert dlg.isVisible() and w.commands.dialog is dlg
        assert "70000 is not a valid port" in dlg.fields["port"].error.text()
        assert dlg.fields["port"].error.isVisible() and "Nothing was saved" in dlg.error.text()
        assert inv.read_bytes() == before
        assert len(records(nx)) == 1
        # editing the value clears its error
        dlg.fields["port"].edit.setText("2200")
        assert not dlg.fields["port"].error.isVisible()
        dlg.reject()
        assert inv.read_bytes() == before

        # clearing a field unsets it: the inherited default applies and is shown
        dlg = edit_dialog(nx, "web1")
        dlg.fields["port"].edit.clear()
        dlg.fields["tags"].edit.setText("web")
        dlg.accept()
        assert toml(fleet)["devices"]["web1"] == {"host": "10.1.2.3", "tags": ["web"]}
        assert cell(nx, "web1", DevicesModel.TARGET) == "root@10.1.2.3"
        assert w.tag_filter.findData("prod") < 0
        dlg = edit_dialog(nx, "web1")
        assert dlg.fields["port"].value() is None
        assert dlg.fields["port"].hint.text() == "inherited (built-in default)"
        assert dlg.fields["action"].combo.currentText() == "Inherit: switch"
        dlg.reject()
        assert [r.submission["values"] for r in records(nx)][0] == {"port": None, "tags": ["web"]}

        # an unchanged dialog writes nothing and records nothing
        before = inv.read_bytes()
        edit_dialog(nx, "web1").accept()
        assert inv.read_bytes() == before and len(records(nx)) == 2

        qtmodeltester.check(w.model)
        await shut_down(nx)

    run(qloop, scenario())


def test_tag_and_untag_several_devices_at_once(qloop, fleet: Path, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await started(nx)
        w = nx.window
        assert not w.commands.actions["tag_devices"].isEnabled()  # nothing selected yet
        w.select_devices(["web1", "db1"])
        assert w.commands.actions["tag_devices"].isEnabled()
        w.commands.actions["tag_devices"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, TagDialog) and dlg.devices == ["db1", "web1"]
        # an invalid tag: shown, nothing written (not even the valid one before it)
        dlg.tag_edit.setText("edge, Bad Tag")
        dlg.accept()
        assert dlg.isVisible() and "not a valid tag" in dlg.tag_error.text()
        assert not (fleet / "nixdeck.toml").exists()
        dlg.tag_edit.setText("edge, prod")
        dlg.accept()
        assert not dlg.isVisible()
        devices = toml(fleet)["devices"]
        assert devices["web1"]["tags"] == ["edge", "prod"] and devices["db1"]["tags"] == ["edge", "prod"]
        assert cell(nx, "db1", DevicesModel.TAGS) == "edge, prod"
        tagged = change_records(nx, "tags-changed")
        assert [t.submission["tag"] for t in tagged] == ["prod", "edge"]
        assert all(sorted(t.devices) == ["db1", "web1"] and not t.silent for t in tagged)
        # untag: the tags of the selection are offered
        w.commands.actions["untag_devices"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, TagDialog) and dlg.untag
        assert [dlg.tag_combo.itemText(i) for i in range(dlg.tag_combo.count())] == ["edge", "prod"]
        dlg.tag_combo.setCurrentText("edge")
        dlg.accept()
        devices = toml(fleet)["devices"]
        assert devices["web1"]["tags"] == ["prod"] and devices["db1"]["tags"] == ["prod"]
        assert change_records(nx, "tags-changed")[0].submission["tag"] == "edge"
        # filtering the table by a new tag works at once
        w.tag_filter.setCurrentIndex(w.tag_filter.findData("prod"))
        assert sorted(w.proxy.index(r, 0).data() for r in range(w.proxy.rowCount())) == ["db1", "web1"]
        await shut_down(nx)

    run(qloop, scenario())


def test_project_settings_round_trip(qloop, fleet: Path, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, project=str(fleet))
    key = fleet / "signing-key"
    key.write_text("secret\n")

    async def scenario() -> None:
        await started(nx)
        w = nx.window
        (await Project.open_async(fleet, discover_devices=False)).add_device("web1", {"host": "10.0.0.1"})
        w.reload_inventory()
        w.commands.actions["project_settings"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, ProjectSettingsDialog)
        assert any("safe choice" in lbl.text() for lbl in dlg.findChildren(QLabel))
        f = dlg.fields
        f["user"].set_value("deploy")
        f["port"].set_value("2200")
        f["confirm"].set_value(False)
        f["max_jobs"].set_value("lots")  # invalid: neither part is written
        dlg.accept()
        assert dlg.isVisible() and "max_jobs" in dlg.error.text()
        assert f["max_jobs"].error.isVisible()
        assert "defaults" not in toml(fleet)
        f["max_jobs"].set_value("auto")
        f["signing_key"].set_value(str(key))
        f["no_check_sigs"].set_value(False)
        dlg.accept()
        assert not dlg.isVisible()
        data = toml(fleet)
        assert data["defaults"] == {"user": "deploy", "port": 2200, "confirm": False}
        assert data["project"] == {"max_jobs": "auto", "no_check_sigs": False, "signing_key": str(key)}
        assert cell(nx, "web1", DevicesModel.TARGET) == "deploy@10.0.0.1:2200"
        assert [t.submission["change"] for t in records(nx)][:2] == ["project-changed", "defaults-changed"]
        # reopened, the dialog shows what the file holds; a device now inherits from the defaults
        w.commands.actions["project_settings"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, ProjectSettingsDialog)
        assert {n: dlg.fields[n].value() for n in ("user", "port", "confirm", "max_jobs", "signing_key",
                                                    "no_check_sigs", "builders")} == {
            "user": "deploy", "port": "2200", "confirm": False, "max_jobs": "auto", "signing_key": str(key),
            "no_check_sigs": False, "builders": None}
        assert dlg.defaults_changes() == {} and dlg.project_changes() == {}
        dlg.fields["confirm"].set_value(None)  # back to the built-in default
        dlg.accept()
        assert "confirm" not in toml(fleet)["defaults"]
        dlg = edit_dialog(nx, "web1")
        assert dlg.fields["user"].hint.text() == "inherited (project defaults)"
        assert dlg.fields["user"].edit.placeholderText() == "deploy"
        assert dlg.fields["confirm"].combo.currentText() == "Inherit: yes"
        dlg.reject()
        await shut_down(nx)

    run(qloop, scenario())


def test_export_then_import_round_trips_exactly(qloop, fleet: Path, data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, project=str(fleet))
    first, second = tmp_path / "a.json", tmp_path / "b.json"

    async def scenario() -> None:
        await started(nx)
        w = nx.window
        p = (await Project.open_async(fleet, discover_devices=False))
        p.add_device("web1", {"host": "10.0.0.1", "port": "2222", "tags": "web,prod"})
        p.set_defaults({"user": "deploy"})
        p.set_project_settings({"max_jobs": 4})
        before = (fleet / "nixdeck.toml").read_bytes()
        w.commands.actions["export_inventory"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, QFileDialog) and dlg.acceptMode() == QFileDialog.AcceptMode.AcceptSave
        dlg.fileSelected.emit(str(first))
        dlg.reject()
        assert first.is_file()
        # change the inventory, then import the export: back to the same bytes
        p.remove_device("web1")
        p.set_defaults({"user": None})
        w.reload_inventory()
        assert cell(nx, "web1", DevicesModel.TARGET) == "no target yet"
        w.commands.actions["import_inventory"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, QFileDialog) and dlg.acceptMode() == QFileDialog.AcceptMode.AcceptOpen
        dlg.fileSelected.emit(str(first))
        dlg.reject()
        assert (fleet / "nixdeck.toml").read_bytes() == before
        assert cell(nx, "web1", DevicesModel.TARGET) == "deploy@10.0.0.1:2222"
        [imported] = change_records(nx, "inventory-imported")
        assert imported.submission["source"] == str(first.resolve()) and not imported.silent
        assert w.commands.inventory.export_to(second)
        assert second.read_bytes() == first.read_bytes()
        # a broken import changes nothing and says why
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": "nixdeck-inventory", "version": 1, "devices": {"web1": {"port": 0}}}')
        assert w.commands.inventory.import_from(bad) is None
        assert (fleet / "nixdeck.toml").read_bytes() == before
        assert w.error_box is not None and "devices.web1.port" in w.error_box.text()
        await shut_down(nx)

    run(qloop, scenario())


def test_add_and_remove_inventory_entries(qloop, fleet: Path, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await started(nx)
        w = nx.window
        w.commands.actions["add_device"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, DeviceDialog) and dlg.adding
        assert not dlg.ok_button.isEnabled()
        assert dlg.module_box is not None and not dlg.module_box.isEnabled()  # not a template project
        dlg.name_edit.setText("bad_name")
        dlg.accept()
        assert dlg.isVisible() and "not a valid device name" in dlg.name_error.text()
        dlg.name_edit.setText("spare1")
        dlg.fields["host"].edit.setText("10.0.0.9")
        dlg.accept()
        assert not dlg.isVisible()
        assert toml(fleet)["devices"]["spare1"] == {"host": "10.0.0.9"}
        row = w.model.device(w.model.row_of("spare1"))
        assert row.state == "orphaned" and row.target == "root@10.0.0.9"
        assert change_records(nx, "device-added")[0].devices == ["spare1"]

        # removing an orphaned entry: confirmed, the flake is not touched
        w.select_devices(["spare1"])
        w.commands.actions["remove_device"].trigger()
        box = w.commands.dialog
        assert isinstance(box, QMessageBox) and "flake's configuration is not touched" in box.text()
        assert box.button(QMessageBox.StandardButton.Yes).text() == "Remove"
        box.button(QMessageBox.StandardButton.Yes).click()
        assert "spare1" not in toml(fleet).get("devices", {}) and w.model.row_of("spare1") == -1
        assert change_records(nx, "device-removed")[0].devices == ["spare1"]

        # a device still in the flake: explicit "Remove anyway"; Cancel removes nothing
        (await Project.open_async(fleet, discover_devices=False)).add_device("web2", {"host": "10.0.0.2"})
        w.reload_inventory()
        w.select_devices(["web2"])
        w.commands.actions["remove_device"].trigger()
        box = w.commands.dialog
        assert box.button(QMessageBox.StandardButton.Yes).text() == "Remove anyway"
        assert "still has a configuration in the flake" in box.text()
        box.button(QMessageBox.StandardButton.Cancel).click()
        assert "web2" in toml(fleet)["devices"]
        w.commands.actions["remove_device"].trigger()
        w.commands.dialog.button(QMessageBox.StandardButton.Yes).click()
        assert "web2" not in toml(fleet).get("devices", {})
        assert cell(nx, "web2", DevicesModel.TARGET) == "no target yet"  # still a flake device
        assert (fleet / "devices" / "web2.nix").is_file()
        await shut_down(nx)

    run(qloop, scenario())


def test_add_device_writes_the_template_module(qloop, tmp_path: Path, data_dir: Path) -> None:  # noqa: F811
    nx = NixDeckApp(data_dir)

    async def scenario() -> None:
        await nx.start()
        project = await Project.new_async(tmp_path / "fleet", ["alpha"])
        nx.window.set_project(project)  # not evaluated: the template's nixpkgs needs the network
        w = nx.window
        w.commands.actions["add_device"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, DeviceDialog) and dlg.module_box is not None and dlg.module_box.isChecked()
        dlg.name_edit.setText("beta")
        dlg.fields["tags"].edit.setText("web")
        dlg.accept()
        module = project.path / "devices" / "beta.nix"
        assert w.commands.inventory.module_task is not None
        assert await w.commands.inventory.module_task == module
        assert "devices/beta.nix" in git(project.path, "ls-files")  # git-added, so the flake sees it
        assert 'networking.hostName = "beta"' in module.read_text()
        assert toml(project.path)["devices"]["beta"] == {"tags": ["web"]}
        assert change_records(nx, "device-added")[0].submission["module"] == "devices/beta.nix"
        # the module exists now: adding it again is refused in the dialog
        w.commands.actions["add_device"].trigger()
        dlg = w.commands.dialog
        dlg.name_edit.setText("beta")
        dlg.accept()
        assert dlg.isVisible() and "already exists" in dlg.name_error.text()
        dlg.reject()
        await shut_down(nx)

    run(qloop, scenario())
