"""Fleet state in the device table: what a row shows of a device's last probe and drift.

A row's fleet entry is the dict a `probe_devices` task records per device (`state_summary` plus the
drift's `drift`, `drift_reason`, `latest_build`, ...). The first load reads the fleet store (the
newest probe per device, drift against this project's builds); later entries come from the probe
task records the bridge delivers, so a tick never re-reads the store. A finished build only
recomputes the drift of the devices it built, from the entry the row already has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QComboBox

from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.model import format_duration
from nixdeck.core.tasks.store import TaskStore

log = logging.getLogger(__name__)

FleetEntry = Mapping[str, Any]
ALL_DRIFTS = "All"
# core.fleet.drift.DRIFT_STATES (a test keeps them equal): importing core.fleet pulls in the SSH
# stack, which the window loads only after its first paint
DRIFT_CHOICES = ("in sync", "outdated", "diverged", "needs reboot", "unknown", "unreachable")
STATUS_COLORS = {"online": "#2e7d32", "offline": "#c62828", "unknown": "#9e9e9e"}
DRIFT_COLORS = {"outdated": "#8a5a00", "diverged": "#b3261e", "needs reboot": "#8a5a00",
                "unreachable": "#b3261e", "unknown": None, "in sync": None}  # fmt: skip


def load_entries(store: TaskStore, project: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The first load: each device's newest probe in the fleet store, with its drift (none: absent)."""
    from nixdeck.core.fleet.drift import builds_for, drift
    from nixdeck.core.fleet.state_store import FleetStateStore
    from nixdeck.core.ops.probe import state_summary

    found: dict[str, dict[str, Any]] = {}
    try:
        with FleetStateStore(store.data_dir) as fleet:
            for name in names:
                state = fleet.latest(project, name)
                if state is not None:
                    found[name] = {**state_summary(state), **drift(state, builds_for(store, project, name)).to_json()}
    except (NixDeckError, OSError) as e:  # the table still shows the inventory; the next probe fills in
        log.warning("cannot read the fleet state of %s: %s", project, e)
    return found


def redrift(entry: FleetEntry, store: TaskStore, project: str, device: str) -> dict[str, Any]:
    """The entry with its drift recomputed against the builds now recorded (after a new build)."""
    from nixdeck.core.fleet.drift import builds_for, drift
    from nixdeck.core.fleet.probe import DeviceState

    probed = entry.get("probed_at")
    state = DeviceState(project=project, device=device, online=bool(entry.get("online")),
                        probed_at=datetime.fromisoformat(probed) if probed else datetime.now(UTC),
                        reason=entry.get("reason"), current=entry.get("current"), booted=entry.get("booted"))  # fmt: skip
    return {**entry, **drift(state, builds_for(store, project, device)).to_json()}


def status_of(entry: FleetEntry | None) -> str:
    """online / offline / unknown (never probed)."""
    if entry is None or entry.get("online") is None:
        return "unknown"
    return "online" if entry.get("online") else "offline"


def drift_of(entry: FleetEntry | None) -> str:
    return str(entry.get("drift") or "unknown") if entry is not None else "unknown"


def age_text(when: str | None, now: datetime | None = None) -> str:
    if not when:
        return ""
    try:
        t = datetime.fromisoformat(when)
    except ValueError:
        return ""
    return short_age(((now or datetime.now(UTC)) - t).total_seconds()) + " ago"


def short_age(seconds: float) -> str:
    """An age as a table cell reads it: "42 s", "12 min", "3 h", "5 d" (the tooltip has the time)."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def generation_text(entry: FleetEntry | None, now: datetime | None = None) -> str:
    """"#3 · 2h ago" (the running generation and its age); "" when unknown."""
    if entry is None or entry.get("generation") is None:
        return "" if entry is None or not entry.get("current") else "not in the profile"
    age = age_text(entry.get("generation_created"), now)
    return f"#{entry['generation']} · {age}" if age else f"#{entry['generation']}"


def status_tooltip(entry: FleetEntry | None) -> str:
    if entry is None or entry.get("online") is None:
        return "never probed"
    seen = age_text(entry.get("probed_at"))
    if not entry.get("online"):
        return f"offline: {entry.get('reason') or 'not reachable'} (probed {seen})"
    parts = [f"online (probed {seen})"]
    if entry.get("nixos_version"):
        parts.append(f"NixOS {entry['nixos_version']}")
    if entry.get("uptime_s") is not None:
        parts.append(f"up {format_duration(float(entry['uptime_s']))}")
    if entry.get("store_free_bytes") is not None:
        parts.append(f"{int(entry['store_free_bytes']) / 2**30:.1f} GiB free on /nix")
    if entry.get("failed_units"):
        parts.append(f"{entry['failed_units']} failed units")
    if entry.get("lacks"):
        parts.append("no " + ", no ".join(str(x) for x in entry["lacks"]))
    return "\n".join(parts)


def generation_tooltip(entry: FleetEntry | None) -> str | None:
    if entry is None or not entry.get("current"):
        return None
    lines = [f"current: {entry['current']}"]
    if entry.get("booted") and entry.get("booted") != entry.get("current"):
        lines.append(f"booted: {entry['booted']}")
    if entry.get("profile_generation") is not None:
        lines.append(f"profile generation: #{entry['profile_generation']}")
    return "\n".join(lines)


def drift_tooltip(entry: FleetEntry | None) -> str:
    return str(entry.get("drift_reason") or "") if entry is not None else "never probed"


def drift_color(entry: FleetEntry | None) -> QColor | None:
    c = DRIFT_COLORS.get(drift_of(entry))
    return QColor(c) if c else None


@cache
def status_dot(status: str) -> QIcon:
    """A filled circle in the status's colour (drawn once per status)."""
    pix = QPixmap(12, 12)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(STATUS_COLORS.get(status, STATUS_COLORS["unknown"])))
    p.drawEllipse(1, 1, 10, 10)
    p.end()
    return QIcon(pix)


def drift_filter_box(on_change: Any) -> QComboBox:
    """The "Drift:" filter of the filter bar; calls ``on_change(state)`` ("" = all)."""
    box = QComboBox()
    box.setObjectName("driftFilter")
    box.addItem(ALL_DRIFTS, "")
    for d in DRIFT_CHOICES:
        box.addItem(d, d)
    box.currentIndexChanged.connect(lambda _i: on_change(str(box.currentData() or "")))
    return box
