"""Device locks: never two tasks on one device, in this process or any other NixDeck process.

An asyncio lock per device orders this process's tasks; an flock on `DATA_DIR/locks/<device>.lock`
keeps other processes (the CLI, a second window) out. The lock file holds the id of the task that
holds it, so a waiting task can say whom it waits for ("waiting for kiosk-1 (locked by task #12)").
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path


def waiting_for_device(device: str, holder: int | None) -> str:
    """The phase of a task waiting for a device's lock ("waiting for kiosk-1 (locked by task #12)")."""
    return f"waiting for {device}" + (f" (locked by task #{holder})" if holder else " (locked by another task)")


def waiting_for_slot(running: int, cap: int) -> str:
    return f"waiting for a slot ({running} running, cap {cap})"


def _lock_holder(fd: int) -> int | None:
    """The task id another process wrote into a device's lock file (None when unreadable)."""
    try:
        first = os.pread(fd, 64, 0).split()
        return int(first[0]) if first else None
    except (OSError, ValueError):
        return None


class DeviceLocks:
    """Per-device locks: in-process asyncio locks plus a flock file so two NixDecks never collide.

    The lock file holds the id of the task that holds it, so a waiting task can say whom it waits for.
    """

    def __init__(self, lock_dir: Path) -> None:
        self.dir = lock_dir
        self._locks: dict[str, asyncio.Lock] = {}
        self._fds: dict[str, int] = {}
        self._holders: dict[str, int] = {}

    async def acquire(self, devices: Sequence[str], task_id: int = 0,
                      on_wait: Callable[[str], object] | None = None) -> None:
        """Lock every device (sorted, so two tasks never deadlock); `on_wait` hears why it waits."""
        taken: list[str] = []
        try:
            for d in sorted(set(devices)):
                lock = self._locks.setdefault(d, asyncio.Lock())
                if lock.locked() and on_wait is not None:
                    on_wait(waiting_for_device(d, self._holders.get(d)))
                await lock.acquire()
                taken.append(d)
                await self._flock(d, task_id, on_wait)
                self._holders[d] = task_id
        except BaseException:
            self.release(taken)
            raise

    async def _flock(self, device: str, task_id: int, on_wait: Callable[[str], object] | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"{device.replace('/', '_')}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fds[device] = fd
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{task_id} {os.getpid()}\n".encode(), 0)
                return
            except BlockingIOError:
                if not told and on_wait is not None:
                    told = True
                    on_wait(waiting_for_device(device, _lock_holder(fd)))
                await asyncio.sleep(0.2)
            except BaseException:
                os.close(fd)
                raise

    def release(self, devices: Sequence[str]) -> None:
        for d in sorted(set(devices)):
            fd = self._fds.pop(d, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            self._holders.pop(d, None)
            lock = self._locks.get(d)
            if lock is not None and lock.locked():
                lock.release()
