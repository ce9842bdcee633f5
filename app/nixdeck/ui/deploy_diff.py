"""The deploy dialog's "Changes" tree: per selected device, what the deploy changes (packages added,
removed and changed, closure size delta), or why that could not be computed.

Each device's diff is computed in the background on the event loop (`core.fleet.deploy_diff`: a
silent build of its toplevel, then both closures), so the dialog stays usable meanwhile; a row says
"computing…" until its diff arrives. Closing the dialog stops the computations (a build already
submitted runs on: the deploy uses it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QDialog, QFormLayout, QTreeWidget, QTreeWidgetItem, QWidget

from nixdeck.core.errors import NixDeckError

log = logging.getLogger(__name__)

COMPUTING = "computing…"
FAILED_COLOR = "#b3261e"


class ClosureDiffPanel(QTreeWidget):
    """One collapsible item per device; its children list the changes. `text_of(device)` is what its
    item says; `finished` is emitted once every device has its diff or its reason."""

    finished = Signal()

    def __init__(self, devices: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("closureDiff")
        self.setHeaderHidden(True)
        self.setColumnCount(1)
        self.setMinimumHeight(140)
        self.devices = list(devices)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._jobs: list[asyncio.Task[Any]] = []
        self._pending = set(self.devices)
        for d in self.devices:
            item = QTreeWidgetItem([f"{d}: {COMPUTING}"])
            self.addTopLevelItem(item)
            self._items[d] = item

    def text_of(self, device: str) -> str:
        return self._items[device].text(0)

    def children_of(self, device: str) -> list[str]:
        """The lines under a device's item (group titles and their entries, depth first)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            for i in range(item.childCount()):
                out.append(item.child(i).text(0))
                walk(item.child(i))

        walk(self._items[device])
        return out

    def done(self) -> bool:
        return not self._pending

    # -- computing ------------------------------------------------------------------------------
    def start(self, engine: Any, project_dir: str) -> None:
        for d in self.devices:
            self._jobs.append(asyncio.ensure_future(self._one(engine, project_dir, d)))

    def stop(self) -> None:
        for j in self._jobs:
            if not j.done():
                j.cancel()

    async def _one(self, engine: Any, project_dir: str, device: str) -> None:
        from nixdeck.core.fleet.deploy_diff import diff_for_device

        try:
            result = await diff_for_device(engine, project_dir, device)
        except asyncio.CancelledError:
            raise
        except NixDeckError as e:
            self._failed(device, str(e))
        except Exception as e:  # noqa: BLE001 - a bug shows as the reason, the dialog stays usable
            log.exception("closure diff of %s", device)
            self._failed(device, f"{type(e).__name__}: {e}")
        else:
            self._show(device, result)
        finally:
            self._pending.discard(device)
            if not self._pending:
                self.finished.emit()

    def _failed(self, device: str, reason: str) -> None:
        item = self._items[device]
        item.setText(0, f"{device}: cannot compute the diff: {reason.splitlines()[0] if reason else ''}")
        item.setToolTip(0, reason)
        item.setForeground(0, QBrush(QColor(FAILED_COLOR)))

    def _show(self, device: str, result: Any) -> None:
        d = result.diff
        item = self._items[device]
        item.setText(0, f"{device}: {d.summary()}")
        if not result.current:
            item.addChild(QTreeWidgetItem(["the device runs no system yet: everything is added"]))
        item.setToolTip(0, f"{result.current or '(no system)'}\n→ {result.new}\n(build task {result.build_task})")
        groups = (("Added", [f"{n} {v}".rstrip() for n, v in d.added]),
                  ("Removed", [f"{n} {v}".rstrip() for n, v in d.removed]),
                  ("Changed", [f"{n} {o or '(none)'} → {w or '(none)'}" for n, o, w in d.changed]))  # fmt: skip
        for title, lines in groups:
            if not lines:
                continue
            group = QTreeWidgetItem([f"{title} ({len(lines)})"])
            group.addChildren([QTreeWidgetItem([line]) for line in lines])
            item.addChild(group)
            group.setExpanded(True)
        if not any(lines for _t, lines in groups):
            item.addChild(QTreeWidgetItem(["no package added, removed or changed"
                                           + (f"; {d.rebuilt} paths rebuilt" if d.rebuilt else "")]))  # fmt: skip
        item.setExpanded(len(self.devices) == 1)


def attach_closure_diff(dialog: QDialog, form: QFormLayout, engine: Any, project_dir: str,
                        devices: Sequence[str]) -> ClosureDiffPanel:
    """Add the "Changes" row to a deploy dialog and start computing; stops when the dialog closes."""
    panel = ClosureDiffPanel(devices, dialog)
    form.addRow("Changes:", panel)
    dialog.finished.connect(lambda _r: panel.stop())
    panel.start(engine, project_dir)
    return panel
