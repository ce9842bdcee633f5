"""The panes of the task details window: overview, jobs & steps, messages, process, output streams."""

from __future__ import annotations

import html
import json
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

from nixdeck.core.tasks.model import JobRecord, ProcessRecord, TaskRecord, kind_label
from nixdeck.core.termtext import neutralise
from nixdeck.ui.formatting import fmt_duration, fmt_size, fmt_time, for_window, one_line
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


# result keys shown in their own pane, not in the Result box
RESULT_ELSEWHERE = ("derivations", "host_key")  # build logs tab; the Errors tab's trust bar
# what one entry of a per-device result shows, in this order (e.g. a fleet deploy's `devices`)
_ENTRY_FIELDS = ("state", "outcome", "exit_code", "out_path", "store_path", "error", "failed_units")


def _entry_text(entry: dict[str, Any]) -> str:
    parts = []
    for k in _ENTRY_FIELDS:
        v = entry.get(k)
        if v is None or v == "" or v == []:
            continue
        parts.append(", ".join(map(str, v)) if isinstance(v, list) else str(v) if k in ("state", "outcome")
                     else f"{k.replace('_', ' ')} {v}")
    if entry.get("task") is not None:
        parts.insert(0, f"task #{entry['task']}")
    if isinstance(entry.get("log"), list) and entry["log"]:
        parts.append(f"last {len(entry['log'])} log lines in its task")
    return " · ".join(parts)


def result_text(value: Any, key: str = "") -> str:
    """A result value for people: yes/no, sizes with units, lists and per-device entries one per
    line, change lists by their summary."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and (key == "size" or key.endswith("_size") or key.endswith("bytes")):
        return f"{fmt_size(value)} ({value:,} bytes)"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) or value is None:
        return str(value)
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return "\n".join(f"{k}: {_entry_text(v)}" for k, v in value.items())
    if isinstance(value, list) and all(isinstance(v, dict) and "summary" in v for v in value):
        return "\n".join(str(v["summary"]) for v in value) or "none"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return "\n".join(map(str, value)) or "none"
    text = json.dumps(value, indent=1, sort_keys=True, default=str)
    return text if len(text) <= 2000 else text[:2000] + "…"


class OverviewPane(QScrollArea):
    """State, people, links and times of a task, its error, warnings and result.

    Signals:
        openTask(int): a parent/origin/child link was clicked.
    """

    openTask = Signal(int)
    FIELDS = ("Task", "Kind", "State", "Phase", "Author", "Devices", "Project", "Parent", "Origin", "Children", "Created",
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
        lab.setText(neutralise(text))
        visible = bool(text)
        lab.setVisible(visible)
        self.form.setRowVisible(lab, visible)

    def update_task(self, t: TaskRecord, parent: TaskRecord | None, origin: TaskRecord | None,
                    children: list[TaskRecord]) -> None:
        self._set("Task", f"#{t.id} {one_line(t.title)}")
        self._set("Kind", kind_label(t.kind))
        self._set("State", state_label(t.state) + (" (cancel requested)" if t.cancel_requested else ""))
        self._set("Phase", t.phase)  # what it does now, why it waits, or how it ended
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
        self._set("Error", for_window(t.error or ""))
        self._set("Warnings", "\n".join(f"• {w}" for w in t.warnings))
        if t.result != self._result:
            self._show_result(t.result, t.error)

    def update_duration(self, t: TaskRecord) -> None:
        d = t.duration
        self._set("Duration", fmt_duration(d) + (" (running)" if d is not None and not t.state.terminal else ""))

    def _show_result(self, result: dict[str, Any], error: str | None = None) -> None:
        self._result = dict(result)
        while self.result_form.rowCount():
            self.result_form.removeRow(0)
        self.result_buttons = []
        for key, value in result.items():
            if key in RESULT_ELSEWHERE or value is None:
                continue
            if key == "log" and isinstance(value, list) and error:  # the error is shown above, once
                value = [v for v in value if not (isinstance(v, str) and v.removeprefix("error: ") == error)]
            text = result_text(value, key)
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

    def __init__(self, model: MessagesModel, levels: tuple[str, ...], parent: QWidget | None = None,
                 name: str = "messages") -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.name = name.lower()
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
        self.setStretchFactor(0, 1)
        self.setStretchFactor(1, 1)
        self.list.selectionModel().currentChanged.connect(self._show)
        self.list.doubleClicked.connect(self.copy_location)
        self.proxy.rowsInserted.connect(self._select_first)
        self.proxy.modelReset.connect(self._select_first)
        self._select_first()

    def _select_first(self, *_: Any) -> None:
        n = self.proxy.rowCount()
        self.detail.setPlaceholderText("Select a message to see it in full, with its trace." if n
                                       else f"Nix reported no {self.name} for this task.")
        if not self.list.currentIndex().isValid() and n:
            self.list.setCurrentIndex(self.proxy.index(0, 0))

    def _show(self, cur: QModelIndex, _prev: QModelIndex) -> None:
        self.detail.setPlainText(str(cur.data(DetailRole) or "") if cur.isValid() else "")

    def copy_location(self, index: QModelIndex) -> str:
        text = str(index.data(LocationRole) or "") or str(index.data(DetailRole) or "")
        QApplication.clipboard().setText(text)
        return text


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


# a derivation's build state (core.nix.progress) drawn with the icon of the task state it resembles
_DRV_ICON_STATES = {"done": "completed", "failed": "failed", "building": "running", "cancelled": "canceled",
                    "unfinished": "interrupted", "stopped": "completed_with_warnings"}


def derivation_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The derivations a Nix task built, from its result (`result["derivations"]`, see NixRun.derivations)."""
    drvs = result.get("derivations")
    if not isinstance(drvs, list):
        return []
    return [d for d in drvs if isinstance(d, dict) and d.get("drv")]


class DerivationsPane(QSplitter):
    """Build logs: each derivation built (name, state, host, log lines); the selected one's log below,
    loaded lazily by a LogView. Failed derivations come first and the first of them is selected."""

    COLUMNS = ("Derivation", "State", "Host", "Log lines")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setColumnWidth(0, 420)
        self.tree.setColumnWidth(1, 110)
        self.tree.setColumnWidth(2, 180)
        self.log = LogView(None, self)
        self.info = QLabel()
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setWordWrap(True)
        lower = QWidget(self)
        lay = QVBoxLayout(lower)
        lay.setContentsMargins(0, 4, 0, 0)
        lay.addWidget(self.info)
        lay.addWidget(self.log, 1)
        self.addWidget(self.tree)
        self.addWidget(lower)
        self.setStretchFactor(0, 1)
        self.setStretchFactor(1, 2)
        self._shown: list[dict[str, Any]] = []
        self.tree.currentItemChanged.connect(self._on_current)

    def set_derivations(self, drvs: list[dict[str, Any]]) -> None:
        if drvs == self._shown:
            return
        current = self.current_drv()
        self._shown = list(drvs)
        order = sorted(range(len(drvs)), key=lambda i: (drvs[i].get("state") != "failed", i))
        self.tree.blockSignals(True)
        self.tree.clear()
        pick: QTreeWidgetItem | None = None
        for i in order:
            d = drvs[i]
            state = str(d.get("state") or "")
            lines = d.get("log_lines")
            item = QTreeWidgetItem(self.tree, [str(d.get("name") or d["drv"]), state, str(d.get("host") or "local"),
                                               str(lines) if lines is not None else ""])
            item.setIcon(1, state_icon(_DRV_ICON_STATES.get(state, "pending")))
            item.setData(0, Qt.ItemDataRole.UserRole, d)
            item.setToolTip(0, str(d["drv"]))
            item.setTextAlignment(3, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if pick is None or d["drv"] == current:
                pick = item
        self.tree.blockSignals(False)
        if pick is not None:
            self.tree.setCurrentItem(pick)
            self._on_current(pick, None)
        else:
            self._on_current(None, None)

    def current_drv(self) -> str | None:
        item = self.tree.currentItem()
        d = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return str(d["drv"]) if isinstance(d, dict) else None

    def _on_current(self, item: QTreeWidgetItem | None, _prev: QTreeWidgetItem | None) -> None:
        d = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        path = d.get("log_file") if isinstance(d, dict) else None
        self.log.set_path(str(path) if path else None)
        built = f" — {d['build_info']}" if isinstance(d, dict) and d.get("build_info") else ""
        if not isinstance(d, dict):
            self.info.setText("")
        elif path:
            self.info.setText(f"{d['drv']} — build log ({d.get('log_lines') or 0} lines){built}")
        else:
            self.info.setText(f"{d['drv']} — the builder printed no log{built}")
