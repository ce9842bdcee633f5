"""The device table model: rows from a project, last build/deploy from the store, tag/text filter."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from nixdeck.core.tasks.model import TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.devices_model import DeviceRow, DevicesFilter, DevicesModel

ROWS = [
    DeviceRow("web1", "root@10.0.0.1", "10.0.0.1", 22, ("web", "prod"), "ok"),
    DeviceRow("web2", "root@10.0.0.2:2222", "10.0.0.2", 2222, ("web",), "ok"),
    DeviceRow("db1", None, None, 22, ("db",), "ok"),
    DeviceRow("bad", None, None, 22, (), "eval-error", error="syntax error"),
]


def _task(store: TaskStore, kind: str, device: str, state: TaskState) -> TaskRecord:
    now = utcnow()
    return store.insert_task(TaskRecord(kind=kind, title=f"{kind} {device}", state=state, devices=[device],
                                        started=now, ended=now))


def test_model_passes_qtmodeltester(qtmodeltester, data_dir: Path) -> None:
    store = TaskStore(data_dir)
    _task(store, "build_device", "web1", TaskState.COMPLETED)
    model = DevicesModel(store)
    model.set_rows(ROWS)
    qtmodeltester.check(model)
    proxy = DevicesFilter()
    proxy.setSourceModel(model)
    proxy.set_tag("web")
    qtmodeltester.check(proxy)
    store.close()


def test_columns_show_target_tags_and_last_tasks(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    _task(store, "build_device", "web1", TaskState.FAILED)
    _task(store, "build_device", "web1", TaskState.COMPLETED)
    _task(store, "deploy_device", "web2", TaskState.TIMED_OUT)
    _task(store, "run_command", "db1", TaskState.COMPLETED)  # not a build: ignored
    model = DevicesModel(store)
    model.set_rows(ROWS)

    def cell(row: int, col: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.index(row, col).data(role)

    assert [cell(r, 0) for r in range(4)] == ["web1", "web2", "db1", "bad"]
    assert cell(0, DevicesModel.TARGET) == "root@10.0.0.1"
    assert cell(1, DevicesModel.TARGET) == "root@10.0.0.2:2222"
    assert cell(2, DevicesModel.TARGET) == "no target yet"
    assert cell(0, DevicesModel.TAGS) == "web, prod"
    assert str(cell(0, DevicesModel.BUILD)).startswith("completed · ")  # the latest one wins
    assert cell(0, DevicesModel.DEPLOY) == "never"
    assert str(cell(1, DevicesModel.DEPLOY)).startswith("timed out · ")
    assert cell(2, DevicesModel.BUILD) == "never"
    assert "syntax error" in str(cell(3, DevicesModel.NAME, Qt.ItemDataRole.ToolTipRole))

    # a new build of db1 shows up when the bridge reports it
    t = _task(store, "build_device", "db1", TaskState.FAILED)
    model.on_tasks_changed([t])
    assert str(cell(2, DevicesModel.BUILD)).startswith("failed · ")
    store.close()


def test_filter_by_tag_and_text() -> None:
    model = DevicesModel(None)
    model.set_rows(ROWS)
    proxy = DevicesFilter()
    proxy.setSourceModel(model)

    def names() -> list[str]:
        return [proxy.index(r, 0).data() for r in range(proxy.rowCount())]

    assert model.all_tags() == ["db", "prod", "web"]
    proxy.set_tag("web")
    assert names() == ["web1", "web2"]
    proxy.set_text("2222")
    assert names() == ["web2"]
    proxy.set_tag("")
    proxy.set_text("NO TARGET")
    assert names() == ["db1", "bad"]


def test_last_build_of_a_project_build_is_each_devices_own_outcome(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    now = utcnow()
    _task(store, "build_device", "web2", TaskState.COMPLETED)
    # from the window: the task lists the devices; the result says how each one went
    listed = store.insert_task(TaskRecord(
        kind="build_project", title="Build all devices", state=TaskState.FAILED, devices=["web1", "web2"],
        started=now, ended=now, error="1 of 2 devices failed",
        result={"devices": {"web1": {"out_path": "/nix/store/x-web1"}, "web2": {"error": "builder failed"}}}))
    model = DevicesModel(store)
    model.set_rows(ROWS)
    web1, web2, db1 = (model.device(model.row_of(n)) for n in ("web1", "web2", "db1"))
    assert web1.last_build is not None and web1.last_build.state == TaskState.COMPLETED
    assert web1.last_build.id == listed.id and web1.last_build.error is None
    assert web2.last_build is not None and web2.last_build.state == TaskState.FAILED
    assert web2.last_build.error == "builder failed"
    assert db1.last_build is None
    assert "builder failed" in str(model.index(1, DevicesModel.BUILD).data(Qt.ItemDataRole.ToolTipRole))
    # from the CLI (`nixdeck build`): no devices recorded, only the result names them; the bridge refreshes
    unnamed = store.insert_task(TaskRecord(
        kind="build_project", title="Build all devices", state=TaskState.COMPLETED, devices=[],
        started=now, ended=now, result={"devices": {"db1": {"out_path": "/nix/store/x-db1"}}}))
    model.on_tasks_changed([unnamed])
    assert str(model.index(2, DevicesModel.BUILD).data()).startswith("completed · ")
    assert model.device(2).last_build is not None and model.device(2).last_build.id == unnamed.id
    store.close()
