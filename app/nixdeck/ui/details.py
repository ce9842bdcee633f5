"""TaskDetailsWindow: everything about one task (DESIGN §5), live while it runs.

Shows what `nixdeck tasks show` prints, arranged in tabs: overview, jobs & steps, Nix errors /
warnings / infos each in its own pane, stdout and stderr (lazy, tail-following), the processes and
the submission. Several can be open at once; each listens to the EngineBridge.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QIcon, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskNotFound
from nixdeck.core.tasks.model import MessageRecord, TaskRecord
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.termtext import neutralise
from nixdeck.ui.bridge import EngineBridge
from nixdeck.ui.details_panes import (
    DerivationsPane,
    JobsPane,
    MessagesPane,
    OverviewPane,
    StreamPane,
    derivation_rows,
    mono_font,
)
from nixdeck.ui.formatting import for_window, one_line
from nixdeck.ui.icons import state_icon, state_label
from nixdeck.ui.messages_model import PANE_LEVELS, MessagesModel
from nixdeck.ui.process_pane import ProcessPane
from nixdeck.ui.task_actions import can_cancel, can_rerun, can_rerun_failed, run_action


def _said_by(error: str, msgs: list[MessageRecord]) -> bool:
    """True when the task's error only repeats one of its (Nix) errors, which then stays first."""
    for m in msgs:
        if m.level != "error":
            continue
        first = m.message.strip().splitlines()[0].removeprefix("error:").strip() if m.message.strip() else ""
        if first and (first in error or m.message == error):
            return True
    return False


def collapse_repeats(msgs: list[MessageRecord]) -> list[MessageRecord]:
    """Identical messages (e.g. the same Nix warning from each Nix call of a build) shown once, counted."""
    out: list[MessageRecord] = []
    counts: dict[tuple[str, str, str | None, int | None], int] = {}
    for m in msgs:
        key = (m.level, m.message, m.file, m.line)
        if key in counts:
            counts[key] += 1
            continue
        counts[key] = 1
        out.append(m)
    return [m if counts[(m.level, m.message, m.file, m.line)] == 1
            else m.model_copy(update={"message": f"{m.message} (×{counts[(m.level, m.message, m.file, m.line)]})"})
            for m in out]


class TaskDetailsWindow(QWidget):
    """A top-level window showing one task.

    Signals:
        openTask(int): the user asked for another task (parent, origin, child link, or the task a
            rerun just created); the main window opens its details.
        trustHost(str): the user wants to trust the host key of this device (the task failed on it);
            the main window runs its Trust host key action.
    """

    openTask = Signal(int)
    trustHost = Signal(str)

    def __init__(
        self,
        store: TaskStore,
        engine: TaskEngine,
        bridge: EngineBridge,
        task_id: int,
        parent: QWidget | None = None,
    ) -> None:
        task = engine.live(task_id)  # TaskNotFound before any widget is made
        super().__init__(parent, Qt.WindowType.Window)
        self.store, self.engine, self.bridge = store, engine, bridge
        self.task_id = task_id
        self.task: TaskRecord = task
        self.setWindowTitle(f"Task #{task_id}")
        self.resize(980, 680)

        # header: state, title and the actions
        self.state_icon = QLabel()
        self.title = QLabel()
        f = QFont(self.title.font())
        f.setPointSizeF(f.pointSizeF() * 1.2)
        f.setBold(True)
        self.title.setFont(f)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.state_text = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.rerun_button = QPushButton("Rerun")
        self.force_button = QPushButton("Force rerun")
        self.force_button.setToolTip("Rerun treating user errors (e.g. an unreachable device) as warnings")
        self.failed_button = QPushButton("Rerun failed")
        self.failed_button.setToolTip("Rerun only the failed children")
        self.cancel_button.clicked.connect(self.cancel)
        self.rerun_button.clicked.connect(lambda: self.rerun())
        self.force_button.clicked.connect(lambda: self.rerun(force=True))
        self.failed_button.clicked.connect(lambda: self.rerun(failed_only=True))
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #c62828;")
        self.notice.hide()

        head = QHBoxLayout()
        head.addWidget(self.state_icon)
        head.addWidget(self.title, 1)
        head.addWidget(self.state_text)
        head.addSpacing(12)
        for b in (self.cancel_button, self.rerun_button, self.force_button, self.failed_button):
            head.addWidget(b)

        # tabs
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.overview = OverviewPane()
        self.overview.openTask.connect(self.openTask)
        self.jobs = JobsPane()
        self.messages = MessagesModel(self)
        self.message_panes: dict[str, MessagesPane] = {
            name: MessagesPane(self.messages, levels, name=name) for name, levels in PANE_LEVELS.items()
        }
        self.host_key_bar = QWidget()
        bar = QHBoxLayout(self.host_key_bar)
        bar.setContentsMargins(4, 4, 4, 4)
        self.host_key_label = QLabel()
        self.host_key_label.setWordWrap(True)
        self.trust_button = QPushButton("Trust host key…")
        self.trust_button.clicked.connect(self._trust)
        bar.addWidget(self.host_key_label, 1)
        bar.addWidget(self.trust_button)
        self.host_key_bar.hide()
        self._host_key: dict[str, Any] | None = None
        self.message_panes["Errors"].insertWidget(0, self.host_key_bar)
        self.message_panes["Errors"].setCollapsible(0, False)
        self.stdout = StreamPane("stdout")
        self.stderr = StreamPane("stderr")
        self.processes = ProcessPane()
        self.submission = QPlainTextEdit()
        self.submission.setReadOnly(True)
        self.submission.setFont(mono_font())
        self.tabs.addTab(self.overview, "Overview")
        self.tabs.addTab(self.jobs, "Jobs && steps")
        for name, pane in self.message_panes.items():
            self.tabs.addTab(pane, name)
        self.tabs.addTab(self.stdout, "stdout")
        self.tabs.addTab(self.stderr, "stderr")
        self.tabs.addTab(self.processes, "Process")
        self.tabs.addTab(self.submission, "Submission")
        self.build_logs: DerivationsPane | None = None  # added once the task names derivations

        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(self.notice)
        lay.addWidget(self.tabs, 1)

        for keys in (QKeySequence(QKeySequence.StandardKey.Close), QKeySequence("Ctrl+W"), QKeySequence("Esc")):
            QShortcut(keys, self, self.close)  # a details window closes like any other window
        self._process_ids: list[int] = []
        self._closed = False  # a Cancel/Rerun still running must not touch the window once closed
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(lambda: self.overview.update_duration(self.task))
        bridge.tasksChanged.connect(self._on_tasks)
        bridge.stepsChanged.connect(self._on_steps)
        bridge.output.connect(self._on_output)
        bridge.messagesAdded.connect(self._on_messages)
        self.refresh_all()

    # -- reading the store --------------------------------------------------------------------
    def _get(self, task_id: int | None) -> TaskRecord | None:
        if task_id is None:
            return None
        try:
            return self.engine.live(task_id)
        except TaskNotFound:
            return None

    def refresh_all(self) -> None:
        self.submission.setPlainText(json.dumps(self.task.submission, indent=2, sort_keys=True, default=str))
        self._refresh_task()
        self.jobs.set_jobs(self.store.jobs(self.task_id))
        self._refresh_processes()
        self._refresh_messages()

    def _refresh_task(self) -> None:
        t = self.task
        self.state_icon.setPixmap(state_icon(t.state).pixmap(20, 20))
        self.title.setText(f"#{t.id} {neutralise(one_line(t.title))}")
        self.title.setToolTip(t.title)
        self.state_text.setText(state_label(t.state))
        self.setWindowTitle(f"Task #{t.id} — {one_line(t.title)} ({state_label(t.state)})")
        children = self.store.children(t.id)
        self.overview.update_task(t, self._get(t.parent_id), self._get(t.origin_id), children)
        self.cancel_button.setVisible(can_cancel(t))
        rerun = can_rerun(self.engine, t)
        self.rerun_button.setVisible(rerun)
        self.force_button.setVisible(rerun)
        self.failed_button.setVisible(rerun and can_rerun_failed(self.engine, self.store, t))
        if t.state.terminal:
            self._ticker.stop()
        elif t.started is not None and not self._ticker.isActive():
            self._ticker.start()
        self._show_host_key(t)
        drvs = derivation_rows(t.result)
        if drvs and self.build_logs is None:
            self.build_logs = DerivationsPane()
            self.tabs.insertTab(self.tabs.indexOf(self.stdout), self.build_logs, "Build logs")
        if self.build_logs is not None:
            self.build_logs.set_derivations(drvs)
            i = self.tabs.indexOf(self.build_logs)
            failed = sum(1 for d in drvs if d.get("state") == "failed")
            self.tabs.setTabText(i, f"Build logs ({len(drvs)})")
            self.tabs.setTabIcon(i, state_icon("failed") if failed else QIcon())

    def _refresh_processes(self) -> None:
        procs = self.store.processes(self.task_id)
        # a process whose log files are not recorded yet (it is starting) is looked at again on output
        self._process_ids = [p.id for p in procs if p.stdout_path and p.stderr_path]
        live = not self.task.state.terminal
        self.processes.set_processes(procs)
        self.stdout.set_processes(procs, live)
        self.stderr.set_processes(procs, live)

    def _show_host_key(self, t: TaskRecord) -> None:
        """A refused host key: the Errors tab offers the window's own Trust host key action."""
        hk = t.result.get("host_key")
        if not isinstance(hk, dict) and t.state.terminal and not t.state.ok:  # a fleet task: its children's
            kids = [k.result.get("host_key") for k in self.store.children(t.id) if not k.state.ok]
            hk = next((k for k in kids if isinstance(k, dict)), None)
        self._host_key = hk if isinstance(hk, dict) else None
        if not (isinstance(hk, dict) and hk.get("device") and t.state.terminal and not t.state.ok):
            self.host_key_bar.hide()
            return
        what = {"changed": "changed its host key", "unknown": "offers a host key NixDeck does not trust yet"}
        offered = f" ({hk['offered']})" if hk.get("offered") else ""
        self.host_key_label.setText(f"{hk['device']} {what.get(str(hk.get('problem')), 'was refused')}{offered}. "
                                    "Verify the fingerprint on the device, then trust it here.")
        self.trust_button.setText(f"Trust host key of {hk['device']}…")
        self.host_key_bar.show()

    def _trust(self) -> None:
        hk = self._host_key
        if hk is not None and hk.get("device"):
            self.trustHost.emit(str(hk["device"]))

    def _refresh_messages(self) -> None:
        self.messages.set_base(self.task.project)
        msgs = self.store.messages(self.task_id)
        t = self.task
        if t.error and t.state.terminal and not t.state.ok and not _said_by(t.error, msgs):
            # NixDeck's own reason comes first, once: Nix's messages after it are its consequences
            msgs = [MessageRecord(task_id=t.id, level="error", message=for_window(t.error), source="nixdeck"), *msgs]
        self.messages.set_messages(collapse_repeats(msgs))
        for name, levels in PANE_LEVELS.items():
            n = self.messages.count(levels)
            i = self.tabs.indexOf(self.message_panes[name])
            self.tabs.setTabText(i, f"{name} ({n})" if n else name)
            self.tabs.setTabIcon(i, state_icon(levels[0]) if n and name != "Infos" else QIcon())

    # -- live ---------------------------------------------------------------------------------
    def _on_tasks(self, tasks: list[TaskRecord]) -> None:
        mine = [t for t in tasks if t.id == self.task_id]
        kids = any(t.parent_id == self.task_id for t in tasks)
        if mine:
            ended = mine[-1].state.terminal and not self.task.state.terminal
            self.task = mine[-1]
            self._refresh_task()
            if ended:
                self._refresh_processes()
                self._refresh_messages()
                self.jobs.set_jobs(self.store.jobs(self.task_id))
        elif kids or any(t.id in (self.task.parent_id, self.task.origin_id) for t in tasks):
            self._refresh_task()

    def _on_steps(self, task_id: int) -> None:
        if task_id == self.task_id:
            self.jobs.set_jobs(self.store.jobs(self.task_id))

    def _on_output(self, task_id: int, process_id: int, stream: str, _text: str) -> None:
        if task_id != self.task_id:
            return
        if process_id not in self._process_ids:
            self._refresh_processes()
        (self.stdout if stream == "stdout" else self.stderr).notify(process_id)

    def _on_messages(self, task_id: int) -> None:
        if task_id == self.task_id:
            self._refresh_messages()

    # -- actions ------------------------------------------------------------------------------
    def _error(self, text: str) -> None:
        if not self._closed:
            self.notice.setText(text)
            self.notice.show()

    def _opened(self, new_id: int) -> None:
        if not self._closed:  # a closed window is deleted: its signals are gone
            self.openTask.emit(new_id)

    def cancel(self) -> None:
        self.notice.hide()
        run_action(self.engine.cancel(self.task_id), on_error=self._error)

    def rerun(self, *, force: bool = False, failed_only: bool = False) -> None:
        """Start a rerun; the new task is announced with openTask."""
        self.notice.hide()
        run_action(self.engine.rerun(self.task_id, force=force, failed_only=failed_only),
                   on_done=lambda new_id: self._opened(int(new_id)), on_error=self._error)

    def show_tab(self, name: str) -> None:
        """Bring a tab forward by its base name ("Errors", "stdout", …)."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i).split(" (")[0].replace("&&", "&") == name:
                self.tabs.setCurrentIndex(i)
                return

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc and Ctrl+W close the window (also when the shortcut map does not see the key)."""
        if event.key() == Qt.Key.Key_Escape or event.matches(QKeySequence.StandardKey.Close) or (
            event.key() == Qt.Key.Key_W and event.modifiers() == Qt.KeyboardModifier.ControlModifier
        ):
            self.close()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self._ticker.stop()
        for sig, slot in ((self.bridge.tasksChanged, self._on_tasks), (self.bridge.stepsChanged, self._on_steps),
                          (self.bridge.output, self._on_output), (self.bridge.messagesAdded, self._on_messages)):
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        for pane in (self.stdout, self.stderr):
            pane.log.set_live(False)
            pane.log.model.close()
        if self.build_logs is not None:
            self.build_logs.log.model.close()
        super().closeEvent(event)
