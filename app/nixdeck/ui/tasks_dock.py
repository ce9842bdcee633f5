"""TasksDock: the bottom Tasks panel — a live, lazily loaded tree of tasks with filters and actions."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QByteArray,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskNotFound
from nixdeck.core.tasks.model import ACTIVE_STATES, FAILED_STATES, TaskKind, TaskRecord, TaskState, kind_label
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.bridge import EngineBridge
from nixdeck.ui.icons import state_icon, state_label
from nixdeck.ui.task_actions import can_cancel, can_rerun, can_rerun_failed, run_action
from nixdeck.ui.tasks_model import Column, ProgressRole, StateRole, TaskFilter, TaskIdRole, TasksModel

RUNNING_STATES = (TaskState.RUNNING.value, TaskState.CANCELING.value)
WAITING_STATES = (TaskState.PENDING.value, TaskState.QUEUED.value, TaskState.BACKED_OFF.value)
_STATE_CHOICES: list[tuple[str, tuple[str, ...]]] = [
    ("All states", ()),
    ("Active", tuple(s.value for s in TaskState if s in ACTIVE_STATES)),
    ("Failed or canceled", tuple(s.value for s in TaskState if s in FAILED_STATES or s == TaskState.CANCELED)),
] + [(state_label(s), (s.value,)) for s in TaskState if s != TaskState.SKIPPED]


class ProgressDelegate(QStyledItemDelegate):
    """Progress column: a small bar (while the task is active and its progress known) and the phase text."""

    BAR_WIDTH = 90

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        frac = index.data(ProgressRole)
        if frac is None:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        text = opt.text
        opt.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        r = opt.rect.adjusted(3, 3, -3, -3)
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(r.left(), r.top(), min(self.BAR_WIDTH, r.width()), r.height())
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = max(0, min(1000, int(float(frac) * 1000)))
        bar.textVisible = False
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, opt.widget)
        tr = QRect(bar.rect.right() + 6, opt.rect.top(), max(0, opt.rect.right() - bar.rect.right() - 6), opt.rect.height())
        label = f"{float(frac) * 100:.0f}%" + (f" · {text}" if text and not text.endswith("%") else "")
        painter.save()
        if opt.state & QStyle.StateFlag.State_Selected:
            painter.setPen(opt.palette.highlightedText().color())
        else:
            painter.setPen(opt.palette.text().color())
        painter.drawText(tr, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                         opt.fontMetrics.elidedText(label, Qt.TextElideMode.ElideRight, tr.width()))
        painter.restore()


class TasksDock(QDockWidget):
    """The Tasks panel.

    Signals:
        openDetails(int): the user wants a task's details (double-click, Enter or "Open details").
        countsChanged(int, int): running and waiting (pending/queued/backed off) task counts changed.
    """

    openDetails = Signal(int)
    countsChanged = Signal(int, int)

    def __init__(self, store: TaskStore, engine: TaskEngine, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__("Tasks", parent)
        self.setObjectName("TasksDock")
        self.store, self.engine, self.bridge = store, engine, bridge
        self.model = TasksModel(store, bridge, self)

        # filter bar
        self.state_combo = QComboBox()
        for label, states in _STATE_CHOICES:
            self.state_combo.addItem(label, states)
            if len(states) == 1:
                self.state_combo.setItemIcon(self.state_combo.count() - 1, state_icon(states[0]))
        self.kind_combo = QComboBox()
        self.kind_combo.addItem("All kinds", "")
        for k in TaskKind:
            self.kind_combo.addItem(kind_label(k.value), k.value)
        self.device_edit = QLineEdit()
        self.device_edit.setPlaceholderText("Device")
        self.device_edit.setClearButtonEnabled(True)
        self.device_edit.setMaximumWidth(160)
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("Filter tasks")
        self.text_edit.setClearButtonEnabled(True)
        self.silent_check = QCheckBox("Show silent")
        self.notice = QLabel()
        self.notice.setStyleSheet("color: #c62828;")
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.apply_filter)
        self.state_combo.currentIndexChanged.connect(self.apply_filter)
        self.kind_combo.currentIndexChanged.connect(self.apply_filter)
        self.silent_check.toggled.connect(self.apply_filter)
        self.device_edit.textChanged.connect(self._debounce.start)
        self.text_edit.textChanged.connect(self._debounce.start)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.state_combo)
        bar.addWidget(self.kind_combo)
        bar.addWidget(self.device_edit)
        bar.addWidget(self.text_edit, 1)
        bar.addWidget(self.silent_check)
        bar.addWidget(self.notice)

        # tree
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setUniformRowHeights(True)
        self.view.setAllColumnsShowFocus(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(self.view))
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_menu)
        self.view.doubleClicked.connect(self._on_double_click)
        header = self.view.header()
        header.setStretchLastSection(False)
        for col, width in ((Column.STATE, 200), (Column.TASK, 340), (Column.DEVICE, 110), (Column.PROGRESS, 300),
                           (Column.AUTHOR, 80), (Column.STARTED, 80), (Column.DURATION, 75)):
            self.view.setColumnWidth(col, width)
        header.setSectionResizeMode(Column.PROGRESS, QHeaderView.ResizeMode.Stretch)

        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)
        self.setWidget(inner)

        # actions (enabled only where they apply; see update_actions)
        self.action_cancel = QAction("Cancel", self)
        self.action_rerun = QAction("Rerun", self)
        self.action_force_rerun = QAction("Force rerun", self)
        self.action_force_rerun.setToolTip("Rerun treating user errors as warnings")
        self.action_rerun_failed = QAction("Rerun failed", self)
        self.action_copy_id = QAction("Copy ID", self)
        self.action_copy_id.setShortcut(QKeySequence.StandardKey.Copy)
        self.action_open_details = QAction("Open details", self)
        self.action_open_details.setShortcut(QKeySequence(Qt.Key.Key_Return))
        for a in (self.action_copy_id, self.action_open_details):
            a.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            self.view.addAction(a)
        self.action_cancel.triggered.connect(self.cancel_current)
        self.action_rerun.triggered.connect(lambda: self.rerun_current())
        self.action_force_rerun.triggered.connect(lambda: self.rerun_current(force=True))
        self.action_rerun_failed.triggered.connect(lambda: self.rerun_current(failed_only=True))
        self.action_copy_id.triggered.connect(self.copy_current_id)
        self.action_open_details.triggered.connect(self.open_current)
        self.menu = QMenu(self)
        self.menu.addAction(self.action_open_details)
        self.menu.addSeparator()
        for a in (self.action_cancel, self.action_rerun, self.action_force_rerun, self.action_rerun_failed):
            self.menu.addAction(a)
        self.menu.addSeparator()
        self.menu.addAction(self.action_copy_id)
        self.view.selectionModel().currentChanged.connect(lambda *_: self.update_actions())

        # counts for the status bar
        self._active: dict[int, str] = {t.id: t.state.value for t in store.active_tasks()}
        self._counts = (-1, -1)
        bridge.tasksChanged.connect(self._on_tasks)
        self.model.rowsInserted.connect(self._after_insert)

        self.model.fetchMore(QModelIndex())
        self.update_actions()
        self._emit_counts()

    # -- filter -------------------------------------------------------------------------------
    def current_filter(self) -> TaskFilter:
        kind = str(self.kind_combo.currentData() or "")
        return TaskFilter(
            states=tuple(self.state_combo.currentData() or ()),
            kinds=(kind,) if kind else (),
            device=self.device_edit.text().strip(),
            text=self.text_edit.text().strip(),
            show_silent=self.silent_check.isChecked(),
        )

    def apply_filter(self) -> None:
        """Read the filter bar into the model (the text fields call this 250 ms after typing stops)."""
        self._debounce.stop()
        self.model.set_filter(self.current_filter())
        self.model.fetchMore(QModelIndex())
        self.update_actions()

    # -- selection and actions ----------------------------------------------------------------
    def current_task_id(self) -> int | None:
        idx = self.view.currentIndex()
        v = idx.data(TaskIdRole) if idx.isValid() else None
        return int(v) if v is not None else None

    def current_task(self) -> TaskRecord | None:
        tid = self.current_task_id()
        if tid is None:
            return None
        try:
            return self.engine.live(tid)
        except TaskNotFound:
            return None

    def select_task(self, task_id: int) -> bool:
        """Make a task current (reading history pages or expanding its parent as needed)."""
        idx = self.model.load_task(task_id)
        if not idx.isValid():
            return False
        p = idx.parent()
        while p.isValid():
            self.view.expand(p)
            p = p.parent()
        self.view.setCurrentIndex(idx)
        self.view.scrollTo(idx)
        return True

    def update_actions(self) -> None:
        t = self.current_task()
        self.action_open_details.setEnabled(t is not None)
        self.action_copy_id.setEnabled(t is not None)
        self.action_cancel.setEnabled(t is not None and can_cancel(t))
        rerun = t is not None and can_rerun(self.engine, t)
        self.action_rerun.setEnabled(rerun)
        self.action_force_rerun.setEnabled(rerun)
        self.action_rerun_failed.setEnabled(t is not None and rerun and can_rerun_failed(self.engine, self.store, t))

    def _on_menu(self, pos: Any) -> None:
        idx = self.view.indexAt(pos)
        if idx.isValid():
            self.view.setCurrentIndex(idx)
        self.update_actions()
        if self.current_task_id() is not None:
            self.menu.popup(self.view.viewport().mapToGlobal(pos))  # never exec(): qasync runs the loop

    def _on_double_click(self, idx: QModelIndex) -> None:
        v = idx.data(TaskIdRole)
        if v is not None:
            self.openDetails.emit(int(v))

    def _error(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setToolTip(text)
        QTimer.singleShot(8000, self.notice.clear)

    def open_current(self) -> None:
        tid = self.current_task_id()
        if tid is not None:
            self.openDetails.emit(tid)

    def copy_current_id(self) -> None:
        tid = self.current_task_id()
        if tid is not None:
            QApplication.clipboard().setText(str(tid))

    def cancel_current(self) -> None:
        tid = self.current_task_id()
        if tid is not None:
            run_action(self.engine.cancel(tid), on_error=self._error)

    def rerun_current(self, *, force: bool = False, failed_only: bool = False) -> None:
        tid = self.current_task_id()
        if tid is not None:
            run_action(self.engine.rerun(tid, force=force, failed_only=failed_only),
                       on_done=lambda new_id: self.select_task(int(new_id)), on_error=self._error)

    # -- live ---------------------------------------------------------------------------------
    def _on_tasks(self, tasks: list[TaskRecord]) -> None:
        cur = self.current_task_id()
        for t in tasks:
            if t.state.terminal:
                self._active.pop(t.id, None)
            else:
                self._active[t.id] = t.state.value
        if cur is not None and any(t.id == cur for t in tasks):
            self.update_actions()
        self._emit_counts()

    def _after_insert(self, parent: QModelIndex, first: int, _last: int) -> None:
        # keep the newest task in sight while the user looks at the top of the list
        if not parent.isValid() and first == 0 and self.view.verticalScrollBar().value() == 0:
            self.view.scrollToTop()

    def running_count(self) -> int:
        return sum(1 for s in self._active.values() if s in RUNNING_STATES)

    def pending_count(self) -> int:
        return sum(1 for s in self._active.values() if s in WAITING_STATES)

    def _emit_counts(self) -> None:
        counts = (self.running_count(), self.pending_count())
        if counts != self._counts:
            self._counts = counts
            self.countsChanged.emit(*counts)

    # -- persisted view state (MainWindow calls these when present) ----------------------------
    def save_state(self, settings: QSettings) -> None:
        settings.setValue("tasks/header", self.view.header().saveState())
        settings.setValue("tasks/show_silent", self.silent_check.isChecked())

    def restore_state(self, settings: QSettings) -> None:
        header = settings.value("tasks/header")
        if isinstance(header, QByteArray | bytes):
            self.view.header().restoreState(QByteArray(header))
        silent = settings.value("tasks/show_silent")
        self.silent_check.setChecked(str(silent).lower() == "true")

    def state_of(self, task_id: int) -> str | None:
        """The state shown for a loaded task (tests and the main window use it)."""
        idx = self.model.task_index(task_id)
        return str(idx.data(StateRole)) if idx.isValid() else None
