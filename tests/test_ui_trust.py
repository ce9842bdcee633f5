"""Trust at a glance in the window: final phases, waiting reasons, tasks of other processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtCore import QModelIndex

from nixdeck.core.tasks.model import TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.tasks_dock import TasksDock
from nixdeck.ui.tasks_model import Column, ProgressRole
from ui_helpers import UiEnv, ui  # noqa: F401

pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints")


def _add(store: TaskStore, title: str, **kw: object) -> TaskRecord:
    now = utcnow()
    fields: dict[str, object] = {"kind": "build_device", "title": title, "state": TaskState.COMPLETED,
                                 "started": now - timedelta(seconds=3), "ended": now}
    fields.update(kw)
    return store.insert_task(TaskRecord.model_validate(fields))


def test_progress_bar_only_while_running_and_final_phase_after(ui: UiEnv) -> None:  # noqa: F811
    queued = _add(ui.store, "Build q", state=TaskState.QUEUED, ended=None, progress=0.3,
                  phase="waiting for a slot (4 running, cap 4)")
    done = _add(ui.store, "Build d", progress=0.5, phase="4/4 built")
    dock = TasksDock(ui.store, ui.engine, ui.bridge)
    m = dock.model
    while m.canFetchMore(QModelIndex()):
        m.fetchMore(QModelIndex())
    assert m.task_index(queued.id, Column.PROGRESS).data(ProgressRole) is None
    assert m.task_index(queued.id, Column.PROGRESS).data() == "waiting for a slot (4 running, cap 4)"
    assert m.task_index(done.id, Column.PROGRESS).data(ProgressRole) is None
    # a real task: a bar while it runs, its outcome once it ended
    tid = ui.submit("import time\nprint('x', flush=True)\ntime.sleep(60)")
    ui.wait_until(lambda: dock.state_of(tid) == "running")
    ui.engine._progress(tid, 0.25, "working on /nix/store/abc")
    ui.settle(0.2)
    assert m.task_index(tid, Column.PROGRESS).data(ProgressRole) == 0.25
    ui.run(ui.engine.cancel(tid))
    ui.run(ui.engine.wait(tid))
    ui.wait_until(lambda: dock.state_of(tid) == "canceled")
    idx = m.task_index(tid, Column.PROGRESS)
    assert idx.data(ProgressRole) is None
    assert idx.data() == "canceled during run"
