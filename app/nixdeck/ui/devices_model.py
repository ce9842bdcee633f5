"""The device table: a project's devices with their target, tags and last build / deploy.

`DevicesModel` adapts `core.project.Project` plus the `TaskStore`: a device's last build and deploy
are those of *this project's* tasks, as `core.project.history.DeviceHistory` finds them (the domain
rule lives there, the CLI asks it too). The fleet columns (status dot, running generation, drift) show
each device's last probe (`ui.fleet_cells`). `DevicesFilter` narrows the table by tag, drift and text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import QApplication

from nixdeck.core.project.history import BUILD_KINDS, DEPLOY_KINDS, DeviceHistory
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState, project_key
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui import fleet_cells
from nixdeck.ui.icons import state_icon

NO_TARGET = "no target yet"

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class DeviceRow:
    """What one table row shows (a flat copy, so the view never touches the project)."""

    name: str
    target: str | None  # user@host[:port], None = no target yet
    host: str | None
    port: int
    tags: tuple[str, ...]
    state: str  # core.project.DeviceState value
    error: str | None = None
    last_build: TaskRecord | None = None
    last_deploy: TaskRecord | None = None
    fleet: dict[str, Any] | None = None  # the last probe's summary and drift (ui.fleet_cells)


def rows_from_project(project: Any) -> list[DeviceRow]:
    """Rows of a `core.project.Project` (devices first, then orphaned inventory entries)."""
    rows: list[DeviceRow] = []
    for d in [*project.devices, *project.orphans]:
        s = d.settings
        rows.append(
            DeviceRow(
                name=d.name,
                target=d.target_label if d.has_target else None,
                host=s.host,
                port=s.port,
                tags=tuple(d.tags),
                state=str(d.state.value if hasattr(d.state, "value") else d.state),
                error=d.error,
            )
        )
    return rows


def fmt_when(t: datetime | None, now: datetime | None = None) -> str:
    """A short local time: "14:02" today, "3 Mar 14:02" this year, else the date."""
    if t is None:
        return ""
    local = t.astimezone()
    now = (now or datetime.now().astimezone()).astimezone()
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if local.year == now.year:
        return local.strftime("%d %b %H:%M").lstrip("0")
    return local.strftime("%Y-%m-%d")


def task_cell(t: TaskRecord | None) -> str:
    if t is None:
        return "never"
    when = fmt_when(t.ended or t.started or t.created)
    return f"{t.state.label} · {when}" if when else t.state.label


def _state_color(state: TaskState) -> QColor | None:
    """Text colour of a last build/deploy cell: only outcomes that need attention stand out."""
    if state in (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.INTERRUPTED):
        return QColor("#b3261e")
    if state == TaskState.COMPLETED_WITH_WARNINGS:
        return QColor("#8a5a00")
    return None


class DevicesModel(QAbstractTableModel):
    """Table of devices. Columns: name, target, tags, last build, last deploy, status, generation, drift.

    `NameRole` gives the device name of any cell, `TagsRole` its tags, `DriftRole` its drift (for filtering).
    """

    COLUMNS = ("Name", "Target", "Tags", "Last build", "Last deploy", "Status", "Generation", "Drift")
    NAME, TARGET, TAGS, BUILD, DEPLOY, STATUS, GENERATION, DRIFT = range(8)
    NameRole = Qt.ItemDataRole.UserRole + 1
    TagsRole = Qt.ItemDataRole.UserRole + 2
    DriftRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, store: TaskStore | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self._store = store
        self._project: str | None = None
        self._rows: list[DeviceRow] = []

    # -- content ------------------------------------------------------------------------------
    def set_store(self, store: TaskStore | None) -> None:
        self._store = store
        self.refresh_tasks()

    def set_rows(self, rows: Sequence[DeviceRow], project: str | None = None) -> None:
        """Show `rows`; their last build/deploy are those of `project`'s tasks (None: any project)."""
        self.beginResetModel()
        self._project = project_key(project) if project else None
        history = self._history()
        fleet = self._load_fleet([r.name for r in rows])
        self._rows = [replace(self._with_tasks(r, history), fleet=fleet.get(r.name)) for r in rows]
        self.endResetModel()

    def _load_fleet(self, names: list[str]) -> dict[str, dict[str, Any]]:
        if self._store is None or self._project is None or not names:
            return {}
        return fleet_cells.load_entries(self._store, self._project, names)

    def set_project(self, project: Any) -> None:
        if project is None:
            self.set_rows([])
        else:
            self.set_rows(rows_from_project(project), str(project.path))

    def rows(self) -> list[DeviceRow]:
        return list(self._rows)

    def row_of(self, name: str) -> int:
        for i, r in enumerate(self._rows):
            if r.name == name:
                return i
        return -1

    def device(self, row: int) -> DeviceRow:
        return self._rows[row]

    def all_tags(self) -> list[str]:
        return sorted({t for r in self._rows for t in r.tags})

    def _history(self) -> DeviceHistory | None:
        return DeviceHistory(self._store, self._project) if self._store is not None else None

    def _with_tasks(self, r: DeviceRow, history: DeviceHistory | None = None) -> DeviceRow:
        h = history or self._history()
        if h is None:
            return replace(r, last_build=None, last_deploy=None)
        return replace(r, last_build=h.last_build(r.name), last_deploy=h.last_deploy(r.name))

    def refresh_tasks(self, devices: Iterable[str] | None = None) -> None:
        """Re-read the last build/deploy of these devices (default: all) from the store."""
        wanted = None if devices is None else set(devices)
        history = self._history()
        for i, r in enumerate(self._rows):
            if wanted is not None and r.name not in wanted:
                continue
            new = self._with_tasks(r, history)
            if new != r:
                self._rows[i] = new
                self.dataChanged.emit(self.index(i, self.BUILD), self.index(i, self.DEPLOY))

    def _ours(self, t: TaskRecord) -> bool:
        return self._project is None or t.project == self._project

    def on_tasks_changed(self, tasks: Sequence[Any]) -> None:
        """Bridge slot: refresh the rows of devices touched by changed build/deploy tasks, and the
        fleet columns from finished probes (their records carry the states) and builds (new drift)."""
        self._on_fleet_tasks(tasks)
        touched: set[str] = set()
        for t in tasks:
            if isinstance(t, TaskRecord) and t.kind in (*BUILD_KINDS, *DEPLOY_KINDS) and self._ours(t):
                touched.update(t.devices)
                devices = t.result.get("devices")
                if t.kind == TaskKind.BUILD_PROJECT.value and isinstance(devices, dict):
                    touched.update(str(d) for d in devices)
        if touched:
            self.refresh_tasks(touched)

    def _on_fleet_tasks(self, tasks: Sequence[Any]) -> None:
        built: set[str] = set()
        for t in tasks:
            if not isinstance(t, TaskRecord) or not t.state.terminal or not self._ours(t):
                continue
            devices = t.result.get("devices")
            if t.kind == TaskKind.PROBE_DEVICES.value and isinstance(devices, dict):
                self.set_fleet({str(n): e for n, e in devices.items() if isinstance(e, dict)})
            elif t.kind in BUILD_KINDS and t.state in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS):
                built.update(t.devices)
                if isinstance(devices, dict):
                    built.update(str(d) for d in devices)
        if built and self._store is not None and self._project is not None:
            store, project = self._store, self._project
            self.set_fleet({r.name: fleet_cells.redrift(r.fleet, store, project, r.name)
                            for r in self._rows if r.name in built and r.fleet is not None})

    def set_fleet(self, entries: dict[str, dict[str, Any]]) -> None:
        """Show these devices' fleet entries (a probe's `devices` result)."""
        for i, r in enumerate(self._rows):
            entry = entries.get(r.name)
            if entry is not None and entry != r.fleet:
                self._rows[i] = replace(r, fleet=dict(entry))
                self.dataChanged.emit(self.index(i, self.STATUS), self.index(i, self.DRIFT))

    # -- Qt model API -------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if 0 <= section < len(self.COLUMNS):
                return self.COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        r, col = self._rows[index.row()], index.column()
        if role == self.NameRole:
            return r.name
        if role == self.TagsRole:
            return list(r.tags)
        if role == self.DriftRole:
            return fleet_cells.drift_of(r.fleet)
        if col >= self.STATUS:
            return self._fleet_data(r, col, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(r, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(r, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(r, col)
        if role == Qt.ItemDataRole.DecorationRole and col in (self.BUILD, self.DEPLOY):
            t = r.last_build if col == self.BUILD else r.last_deploy
            return state_icon(t.state) if t is not None else None
        return None

    def _fleet_data(self, r: DeviceRow, col: int, role: int) -> Any:
        e = r.fleet
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.STATUS:
                return fleet_cells.status_of(e)
            return fleet_cells.generation_text(e) if col == self.GENERATION else fleet_cells.drift_of(e)
        if role == Qt.ItemDataRole.DecorationRole and col == self.STATUS:
            return fleet_cells.status_dot(fleet_cells.status_of(e))
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.STATUS:
                return fleet_cells.status_tooltip(e)
            return fleet_cells.generation_tooltip(e) if col == self.GENERATION else fleet_cells.drift_tooltip(e)
        if role == Qt.ItemDataRole.ForegroundRole and e is None:  # never probed
            return QApplication.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        if role == Qt.ItemDataRole.ForegroundRole and col == self.DRIFT:
            color = fleet_cells.drift_color(e)
            return QBrush(color) if color is not None else None
        return None

    def _display(self, r: DeviceRow, col: int) -> str:
        if col == self.NAME:
            return r.name
        if col == self.TARGET:
            return r.target or NO_TARGET
        if col == self.TAGS:
            return ", ".join(r.tags)
        if col == self.BUILD:
            return task_cell(r.last_build)
        if col == self.DEPLOY:
            return task_cell(r.last_deploy)
        return ""

    def _tooltip(self, r: DeviceRow, col: int) -> str | None:
        if col == self.NAME:
            return f"{r.name}: {r.error}" if r.error else f"{r.name} ({r.state})"
        if col in (self.BUILD, self.DEPLOY):
            t = r.last_build if col == self.BUILD else r.last_deploy
            if t is None:
                return None
            when = (t.ended or t.started or t.created).astimezone().strftime("%Y-%m-%d %H:%M:%S")
            tip = f"task {t.id}: {t.title}\n{t.state.label} at {when}"
            return tip + (f"\n{t.error}" if t.error else "")
        return None

    def _foreground(self, r: DeviceRow, col: int) -> QBrush | None:
        pal = QApplication.palette()
        if col == self.NAME and r.error:
            return QBrush(QColor("#b3261e"))
        if col == self.TARGET and r.target is None:
            return pal.brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        if col in (self.BUILD, self.DEPLOY):
            t = r.last_build if col == self.BUILD else r.last_deploy
            if t is None:
                return pal.brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
            color = _state_color(t.state)
            return QBrush(color) if color is not None else None
        return None


class DevicesFilter(QSortFilterProxyModel):
    """Keeps devices that carry the chosen tag, have the chosen drift and whose name, target or tags
    contain the text."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._tag = ""
        self._drift = ""
        self._text = ""
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_tag(self, tag: str) -> None:
        self._refilter(lambda: setattr(self, "_tag", tag))

    def set_drift(self, state: str) -> None:
        """Only devices in this drift state ("" = any)."""
        self._refilter(lambda: setattr(self, "_drift", state))

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def _refilter(self, change: Any) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        src = self.sourceModel()
        if not isinstance(src, DevicesModel) or source_row >= src.rowCount():
            return True
        r = src.device(source_row)
        if self._tag and self._tag not in r.tags:
            return False
        if self._drift and fleet_cells.drift_of(r.fleet) != self._drift:
            return False
        if self._text:
            hay = " ".join([r.name, r.target or NO_TARGET, *r.tags]).lower()
            return self._text in hay
        return True
