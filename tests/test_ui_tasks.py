"""Tasks dock and TasksModel: lazy history, live tasks, filters, context-menu actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QApplication, QMainWindow

from nixdeck.core.tasks.model import TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.tasks_dock import TasksDock
from nixdeck.ui.tasks_model import Column, TaskFilter, TaskIdRole, TasksModel
from ui_helpers import UiEnv, ui  # noqa: F401

# the offscreen platform says this whenever a window is shown; it is not ours to fix
pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints")


def _add(store: TaskStore, title: str, **kw: object) -> TaskRecord:
    now = utcnow()
    fields: dict[str, object] = {"kind": "build_device", "title": title, "state": TaskState.COMPLETED,
                                 "started": now - timedelta(seconds=3), "ended": now}
    fields.update(kw)
    return store.insert_task(TaskRecord.model_validate(fields))


def _history(store: TaskStore) -> dict[str, int]:
    ids = {}
    ids["a"] = _add(store, "Build alpha", devices=["alpha"]).id
    parent = _add(store, "Deploy fleet", kind="deploy_devices", devices=["alpha", "beta"], state=TaskState.FAILED)
    ids["parent"] = parent.id
    ids["c1"] = _add(store, "Deploy to alpha", kind="deploy_device", devices=["alpha"], parent_id=parent.id).id
    ids["c2"] = _add(store, "Deploy to beta", kind="deploy_device", devices=["beta"], parent_id=parent.id,
                     state=TaskState.FAILED, error="beta unreachable").id
    ids["silent"] = _add(store, "Device added", kind="record", silent=True).id
    ids["running"] = _add(store, "Build beta", devices=["beta"], state=TaskState.RUNNING, ended=None,
                          progress=0.4, phase="3/7 built · copying 120/340 MiB").id
    return ids


def test_tasks_model_passes_modeltester(ui: UiEnv, qtmodeltester) -> None:  # noqa: F811
    ids = _history(ui.store)
    model = TasksModel(ui.store, ui.bridge, page_size=2)
    assert model.rowCount() == 0 and model.canFetchMore(QModelIndex())
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
    assert model.rowCount() == 3  # children below their parent, silent hidden
    pidx = model.task_index(ids["parent"])
    assert model.hasChildren(pidx) and model.rowCount(pidx) == 0 and model.canFetchMore(pidx)
    model.fetchMore(pidx)
    assert model.rowCount(pidx) == 2
    assert model.index(1, Column.STATE, pidx).data() == "failed"
    assert model.index(0, Column.PROGRESS).data() == "3/7 built · copying 120/340 MiB"
    qtmodeltester.check(model)
    qtmodeltester.check(TasksModel(ui.store, ui.bridge, page_size=2))
    # a child created live appears under its loaded parent
    child = _add(ui.store, "Deploy to gamma", kind="deploy_device", parent_id=ids["parent"])
    model.apply_changes([child])
    assert model.rowCount(pidx) == 3 and model.task_index(child.id).parent() == pidx
    # a state change that leaves the filter removes the row
    model.set_filter(TaskFilter(states=("running",)))
    model.fetchMore(QModelIndex())
    assert [model.index(r, 0).data(TaskIdRole) for r in range(model.rowCount())] == [ids["running"]]
    done = ui.store.get(ids["running"]).model_copy(update={"state": TaskState.COMPLETED})
    model.apply_changes([done])
    assert model.rowCount() == 0
    qtmodeltester.check(model)


def test_filters_and_silent(ui: UiEnv) -> None:  # noqa: F811
    ids = _history(ui.store)
    dock = TasksDock(ui.store, ui.engine, ui.bridge)

    def shown() -> set[int]:
        m = dock.model
        while m.canFetchMore(QModelIndex()):
            m.fetchMore(QModelIndex())
        return {m.index(r, 0).data(TaskIdRole) for r in range(m.rowCount())}

    assert shown() == {ids["a"], ids["parent"], ids["running"]}
    dock.silent_check.setChecked(True)
    assert ids["silent"] in shown()
    dock.silent_check.setChecked(False)
    dock.state_combo.setCurrentIndex(dock.state_combo.findText("failed"))
    assert shown() == {ids["parent"]}
    dock.state_combo.setCurrentIndex(0)
    dock.kind_combo.setCurrentIndex(dock.kind_combo.findData("build_device"))
    assert shown() == {ids["a"], ids["running"]}
    dock.kind_combo.setCurrentIndex(0)
    dock.device_edit.setText("beta")
    dock.apply_filter()
    assert shown() == {ids["parent"], ids["running"]}
    dock.device_edit.clear()
    dock.text_edit.setText("ALPHA")
    dock.apply_filter()
    assert shown() == {ids["a"], ids["parent"]}  # the fleet deploy names alpha among its devices
    assert dock.running_count() == 1


def test_history_of_100k_opens_lazily(ui: UiEnv) -> None:  # noqa: F811
    with ui.store.transaction():
        for i in range(100_000):
            ui.store.insert_task(TaskRecord(kind="build_device", title=f"Build dev{i % 50}",
                                            state=TaskState.COMPLETED, devices=[f"dev{i % 50}"]))
    win = QMainWindow()
    dock = TasksDock(ui.store, ui.engine, ui.bridge)
    win.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    win.resize(1000, 400)
    win.show()
    ui.settle(0.05)
    m = dock.model
    assert 0 < m.rowCount() <= 2 * m.page_size
    assert m.canFetchMore(QModelIndex())
    n = m.rowCount()
    m.fetchMore(QModelIndex())
    assert m.rowCount() == n + m.page_size
    assert dock.select_task(98_500)  # deeper in history: pages are read until it is there
    assert dock.current_task_id() == 98_500
    assert m.rowCount() < 100_000


def test_run_command_goes_live_and_completes(ui: UiEnv) -> None:  # noqa: F811
    dock = TasksDock(ui.store, ui.engine, ui.bridge)
    counts: list[tuple[int, int]] = []
    dock.countsChanged.connect(lambda r, p: counts.append((r, p)))
    tid = ui.submit("import time\nfor i in range(5):\n    print(i, flush=True); time.sleep(0.1)")
    ui.wait_until(lambda: dock.state_of(tid) == "running")
    assert dock.running_count() == 1
    ui.run(ui.engine.wait(tid))
    ui.wait_until(lambda: dock.state_of(tid) == "completed")
    assert dock.model.task_index(tid).row() == 0
    assert counts[-1] == (0, 0) and (1, 0) in counts
    idx = dock.model.task_index(tid, Column.DURATION)
    assert idx.data().endswith("s")


def test_cancel_and_rerun_from_context_menu(ui: UiEnv) -> None:  # noqa: F811
    dock = TasksDock(ui.store, ui.engine, ui.bridge)
    opened: list[int] = []
    dock.openDetails.connect(opened.append)
    tid = ui.submit("import time\nprint('start', flush=True)\ntime.sleep(60)")
    ui.wait_until(lambda: dock.state_of(tid) == "running")
    assert dock.select_task(tid)
    dock.update_actions()
    assert dock.action_cancel.isEnabled()
    assert not dock.action_rerun.isEnabled() and not dock.action_rerun_failed.isEnabled()
    dock.action_cancel.trigger()
    assert ui.run(ui.engine.wait(tid)).state == TaskState.CANCELED
    ui.wait_until(lambda: dock.state_of(tid) == "canceled")
    assert not dock.action_cancel.isEnabled()
    assert dock.action_rerun.isEnabled() and dock.action_force_rerun.isEnabled()
    assert not dock.action_rerun_failed.isEnabled()
    dock.action_copy_id.trigger()
    assert QApplication.clipboard().text() == str(tid)
    dock.action_open_details.trigger()
    assert opened == [tid]
    dock.action_force_rerun.trigger()
    ui.wait_until(lambda: dock.current_task_id() not in (None, tid))
    new = ui.store.get(dock.current_task_id() or 0)
    assert new.origin_id == tid and new.forced
    ui.run(ui.engine.cancel(new.id))
    ui.run(ui.engine.wait(new.id))


def test_bridge_batches_events(ui: UiEnv) -> None:  # noqa: F811
    from nixdeck.core.tasks.events import OutputAppended, StepChanged, TaskChanged
    from nixdeck.core.tasks.model import StepRecord

    got: dict[str, list[object]] = {"tasks": [], "out": [], "steps": []}
    ui.bridge.tasksChanged.connect(lambda ts: got["tasks"].append([(t.id, t.state.value) for t in ts]))
    ui.bridge.output.connect(lambda *a: got["out"].append(a))
    ui.bridge.stepsChanged.connect(lambda tid: got["steps"].append(tid))
    t = _add(ui.store, "Build alpha", state=TaskState.RUNNING)
    for i in range(1000):
        ui.engine.bus.emit(OutputAppended(t.id, 7, "stdout", f"{i}\n"))
    ui.engine.bus.emit(TaskChanged(t))
    ui.engine.bus.emit(TaskChanged(t.model_copy(update={"state": TaskState.COMPLETED})))
    ui.engine.bus.emit(StepChanged(t.id, StepRecord(job="main", index=0, name="build")))
    assert got == {"tasks": [], "out": [], "steps": []}  # nothing before the flush tick
    ui.settle(0.2)
    assert got["tasks"] == [[(t.id, "completed")]]
    assert got["out"] == [(t.id, 7, "stdout", "".join(f"{i}\n" for i in range(1000)))]
    assert got["steps"] == [t.id]
