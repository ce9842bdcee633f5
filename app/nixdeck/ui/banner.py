"""Banner (the in-window message line) and where new top-level windows are placed."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget


class Banner(QFrame):
    """A slim in-window message line with an optional action button and a close button
    (notifications without a system tray). It hides itself after `timeout_ms` unless hovered."""

    TIMEOUT_MS = 20_000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.hide()
        self.action_button.clicked.connect(self._on_action)
        self._action: Callable[[], None] | None = None
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Hide this message")
        close.clicked.connect(self.hide)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._expire)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, bad: bool = False, *, action: tuple[str, Callable[[], None]] | None = None,
                     timeout_ms: int | None = None) -> None:
        bg, fg = ("#fdecea", "#7a1c14") if bad else ("#e8f1fb", "#173b63")
        self.setStyleSheet(f"Banner {{ background: {bg}; border: 1px solid {fg}33; border-radius: 3px; }}"
                           f" QLabel {{ color: {fg}; }}")
        self.label.setText(text)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.timer.start(self.TIMEOUT_MS if timeout_ms is None else timeout_ms)
        self.show()

    def _on_action(self) -> None:
        act, self._action = self._action, None
        self.hide()
        if act is not None:
            act()

    def _expire(self) -> None:
        if self.underMouse():  # being read: look again later
            self.timer.start(5000)
        else:
            self.hide()


def place_on_screen(win: QWidget, anchor: QWidget, offset: int = 0) -> None:
    """Put a new top-level window over `anchor`, cascaded by `offset`, and wholly on a screen (the
    anchor's, else the primary one): a window placed off screen cannot be seen or moved."""
    screen = anchor.screen() if anchor.isVisible() else None
    if screen is None or not screen.availableGeometry().intersects(anchor.frameGeometry()):
        screen = QGuiApplication.primaryScreen()
    if screen is None:
        return
    area = screen.availableGeometry()
    w, h = min(win.width(), area.width()), min(win.height(), area.height())
    x = anchor.x() + 40 + offset if anchor.isVisible() else area.x() + offset
    y = anchor.y() + 40 + offset if anchor.isVisible() else area.y() + offset
    x = max(area.left(), min(x, area.right() - w + 1))
    y = max(area.top(), min(y, area.bottom() - h + 1))
    win.setGeometry(x, y, w, h)
