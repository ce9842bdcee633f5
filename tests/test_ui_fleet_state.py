"""Fleet state in the window: status/generation/drift columns and the drift filter (first load from the
fleet store, then from probe task records), the prober (on open, periodic, after a deploy, on demand),
the deploy dialog's closure diffs, and start-up settling of interrupted deploys — on real sshd devices."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from nixdeck.core.fleet.drift import DRIFT_STATES
from nixdeck.core.fleet.probe import DeviceState, Generation
from nixdeck.core.fleet.state_store import FleetStateStore
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState, project_key, utcnow
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.app import NixDeckApp
from nixdeck.ui.deploy_diff import COMPUTING
from nixdeck.ui.devices_model import DeviceRow, DevicesFilter, DevicesModel
from nixdeck.ui.dialogs import DeployDialog
from nixdeck.ui.fleet_cells import DRIFT_CHOICES
from test_deploy_support import NODE, DeployWorld, fixture_worlds  # noqa: F401  (fixture)
from ui_ops_fixtures import ended, shut_down, submitted_task
from ui_shell_fixtures import qloop, run, until  # noqa: F401 - qloop is a fixture

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints",
                                       "This plugin does not support raise")  # fmt: skip

Worlds = Callable[..., DeployWorld]
SYS = "/nix/store/" + "a" * 32 + "-nixos-system-web1"
NEW = "/nix/store/" + "b" * 32 + "-nixos-system-web1"
ROWS = [DeviceRow("web1", "root@10.0.0.1", "10.0.0.1", 22, ("web",), "ok"),
        DeviceRow("web2", "root@10.0.0.2", "10.0.0.2", 22, ("web",), "ok"),
        DeviceRow("db1", None, None, 22, ("db",), "ok")]  # fmt: skip
JQ = """{ drv, mkDevice, ... }:
let jq = drv "jq-1.7" "mkdir -p $out/bin; echo jq > $out/bin/jq";
in mkDevice { name = "NAME"; motd = "NAME v2"; packages = [ jq ]; }
"""


def _shot(widget: QWidget, name: str) -> None:
    """Save a picture of the widget where NIXDECK_SHOTS points (to look at; nothing is compared)."""
    out = os.environ.get("NIXDECK_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(out) / name))


def _cell(model: DevicesModel, device: str, col: int) -> str:
    return str(model.index(model.row_of(device), col).data() or "")


def test_drift_choices_are_the_cores() -> None:
    assert DRIFT_CHOICES == DRIFT_STATES


def test_fleet_columns_first_load_probe_records_and_drift_filter(qapp, qtmodeltester, data_dir: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    project = project_key(tmp_path)
    store = TaskStore(data_dir)
    ended_at = utcnow()
    store.insert_task(TaskRecord(kind=TaskKind.BUILD_DEVICE.value, title="build web1", state=TaskState.COMPLETED,
                                 devices=["web1"], project=project, result={"device": "web1", "out_path": SYS},
                                 started=ended_at, ended=ended_at))  # fmt: skip
    made = datetime.now(UTC) - timedelta(hours=3)
    with FleetStateStore(data_dir) as fleet:
        fleet.record(DeviceState(project=project, device="web1", probed_at=datetime.now(UTC), online=True,
                                 current=SYS, booted=SYS, generations=[Generation(number=4, path=SYS, created=made)]))
    model = DevicesModel(store)
    model.set_rows(ROWS, project)
    # first load: the fleet store's newest probe, drift against this project's builds
    assert _cell(model, "web1", model.STATUS) == "online"
    assert _cell(model, "web1", model.GENERATION) == "#4 · 3 h ago"
    assert _cell(model, "web1", model.DRIFT) == "in sync"
    assert _cell(model, "web2", model.STATUS) == "unknown" and _cell(model, "web2", model.DRIFT) == "unknown"
    assert model.index(0, model.STATUS).data(0x1) is not None  # the status dot
    qtmodeltester.check(model)

    # a probe task record from the bridge updates the rows, no store read needed
    probe = TaskRecord(kind=TaskKind.PROBE_DEVICES.value, title="probe", state=TaskState.COMPLETED, project=project,
                       result={"devices": {"web2": {"online": False, "reason": "connection refused",
                                                    "drift": "unreachable", "drift_reason": "connection refused"}}})
    model.on_tasks_changed([probe])
    assert _cell(model, "web2", model.STATUS) == "offline" and _cell(model, "web2", model.DRIFT) == "unreachable"
    assert "connection refused" in str(model.index(model.row_of("web2"), model.STATUS).data(3))  # tooltip
    other = probe.model_copy(update={"project": "/elsewhere", "result": {"devices": {"web1": {"online": False}}}})
    model.on_tasks_changed([other])
    assert _cell(model, "web1", model.STATUS) == "online"  # another project's probe changes nothing

    # a newer build of web1: outdated without probing again
    later = TaskRecord(kind=TaskKind.BUILD_DEVICE.value, title="build web1", state=TaskState.COMPLETED,
                       devices=["web1"], project=project, result={"device": "web1", "out_path": NEW},
                       started=utcnow(), ended=utcnow())  # fmt: skip
    model.on_tasks_changed([store.insert_task(later)])
    assert _cell(model, "web1", model.DRIFT) == "outdated"

    proxy = DevicesFilter()
    proxy.setSourceModel(model)
    proxy.set_drift("outdated")
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["web1"]
    proxy.set_drift("unknown")
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["db1"]
    qtmodeltester.check(proxy)
    proxy.set_drift("")
    assert proxy.rowCount() == 3
    store.close()


def _drift(nx: NixDeckApp, device: str) -> str:
    return _cell(nx.window.model, device, DevicesModel.DRIFT)


@pytest.mark.nix
@pytest.mark.ssh
def test_window_probes_shows_drift_and_the_deploy_dialog_shows_the_diff(
    qloop, worlds: Worlds, qtmodeltester  # noqa: F811
) -> None:
    world = worlds(["node1", "node2", "node3"], nodes=["node1", "node2", "node3"], no_target=["node3"])
    nx = NixDeckApp(world.data_dir, project=world.project_dir)
    prober = nx.window.prober
    assert prober.interval_ms == 60_000
    prober.set_interval(0)  # the periodic probe is tested on its own below

    async def probes_after(known: int, what: str) -> TaskRecord:
        await until(lambda: len(prober.submitted) > known, what, guard=60)
        return await _ended_silent(nx, prober.submitted[known])

    async def scenario() -> None:
        await nx.start()
        w, m = nx.window, nx.window.model
        # opening the project probed the devices with a target: online, no build yet
        first = await probes_after(0, "the probe on open")
        assert first.silent and first.submission["devices"] == ["node1", "node2"], first.submission
        await until(lambda: _cell(m, "node1", m.STATUS) == "online", "node1 online")
        assert _drift(nx, "node1") == "unknown" and _cell(m, "node3", m.STATUS) == "unknown"

        # deploy both through the dialog: it shows each device's closure diff while it stays usable
        w.select_devices(["node1", "node2"])
        w.commands.actions["deploy"].trigger()
        dlg, panel = w.commands.dialog, w.commands.diff_panel
        assert isinstance(dlg, DeployDialog) and panel is not None
        assert panel.text_of("node1") == f"node1: {COMPUTING}" and dlg.ok_button.isEnabled()
        await until(panel.done, "the diffs are computed", guard=120)
        assert "added" in panel.text_of("node1") and "closure +" in panel.text_of("node1"), panel.text_of("node1")
        dlg.action.setCurrentText("switch")
        known = len(prober.submitted)
        dlg.accept()
        parent = await ended(nx, (await submitted_task(nx, "deploy_devices")).id)
        assert parent.state == TaskState.COMPLETED, parent.error
        # each finished device deploy is probed (the periodic probe is off): in sync, generation 1
        after = await probes_after(known, "the probe after the deploy")
        assert set(after.submission["devices"]) <= {"node1", "node2"}
        await until(lambda: _drift(nx, "node1") == "in sync" and _drift(nx, "node2") == "in sync",
                    "both in sync after the deploy", guard=60)  # fmt: skip
        assert _cell(m, "node1", m.GENERATION).startswith("#1 · ")
        qtmodeltester.check(m)

        # a new configuration of node1 with a package: the dialog lists it, node3 gives its reason
        world.write_device("node1", JQ)
        w.select_devices(["node1", "node3"])
        w.commands.actions["deploy"].trigger()
        dlg, panel = w.commands.dialog, w.commands.diff_panel
        assert isinstance(dlg, DeployDialog) and panel is not None
        await until(panel.done, "the diffs are computed", guard=120)
        assert "1 added" in panel.text_of("node1"), panel.text_of("node1")
        assert "jq 1.7" in panel.children_of("node1")
        assert panel.text_of("node3").startswith("node3: cannot compute the diff: "), panel.text_of("node3")
        panel.topLevelItem(0).setExpanded(True)
        dlg.resize(640, 520)
        _shot(dlg, "deploy-dialog-diff.png")
        dlg.reject()
        # that build made node1 outdated (no probe needed); the drift filter shows only it
        await until(lambda: _drift(nx, "node1") == "outdated", "node1 outdated after its new build", guard=60)
        _shot(w, "devices-fleet-state.png")
        w.drift_filter.setCurrentIndex(w.drift_filter.findData("outdated"))
        assert [r.name for r in w.visible_devices()] == ["node1"]
        w.drift_filter.setCurrentIndex(0)
        assert len(w.visible_devices()) == m.rowCount()

        # on demand, then periodically: a stopped device becomes offline/unreachable with the reason
        world.device("node2").stop()
        known = len(prober.submitted)
        w.table.clearSelection()
        w.commands.actions["probe_devices"].trigger()
        await probes_after(known, "the probe on demand")
        await until(lambda: _drift(nx, "node2") == "unreachable", "node2 unreachable", guard=60)
        assert _cell(m, "node2", m.STATUS) == "offline"
        # its diff says why it cannot be computed; closing the dialog meanwhile stops nothing else
        w.select_devices(["node2"])
        w.commands.actions["deploy"].trigger()
        dlg, panel = w.commands.dialog, w.commands.diff_panel
        assert isinstance(dlg, DeployDialog) and panel is not None
        await until(panel.done, "node2's diff gives up", guard=120)
        assert panel.text_of("node2").startswith("node2: cannot compute the diff: cannot reach node2"), \
            panel.text_of("node2")
        dlg.reject()
        w.select_devices(["node1"])
        w.commands.actions["deploy"].trigger()
        dlg, panel = w.commands.dialog, w.commands.diff_panel
        assert isinstance(dlg, DeployDialog) and panel is not None and not panel.done()
        dlg.reject()
        await until(lambda: all(j.done() for j in panel._jobs), "closing the dialog stops its diffs")
        assert panel.text_of("node1") == f"node1: {COMPUTING}" and w.error_box is None
        known = len(prober.submitted)
        prober.set_interval(200)
        await probes_after(known, "a periodic probe")
        await probes_after(known + 1, "another periodic probe")
        prober.set_interval(0)
        await shut_down(nx)

    run(qloop, scenario(), guard=600)


async def _ended_silent(nx: NixDeckApp, task_id: int) -> TaskRecord:
    """A silent task's final record (the Tasks dock hides silent tasks by default)."""
    return await until(lambda: (lambda r: r if r.state.terminal else None)(nx.engine.live(task_id)),
                       f"task {task_id} ends", guard=90)  # fmt: skip


@pytest.mark.nix
@pytest.mark.ssh
def test_the_app_settles_an_interrupted_deploy_at_start(qloop, worlds: Worlds) -> None:  # noqa: F811
    import signal

    from test_deploy_faults import SLOW, _cli, activations, deploy, status_of, switching

    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    good = deploy(world, "node1").result["store_path"]
    world.write_device("node1", SLOW)
    count = len(activations(world, "node1")) + 1
    cli = _cli(world, "node1")

    async def killed_while_switching() -> None:
        try:
            await until(lambda: switching(world, "node1", count), "the switch on the device", guard=90)
            os.kill(cli.pid, signal.SIGKILL)
        finally:
            cli.wait()
        last = activations(world, "node1")[-1]
        await until(lambda: "final" in status_of(last), "the device's own rollback", guard=90)

    run(qloop, killed_while_switching())
    nx = NixDeckApp(world.data_dir, project=world.project_dir)

    async def scenario() -> None:
        await nx.start()
        # the CLI's deploy was left running; the window's store marked it interrupted and the app
        # settles its activation in the background once the window is shown
        (interrupted,) = [t for t in nx.store.list_tasks(kinds=[TaskKind.DEPLOY_DEVICE.value])
                          if t.state == TaskState.INTERRUPTED]  # fmt: skip
        task = await until(lambda: nx.recovery if nx.recovery is not None and nx.recovery.done() else None,
                           "the start-up recovery ran", guard=90)  # fmt: skip
        assert task.result() == [interrupted.id]
        rec = nx.store.get(interrupted.id)
        assert rec.result["activation"]["final"] == "rolled-back"
        assert rec.result["device_system"] == {"current": good, "profile": good}
        await shut_down(nx)

    run(qloop, scenario(), guard=300)
