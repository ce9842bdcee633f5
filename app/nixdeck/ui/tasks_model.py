"""TasksModel: the task history as a lazy tree (parent → children) for the Tasks dock.

Top-level tasks are read from the TaskStore in pages (`fetchMore`), newest first, so a history of
100k tasks opens as fast as one of ten; children are read when their parent is expanded. Filters
go into the store query; live changes arrive through the EngineBridge and are applied in place.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
)
from PySide6.QtGui import QBrush, QPalette
from PySide6.QtWidgets import QApplication

from nixdeck.core.tasks.model import TaskRecord, TaskState, kind_label
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.bridge import EngineBridge
from nixdeck.ui.formatting import fmt_devices, fmt_duration, fmt_time, one_line
from nixdeck.ui.icons import state_icon, state_label

AnyIndex = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    STATE = 0
    TASK = 1
    DEVICE = 2
    PROGRESS = 3
    AUTHOR = 4
    STARTED = 5
    DURATION = 6


HEADERS = {
    Column.STATE: "State",
    Column.TASK: "Task",
    Column.DEVICE: "Device",
    Column.PROGRESS: "Progress",
    Column.AUTHOR: "Author",
    Column.STARTED: "Started",
    Column.DURATION: "Duration",
}

TaskIdRole = Qt.ItemDataRole.UserRole + 1
StateRole = Qt.ItemDataRole.UserRole + 2  # TaskState value (str)
ProgressRole = Qt.ItemDataRole.UserRole + 3  # float 0..1 while running; None when unknown / not running
RecordRole = Qt.ItemDataRole.UserRole + 4  # the TaskRecord


@dataclass(frozen=True)
class TaskFilter:
    """What the Tasks dock shows; empty fields match everything. Silent tasks only with `show_silent`."""

    states: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    device: str = ""
    text: str = ""
    show_silent: bool = False

    def query(self) -> dict[str, Any]:
        """Arguments for TaskStore.list_tasks."""
        return {
            "states": list(self.states) or None,
            "kinds": list(self.kinds) or None,
            "device": self.device or None,
            "text": self.text or None,
            "top_level": True,
            "include_silent": self.show_silent,
        }

    def matches(self, t: TaskRecord) -> bool:
        """The same test as the store query, for tasks that change while shown."""
        if t.parent_id is not None or (t.silent and not self.show_silent):
            return False
        if self.states and t.state.value not in self.states:
            return False
        if self.kinds and t.kind not in self.kinds:
            return False
        if self.device and self.device not in t.devices:
            return False
        if self.text:
            needle = self.text.casefold()
            hay = f"{t.title}\n{t.kind}\n{' '.join(t.devices)}".casefold()
            if needle not in hay:
                return False
        return True


@dataclass(eq=False)
class _Node:
    task: TaskRecord
    parent: _Node | None
    child_count: int = 0
    children: list[_Node] | None = None  # None: not read from the store yet
    extra: dict[str, Any] = field(default_factory=dict)


def _top_key(n: _Node) -> int:
    return -n.task.id


def _child_key(n: _Node) -> int:
    return n.task.id


class TasksModel(QAbstractItemModel):
    """Tree model of tasks over the TaskStore, kept live by an EngineBridge.

    Each index's internalId is the id of its parent task (0 for top-level rows), so rows can be
    found again from any index without holding Python pointers in Qt.
    """

    PAGE_SIZE = 200

    def __init__(
        self,
        store: TaskStore,
        bridge: EngineBridge | None = None,
        parent: QObject | None = None,
        *,
        page_size: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.page_size = page_size or self.PAGE_SIZE
        self._filter = TaskFilter()
        self._top: list[_Node] = []
        self._nodes: dict[int, _Node] = {}
        self._exhausted = False
        self._ticking: set[int] = set()
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._on_tick)
        if bridge is not None:
            bridge.tasksChanged.connect(self.apply_changes)

    # -- filter and paging --------------------------------------------------------------------
    def task_filter(self) -> TaskFilter:
        return self._filter

    def set_filter(self, f: TaskFilter) -> None:
        """Show only tasks matching `f`; the rows are read again from the first page."""
        if f == self._filter:
            return
        self._filter = f
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._top, self._nodes, self._exhausted = [], {}, False
        self._ticking.clear()
        self.endResetModel()
        self._update_tick()

    def loaded_count(self) -> int:
        """Top-level rows read so far."""
        return len(self._top)

    def _make_nodes(self, tasks: list[TaskRecord], parent: _Node | None) -> list[_Node]:
        fresh = [t for t in tasks if t.id not in self._nodes]
        counts = self.store.child_counts([t.id for t in fresh])
        nodes = [_Node(t, parent, counts.get(t.id, 0)) for t in fresh]
        for n in nodes:
            self._nodes[n.task.id] = n
            self._track(n.task)
        return nodes

    def canFetchMore(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        if not parent.isValid():
            return not self._exhausted
        n = self._node(parent)
        return n is not None and n.children is None and n.child_count > 0

    def fetchMore(self, parent: AnyIndex = QModelIndex()) -> None:  # noqa: B008
        if not parent.isValid():
            if self._exhausted:
                return
            page = self.store.list_tasks(**self._filter.query(), limit=self.page_size, offset=len(self._top))
            if len(page) < self.page_size:
                self._exhausted = True
            nodes = self._make_nodes(page, None)
            if nodes:
                first = len(self._top)
                self.beginInsertRows(QModelIndex(), first, first + len(nodes) - 1)
                self._top.extend(nodes)
                self.endInsertRows()
            self._update_tick()
            return
        n = self._node(parent)
        if n is None or n.children is not None:
            return
        kids = self._make_nodes(self.store.children(n.task.id), n)
        if kids:
            self.beginInsertRows(self._index_of(n), 0, len(kids) - 1)
            n.children = kids
            n.child_count = len(kids)
            self.endInsertRows()
        else:
            n.children = []
            n.child_count = 0
        self._update_tick()

    # -- structure ----------------------------------------------------------------------------
    def _siblings(self, n: _Node) -> list[_Node]:
        if n.parent is None:
            return self._top
        return n.parent.children or []

    def _row_of(self, n: _Node) -> int:
        sib = self._siblings(n)
        if n.parent is None:
            row = bisect_left(sib, -n.task.id, key=_top_key)
        else:
            row = bisect_left(sib, n.task.id, key=_child_key)
        if row < len(sib) and sib[row] is n:
            return row
        return sib.index(n)  # not expected: lists are kept sorted

    def _index_of(self, n: _Node, column: int = 0) -> QModelIndex:
        return self.createIndex(self._row_of(n), column, n.parent.task.id if n.parent else 0)

    def _node(self, index: AnyIndex) -> _Node | None:
        if not index.isValid():
            return None
        pid = int(index.internalId())
        if pid == 0:
            lst: list[_Node] | None = self._top
        else:
            p = self._nodes.get(pid)
            lst = p.children if p is not None else None
        if lst is None or not 0 <= index.row() < len(lst):
            return None
        return lst[index.row()]

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        p = self._node(parent)
        if p is None or p.children is None:
            return QModelIndex()
        return self.createIndex(row, column, p.task.id)

    def parent(self, index: AnyIndex | None = None) -> Any:
        if index is None:
            return QObject.parent(self)
        if not index.isValid():
            return QModelIndex()
        pid = int(index.internalId())
        if pid == 0:
            return QModelIndex()
        p = self._nodes.get(pid)
        if p is None:
            return QModelIndex()
        return self._index_of(p)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.column() > 0:
            return 0
        if not parent.isValid():
            return len(self._top)
        n = self._node(parent)
        return len(n.children) if n is not None and n.children is not None else 0

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return len(Column)

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        if not parent.isValid():
            return bool(self._top) or not self._exhausted
        if parent.column() > 0:
            return False
        n = self._node(parent)
        if n is None:
            return False
        return bool(n.children) if n.children is not None else n.child_count > 0

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(Column):
            return HEADERS[Column(section)]
        return None

    # -- data ---------------------------------------------------------------------------------
    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        n = self._node(index)
        if n is None:
            return None
        t = n.task
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(t, col)
        if role == TaskIdRole:
            return t.id
        if role == StateRole:
            return t.state.value
        if role == RecordRole:
            return t
        if role == ProgressRole:  # a bar only while the task runs; waiting and finished tasks show text
            if t.state not in (TaskState.RUNNING, TaskState.CANCELING) or t.progress is None:
                return None
            return float(t.progress)
        if role == Qt.ItemDataRole.DecorationRole and col == Column.STATE:
            return state_icon(t.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(t, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == Column.DURATION:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and t.silent:
            return QBrush(QApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        return None

    @staticmethod
    def _display(t: TaskRecord, col: int) -> str:
        if col == Column.STATE:
            return state_label(t.state)
        if col == Column.TASK:
            return one_line(t.title)
        if col == Column.DEVICE:
            return fmt_devices(t.devices)
        if col == Column.PROGRESS:
            if t.phase:
                return t.phase
            if t.progress is not None and t.state in (TaskState.RUNNING, TaskState.CANCELING):
                return f"{t.progress * 100:.0f}%"
            return ""
        if col == Column.AUTHOR:
            return t.author
        if col == Column.STARTED:
            return fmt_time(t.started)
        if col == Column.DURATION:
            return fmt_duration(t.duration)
        return ""

    @staticmethod
    def _tooltip(t: TaskRecord, col: int) -> str | None:
        if col == Column.STATE:
            return f"{state_label(t.state)}: {t.error}" if t.error else state_label(t.state)
        if col == Column.TASK:
            return f"#{t.id} · {kind_label(t.kind)}\n{t.title}"
        if col == Column.DEVICE:
            return ", ".join(t.devices) or None
        if col == Column.PROGRESS:
            return t.phase or None
        if col == Column.STARTED:
            parts = [f"created {fmt_time(t.created, full=True)}"]
            if t.started:
                parts.append(f"started {fmt_time(t.started, full=True)}")
            if t.ended:
                parts.append(f"ended {fmt_time(t.ended, full=True)}")
            return "\n".join(parts)
        return None

    # -- lookups ------------------------------------------------------------------------------
    def record(self, index: AnyIndex) -> TaskRecord | None:
        n = self._node(index)
        return n.task if n is not None else None

    def task_index(self, task_id: int, column: int = 0) -> QModelIndex:
        """The index of a loaded task (invalid when it has not been read yet)."""
        n = self._nodes.get(task_id)
        return self._index_of(n, column) if n is not None else QModelIndex()

    def load_task(self, task_id: int, *, max_pages: int = 50) -> QModelIndex:
        """Read pages (and a parent's children) until the task is loaded; its index, or invalid."""
        if task_id in self._nodes:
            return self.task_index(task_id)
        try:
            t = self.store.get(task_id)
        except Exception:  # noqa: BLE001 - a pruned or unknown task simply is not shown
            return QModelIndex()
        chain = [t]
        while chain[-1].parent_id is not None:
            try:
                chain.append(self.store.get(chain[-1].parent_id))
            except Exception:  # noqa: BLE001
                return QModelIndex()
        top = chain[-1]
        if top.id not in self._nodes:
            if not self._filter.matches(top):
                return QModelIndex()
            if self._top and top.id > self._top[-1].task.id:
                self._insert_top(top)  # newer than the last loaded row (e.g. a rerun just made)
            pages = 0
            while top.id not in self._nodes and self.canFetchMore() and pages < max_pages:
                self.fetchMore()
                pages += 1
        for rec in reversed(chain[1:]):  # ancestors, outermost first
            p = self._nodes.get(rec.id)
            if p is None:
                return QModelIndex()
            if p.children is None:
                self.fetchMore(self._index_of(p))
        return self.task_index(task_id)

    # -- live changes -------------------------------------------------------------------------
    def apply_changes(self, tasks: list[TaskRecord]) -> None:
        """Tasks created or changed (from EngineBridge.tasksChanged)."""
        for t in tasks:
            n = self._nodes.get(t.id)
            if n is not None:
                self._update(n, t)
            elif t.parent_id is None:
                self._insert_top(t)
            else:
                self._insert_child(t)
        self._update_tick()

    def _update(self, n: _Node, t: TaskRecord) -> None:
        n.task = t
        self._track(t)
        if n.parent is None and not self._filter.matches(t):
            row = self._row_of(n)
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._top[row]
            self._forget(n)
            self.endRemoveRows()
            return
        row = self._row_of(n)
        pidx = self._index_of(n.parent) if n.parent is not None else QModelIndex()
        self.dataChanged.emit(self.index(row, 0, pidx), self.index(row, len(Column) - 1, pidx))

    def _forget(self, n: _Node) -> None:
        self._nodes.pop(n.task.id, None)
        self._ticking.discard(n.task.id)
        for k in n.children or []:
            self._forget(k)

    def _insert_top(self, t: TaskRecord) -> None:
        if not self._filter.matches(t):
            return
        row = bisect_left(self._top, -t.id, key=_top_key)
        if row == len(self._top) and not self._exhausted:
            return  # older than every loaded row: a later page brings it
        node = self._make_nodes([t], None)
        if not node:
            return
        self.beginInsertRows(QModelIndex(), row, row)
        self._top.insert(row, node[0])
        self.endInsertRows()

    def _insert_child(self, t: TaskRecord) -> None:
        p = self._nodes.get(t.parent_id or 0)
        if p is None:
            return
        if p.children is None:
            if p.child_count > 0:
                p.child_count += 1  # read with the others when expanded
                return
            p.children = []
        row = bisect_left(p.children, t.id, key=_child_key)
        node = self._make_nodes([t], p)
        if not node:
            return
        self.beginInsertRows(self._index_of(p), row, row)
        p.children.insert(row, node[0])
        p.child_count = len(p.children)
        self.endInsertRows()

    # -- ticking durations --------------------------------------------------------------------
    def _track(self, t: TaskRecord) -> None:
        if not t.state.terminal and t.started is not None:
            self._ticking.add(t.id)
        else:
            self._ticking.discard(t.id)

    def _update_tick(self) -> None:
        if self._ticking and not self._tick.isActive():
            self._tick.start()
        elif not self._ticking and self._tick.isActive():
            self._tick.stop()

    def _on_tick(self) -> None:
        for tid in list(self._ticking):
            n = self._nodes.get(tid)
            if n is None:
                self._ticking.discard(tid)
                continue
            idx = self._index_of(n, Column.DURATION)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DisplayRole])
        self._update_tick()
