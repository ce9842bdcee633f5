"""A lazy log viewer for task stdout/stderr: list model over a LineIndex, tail-follow and search.

The file is indexed a bounded number of bytes per timer tick, rows appear as they are indexed, and
only visible lines are read back (LogCanvas paints just those), so a 1 GB log opens at once and
never sits in memory. While the view is scrolled to the bottom it follows the tail (as Picard's
log view does).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QFontMetrics, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.termtext import neutralise
from nixdeck.ui.formatting import fmt_size
from nixdeck.ui.logcanvas import LogCanvas
from nixdeck.ui.logindex import LineIndex

AnyIndex = QModelIndex | QPersistentModelIndex
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
MAX_SHOWN = 4000  # characters of one line put on screen
TICK_BUDGET_S = 0.008  # indexing/searching per event-loop turn
READ_STEP = 512 * 1024


class LogModel(QAbstractListModel):
    """One row per complete line of an append-only log file.

    Signals:
        indexed(int): rows now known (after each indexing tick that found lines).
        searchFinished(int): the row of the match of the last `find()`, or -1.
    """

    indexed = Signal(int)
    searchFinished = Signal(int)

    def __init__(self, path: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._index = LineIndex(path)
        self._rows = 0
        self._width = 0
        self._cell = QSize(8, 16)
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        self._search: Iterator[int | None] | None = None
        if path:
            self.poll()

    # -- file ---------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._index.path

    def set_path(self, path: str | Path | None) -> None:
        """Show another file (or none)."""
        self.beginResetModel()
        self._index.close()
        self._index = LineIndex(path)
        self._rows, self._width, self._search = 0, 0, None
        self.endResetModel()
        self.poll()

    def close(self) -> None:
        self._timer.stop()
        self._index.close()

    def poll(self) -> None:
        """Look for new bytes in the file (call on new output or on a timer); indexing follows in ticks."""
        pending = self._index.pending()
        if pending < 0:  # replaced or truncated: start over
            self.set_path(self._index.path)
            return
        if pending > 0 and not self._timer.isActive():
            self._timer.start()

    def busy(self) -> bool:
        """True while indexing or a search still has work to do."""
        return self._timer.isActive()

    def size_bytes(self) -> int:
        return self._index.indexed

    def _tick(self) -> None:
        t0 = time.perf_counter()
        more = False
        while time.perf_counter() - t0 < TICK_BUDGET_S:
            if self._search is not None:
                try:
                    hit = next(self._search)
                except StopIteration:
                    self._search = None
                    self.searchFinished.emit(-1)
                    continue
                if hit is not None:
                    self._search = None
                    self.searchFinished.emit(self._index.line_at(hit))
                continue
            if self._index.index_more(READ_STEP) == 0:
                break
        else:
            more = True
        self._publish()
        if more or self._search is not None:
            self._timer.start()

    def _publish(self) -> None:
        n = self._index.lines
        if n > self._rows:
            self.beginInsertRows(QModelIndex(), self._rows, n - 1)
            self._rows = n
            self.endInsertRows()
            width = min(self._index.max_line, MAX_SHOWN)
            if width > self._width:
                self._width = width
                self.dataChanged.emit(self.index(0), self.index(0), [Qt.ItemDataRole.SizeHintRole])
            self.indexed.emit(n)

    # -- model --------------------------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._rows

    def line_text(self, row: int) -> str:
        raw = self._index.line(row).decode("utf-8", "replace")
        text = neutralise(_ANSI.sub("", raw).replace("\r", "")).expandtabs(8)  # OSC 52/0 shown, not kept
        return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " …"

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self._rows:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.line_text(index.row())
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(self._cell.width() * (self._width + 2), self._cell.height())
        return None

    def max_chars(self) -> int:
        """Length of the longest line indexed so far, capped at what is shown of a line."""
        return min(self._index.max_line, MAX_SHOWN)

    def set_cell_size(self, size: QSize) -> None:
        """Width of one character and height of one line in the view's font (for the row size hint)."""
        self._cell = size

    # -- search -------------------------------------------------------------------------------
    def find(self, text: str, from_row: int, *, backward: bool = False) -> None:
        """Start looking for `text` after (or before) `from_row`; the answer comes as searchFinished."""
        if not text:
            self.searchFinished.emit(-1)
            return
        if backward:
            start = self._index.line_start(from_row) if 0 <= from_row < self._rows else self._index.indexed
        else:
            start = self._index.line_start(from_row + 1) if from_row >= 0 else 0
        self._search = self._index.search(text, start, backward=backward, chunk=READ_STEP)
        if not self._timer.isActive():
            self._timer.start()


class LogView(QWidget):
    """A log file shown lazily, with tail-follow and a find bar.

    Signals:
        searchDone(int): the row found by the last search, or -1.
    """

    searchDone = Signal(int)

    def __init__(self, path: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = LogModel(None, self)
        self.view = LogCanvas(self.model, self)
        fm = QFontMetrics(self.view.font())
        self.model.set_cell_size(QSize(max(1, fm.horizontalAdvance("m")), fm.lineSpacing()))

        self.find_edit = QLineEdit(self)
        self.find_edit.setPlaceholderText("Find in log")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.returnPressed.connect(self.find_next)
        self.next_button = QToolButton(self)
        self.next_button.setText("Next")
        self.next_button.clicked.connect(self.find_next)
        self.prev_button = QToolButton(self)
        self.prev_button.setText("Previous")
        self.prev_button.clicked.connect(self.find_previous)
        self.status = QLabel(self)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.find_edit, 1)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.next_button)
        bar.addSpacing(12)
        bar.addWidget(self.status)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)

        find = QAction("Find", self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.triggered.connect(lambda: self.find_edit.setFocus())
        self.addAction(find)

        self._follow = True
        self._searching = False
        self.model.rowsAboutToBeInserted.connect(self._before_rows)
        self.model.rowsInserted.connect(self._after_rows)
        self.model.modelReset.connect(self._after_reset)
        self.model.searchFinished.connect(self._on_found)
        self.view.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self._poll = QTimer(self)
        self._poll.setInterval(500)
        self._poll.timeout.connect(self.model.poll)
        if path:
            self.set_path(path)
        self._update_status()

    # -- file ---------------------------------------------------------------------------------
    def set_path(self, path: str | Path | None) -> None:
        if path is not None and self.model.path == Path(path):
            self.model.poll()
            return
        self._follow = True
        self.model.set_path(path)

    def set_live(self, live: bool) -> None:
        """While the writing process runs, look at the file size twice a second as a safety net."""
        if live and not self._poll.isActive():
            self._poll.start()
        elif not live:
            self._poll.stop()
            self.model.poll()

    def notify_output(self) -> None:
        """New output was written to the file (the bridge's output signal)."""
        self.model.poll()

    def is_following(self) -> bool:
        return self._follow

    def closeEvent(self, event: Any) -> None:
        self._poll.stop()
        self.model.close()
        super().closeEvent(event)

    # -- tail follow --------------------------------------------------------------------------
    def _at_bottom(self) -> bool:
        sb = self.view.verticalScrollBar()
        return sb.value() >= sb.maximum() - 1

    def _on_scrolled(self, _value: int) -> None:
        if not self._inserting:
            self._follow = self._at_bottom()

    _inserting = False

    def _before_rows(self, *_: Any) -> None:
        self._inserting = True

    def _after_rows(self, *_: Any) -> None:
        if self._follow:
            self.view.scroll_to_bottom()
        self._inserting = False
        self._update_status()

    def _after_reset(self) -> None:
        self._update_status()

    def _update_status(self) -> None:
        if self._searching:
            return
        n = self.model.rowCount()
        self.status.setText(f"{n:,} lines · {fmt_size(self.model.size_bytes())}" if n else "no output")

    # -- search -------------------------------------------------------------------------------
    def _current_row(self) -> int:
        return self.view.current_row()

    def current_row(self) -> int:
        """The current line (clicked or found), -1 when none."""
        return self.view.current_row()

    def find_next(self) -> None:
        self._start_find(backward=False)

    def find_previous(self) -> None:
        self._start_find(backward=True)

    def _start_find(self, *, backward: bool) -> None:
        text = self.find_edit.text()
        if not text:
            return
        self._searching = True
        self.status.setText("searching…")
        self.model.find(text, self._current_row(), backward=backward)

    def _on_found(self, row: int) -> None:
        self._searching = False
        if row < 0:
            self.status.setText(f"“{self.find_edit.text()}” not found")
        else:
            self._follow = False
            self.view.set_current_row(row)
            self.view.scroll_to_row(row, center=True)
            self._follow = self._at_bottom()
            self.status.setText(f"line {row + 1:,} of {self.model.rowCount():,}")
        self.searchDone.emit(row)

    def copy_selection(self) -> None:
        QApplication.clipboard().setText(self.view.selected_text())
