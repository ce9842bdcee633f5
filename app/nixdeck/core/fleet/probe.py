"""Probe a device over SSH (NixDeck's known_hosts, never a prompt): what it runs and how it is.

One remote shell reads everything (each command costs a login shell on the device): the current and
booted system, the system profile's generations with their dates, NixOS version, uptime, free space
on the store's file system, failed systemd units where systemd runs. A device that cannot be
reached is `online = False` with the reason (refused, timeout, host key), never an exception.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from nixdeck.core.nix.commands import SYSTEM_PROFILE
from nixdeck.core.ssh.errors import SshError
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.ssh.session import SshSession

PROBE_TIMEOUT = 20.0

# $1: the system profile. Prints key=value lines only.
PROBE_SCRIPT = r"""profile="$1"
echo "current=$(readlink /run/current-system 2>/dev/null)"
echo "booted=$(readlink /run/booted-system 2>/dev/null)"
echo "profile-link=$(readlink "$profile" 2>/dev/null)"
for g in "$profile"-*-link; do
  [ -L "$g" ] || continue
  echo "generation=${g##*/} $(stat -c %Y "$g" 2>/dev/null) $(readlink "$g")"
done
if [ -r /run/current-system/nixos-version ]; then echo "nixos-version=$(cat /run/current-system/nixos-version)"; fi
echo "uptime=$(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
df -Pk /nix 2>/dev/null | awk 'NR==2 { print "store-free-kib=" $4; print "store-size-kib=" $2 }'
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  echo "failed-units=$(systemctl --failed --no-legend --plain 2>/dev/null | grep -c .)"
else
  echo "systemd=absent"
fi
[ -L "$profile" ] || echo "profile=absent"
"""


class Generation(BaseModel):
    """One generation of the system profile."""

    number: int
    path: str
    created: datetime | None = None


class DeviceState(BaseModel):
    """What one probe found (kept per project and device, with history)."""

    project: str
    device: str
    probed_at: datetime
    online: bool
    reason: str | None = None  # why it is offline
    current: str | None = None
    booted: str | None = None
    profile_generation: int | None = None
    generations: list[Generation] = Field(default_factory=list)
    nixos_version: str | None = None
    uptime_s: float | None = None
    store_free_bytes: int | None = None
    store_size_bytes: int | None = None
    failed_units: int | None = None  # None: no systemd on the device
    lacks: list[str] = Field(default_factory=list)  # what the device has not: "systemd", "system profile"
    probe_ms: int | None = None

    @property
    def running_generation(self) -> Generation | None:
        """The profile generation whose system is the one running (None: it runs none of them)."""
        matches = [g for g in self.generations if g.path == self.current]
        return max(matches, key=lambda g: g.number) if matches else None


def _number(link: str) -> int | None:
    digits = link.removesuffix("-link").rpartition("-")[2]
    return int(digits) if digits.isdigit() else None


def parse_probe(lines: list[str], *, project: str, device: str, probed_at: datetime) -> DeviceState:
    """The probe script's output as a DeviceState; unknown or broken lines are ignored."""
    state = DeviceState(project=project, device=device, probed_at=probed_at, online=True)
    for raw in lines:
        key, sep, value = raw.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "current":
            state.current = value or None
        elif key == "booted":
            state.booted = value or None
        elif key == "profile-link":
            state.profile_generation = _number(value) if value else None
        elif key == "generation":
            parts = value.split(" ", 2)
            number = _number(parts[0])
            if number is None or len(parts) < 3:
                continue
            when = datetime.fromtimestamp(int(parts[1]), UTC) if parts[1].isdigit() else None
            state.generations.append(Generation(number=number, path=parts[2], created=when))
        elif key == "nixos-version":
            state.nixos_version = value or None
        elif key == "uptime":
            try:
                state.uptime_s = float(value)
            except ValueError:
                pass
        elif key in ("store-free-kib", "store-size-kib") and value.isdigit():
            if key == "store-free-kib":
                state.store_free_bytes = int(value) * 1024
            else:
                state.store_size_bytes = int(value) * 1024
        elif key == "failed-units" and value.isdigit():
            state.failed_units = int(value)
        elif key == "systemd" and value == "absent":
            state.lacks.append("systemd")
        elif key == "profile" and value == "absent":
            state.lacks.append("system profile")
    state.generations.sort(key=lambda g: g.number)
    return state


async def probe_device(
    target: SshTarget, hosts: KnownHosts, *, project: str, timeout: float = PROBE_TIMEOUT
) -> DeviceState:
    """Probe ``target``; never raises for an unreachable device (online=False with the reason)."""
    started = time.monotonic()
    now = datetime.now(UTC)
    device = target.name or target.host
    try:
        session = await SshSession.open(target, hosts)
    except SshError as e:
        return DeviceState(project=project, device=device, probed_at=now, online=False, reason=str(e))
    try:
        res = await session.run_capture(["sh", "-c", PROBE_SCRIPT, "sh", SYSTEM_PROFILE], timeout=timeout)
    except SshError as e:
        return DeviceState(project=project, device=device, probed_at=now, online=False, reason=str(e))
    finally:
        await session.close()
    state = parse_probe(res.stdout, project=project, device=device, probed_at=now)
    state.probe_ms = int((time.monotonic() - started) * 1000)
    return state
