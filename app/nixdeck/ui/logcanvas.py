"""LogCanvas: paints only the visible lines of a LogModel, whatever its length.

Qt's item views lay out every row again on each insert (calling back into Python per row), which
stalls the window for hundreds of ms once a log has 100k+ lines. This scroll area keeps one
scrollbar step per line and reads just the lines on screen, so appending is O(1) and painting is
O(visible lines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QFontDatabase,
    QFontMetrics,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QWidget

if TYPE_CHECKING:
    from nixdeck.ui.logview import LogModel

PAD = 4
MAX_COPY_LINES = 100_000


class LogCanvas(QAbstractScrollArea):
    """Monospace lines of a LogModel with a current line and a line-range selection.

    Signals:
        currentRowChanged(int): the current (clicked, found or keyed-to) line.
    """

    currentRowChanged = Signal(int)

    def __init__(self, model: LogModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.viewport().setBackgroundRole(QPalette.ColorRole.Base)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._current = -1
        self._anchor = -1
        self._max_chars = 0
        self._metrics()
        model.rowsInserted.connect(self._on_rows)
        model.modelReset.connect(self._on_reset)

    # -- geometry -----------------------------------------------------------------------------
    def _metrics(self) -> None:
        fm = QFontMetrics(self.font())
        self.line_height = max(1, fm.lineSpacing())
        self.char_width = max(1, fm.horizontalAdvance("m"))
        self._ascent = fm.ascent()

    def visible_rows(self) -> int:
        return max(1, self.viewport().height() // self.line_height)

    def first_row(self) -> int:
        return self.verticalScrollBar().value()

    def _update_ranges(self) -> None:
        rows = self.model.rowCount()
        vis = self.visible_rows()
        vsb = self.verticalScrollBar()
        vsb.setRange(0, max(0, rows - vis))
        vsb.setPageStep(vis)
        vsb.setSingleStep(1)
        width = (self._max_chars + 1) * self.char_width + 2 * PAD
        hsb = self.horizontalScrollBar()
        hsb.setRange(0, max(0, width - self.viewport().width()))
        hsb.setPageStep(self.viewport().width())
        hsb.setSingleStep(self.char_width * 4)

    def _on_rows(self, *_: Any) -> None:
        self._max_chars = max(self._max_chars, self.model.max_chars())
        self._update_ranges()
        self.viewport().update()

    def _on_reset(self) -> None:
        self._current = self._anchor = -1
        self._max_chars = 0
        self._update_ranges()
        self.verticalScrollBar().setValue(0)
        self.viewport().update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_ranges()

    def scroll_to_bottom(self) -> None:
        vsb = self.verticalScrollBar()
        vsb.setValue(vsb.maximum())

    def scroll_to_row(self, row: int, *, center: bool = False) -> None:
        vis = self.visible_rows()
        first = self.first_row()
        if center:
            self.verticalScrollBar().setValue(max(0, row - vis // 2))
        elif row < first:
            self.verticalScrollBar().setValue(row)
        elif row >= first + vis:
            self.verticalScrollBar().setValue(row - vis + 1)

    # -- current line and selection -----------------------------------------------------------
    def current_row(self) -> int:
        return self._current

    def set_current_row(self, row: int, *, extend: bool = False) -> None:
        rows = self.model.rowCount()
        if rows == 0:
            return
        row = max(0, min(rows - 1, row))
        if not extend or self._anchor < 0:
            self._anchor = row
        if row != self._current:
            self._current = row
            self.currentRowChanged.emit(row)
        self.viewport().update()

    def selected_rows(self) -> range:
        if self._current < 0:
            return range(0)
        a, b = sorted((self._anchor, self._current))
        return range(a, b + 1)

    def selected_text(self) -> str:
        rows = self.selected_rows()
        return "\n".join(self.model.line_text(r) for r in rows[:MAX_COPY_LINES])

    def _row_at(self, pos: QPoint) -> int:
        return self.first_row() + pos.y() // self.line_height

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            extend = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.set_current_row(self._row_at(event.position().toPoint()), extend=extend)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            row = self._row_at(event.position().toPoint())
            self.set_current_row(row, extend=True)
            self.scroll_to_row(max(0, min(row, self.model.rowCount() - 1)))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            QApplication.clipboard().setText(self.selected_text())
            return
        if event.matches(QKeySequence.StandardKey.SelectAll):
            self._anchor = 0
            self.set_current_row(self.model.rowCount() - 1, extend=True)
            return
        steps = {
            Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1,
            Qt.Key.Key_PageUp: -self.visible_rows(), Qt.Key.Key_PageDown: self.visible_rows(),
        }
        extend = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        key = Qt.Key(event.key())
        if key in steps:
            self.set_current_row(max(0, self._current) + steps[key], extend=extend)
            self.scroll_to_row(self._current)
        elif key == Qt.Key.Key_Home:
            self.set_current_row(0, extend=extend)
            self.verticalScrollBar().setValue(0)
        elif key == Qt.Key.Key_End:
            self.set_current_row(self.model.rowCount() - 1, extend=extend)
            self.scroll_to_bottom()
        else:
            super().keyPressEvent(event)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self.viewport())
        pal = self.palette()
        rows = self.model.rowCount()
        first = self.first_row()
        x = PAD - self.horizontalScrollBar().value()
        width = self.viewport().width()
        sel = self.selected_rows()
        top_row = event.rect().top() // self.line_height
        bottom_row = event.rect().bottom() // self.line_height + 1
        for i in range(top_row, bottom_row + 1):
            row = first + i
            if row >= rows:
                break
            y = i * self.line_height
            if row in sel:
                p.fillRect(QRect(0, y, width, self.line_height), pal.highlight())
                p.setPen(pal.highlightedText().color())
            else:
                p.setPen(pal.text().color())
            p.drawText(x, y + self._ascent, self.model.line_text(row))
        p.end()

    def index_of_row(self, row: int) -> QModelIndex:
        """The model index of a line (for code that wants a QModelIndex)."""
        return self.model.index(row)
