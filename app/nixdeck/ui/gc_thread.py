"""Python's cyclic garbage collector on the GUI thread only.

The collector runs in whichever thread happens to allocate when a threshold is crossed — here also
asyncio's child-watcher threads (one per subprocess) and its resolver threads. Collecting a Qt
object there makes Qt warn "QObject::~QObject: Timers cannot be stopped from another thread" (and
can crash). So while the window runs, automatic collection is off and a GUI-thread timer collects
the generation whose threshold was crossed, as qutebrowser does.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect once more here, then give automatic collection back."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def collect(self) -> None:
        """Collect the oldest generation whose count passed its threshold (as the interpreter would)."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if counts[0] <= thresholds[0]:
            return
        gen = 2 if counts[2] > thresholds[2] else 1 if counts[1] > thresholds[1] else 0
        gc.collect(gen)
