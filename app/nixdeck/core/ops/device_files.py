"""The activation's directory on the device over SFTP: decisions, status and the supervisor's end
without starting a login shell (which on a busy device costs more than the work itself).

The decision is the same atomic symlink the device's supervisor makes (see `device_scripts`), so
both sides still race fairly; a device without an SFTP subsystem is served by the shell scripts.
"""

from __future__ import annotations

import asyncio
import time

import asyncssh

from nixdeck.core.ssh.session import SshSession

POLL = 0.05


class NoSftp(Exception):
    """The device offers no SFTP subsystem: use the shell scripts instead."""


class DeviceFiles:
    """One SFTP channel on a session, for one activation directory."""

    def __init__(self, sftp: asyncssh.SFTPClient, directory: str) -> None:
        self.sftp = sftp
        self.dir = directory

    @classmethod
    async def open(cls, session: SshSession, directory: str) -> DeviceFiles:
        try:
            sftp = await session.conn.start_sftp_client()
        except asyncssh.ChannelOpenError:
            raise NoSftp from None
        return cls(sftp, directory)

    def close(self) -> None:
        self.sftp.exit()

    async def readlink(self, path: str) -> str | None:
        try:
            value = await self.sftp.readlink(path)
        except asyncssh.SFTPError:
            return None
        return value if isinstance(value, str) else value.decode("utf-8", "replace")

    async def read_lines(self, name: str) -> list[str] | None:
        try:
            async with self.sftp.open(f"{self.dir}/{name}", "rb") as f:
                data = await f.read()
        except asyncssh.SFTPError:
            return None
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        return text.splitlines()

    async def exists(self, path: str) -> bool:
        try:
            await self.sftp.lstat(path)
        except asyncssh.SFTPError:
            return False
        return True

    async def decide(self, what: str, reason: str = "") -> str | None:
        """Make the decision unless one was made; the decision that stands (None: no directory)."""
        if not await self.exists(self.dir):
            return None
        link = f"{self.dir}/decision"
        if what == "rollback" and reason and not await self.exists(link):
            async with self.sftp.open(f"{self.dir}/reason", "wb") as f:
                await f.write((reason + "\n").encode())
        try:
            await self.sftp.symlink(what, link)
        except asyncssh.SFTPError:
            pass  # decided already: read what stands
        return await self.readlink(link)

    async def wait_end(self, limit: float) -> list[str] | None:
        """The status once the supervisor wrote its end and exited (bounded); None: no directory."""
        deadline = time.monotonic() + limit
        lines = await self.read_lines("status")
        while lines is not None and not any(ln.startswith("final=") for ln in lines):
            if time.monotonic() > deadline:
                return lines
            await asyncio.sleep(POLL)
            lines = await self.read_lines("status")
        if lines is None:
            return None
        pid = next((ln.partition("=")[2] for ln in lines if ln.startswith("supervisor=")), "")
        while pid.isdigit() and await self.exists(f"/proc/{pid}/cmdline") and time.monotonic() < deadline:
            # the supervisor writes its end last: it is gone a moment later
            if await self._zombie(pid):
                break
            await asyncio.sleep(POLL / 2)
        return lines

    async def _zombie(self, pid: str) -> bool:
        try:
            async with self.sftp.open(f"/proc/{pid}/stat", "rb") as f:
                data = await f.read()
        except asyncssh.SFTPError:
            return True
        raw = data if isinstance(data, bytes) else data.encode()
        fields = raw.rsplit(b")", 1)[-1].split()
        return not fields or fields[0] == b"Z"
