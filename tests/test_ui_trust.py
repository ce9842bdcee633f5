"""Trust at a glance in the window: final phases, waiting reasons, tasks of other processes."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QPushButton

from engine_helpers import nixdeck_bg
from nixdeck.core.tasks.model import TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.watch import StoreWatcher
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
    from nixdeck.ui.details import TaskDetailsWindow

    waiting = TaskDetailsWindow(ui.store, ui.engine, ui.bridge, queued.id)
    assert waiting.overview.labels["Phase"].text() == "waiting for a slot (4 running, cap 4)"
    # a real task: a bar while it runs, its outcome once it ended
    tid = ui.submit("import time\nprint('x', flush=True)\ntime.sleep(60)")
    ui.wait_until(lambda: dock.state_of(tid) == "running")
    ui.engine._progress(tid, 0.25, "working on /nix/store/abc")
    ui.wait_until(lambda: m.task_index(tid, Column.PROGRESS).data(ProgressRole) == 0.25)
    ui.run(ui.engine.cancel(tid))
    ui.run(ui.engine.wait(tid))
    ui.wait_until(lambda: dock.state_of(tid) == "canceled")
    idx = m.task_index(tid, Column.PROGRESS)
    assert idx.data(ProgressRole) is None
    assert idx.data() == "canceled during run"


def test_tasks_of_other_processes_appear_live_without_reading_the_table(ui: UiEnv, tmp_path: Path) -> None:  # noqa: F811
    """A task started from the CLI shows up in the open window with its progress and its end; the
    watcher asks SQLite one PRAGMA per tick and reads only new or foreign active rows."""
    old = _add(ui.store, "Build old")
    dock = TasksDock(ui.store, ui.engine, ui.bridge)
    ui.bridge.watch_store(ui.store, interval_ms=50)
    statements: list[str] = []
    ui.store._conn.set_trace_callback(statements.append)
    go = tmp_path / "go"
    code = f"import os, time\nprint('started', flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)"
    look = TaskStore(ui.store.data_dir, recover=False)  # the test's own reads stay off the traced connection
    with nixdeck_bg(ui.store.data_dir, "run", "--json", "--", sys.executable, "-c", code) as proc:
        ui.wait_until(lambda: any(dock.state_of(t.id) == "running" for t in look.list_tasks() if t.id != old.id))
        [tid] = [t.id for t in look.list_tasks() if t.id != old.id]
        assert dock.model.task_index(tid).isValid()
        go.touch()
        ui.wait_until(lambda: dock.state_of(tid) == "completed")
        proc.wait(60)
    look.close()
    assert dock.model.task_index(tid, Column.PROGRESS).data() == "exited 0"
    ui.store._conn.set_trace_callback(None)
    reads = [s for s in statements if "FROM tasks" in s and "WHERE" not in s]
    assert reads == [], reads  # never the whole table
    assert any("PRAGMA data_version" in s for s in statements)
    assert ui.bridge.watcher is not None and ui.bridge.watcher.queries >= 2


def test_store_watcher_reports_only_other_processes_writes(data_dir: Path) -> None:
    a, b = TaskStore(data_dir), TaskStore(data_dir)
    try:
        w = StoreWatcher(a)
        assert w.poll() == []
        mine = a.insert_task(TaskRecord(kind="run_command", title="mine", state=TaskState.COMPLETED))
        assert w.poll() == []  # this connection's own commits do not count
        theirs = b.insert_task(TaskRecord(kind="run_command", title="theirs", state=TaskState.RUNNING))
        evs = w.poll()
        assert [(type(e).__name__, e.task.id) for e in evs] == [("TaskCreated", mine.id), ("TaskCreated", theirs.id)]
        assert w.poll() == []
        b.update_task(theirs.id, state=TaskState.COMPLETED, phase="exited 0")
        [ev] = w.poll()
        assert ev.task.id == theirs.id and ev.task.state == TaskState.COMPLETED and ev.task.phase == "exited 0"
        b.update_task(theirs.id, title="no longer watched")  # ended: not read again
        assert w.poll() == []
    finally:
        a.close()
        b.close()


def test_process_tab_shows_the_real_remote_connection(ui: UiEnv, tmp_path: Path) -> None:  # noqa: F811
    from PySide6.QtWidgets import QApplication, QLabel, QPlainTextEdit

    from nixdeck.core.ops.remote import openssh_argv
    from nixdeck.core.ssh.options import SshTarget
    from nixdeck.core.tasks.model import ProcessRecord
    from nixdeck.ui.details import TaskDetailsWindow

    t = _add(ui.store, "Run `uptime` on kiosk-1", kind="ssh_command", devices=["kiosk-1"], state=TaskState.FAILED,
             error="`uptime` on kiosk-1 exited with code 2", result={"exit_code": 2})
    target = SshTarget("127.0.0.11", 2222, "root", identity_file=tmp_path / "id_ed25519")
    exact = "echo NIXDECK-PGID-0123456789abcdef=$$ >&2; exec uptime"
    remote = {"via": "asyncssh", "connection": "root@127.0.0.11:2222", "identity_file": str(tmp_path / "id_ed25519"),
              "host_key_type": "ssh-ed25519", "host_key_fingerprint": "SHA256:abcDEF123", "command": exact,
              "known_hosts": str(tmp_path / "known_hosts"), "user": "root", "host": "127.0.0.11", "port": 2222}
    p = ui.store.insert_process(ProcessRecord(task_id=t.id, argv=openssh_argv(target, tmp_path / "known_hosts", "uptime"),
                                              started=utcnow()))
    ui.store.update_process(p.id, remote=remote, ended=utcnow(), exit_code=2)
    w = TaskDetailsWindow(ui.store, ui.engine, ui.bridge, t.id)
    w.show()
    w.show_tab("Process")
    texts = [lbl.text() for lbl in w.processes.findChildren(QLabel)]
    assert "root@127.0.0.11:2222 over SSH (asyncssh)" in texts
    assert "ssh-ed25519 SHA256:abcDEF123" in texts
    assert str(tmp_path / "id_ed25519") in texts
    [box] = w.processes.findChildren(QPlainTextEdit, "remoteCommand")
    assert box.toPlainText() == exact  # exactly what was sent, the process-group wrapper included
    [field] = w.processes.command_fields
    assert field.text().startswith("ssh -p 2222 -i ")
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in field.text()
    assert field.text().endswith("root@127.0.0.11 -- uptime")
    copy = [b for b in w.processes.findChildren(QPushButton) if b.text() == "Copy"][0]
    copy.click()
    assert QApplication.clipboard().text() == field.text()
    w.grab().save(str(tmp_path / "process.png"))


def test_readable_values_kinds_icons_and_code_tooltips(ui: UiEnv) -> None:  # noqa: F811
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMainWindow

    from nixdeck.core.tasks.model import MessageRecord, kind_label
    from nixdeck.ui.actions import DEVICE_ACTIONS, ActionController
    from nixdeck.ui.details import TaskDetailsWindow
    from nixdeck.ui.details_panes import result_text
    from nixdeck.ui.mainwindow import MainWindow
    from nixdeck.ui.messages_model import MessagesModel

    assert kind_label("ssh_command") == "Run SSH Command" and kind_label("run_vm") == "Run NixOS VM"
    assert result_text(False, "lock_changed") == "no"
    assert result_text(3 * 2**20 // 2, "closure_size") == "1.5 MiB (1,572,864 bytes)"
    assert result_text(["/nix/store/a", "/nix/store/b"], "paths") == "/nix/store/a\n/nix/store/b"

    t = _add(ui.store, "Update flake", kind="flake_update", result={"lock_changed": False, "closure_size": 2048})
    w = TaskDetailsWindow(ui.store, ui.engine, ui.bridge, t.id)
    assert w.overview.labels["Kind"].text() == "Update Nix Flake"
    texts = [lbl.text() for lbl in w.overview.findChildren(type(w.overview.labels["Kind"]))]
    assert "no" in texts and "2.0 KiB (2,048 bytes)" in texts

    dock = TasksDock(ui.store, ui.engine, ui.bridge)
    labels = [dock.kind_combo.itemText(i) for i in range(dock.kind_combo.count())]
    assert "Run SSH Command" in labels and "Run NixOS VM" in labels

    msgs = MessagesModel()
    msgs.set_messages([MessageRecord(level="error", message="error: undefined variable 'x'\n  at f.nix:3:5:\n"
                                                            "      2|   a = 1;\n      3|   b = x;\n       |     ^")])
    tip = str(msgs.index(0, 0).data(Qt.ItemDataRole.ToolTipRole))
    assert tip.startswith("<pre") and "3|   b = x;" in tip

    win = MainWindow(ui.store, ui.engine, ui.bridge, QSettingsForTest())
    assert isinstance(win, QMainWindow)
    ctl = win.commands if hasattr(win, "commands") else ActionController(win)
    images = {s.name: ctl.actions[s.name].icon().pixmap(16, 16).toImage() for s in DEVICE_ACTIONS if s.icon is not None}
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert images[a] != images[b], f"{a} and {b} share an icon"


def QSettingsForTest() -> object:  # noqa: N802 - a factory named like the class it makes
    from PySide6.QtCore import QSettings

    return QSettings("/dev/null", QSettings.Format.IniFormat)


def test_identical_messages_are_listed_once_with_a_count(ui: UiEnv) -> None:  # noqa: F811
    from nixdeck.core.tasks.model import MessageRecord
    from nixdeck.ui.details import TaskDetailsWindow

    t = _add(ui.store, "Build web1", state=TaskState.COMPLETED_WITH_WARNINGS,
             warnings=["Git tree '/f' is dirty: uncommitted changes in devices/db1.nix (×5)"])
    dirty = MessageRecord(level="warning", message="Git tree '/f' is dirty: uncommitted changes in devices/db1.nix",
                          source="nix")
    ui.store.add_messages(t.id, [dirty] * 5 + [MessageRecord(level="warning", message="other", source="nix")])
    w = TaskDetailsWindow(ui.store, ui.engine, ui.bridge, t.id)
    pane = w.message_panes["Warnings"]
    shown = [str(pane.proxy.index(r, 0).data()) for r in range(pane.proxy.rowCount())]
    assert len(shown) == 2 and shown[0].endswith("devices/db1.nix (×5)") and "other" in shown[1], shown
    assert w.overview.labels["Warnings"].text().endswith("(×5)")


def test_fleet_deploy_offers_trust_for_a_child_refused_on_its_host_key(ui: UiEnv) -> None:  # noqa: F811
    from nixdeck.ui.details import TaskDetailsWindow

    parent = _add(ui.store, "Deploy 2 devices", kind="deploy_devices", state=TaskState.FAILED,
                  error="1 of 2 failed: Deploy to node3")
    _add(ui.store, "Deploy to node1", kind="deploy_device", parent_id=parent.id)
    _add(ui.store, "Deploy to node3", kind="deploy_device", parent_id=parent.id, state=TaskState.FAILED,
         error="HOST KEY CHANGED for node3", result={"host_key": {"device": "node3", "problem": "changed",
                                                                    "offered": "SHA256:new"}})
    w = TaskDetailsWindow(ui.store, ui.engine, ui.bridge, parent.id)
    w.show()
    w.show_tab("Errors")
    assert w.host_key_bar.isVisible() and w.trust_button.text() == "Trust host key of node3…"
    asked: list[str] = []
    w.trustHost.connect(asked.append)
    w.trust_button.click()
    assert asked == ["node3"]
