"""Process identity (pid + start time) and process-group termination that never hits a reused pid."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (/proc/PID/stat field 22), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields follow the last ')'
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        if fields[0] == b"Z":  # a zombie is gone for our purposes
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int | None, ticks: int | None) -> bool:
    """True when the process `pid` exists and is the same process (same start time)."""
    if pid is None or pid <= 0:
        return False
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def group_members(pgid: int, not_before_ticks: int | None = None) -> list[int]:
    """Live pids whose process group is `pgid` and that started no earlier than `not_before_ticks`."""
    members: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        try:
            if fields[0] == b"Z" or int(fields[2]) != pgid:
                continue
            if not_before_ticks is not None and int(fields[19]) < not_before_ticks:
                continue
        except (IndexError, ValueError):
            continue
        members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: int, leader_ticks: int | None) -> bool:
    """Signal the group led by `pgid` if it is still ours. Returns True if anything was signalled.

    The leader's start time must match; if the leader has exited, only members that started after it
    are signalled (Linux does not reuse a pid while a group of that id exists, but we check anyway).
    """
    if is_alive(pgid, leader_ticks):
        try:
            os.killpg(pgid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
    hit = False
    for pid in group_members(pgid, leader_ticks):
        try:
            os.kill(pid, sig)
            hit = True
        except (ProcessLookupError, PermissionError):
            pass
    return hit


def terminate_groups_blocking(groups: list[tuple[int, int | None]], grace: float = 5.0) -> None:
    """SIGTERM every group at once, wait up to `grace` seconds for all, then SIGKILL what is left.

    One shared grace period: recovering ten leftover builds waits seconds, not ten times that."""
    live = [(g, t) for g, t in groups if signal_group(g, signal.SIGTERM, t)]
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [(g, t) for g, t in live if group_members(g, t)]
    for g, t in live:
        signal_group(g, signal.SIGKILL, t)


def own_identity() -> tuple[int, int | None]:
    """This process's (pid, start ticks), stored as a task's owner while it runs."""
    pid = os.getpid()
    return pid, start_ticks(pid)
