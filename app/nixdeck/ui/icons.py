"""State icons drawn with QPainter (no image files), cached; shared by the Tasks dock, details and main window."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from nixdeck.core.tasks.model import TaskState

_COLORS: dict[str, str] = {
    "pending": "#9e9e9e",
    "queued": "#9e9e9e",
    "running": "#1e88e5",
    "canceling": "#8d6e63",
    "backed_off": "#f9a825",
    "completed": "#43a047",
    "completed_with_warnings": "#f9a825",
    "failed": "#e53935",
    "timed_out": "#ef6c00",
    "canceled": "#757575",
    "interrupted": "#ef6c00",
    # message levels
    "error": "#e53935",
    "warning": "#f9a825",
    "notice": "#1e88e5",
    "info": "#1e88e5",
}
# Glyph drawn on the disc: keeps states apart for colour-blind users too.
_GLYPHS: dict[str, str] = {
    "pending": "ring",
    "queued": "dots",
    "running": "play",
    "canceling": "bar",
    "backed_off": "clock",
    "completed": "check",
    "completed_with_warnings": "bang",
    "failed": "cross",
    "timed_out": "clock",
    "canceled": "bar",
    "interrupted": "bang",
    "error": "cross",
    "warning": "bang",
    "notice": "info",
    "info": "info",
}
_cache: dict[tuple[str, int], QIcon] = {}


def state_color(state: TaskState | str) -> QColor:
    """The colour that stands for a task state or message level."""
    return QColor(_COLORS.get(str(state), "#9e9e9e"))


def state_label(state: TaskState | str) -> str:
    """Human text of a state ("completed with warnings")."""
    return str(state).replace("_", " ")


def state_icon(state: TaskState | str, size: int = 16) -> QIcon:
    """A coloured disc with a glyph for a task state (also accepts message levels)."""
    key = (str(state), size)
    icon = _cache.get(key)
    if icon is None:
        icon = QIcon()
        for scale in (1, 2):
            icon.addPixmap(_draw(str(state), size * scale))
        _cache[key] = icon
    return icon


def level_icon(level: str, size: int = 16) -> QIcon:
    """Icon of a message level (error, warning, notice, info)."""
    return state_icon(level, size)


def _draw(state: str, px: int) -> QPixmap:
    pm = QPixmap(px, px)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = state_color(state)
    glyph = _GLYPHS.get(state, "ring")
    m = px * 0.08
    disc = QRectF(m, m, px - 2 * m, px - 2 * m)
    if glyph == "ring":
        p.setPen(QPen(color, max(1.0, px * 0.12)))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(disc.adjusted(px * 0.06, px * 0.06, -px * 0.06, -px * 0.06))
        p.end()
        return pm
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(color)
    p.drawEllipse(disc)
    white = QPen(QColor("white"), max(1.2, px * 0.13), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                 Qt.PenJoinStyle.RoundJoin)
    p.setPen(white)
    p.setBrush(Qt.BrushStyle.NoBrush)
    c = px / 2.0
    u = px / 16.0
    if glyph == "check":
        path = QPainterPath(QPointF(c - 3.5 * u, c + 0.2 * u))
        path.lineTo(c - 1 * u, c + 2.7 * u)
        path.lineTo(c + 3.8 * u, c - 2.5 * u)
        p.drawPath(path)
    elif glyph == "cross":
        d = 2.8 * u
        p.drawLine(QPointF(c - d, c - d), QPointF(c + d, c + d))
        p.drawLine(QPointF(c - d, c + d), QPointF(c + d, c - d))
    elif glyph == "bang":
        p.drawLine(QPointF(c, c - 3.6 * u), QPointF(c, c + 0.8 * u))
        p.drawPoint(QPointF(c, c + 3.4 * u))
    elif glyph == "info":
        p.drawPoint(QPointF(c, c - 3.4 * u))
        p.drawLine(QPointF(c, c - 0.8 * u), QPointF(c, c + 3.6 * u))
    elif glyph == "bar":
        p.drawLine(QPointF(c - 3.2 * u, c), QPointF(c + 3.2 * u, c))
    elif glyph == "dots":
        for dx in (-3.2, 0.0, 3.2):
            p.drawPoint(QPointF(c + dx * u, c))
    elif glyph == "clock":
        p.drawLine(QPointF(c, c), QPointF(c, c - 3.6 * u))
        p.drawLine(QPointF(c, c), QPointF(c + 2.8 * u, c))
    elif glyph == "play":
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("white"))
        tri = QPainterPath(QPointF(c - 2.2 * u, c - 3.4 * u))
        tri.lineTo(c + 3.6 * u, c)
        tri.lineTo(c - 2.2 * u, c + 3.4 * u)
        tri.closeSubpath()
        p.drawPath(tri)
    p.end()
    return pm


def terminal_icon(size: int = 16) -> QIcon:
    """Run command: a small terminal (`>_`), so it never looks like Build's play arrow."""
    key = ("terminal", size)
    icon = _cache.get(key)
    if icon is None:
        icon = QIcon()
        for scale in (1, 2):
            px = size * scale
            pm = QPixmap(px, px)
            pm.fill(Qt.GlobalColor.transparent)
            p = QPainter(pm)
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(QColor("#37474f"), max(1.0, px / 16)))
            p.setBrush(QColor("#263238"))
            p.drawRoundedRect(QRectF(px * 0.06, px * 0.12, px * 0.88, px * 0.76), px * 0.12, px * 0.12)
            pen = QPen(QColor("#e0f2f1"), max(1.2, px / 9))
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            p.setPen(pen)
            p.drawPolyline([QPointF(px * 0.24, px * 0.34), QPointF(px * 0.42, px * 0.5), QPointF(px * 0.24, px * 0.66)])
            p.drawLine(QPointF(px * 0.5, px * 0.68), QPointF(px * 0.74, px * 0.68))
            p.end()
            icon.addPixmap(pm)
        _cache[key] = icon
    return icon
