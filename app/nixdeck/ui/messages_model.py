"""MessagesModel: a task's parsed messages (Nix errors, warnings, notices, infos) as one list model.

Each pane of the details window is a QSortFilterProxyModel on the level role over this one model,
the way Picard splits its log view.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from nixdeck.core.tasks.model import MessageRecord
from nixdeck.ui.icons import level_icon

AnyIndex = QModelIndex | QPersistentModelIndex
LevelRole = Qt.ItemDataRole.UserRole + 1  # "error" | "warning" | "notice" | "info"
LocationRole = Qt.ItemDataRole.UserRole + 2  # "file:line:column" or ""
MessageRole = Qt.ItemDataRole.UserRole + 3  # the MessageRecord
DetailRole = Qt.ItemDataRole.UserRole + 4  # full text: message, location and trace

# Which levels each pane shows.
PANE_LEVELS: dict[str, tuple[str, ...]] = {
    "Errors": ("error",),
    "Warnings": ("warning",),
    "Infos": ("notice", "info"),
}


def location(m: MessageRecord | dict[str, Any]) -> str:
    """`file:line:column` (or less) of a message or trace frame; "" when unknown."""
    get = m.get if isinstance(m, dict) else lambda k: getattr(m, k)
    f = get("file")
    if not f:
        return ""
    loc = str(f)
    if get("line"):
        loc += f":{get('line')}"
        if get("column"):
            loc += f":{get('column')}"
    return loc


SOURCE_CONTEXT = 2  # lines shown before the one a message points at
MAX_SOURCE_BYTES = 4 * 1024 * 1024


def source_excerpt(file: str | None, line: int | None, column: int | None = None) -> str:
    """The lines of `file` up to `line` (numbered, as Nix prints them) with a caret under `column`;
    "" when the file cannot be read (e.g. a store path that is gone)."""
    if not file or not line or line < 1:
        return ""
    try:
        p = Path(file)
        if not p.is_file() or p.stat().st_size > MAX_SOURCE_BYTES:
            return ""
        lines = p.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    if line > len(lines):
        return ""
    width = len(str(line))
    out = [f"  {n:>{width}}| {lines[n - 1]}" for n in range(max(1, line - SOURCE_CONTEXT), line + 1)]
    if column and column > 0:
        out.append(f"  {'':>{width}}| {' ' * (column - 1)}^")
    return "\n".join(out)


def detail_text(m: MessageRecord) -> str:
    """The whole message with its location, the source there, and the trace (outermost frame first)."""
    out = [m.message]
    loc = location(m)
    if loc:
        out.append(f"  at {loc}")
        src = source_excerpt(m.file, m.line, m.column)
        if src:
            out += ["", src]
    if m.trace:
        out += ["", "Trace:"]
    for frame in m.trace:
        text = str(frame.get("message") or "").strip()
        floc = location(frame)
        out.append(f"  … {text}" + (f"\n      at {floc}" if floc else ""))
    return "\n".join(out)


class MessagesModel(QAbstractListModel):
    """Messages of one task in the order they came; append-only."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[MessageRecord] = []
        self._base = ""

    def set_base(self, directory: str | None) -> None:
        """List locations relative to this directory (the task's project); details keep them whole."""
        base = directory.rstrip("/") + "/" if directory else ""
        if base != self._base:
            self.beginResetModel()
            self._base = base
            self.endResetModel()

    def set_messages(self, messages: list[MessageRecord]) -> None:
        """Show `messages`; when they extend what is shown, only the new ones are inserted."""
        n = len(self._items)
        if len(messages) >= n and messages[:n] == self._items:
            new = messages[n:]
            if new:
                self.beginInsertRows(QModelIndex(), n, n + len(new) - 1)
                self._items.extend(new)
                self.endInsertRows()
            return
        self.beginResetModel()
        self._items = list(messages)
        self.endResetModel()

    def message(self, row: int) -> MessageRecord | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def count(self, levels: tuple[str, ...]) -> int:
        return sum(1 for m in self._items if m.level in levels)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        m = self.message(index.row()) if index.isValid() else None
        if m is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            first = m.message.strip().splitlines()[0] if m.message.strip() else "(empty message)"
            loc = location(m)
            if self._base and loc.startswith(self._base):
                loc = loc[len(self._base):]
            return f"{loc} — {first}" if loc else first
        if role == Qt.ItemDataRole.DecorationRole:
            return level_icon(m.level)
        if role == Qt.ItemDataRole.ToolTipRole:  # code frames line up only in a monospace font
            return f"<pre style='white-space: pre-wrap'>{html.escape(detail_text(m))}</pre>"
        if role == LevelRole:
            return m.level
        if role == LocationRole:
            return location(m)
        if role == MessageRole:
            return m
        if role == DetailRole:
            return detail_text(m)
        return None


class LevelFilter(QSortFilterProxyModel):
    """The messages of some levels (one pane)."""

    def __init__(self, levels: tuple[str, ...], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.levels = frozenset(levels)

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        idx = self.sourceModel().index(source_row, 0, source_parent)
        return self.sourceModel().data(idx, LevelRole) in self.levels
