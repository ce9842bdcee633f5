"""The window's actions end to end on real operations: Build (real Nix), Build image, Run VM and its
cancel from the Tasks dock, Deploy to a simulated device; the device table and task details follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from engine_helpers import group_pids, live_with_marker
from fleet_fixtures import copy_fleet
from nixdeck.core.tasks.model import TaskState
from nixdeck.ui.app import NixDeckApp
from nixdeck.ui.details import TaskDetailsWindow
from nixdeck.ui.devices_model import DevicesModel
from nixdeck.ui.dialogs import DeployDialog, ImageDialog, RunCommandDialog
from ssh_fixtures import fixture_sim_fleet  # noqa: F401 - registers the sim_fleet fixture
from ui_ops_fixtures import ended, reachable_fleet, shut_down, submitted_task, trimmed_fleet
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints", "This plugin does not support raise")


def _build_cell(nx: NixDeckApp, device: str) -> str:
    m = nx.window.model
    return str(m.index(m.row_of(device), DevicesModel.BUILD).data())


def test_build_image_and_vm_actions_on_real_nix(qloop, tmp_path: Path, data_dir: Path) -> None:  # noqa: F811
    fleet = copy_fleet(tmp_path)  # fresh store paths: the build really builds derivations
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        assert _build_cell(nx, "web1") == "never"

        # Build with web1 selected: one build_device task, real Nix, per-derivation logs
        w.select_devices(["web1"])
        w.commands.actions["build"].trigger()
        t = await submitted_task(nx, "build_device")
        assert t.devices == ["web1"] and t.submission["project_dir"] == str(fleet.resolve())
        await until(lambda: w.tasks_dock.state_of(t.id) is not None, "the task is in the Tasks dock")
        t = await ended(nx, t.id)
        assert t.state == TaskState.COMPLETED, t.error
        await until(lambda: _build_cell(nx, "web1").startswith("completed · "), "web1's last build")
        details = w.open_task_details(t.id)
        assert isinstance(details, TaskDetailsWindow)
        assert details.build_logs is not None
        drvs = details.build_logs.tree
        assert drvs.topLevelItemCount() == len(t.result["derivations"]) > 0
        names = [drvs.topLevelItem(i).text(0) for i in range(drvs.topLevelItemCount())]
        assert "etc-web1" in names and "nixos-system-web1-sw" in names
        assert {drvs.topLevelItem(i).text(1) for i in range(drvs.topLevelItemCount())} == {"done"}
        assert drvs.topLevelItem(0).text(2) == "local"
        details.show_tab("Build logs")
        drvs.setCurrentItem(drvs.topLevelItem(names.index("etc-web1")))
        assert "printed no log" in details.build_logs.info.text()  # these builders are quiet
        infos = details.message_panes["Infos"]  # a clean build: Nix reports no infos, and the pane says so
        assert infos.proxy.rowCount() == details.messages.count(("notice", "info"))
        assert infos.proxy.rowCount() or infos.detail.placeholderText() == "Nix reported no infos for this task."

        # a failing builder: its derivation comes first, selected, with its log
        w.select_devices(["fail-build"])
        w.commands.actions["build"].trigger()
        fb = await ended(nx, (await submitted_task(nx, "build_device", [t.id])).id)
        assert fb.state == TaskState.FAILED
        fbd = w.open_task_details(fb.id)
        assert isinstance(fbd, TaskDetailsWindow) and fbd.build_logs is not None
        top = fbd.build_logs.tree.topLevelItem(0)
        assert top.text(1) == "failed" and fbd.build_logs.tree.currentItem() is top
        failed = next(d for d in fb.result["derivations"] if d["state"] == "failed")
        assert str(fbd.build_logs.log.model.path) == failed["log_file"]
        log = fbd.build_logs.log.model
        await until(lambda: log.rowCount() == failed["log_lines"] > 0, "the failed derivation's log is shown")
        assert any("simulated compiler error" in log.line_text(i) for i in range(log.rowCount()))
        known = [t.id, fb.id]

        # Build of a device whose configuration does not evaluate: failed, file:line in the Errors pane
        w.select_devices(["bad-undef"])
        w.commands.actions["build"].trigger()
        bad = await submitted_task(nx, "build_device", known)
        bad = await ended(nx, bad.id)
        assert bad.state == TaskState.FAILED
        await until(lambda: _build_cell(nx, "bad-undef").startswith("failed · "), "bad-undef's last build")
        bd = w.open_task_details(bad.id)
        assert isinstance(bd, TaskDetailsWindow)
        bd.show_tab("Errors")
        errors = bd.message_panes["Errors"]
        await until(lambda: errors.proxy.rowCount() > 0, "the errors are listed")
        shown = [str(errors.proxy.index(i, 0).data()) for i in range(errors.proxy.rowCount())]
        assert any("devices/bad-undef.nix:5" in s and "undefined variable 'hostNmae'" in s for s in shown), shown
        assert "devices/bad-undef.nix:5" in errors.detail.toPlainText()  # the selected one, with its trace
        assert "5|   motd = \"welcome to ${hostNmae}\";" in errors.detail.toPlainText()  # the source there

        # Build image (qcow): completed, the image path with "Open image folder"
        w.select_devices(["web1"])
        w.commands.actions["build_image"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, ImageDialog) and dlg.device_name() == "web1"
        dlg.format.setCurrentText("qcow")
        dlg.accept()
        img = await submitted_task(nx, "build_image")
        assert img.submission["format"] == "qcow"
        img = await ended(nx, img.id)
        assert img.state == TaskState.COMPLETED, img.error
        assert img.result["image"].endswith(".qcow2") and Path(img.result["image"]).is_file()
        idw = w.open_task_details(img.id)
        assert isinstance(idw, TaskDetailsWindow)
        buttons = [b for b in idw.overview.result_buttons if b.text() == "Open image folder"]
        assert buttons and all(isinstance(b, QPushButton) and b.isEnabled() for b in buttons)
        assert buttons[0].toolTip() == str(Path(img.result["image"]).parent)

        # Run VM, then cancel it from the Tasks dock's context menu: canceled, nothing left running
        w.select_devices(["web2"])
        w.commands.actions["run_vm"].trigger()
        vm = await submitted_task(nx, "run_vm")

        def vm_running() -> bool:
            ps = [p for p in nx.store.processes(vm.id) if p.argv[0].endswith("-vm")]
            return bool(ps) and "uptime 1s" in Path(ps[0].stdout_path or "/dev/null").read_text()

        await until(vm_running, "the VM boots")
        dock = w.tasks_dock
        await until(lambda: dock.select_task(vm.id), "the VM task is in the dock")
        dock.update_actions()
        assert dock.action_cancel.isEnabled()
        dock.action_cancel.trigger()
        vm = await ended(nx, vm.id)
        assert vm.state == TaskState.CANCELED
        for p in nx.store.processes(vm.id):
            assert p.pid is not None and not group_pids(p.pid)
        assert not live_with_marker("run-web2-prod-vm")
        await shut_down(nx)

    run(qloop, scenario())


def test_build_with_nothing_selected_builds_the_project(qloop, tmp_path: Path, data_dir: Path) -> None:  # noqa: F811
    fleet = trimmed_fleet(tmp_path, ("web1", "db1", "fail-build"))
    nx = NixDeckApp(data_dir, project=str(fleet))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        assert w.selected_devices() == []
        w.commands.actions["build"].trigger()
        t = await submitted_task(nx, "build_project")
        assert t.title == "Build all devices" and t.submission["devices"] == []
        assert sorted(t.devices) == ["db1", "fail-build", "web1"]
        t = await ended(nx, t.id)
        assert t.state == TaskState.FAILED and set(t.result["devices"]) == {"web1", "db1", "fail-build"}
        # each device's own outcome of the one project build
        await until(lambda: _build_cell(nx, "fail-build").startswith("failed · "), "fail-build's last build")
        assert _build_cell(nx, "web1").startswith("completed · ") and _build_cell(nx, "db1").startswith("completed")
        m = w.model
        tip = str(m.index(m.row_of("fail-build"), DevicesModel.BUILD).data(Qt.ItemDataRole.ToolTipRole))
        assert f"task {t.id}: Build all devices" in tip and "builder for" in tip
        await shut_down(nx)

    run(qloop, scenario())


@pytest.mark.ssh
def test_deploy_action_on_a_simulated_device(qloop, sim_fleet, tmp_path: Path,  # noqa: F811
                                             data_dir: Path) -> None:
    devices = sim_fleet(["web1"])
    flake = reachable_fleet(tmp_path, data_dir, devices)
    nx = NixDeckApp(data_dir, project=str(flake))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        w.select_devices(["web1"])
        w.commands.actions["deploy"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, DeployDialog) and dlg.ok_button.isEnabled(), dlg.error.text()
        dlg.action.setCurrentText("switch")
        dlg.accept()
        parent = await submitted_task(nx, "deploy_devices")
        assert parent.submission["devices"] == ["web1"] and parent.submission["action"] == "switch"
        parent = await ended(nx, parent.id)
        assert parent.state == TaskState.COMPLETED, parent.error
        (child,) = nx.store.children(parent.id)
        assert child.kind == "deploy_device" and child.state == TaskState.COMPLETED, child.error
        assert parent.result["devices"]["web1"]["state"] == "completed"
        m = w.model
        await until(lambda: str(m.index(m.row_of("web1"), DevicesModel.DEPLOY).data()).startswith("completed · "),
                    "web1's last deploy")
        assert w.tasks_dock.select_task(child.id)  # children load when their parent is expanded
        assert w.tasks_dock.state_of(child.id) == "completed"

        # Run command on the selected device over SSH
        w.commands.actions["run_command"].trigger()
        rc = w.commands.dialog
        assert isinstance(rc, RunCommandDialog) and rc.ssh.isEnabled()
        rc.command.setText("echo 'hello from' $(hostname)")
        rc.ssh.setChecked(True)
        assert rc.over_ssh() and not rc.cwd.isVisible()
        rc.accept()
        cmd = await ended(nx, (await submitted_task(nx, "ssh_command")).id)
        assert cmd.state == TaskState.COMPLETED, cmd.error
        assert cmd.devices == ["web1"] and cmd.submission["argv"] == ["echo", "hello from", "$(hostname)"]
        assert cmd.result["exit_code"] == 0
        await shut_down(nx)

    run(qloop, scenario())
