"""FleetProber: keeps the device table's fleet columns fresh by probing the shown project's devices.

It submits silent `probe_devices` tasks (read-only: no device lock, no slot; parallel within the
task's `limit`) when a project is opened, every `interval_ms` while the window is visible, after each
finished deploy of a device (that device only), and on demand (the "Probe devices" action). One probe
runs at a time; requests made meanwhile are merged into the next. The table learns the results from
the task records the bridge delivers (`DevicesModel.on_tasks_changed`), not from this class.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.model import TaskKind, TaskRecord, project_key

if TYPE_CHECKING:
    from nixdeck.ui.mainwindow import MainWindow

log = logging.getLogger(__name__)

PROBE_INTERVAL_MS = 60_000


class FleetProber(QObject):
    """Probes `window`'s project devices (those with a target). `submitted` lists its task ids."""

    def __init__(self, window: MainWindow, interval_ms: int = PROBE_INTERVAL_MS) -> None:
        super().__init__(window)
        self.window = window
        self.submitted: list[int] = []
        self._pending: set[str] | None = None  # devices to probe next; empty set: all of them
        self._running: asyncio.Task[Any] | None = None
        self._deploys_seen: set[int] = set()
        self._stopped = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.on_tick)
        self.set_interval(interval_ms)
        window.bridge.tasksChanged.connect(self.on_tasks_changed)
        window.projectChanged.connect(lambda _p: self.probe())

    @property
    def interval_ms(self) -> int:
        return self._timer.interval()

    def set_interval(self, ms: int) -> None:
        """How often the devices are probed (tests make it short; 0 stops the periodic probe)."""
        self._timer.stop()
        if ms > 0:
            self._timer.start(ms)

    def stop(self) -> None:
        """For good (the app is quitting): no probe starts after this, a running one is canceled."""
        self._stopped = True
        self._timer.stop()
        if self._running is not None and not self._running.done():
            self._running.cancel()

    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    # -- triggers -------------------------------------------------------------------------------
    def on_tick(self) -> None:
        w = self.window
        if w.isVisible() and not w.isMinimized() and not self.busy():
            self.probe()

    def on_tasks_changed(self, tasks: Sequence[Any]) -> None:
        """After a device's deploy ended (any outcome: it may have rolled back), probe that device."""
        key = self._project()
        done: list[str] = []
        for t in tasks:
            if (isinstance(t, TaskRecord) and t.kind == TaskKind.DEPLOY_DEVICE.value and t.state.terminal
                    and t.project == key and t.id not in self._deploys_seen):  # fmt: skip
                self._deploys_seen.add(t.id)
                done.extend(t.devices)
        if done:
            self.probe(done)

    def probe(self, devices: Sequence[str] | None = None) -> None:
        """Probe these devices (None: every device of the project with a target), now or right after
        the probe that is running."""
        if self._stopped:
            return
        names = set(devices or ())
        if self._pending is None:
            self._pending = names
        elif not names or not self._pending:
            self._pending = set()
        else:
            self._pending |= names
        if not self.busy():
            self._running = self.window.spawn(self._drain(), "Probe devices")

    # -- running --------------------------------------------------------------------------------
    def _project(self) -> str | None:
        p = self.window.project
        return project_key(p.path) if p is not None else None

    def _targets(self, wanted: set[str]) -> list[str]:
        rows = [r for r in self.window.model.rows() if r.target is not None and r.state != "orphaned"]
        return [r.name for r in rows if not wanted or r.name in wanted]

    async def _drain(self) -> None:
        while self._pending is not None:
            wanted, self._pending = self._pending, None
            key, names = self._project(), self._targets(wanted)
            if key is None or not names:
                continue
            await self._probe_once(key, names)

    async def _probe_once(self, key: str, names: list[str]) -> None:
        from nixdeck.core.ops.probe import ProbeDevicesSubmission

        self.window.ensure_operations()
        engine = self.window.engine
        try:
            tid = await engine.submit(TaskKind.PROBE_DEVICES.value,
                                      ProbeDevicesSubmission(project_dir=key, devices=names),
                                      silent=True, project=key)  # fmt: skip
        except NixDeckError as e:
            log.warning("probe of %s refused: %s", ", ".join(names), e)
            return
        self.submitted.append(tid)
        await engine.wait(tid)
