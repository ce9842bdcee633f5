"""The panes of the task details window: overview, jobs & steps, messages, process, output streams."""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.tasks.model import JobRecord, ProcessRecord, TaskRecord
from nixdeck.ui.formatting import fmt_duration, fmt_size, fmt_time, one_line
from nixdeck.ui.icons import state_icon, state_label
from nixdeck.ui.logview import LogView
from nixdeck.ui.messages_model import DetailRole, LevelFilter, LocationRole, MessagesModel


def mono_font() -> Any:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def _value_label(text: str = "", *, rich: bool = False) -> QLabel:
    lab = QLabel(text)
    lab.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    lab.setTextInteractionFlags(
        Qt.TextInteractionFlag.TextBrowserInteraction if rich else Qt.TextInteractionFlag.TextSelectableByMouse
    )
    lab.setWordWrap(True)
    return lab


def task_link(t: TaskRecord | None, task_id: int) -> str:
    """Rich text link `#id title (state)` whose href is `task:<id>`."""
    title = f" {html.escape(t.title)} ({state_label(t.state)})" if t is not None else ""
    return f'<a href="task:{task_id}">#{task_id}</a>{title}'


def _scroll(inner: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(inner)
    return area


class OverviewPane(QScrollArea):
    """State, people, links and times of a task, its error, warnings and result.

    Signals:
        openTask(int): a parent/origin/child link was clicked.
    """

    openTask = Signal(int)
    FIELDS = ("Task", "Kind", "State", "Author", "Devices", "Project", "Parent", "Origin", "Children", "Created",
              "Started", "Ended", "Duration", "Timeout", "Attempt", "Flags", "Error", "Warnings")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        self.form = QFormLayout(inner)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.labels: dict[str, QLabel] = {}
        for name in self.FIELDS:
            rich = name in ("Parent", "Origin", "Children", "State")
            lab = _value_label(rich=rich)
            if rich:
                lab.linkActivated.connect(self._on_link)
            self.labels[name] = lab
            self.form.addRow(name + ":", lab)
        self.labels["Error"].setStyleSheet("color: #c62828;")
        self.result_box = QGroupBox("Result")
        self.result_form = QFormLayout(self.result_box)
        self.result_buttons: list[QPushButton] = []
        self.form.addRow(self.result_box)
        self.setWidget(inner)
        self._result: dict[str, Any] | None = None

    def _on_link(self, href: str) -> None:
        if href.startswith("task:"):
            self.openTask.emit(int(href[5:]))

    def _set(self, name: str, text: str) -> None:
        lab = self.labels[name]
        lab.setText(text)
        visible = bool(text)
        lab.setVisible(visible)
        self.form.setRowVisible(lab, visible)

    def update_task(self, t: TaskRecord, parent: TaskRecord | None, origin: TaskRecord | None,
                    children: list[TaskRecord]) -> None:
        self._set("Task", f"#{t.id} {one_line(t.title)}")
        self._set("Kind", t.kind.replace("_", " "))
        self._set("State", state_label(t.state) + (" (cancel requested)" if t.cancel_requested else ""))
        self._set("Author", t.author)
        self._set("Devices", ", ".join(t.devices))
        self._set("Project", t.project or "")
        self._set("Parent", task_link(parent, t.parent_id) if t.parent_id else "")
        self._set("Origin", (task_link(origin, t.origin_id) + (" — forced rerun" if t.forced else " — rerun"))
                  if t.origin_id else "")
        if children:
            shown = "<br>".join(task_link(c, c.id) for c in children[:30])
            more = f"<br>… and {len(children) - 30} more" if len(children) > 30 else ""
            self._set("Children", shown + more)
        else:
            self._set("Children", "")
        self._set("Created", fmt_time(t.created, full=True))
        self._set("Started", fmt_time(t.started, full=True))
        self._set("Ended", fmt_time(t.ended, full=True))
        self.update_duration(t)
        self._set("Timeout", fmt_duration(t.timeout) if t.timeout else "")
        self._set("Attempt", f"{t.attempt} of {t.max_attempts}" if t.max_attempts > 1 else "")
        flags = [f for f, on in (("forced", t.forced), ("silent", t.silent)) if on]
        self._set("Flags", ", ".join(flags))
        self._set("Error", t.error or "")
        self._set("Warnings", "\n".join(f"• {w}" for w in t.warnings))
        if t.result != self._result:
            self._show_result(t.result)

    def update_duration(self, t: TaskRecord) -> None:
        d = t.duration
        self._set("Duration", fmt_duration(d) + (" (running)" if d is not None and not t.state.terminal else ""))

    def _show_result(self, result: dict[str, Any]) -> None:
        self._result = dict(result)
        while self.result_form.rowCount():
            self.result_form.removeRow(0)
        self.result_buttons = []
        for key, value in result.items():
            if key == "build_logs":
                continue
            text = value if isinstance(value, str) else repr(value) if not isinstance(value, int | float) else str(value)
            row = QWidget()
            lay = QHBoxLayout(row)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(_value_label(text), 1)
            if isinstance(value, str) and value.startswith("/"):
                folder = Path(value) if Path(value).is_dir() else Path(value).parent
                label = "Open image folder" if "image" in key.lower() else "Open folder"
                button = QPushButton(label)
                button.setToolTip(str(folder))
                button.clicked.connect(lambda _=False, f=folder: QDesktopServices.openUrl(QUrl.fromLocalFile(str(f))))
                lay.addWidget(button)
                self.result_buttons.append(button)
            self.result_form.addRow(key.replace("_", " ") + ":", row)
        self.result_box.setVisible(bool(result))


class JobsPane(QTreeWidget):
    """Jobs (parallel) and their steps (in order), with state icons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Job / step", "State", "Started", "Duration", "Detail"])
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.setColumnWidth(0, 220)
        self.setColumnWidth(1, 170)
        self.setColumnWidth(2, 80)
        self.setColumnWidth(3, 80)

    def set_jobs(self, jobs: list[JobRecord]) -> None:
        self.clear()
        for job in jobs:
            top = QTreeWidgetItem(self, [job.name, state_label(job.state)])
            top.setIcon(1, state_icon(job.state))
            for s in job.steps:
                d = (s.ended - s.started).total_seconds() if s.started and s.ended else None
                item = QTreeWidgetItem(top, [f"{s.index + 1}. {s.name}", state_label(s.state), fmt_time(s.started),
                                             fmt_duration(d) if d is not None else "", s.detail])
                item.setIcon(1, state_icon(s.state))
                item.setToolTip(4, s.detail)
            top.setExpanded(True)


class MessagesPane(QSplitter):
    """One level pane (errors, warnings or infos): a filtered list and the selected message in full.

    Double-click copies the message's `file:line:column` (or its text when it has no location).
    """

    def __init__(self, model: MessagesModel, levels: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.proxy = LevelFilter(levels, self)
        self.proxy.setSourceModel(model)
        self.list = QListView(self)
        self.list.setModel(self.proxy)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setUniformItemSizes(True)
        self.list.setIconSize(QSize(16, 16))
        self.list.setToolTip("Double-click copies the location")
        self.detail = QPlainTextEdit(self)
        self.detail.setReadOnly(True)
        self.detail.setFont(mono_font())
        self.detail.setPlaceholderText("Select a message to see it in full, with its trace.")
        self.addWidget(self.list)
        self.addWidget(self.detail)
        self.setStretchFactor(0, 2)
        self.setStretchFactor(1, 1)
        self.list.selectionModel().currentChanged.connect(self._show)
        self.list.doubleClicked.connect(self.copy_location)
        self.proxy.rowsInserted.connect(self._select_first)
        self.proxy.modelReset.connect(self._select_first)

    def _select_first(self, *_: Any) -> None:
        if not self.list.currentIndex().isValid() and self.proxy.rowCount():
            self.list.setCurrentIndex(self.proxy.index(0, 0))

    def _show(self, cur: QModelIndex, _prev: QModelIndex) -> None:
        self.detail.setPlainText(str(cur.data(DetailRole) or "") if cur.isValid() else "")

    def copy_location(self, index: QModelIndex) -> str:
        text = str(index.data(LocationRole) or "") or str(index.data(DetailRole) or "")
        QApplication.clipboard().setText(text)
        return text


class ProcessPane(QScrollArea):
    """Each process of the task: argv as a copyable shell line, cwd, added env, exit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._shown: list[dict[str, Any]] | None = None
        self.command_fields: list[QLineEdit] = []
        self.set_processes([])

    def set_processes(self, procs: list[ProcessRecord]) -> None:
        dumped = [p.model_dump() for p in procs]
        if dumped == self._shown:
            return
        self._shown = dumped
        inner = QWidget()
        lay = QVBoxLayout(inner)
        self.command_fields = []
        if not procs:
            lay.addWidget(QLabel("This task ran no local process."))
        for p in procs:
            where = " · ".join(x for x in (p.job, p.step) if x)
            box = QGroupBox(f"Process {p.id}" + (f" · {where}" if where else "")
                            + (f" · attempt {p.attempt}" if p.attempt > 1 else ""))
            form = QFormLayout(box)
            cmd = QLineEdit(shlex.join(p.argv))
            cmd.setReadOnly(True)
            cmd.setFont(mono_font())
            cmd.setCursorPosition(0)
            self.command_fields.append(cmd)
            copy = QPushButton("Copy")
            copy.setToolTip("Copy the command as a shell line")
            copy.clicked.connect(lambda _=False, c=cmd: QApplication.clipboard().setText(c.text()))
            row = QHBoxLayout()
            row.addWidget(cmd, 1)
            row.addWidget(copy)
            form.addRow("Command:", row)
            form.addRow("Working dir:", _value_label(p.cwd or "(NixDeck's own)"))
            if p.env:
                env = _value_label("\n".join(f"{k}={v}" for k, v in sorted(p.env.items())))
                env.setFont(mono_font())
                form.addRow("Added env:", env)
            if p.ended is None and p.started is not None:
                ended = "running" + (f" (pid {p.pid})" if p.pid else "")
            elif p.signal:
                ended = f"killed by signal {p.signal}"
            else:
                ended = f"exit code {p.exit_code}" if p.exit_code is not None else "did not start"
            form.addRow("Outcome:", _value_label(ended))
            form.addRow("Started:", _value_label(fmt_time(p.started, full=True)))
            if p.ended:
                form.addRow("Ended:", _value_label(fmt_time(p.ended, full=True)))
            form.addRow("Output:", _value_label(f"stdout {fmt_size(p.stdout_size)}, stderr {fmt_size(p.stderr_size)}"
                                                if p.ended else "streaming"))
            lay.addWidget(box)
        lay.addStretch(1)
        self.setWidget(inner)


class StreamPane(QWidget):
    """stdout or stderr of the task's processes, one log view with a process chooser."""

    def __init__(self, stream: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stream = stream
        self.combo = QComboBox(self)
        self.combo.currentIndexChanged.connect(self._on_choice)
        self.log = LogView(None, self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.combo_label = QLabel("Process:")
        top.addWidget(self.combo_label)
        top.addWidget(self.combo, 1)
        lay.addLayout(top)
        lay.addWidget(self.log, 1)
        self._procs: list[ProcessRecord] = []
        self._live = False

    def process_ids(self) -> list[int]:
        return [p.id for p in self._procs]

    def current_process(self) -> int | None:
        i = self.combo.currentIndex()
        return self._procs[i].id if 0 <= i < len(self._procs) else None

    def set_processes(self, procs: list[ProcessRecord], live: bool) -> None:
        """Offer these processes; a newly started one is shown when the last one was being shown."""
        self._live = live
        old = [p.id for p in self._procs]
        cur = self.current_process()
        follow_last = cur is None or cur == old[-1]
        self._procs = list(procs)
        ids = [p.id for p in procs]
        self.combo.blockSignals(True)
        self.combo.clear()
        for p in procs:
            self.combo.addItem(f"{p.id}: {shlex.join(p.argv)[:120]}")
        many = len(procs) > 1
        self.combo.setVisible(many)
        self.combo_label.setVisible(many)
        if procs:
            self.combo.setCurrentIndex(len(procs) - 1 if follow_last or cur not in ids else ids.index(cur))
        self.combo.blockSignals(False)
        self._on_choice(self.combo.currentIndex())

    def _on_choice(self, i: int) -> None:
        if not 0 <= i < len(self._procs):
            return
        p = self._procs[i]
        path = p.stdout_path if self.stream == "stdout" else p.stderr_path
        self.log.set_path(path)
        self.log.set_live(self._live and p.ended is None)

    def notify(self, process_id: int) -> None:
        if process_id == self.current_process():
            self.log.notify_output()


def build_logs_pane(logs: dict[str, str]) -> QWidget:
    """Per-derivation build logs, when a task's result names them as `build_logs` {drv: file}."""
    w = QWidget()
    lay = QVBoxLayout(w)
    combo = QComboBox(w)
    view = LogView(None, w)
    for drv, path in sorted(logs.items()):
        combo.addItem(drv, path)
    combo.currentIndexChanged.connect(lambda i: view.set_path(combo.itemData(i)))
    lay.addWidget(combo)
    lay.addWidget(view, 1)
    if logs:
        view.set_path(combo.itemData(0))
    return w
