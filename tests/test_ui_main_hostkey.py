"""Trust host key from the window: fetch the key of a real sshd, show its fingerprint, trust on OK."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_fixtures import copy_fleet
from nixdeck.core.project.project import Project
from nixdeck.core.ssh.knownhosts import HostKeyState, KnownHosts, fingerprint
from nixdeck.ui.app import NixDeckApp
from nixdeck.ui.dialogs import DeployDialog, HostKeyDialog
from ssh_fixtures import fixture_sim_fleet  # noqa: F401 - registers the sim_fleet fixture
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.mark.ssh
def test_trust_host_key_shows_fingerprint_and_trusts(qloop, sim_fleet, tmp_path: Path,  # noqa: F811
                                                     data_dir: Path) -> None:
    fleet_dev = sim_fleet(["web1"])
    dev = fleet_dev["web1"]
    flake = copy_fleet(tmp_path, salt="")
    Project.open(flake).set_fields("web1", {"host": dev.host, "port": dev.port})
    nx = NixDeckApp(data_dir, project=str(flake))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        w.select_devices(["web1"])
        w.commands.actions["trust_host"].trigger()
        dlg = w.commands.dialog
        assert isinstance(dlg, HostKeyDialog)
        await until(lambda: dlg.fingerprint.text(), "the fingerprint is shown")
        assert dlg.fingerprint.text() == fingerprint(dev.host_public_key())
        assert dlg.trust_button.isEnabled()
        dlg.trust_button.click()
        known = KnownHosts.in_data_dir(data_dir)
        assert known.state(dev.host, dev.port, dev.host_public_key()).state is HostKeyState.TRUSTED
        (rec,) = nx.store.list_tasks(kinds=["record"], include_silent=False)  # not the silent "opened"
        assert rec.title == "Trusted host key of web1" and rec.devices == ["web1"]
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())


def test_deploy_dialog_gives_the_deploy_submission_fields(qtbot) -> None:
    dlg = DeployDialog(["web1", "web2", "db1"], limit=2)
    qtbot.addWidget(dlg)
    assert "1 wave, at most 2 at a time" in dlg.summary.text() and "1. web1, web2, db1" in dlg.summary.text()
    dlg.waves.setText("1, 100%")
    assert "2 waves" in dlg.summary.text() and "2. web2, db1" in dlg.summary.text()
    assert dlg.values()["action"] is None  # each device's own action
    dlg.action.setCurrentText("boot")
    assert "no confirm for boot" in dlg.confirm_note.text().lower()
    dlg.action.setCurrentText("switch")
    assert "rolled back" in dlg.confirm_note.text()
    dlg.action.setCurrentText("dry-activate")
    assert "nothing is changed" in dlg.confirm_note.text()
    dlg.max_failures.setValue(1)
    assert dlg.values() == {"devices": ["web1", "web2", "db1"], "action": "dry-activate", "limit": 2,
                            "waves": ["1", "100%"], "max_failures": 1}
    assert dlg.ok_button.isEnabled()
    dlg.waves.setText("1,abc")
    assert not dlg.ok_button.isEnabled() and "abc" in dlg.error.text()
    refused = DeployDialog(["web1", "db1"], no_target=["db1"])
    qtbot.addWidget(refused)
    assert not refused.ok_button.isEnabled() and "db1" in refused.error.text()


@pytest.mark.ssh
@pytest.mark.qt_log_ignore("does not support raise", "propagateSizeHints")
def test_host_key_failure_is_nixdecks_error_first_in_errors_with_a_trust_button(  # noqa: F811
        qloop, sim_fleet, tmp_path: Path, data_dir: Path) -> None:  # noqa: F811
    from nixdeck.core.ops.ssh_command import SshCommandSubmission
    from nixdeck.core.tasks.model import TaskKind
    from nixdeck.ui.messages_model import LevelRole

    dev = sim_fleet(["web1"])["web1"]
    flake = copy_fleet(tmp_path, salt="")
    Project.open(flake).set_fields("web1", {"host": dev.host, "port": dev.port})
    nx = NixDeckApp(data_dir, project=str(flake))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        w.ensure_operations()
        sub = SshCommandSubmission(project_dir=str(flake), device="web1", argv=["true"])
        tid = await nx.engine.submit(TaskKind.SSH_COMMAND.value, sub)
        t = await nx.engine.wait(tid)
        assert t.result["host_key"]["problem"] == "unknown"
        win = w.open_task_details(tid)
        assert win is not None
        win.show_tab("Errors")
        pane = win.message_panes["Errors"]
        rows = [pane.proxy.index(r, 0) for r in range(pane.proxy.rowCount())]
        assert rows and rows[0].data(LevelRole) == "error"
        first = str(rows[0].data())
        assert "is not trusted yet" in first and "nixdeck ssh trust" not in first and "Trust host key" in first
        assert sum("is not trusted yet" in str(i.data()) for i in rows) == 1  # once
        assert win.host_key_bar.isVisible() and win.trust_button.text() == "Trust host key of web1…"
        assert "nixdeck ssh trust" not in win.overview.labels["Error"].text()
        win.grab().save(str(tmp_path / "hostkey-errors.png"))
        win.trust_button.click()
        dlg = w.commands.dialog
        assert isinstance(dlg, HostKeyDialog)
        await until(lambda: dlg.fingerprint.text(), "the fingerprint is shown")
        assert dlg.fingerprint.text() == fingerprint(dev.host_public_key())
        dlg.grab().save(str(tmp_path / "trust-dialog.png"))
        dlg.trust_button.click()
        known = KnownHosts.in_data_dir(data_dir)
        assert known.state(dev.host, dev.port, dev.host_public_key()).state is HostKeyState.TRUSTED
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())


@pytest.mark.qt_log_ignore("does not support raise", "propagateSizeHints")
def test_inventory_edit_offers_a_reviewed_commit_of_nixdeck_toml(qloop, tmp_path: Path, data_dir: Path) -> None:  # noqa: F811
    from fleet_fixtures import commit_all, git
    from nixdeck.ui.inventory_commit import InventoryCommitDialog

    flake = copy_fleet(tmp_path, salt="")
    (flake / "nixdeck.toml").write_text('version = 1\n\n[devices.web1]\nhost = "10.0.0.1"\n')
    commit_all(flake, "inventory")
    nx = NixDeckApp(data_dir, project=str(flake))

    async def scenario() -> None:
        await nx.start()
        w = nx.window
        assert w.project is not None
        change = w.project.tag(["web1"], "lab")
        w.commands.inventory.record(w.project, change)
        await until(lambda: w.banner.isVisible() and w.banner.action_button.isVisible(), "the commit offer")
        assert w.banner.action_button.text() == "Commit…" and "not committed yet" in w.banner.label.text()
        w.grab().save(str(tmp_path / "commit-offer.png"))
        w.banner.action_button.click()
        await until(lambda: isinstance(w.commands.dialog, InventoryCommitDialog), "the commit dialog")
        dlg = w.commands.dialog
        assert dlg.message.text() == f"NixDeck: {change.summary}"
        assert '"lab"' in dlg.diff.toPlainText()
        dlg.grab().save(str(tmp_path / "commit-dialog.png"))
        dlg.commit_button.click()
        await until(lambda: git(flake, "log", "-1", "--format=%s").strip() == f"NixDeck: {change.summary}",
                    "the commit")
        assert git(flake, "status", "--porcelain", "--untracked-files=no").strip() == ""
        nx.quit_now()
        await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")

    run(qloop, scenario())
