"""The main window: the project's device table, the actions, the Tasks dock and a status bar.

It adapts core objects (Project, TaskStore, TaskEngine through the EngineBridge); what an action
submits is decided in `ui.actions`. Coroutines started from slots go through `spawn`, which keeps a
reference and reports a failure in the window instead of losing it.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskNotFound
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.banner import Banner, place_on_screen
from nixdeck.ui.bridge import EngineBridge
from nixdeck.ui.details import TaskDetailsWindow
from nixdeck.ui.devices_model import DeviceRow, DevicesFilter, DevicesModel
from nixdeck.ui.fleet_cells import drift_filter_box
from nixdeck.ui.fleet_probe import FleetProber
from nixdeck.ui.tasks_dock import TasksDock

if TYPE_CHECKING:  # core.project pulls in the SSH stack (asyncssh): imported when a project opens
    from nixdeck.core.project.project import Project

log = logging.getLogger(__name__)

ALL_TAGS = "All tags"
COLUMN_WIDTHS = (150, 170, 130, 165, 165, 90, 120, 110)
MAX_ERRORS_IN_BOX = 5  # errors added to an open error message; later ones are only counted


class MainWindow(QMainWindow):
    """The NixDeck window.

    Signals:
        quitRequested(): the user closed the window or chose Quit; the app decides (it may ask).
        projectChanged(str): a project was opened (its directory).
    """

    quitRequested = Signal()
    projectChanged = Signal(str)

    def __init__(self, store: TaskStore, engine: TaskEngine, bridge: EngineBridge, settings: QSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.engine, self.bridge, self.settings = store, engine, bridge, settings
        self.project: Project | None = None
        self.may_close = False
        self.operations_ready = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._details: dict[int, QWidget] = {}
        self._error_box: QMessageBox | None = None
        self._more_errors = 0
        self.setWindowTitle("NixDeck")
        self.setObjectName("MainWindow")
        self.resize(1280, 800)

        # device table
        self.model = DevicesModel(store, self)
        self.proxy = DevicesFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setObjectName("devices")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(DevicesModel.NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for col, width in enumerate(COLUMN_WIDTHS):
            self.table.setColumnWidth(col, width)
        bridge.tasksChanged.connect(self.model.on_tasks_changed)

        # filter bar
        self.project_label = QLabel("No project")
        self.project_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.project_label.font()
        font.setBold(True)
        self.project_label.setFont(font)
        self.tag_filter = QComboBox()
        self.tag_filter.setObjectName("tagFilter")
        self.tag_filter.setMinimumContentsLength(12)
        self.tag_filter.addItem(ALL_TAGS, "")
        self.tag_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_tag(str(self.tag_filter.currentData() or ""))
        )
        self.text_filter = QLineEdit()
        self.text_filter.setObjectName("textFilter")
        self.text_filter.setPlaceholderText("Filter devices…")
        self.text_filter.setClearButtonEnabled(True)
        self.text_filter.setMaximumWidth(280)
        self.text_filter.textChanged.connect(self.proxy.set_text)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.project_label, 1)
        bar.addWidget(QLabel("Tag:"))
        bar.addWidget(self.tag_filter)
        bar.addSpacing(8)
        self.drift_filter = drift_filter_box(self.proxy.set_drift)
        bar.addWidget(QLabel("Drift:"))
        bar.addWidget(self.drift_filter)
        bar.addSpacing(8)
        bar.addWidget(self.text_filter)

        self.banner = Banner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.banner)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        self.setCentralWidget(central)

        # tasks dock
        self.tasks_dock = TasksDock(store, engine, bridge, self)
        self.tasks_dock.setObjectName("TasksDock")
        self.tasks_dock.openDetails.connect(self.open_task_details)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.tasks_dock)
        self.resizeDocks([self.tasks_dock], [320], Qt.Orientation.Vertical)

        # status bar: the dock counts the tasks it shows
        self.counts_label = QLabel()
        self.counts_label.setObjectName("taskCounts")
        self.statusBar().addPermanentWidget(self.counts_label)
        self.tasks_dock.countsChanged.connect(self.set_counts)
        self.set_counts(self.tasks_dock.running_count(), self.tasks_dock.pending_count())

        from nixdeck.ui.actions import ActionController  # the actions need the finished window

        self.commands = ActionController(self)
        self.prober = FleetProber(self)  # the fleet columns: probes on open, periodically, after deploys
        self.table.doubleClicked.connect(lambda _i: self.commands.act("edit_device"))
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.commands.update_enabled())

    # -- async helpers --------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], what: str = "") -> asyncio.Task[Any]:
        """Run a coroutine on the loop; a failure shows in the window instead of vanishing."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                self.show_error(f"{what or 'NixDeck'} failed", str(exc) or type(exc).__name__, exc=exc)

        task.add_done_callback(done)
        return task

    def ensure_operations(self) -> None:
        """Register every operation with the engine, once (the app does it right after the window is
        shown; actions call it before submitting, so it never matters who comes first)."""
        if self.operations_ready:
            return
        from nixdeck.core.ops import all_operations

        for op in all_operations():
            try:
                self.engine.operation(op.kind)
            except NixDeckError:
                self.engine.register(op)
        self.operations_ready = True
        self.tasks_dock.update_actions()
        for win in self._details.values():
            refresh = getattr(win, "refresh_all", None)
            if callable(refresh):
                refresh()

    # -- project --------------------------------------------------------------------------------
    async def load_project(self, path: str | Path, *, record: bool = True) -> bool:
        """Open a project directory and show its devices; errors go to the status bar and a message.

        Opening is recorded as a silent task (as `nixdeck project open` does); a reload is not."""
        from nixdeck.core.project.errors import ProjectError
        from nixdeck.core.project.history import opened_change, record_change
        from nixdeck.core.project.project import Project

        self.show_status(f"Opening {path}…")
        try:
            project = await Project.open_async(path)
        except (ProjectError, OSError) as e:
            self.show_error("Cannot open the project", str(e))
            return False
        if record:
            try:
                record_change(self.engine, opened_change(project), project.path)
            except Exception as e:  # noqa: BLE001 - the history is context here; the project is open
                log.warning("cannot record the opening of %s: %s", project.path, e)
        self.set_project(project)
        return True

    def reload_inventory(self) -> None:
        """Re-read nixdeck.toml (no evaluation) and show it, keeping the selection."""
        from nixdeck.core.project.errors import ProjectError

        project = self.project
        if project is None:
            return
        selected = [r.name for r in self.selected_devices()]
        try:
            project.reload()
        except (ProjectError, OSError) as e:
            self.show_error("Cannot read the inventory", str(e))
        self._show_devices(project)
        self.select_devices(selected)
        self.commands.update_enabled()

    def _show_devices(self, project: Project | None) -> None:
        self.model.set_project(project)
        tags = self.model.all_tags()
        current = str(self.tag_filter.currentData() or "")
        self.tag_filter.blockSignals(True)
        self.tag_filter.clear()
        self.tag_filter.addItem(ALL_TAGS, "")
        for t in tags:
            self.tag_filter.addItem(t, t)
        self.tag_filter.setCurrentIndex(max(0, self.tag_filter.findData(current)))
        self.tag_filter.blockSignals(False)
        self.proxy.set_tag(str(self.tag_filter.currentData() or ""))

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self._show_devices(project)
        if project is None:
            self.project_label.setText("No project")
            self.setWindowTitle("NixDeck")
            return
        n, broken = len(project.devices), sum(1 for d in project.devices if d.error)
        self.project_label.setText(f"{project.path.name}  —  {project.path}")
        self.setWindowTitle(f"{project.path.name} — NixDeck")
        extra = f", {broken} do not evaluate" if broken else ""
        orphans = f", {len(project.orphans)} orphaned" if project.orphans else ""
        self.show_status(f"Opened {project.path}: {n} devices{extra}{orphans}", 8000)
        self.settings.setValue("project/last", str(project.path))
        self.projectChanged.emit(str(project.path))
        self.commands.update_enabled()

    def selected_devices(self) -> list[DeviceRow]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.device(r) for r in rows]

    def visible_devices(self) -> list[DeviceRow]:
        return [self.model.device(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
                for r in range(self.proxy.rowCount())]

    def select_devices(self, names: list[str]) -> None:
        sel = self.table.selectionModel()
        sel.clearSelection()
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if idx.data(DevicesModel.NameRole) in names:
                sel.select(idx, sel.SelectionFlag.Select | sel.SelectionFlag.Rows)

    # -- feedback -------------------------------------------------------------------------------
    def show_status(self, text: str, timeout_ms: int = 6000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def show_banner(self, title: str, body: str, bad: bool = False, *,
                    action: tuple[str, Callable[[], None]] | None = None) -> None:
        self.banner.show_message(f"<b>{html.escape(title)}</b> — {html.escape(body)}".replace("\n", "<br>"), bad,
                                 action=action)
        self.show_status(f"{title}: {body.splitlines()[0] if body else ''}", 10000)

    def show_error(self, title: str, text: str, exc: BaseException | None = None) -> None:
        """Status bar line plus a non-modal message (later errors are appended to the open one)."""
        if exc is not None:
            log.error("%s: %s", title, text, exc_info=(type(exc), exc, exc.__traceback__))
        else:
            log.error("%s: %s", title, text)
        self.show_status(f"{title}: {text.splitlines()[0] if text else ''}", 15000)
        box = self._error_box
        if box is not None and box.isVisible():
            # a repeating error must not grow the box past the screen (its Close button out of reach)
            self._more_errors += 1
            if self._more_errors <= MAX_ERRORS_IN_BOX:
                box.setText(box.text() + f"\n\n{title}: {text}")
            else:
                box.setInformativeText(f"… and {self._more_errors - MAX_ERRORS_IN_BOX} more errors (see the log)")
            return
        self._more_errors = 0
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Close, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _r: setattr(self, "_error_box", None))
        self._error_box = box
        box.show()

    @property
    def error_box(self) -> QMessageBox | None:
        return self._error_box

    def set_counts(self, running: int, pending: int) -> None:
        self.running_count, self.pending_count = running, pending
        self.counts_label.setText(f"Running: {running}   Pending: {pending}")

    # -- task details ---------------------------------------------------------------------------
    def open_task_details(self, task_id: int) -> QWidget | None:
        """The details window of a task (None, with a status line, when the task is not in the history,
        e.g. a rerun's origin that was pruned)."""
        win = self._details.get(task_id)
        if win is None:
            try:
                win = TaskDetailsWindow(self.store, self.engine, self.bridge, task_id, self)
            except TaskNotFound:
                self.show_status(f"Task #{task_id} is no longer in the history", 8000)
                return None
            win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            win.setWindowFlag(Qt.WindowType.Window, True)
            win.openTask.connect(self.open_task_details)
            win.trustHost.connect(self.commands.trust_device)
            win.destroyed.connect(lambda *_a, tid=task_id: self._details.pop(tid, None))
            self._details[task_id] = win
            win.resize(1000, 700)
            place_on_screen(win, self, offset=24 * (len(self._details) % 8))
        win.show()
        win.raise_()
        win.activateWindow()
        return win

    # -- state and closing ----------------------------------------------------------------------
    def restore_ui_state(self) -> None:
        s = self.settings
        geometry, state = s.value("window/geometry"), s.value("window/state")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(QByteArray(geometry))
        if isinstance(state, QByteArray | bytes):
            self.restoreState(QByteArray(state))
        header = s.value("devices/header")
        if isinstance(header, QByteArray | bytes):
            self.table.horizontalHeader().restoreState(QByteArray(header))
        restore = getattr(self.tasks_dock, "restore_state", None)
        if callable(restore):
            restore(s)

    def save_ui_state(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("devices/header", self.table.horizontalHeader().saveState())
        save = getattr(self.tasks_dock, "save_state", None)
        if callable(save):
            save(s)
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.may_close:
            for win in list(self._details.values()):
                win.close()
            event.accept()
            return
        event.ignore()
        self.quitRequested.emit()

    def set_app_icon(self, icon: QIcon) -> None:
        self.setWindowIcon(icon)
