"""Activation on a device: run `switch-to-configuration` under a device-side supervisor, confirm on
a new connection, and let the device keep or restore its system by a decision that only one side
can make (see `device_scripts` for the device's half).

Exit codes are read, not guessed from text: switch-to-configuration exits 0 when all went well, 4 when
the new system is active but some units failed (we name them from its output), anything else is a
failed activation. `switch` and `boot` make a new generation of the system profile (as nixos-rebuild
does); `test` and `dry-activate` leave the profile alone. Confirm applies to `switch` and `test`:
`boot` changes nothing until the next reboot and `dry-activate` changes nothing at all.

Whatever happens to the controller (cancel, timeout, kill -9, a lost connection), the device ends
with the new system confirmed or exactly the system it ran before: the supervisor rolls back by
itself when no decision arrives before its deadline (confirm window + `DECISION_MARGIN`).
"""

from __future__ import annotations

import asyncio
import collections
import re
import secrets
import time
from dataclasses import dataclass, field

import asyncssh

from nixdeck.core.nix.commands import SYSTEM_PROFILE, switch_argv
from nixdeck.core.ops import device_scripts
from nixdeck.core.ops.device_files import DeviceFiles, NoSftp
from nixdeck.core.ops.remote import run_logged
from nixdeck.core.ssh.errors import HostKeyChanged, SshError
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed

SWITCH_OK = 0
SWITCH_UNITS_FAILED = 4
CONFIRMED_ACTIONS = ("switch", "test")
PROFILE_ACTIONS = ("switch", "boot")
CURRENT_SYSTEM = "/run/current-system"
BOOTED_SYSTEM = "/run/booted-system"
#: The reboot command of the running system (systemd's on NixOS; the demo's devices have their own).
REBOOT_ARGV = ["/run/current-system/sw/bin/reboot"]
REBOOT_TIMEOUT = 300.0
RETRY_PAUSE = 0.5
#: Seconds the device waits for a decision beyond the controller's confirm window.
DECISION_MARGIN = 5.0
#: How long the controller waits for a rollback it asked for (or the device's own) to finish.
SETTLE_LIMIT = 120.0
#: How long the confirming connection waits for the supervisor to end after the confirmation.
CONFIRM_SETTLE = 10.0

_FAILED_LIST = re.compile(r"the following units failed:\s*(.+)$")
_JOB_FAILED = re.compile(r"Job for (\S+?) failed")


def has_confirm(action: str) -> bool:
    """Whether a deploy with this action is confirmed (and rolled back when it is not)."""
    return action in CONFIRMED_ACTIONS


def no_confirm_reason(action: str) -> str:
    if action == "boot":
        return "no confirm for boot: the new system starts at the next reboot"
    if action == "dry-activate":
        return "no confirm or rollback for dry-activate: nothing is changed on the device"
    return "confirm turned off for this device (setting confirm=false)"


def failed_units(lines: list[str]) -> list[str]:
    """Unit names from switch-to-configuration's output ("the following units failed: a, b")."""
    units: list[str] = []
    for line in lines:
        m = _FAILED_LIST.search(line)
        if m:
            units += [u.strip() for u in m.group(1).split(",") if u.strip()]
    if not units:
        units = [m.group(1) for line in lines for m in [_JOB_FAILED.search(line)] if m]
    return list(dict.fromkeys(units))


@dataclass
class DeviceSystem:
    """What a device runs: ``/run/current-system``, the system profile's link and its system."""

    current: str | None
    profile: str | None
    generation: str | None = None  # e.g. "system-5-link"


@dataclass
class DeviceStatus:
    """The supervisor's status file, parsed (the last value of each key wins)."""

    facts: dict[str, str] = field(default_factory=dict)
    missing: bool = False

    @classmethod
    def parse(cls, lines: list[str]) -> DeviceStatus:
        if [ln.strip() for ln in lines if ln.strip()] == ["missing"]:
            return cls(missing=True)
        facts: dict[str, str] = {}
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if sep:
                facts[key] = value.strip()
        return cls(facts)

    def _system(self, prefix: str) -> DeviceSystem:
        f = self.facts
        return DeviceSystem(
            f.get(f"{prefix}-current") or None, f.get(f"{prefix}-profile") or None, f.get(f"{prefix}-link") or None
        )

    @property
    def before(self) -> DeviceSystem:
        return self._system("before")

    @property
    def after(self) -> DeviceSystem:
        return self._system("after")

    @property
    def final(self) -> str | None:
        return self.facts.get("final")

    @property
    def switched(self) -> int | None:
        value = self.facts.get("switched")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    @property
    def rollback_reason(self) -> str | None:
        return self.facts.get("rolling-back")

    def summary(self) -> str:
        """One sentence for the task error: what the device ended up running."""
        after = self.after
        final = self.final
        if final in ("confirm", "keep", "done"):
            return f"the device runs {after.current}"
        if final == "rolled-back":
            if after.current is None and after.profile is None:
                return "rolled back: the device runs no system of NixDeck's again, as before this first deploy"
            return f"rolled back to {after.current or after.profile}" + _generation(after)
        if final == "not-started":
            return "nothing was activated on the device"
        if final == "rollback-failed":
            return f"the rollback on the device failed; it runs {after.current} (profile {after.profile})"
        if final == "failed":
            return f"rollback is off for this device; it runs {after.current} (profile {after.profile})"
        return "the device's activation has not ended yet"


def within(target: SshTarget, seconds: float) -> SshTarget:
    """``target`` with a connect timeout that fits in what is left of a deadline (at least 1 s)."""
    return SshTarget(
        target.host, target.port, target.user, identity_file=target.identity_file, name=target.name,
        connect_timeout=max(1.0, seconds),
    )  # fmt: skip


def _generation(system: DeviceSystem) -> str:
    if system.generation is None:
        return ""
    gen = system.generation.removesuffix("-link").rpartition("-")[2]
    return f" (generation {gen})" if gen.isdigit() else ""


def activation_record(status: DeviceStatus) -> dict[str, object]:
    """What the task result keeps of the device's activation."""
    before, after = status.before, status.after
    return {
        "final": status.final,
        "before": {"current": before.current, "profile": before.profile, "generation": before.generation},
        "after": {"current": after.current, "profile": after.profile, "generation": after.generation},
        "rollback_reason": status.rollback_reason,
    }


class DeviceActivation:
    """One activation supervised on the device; the handle the controller decides through."""

    def __init__(
        self, target: SshTarget, hosts: KnownHosts, path: str, action: str, *, activation_id: str | None = None
    ) -> None:
        self.target = target
        self.hosts = hosts
        self.path = path
        self.action = action
        self.id = activation_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        self.dir = f"{device_scripts.ACTIVATIONS_DIR}/{self.id}"
        self.status = DeviceStatus()
        self.lines: list[str] = []

    async def start(
        self,
        ctx: TaskContext,
        session: SshSession,
        *,
        wait_s: float,
        rollback_on: bool,
        job: str,
        tail: collections.deque[str],
    ) -> DeviceStatus:
        """Start the supervisor and follow the switch's output until it ends; returns the status
        then (what ran before, the switch's exit code). A lost connection does not stop the
        supervisor: the status is read on a new connection."""
        tag = f"NIXDECK-{secrets.token_hex(6)}"
        status_lines: list[str] = []
        facts: dict[str, str] = {}

        def intercept(stream: str, line: str) -> bool:
            if stream == "stderr" and line.startswith(tag + " "):
                body = line[len(tag) + 1 :]
                status_lines.append(body)
                key, _, value = body.partition("=")
                facts[key] = value.strip()
                return True
            self.lines.append(line)
            return False

        set_profile = "1" if self.action in PROFILE_ACTIONS else "0"
        argv = [
            "sh", "-c", device_scripts.LAUNCH, "sh", device_scripts.ACTIVATIONS_DIR, self.id,
            device_scripts.SUPERVISOR, tag, self.path, self.action, SYSTEM_PROFILE, set_profile,
            str(int(wait_s + 0.999)), "1" if rollback_on else "0",
        ]  # fmt: skip
        shown = ["nixdeck-activate", self.dir, *switch_argv(self.path, self.action)]
        try:
            code = await run_logged(
                ctx, session, argv, job=job, step="activate", tail=tail, intercept=intercept, shown_argv=shown
            )
        except TaskFailed:
            # the connection broke while following: the supervisor goes on; read its status anew
            if not facts:
                raise
            self.status = await self.wait_switched()
            return self.status
        if "launch-failed" in facts:
            raise TaskFailed(f"activation did not start on {self.target.display_name}: {facts['launch-failed']}")
        self.status = DeviceStatus.parse(status_lines)
        if self.status.switched is None and self.status.final is None:
            raise TaskFailed(
                f"activation did not start on {self.target.display_name}: the remote shell exited with code {code}"
            )
        return self.status

    async def _on_any(self, script: str, *args: str, limit: float) -> list[str] | None:
        """Run a small script on a NEW connection, retried until ``limit``; None if unreachable."""
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            attempt = within(self.target, min(10.0, left))
            try:
                session = await SshSession.open(attempt, self.hosts)
            except SshError:
                await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
                continue
            try:
                res = await session.run_capture(["sh", "-c", script, "sh", *args], timeout=max(5.0, left + 5.0))
                return res.stdout
            except SshError:
                continue
            finally:
                await asyncio.shield(session.close())

    async def wait_switched(self) -> DeviceStatus:
        """After a lost connection: poll until the switch has ended (bounded by SETTLE_LIMIT)."""
        deadline = time.monotonic() + SETTLE_LIMIT
        while time.monotonic() < deadline:
            lines = await self._on_any("cat \"$1/status\" 2>/dev/null || echo missing", self.dir, limit=30.0)
            if lines is not None:
                status = DeviceStatus.parse(lines)
                if status.missing or status.switched is not None or status.final is not None:
                    return status
            await asyncio.sleep(RETRY_PAUSE)
        raise TaskFailed(f"lost the connection to {self.target.display_name} during activation and could not read its status")

    async def decide(
        self, session: SshSession | None, what: str, reason: str = "", *, wait: float = 0, expected: str = "",
        interrupt: bool = False,
    ) -> str | None:
        """Make the decision (``confirm``, ``keep`` or ``rollback``); returns the one that won,
        which is the device's own ``rollback`` when its deadline passed first. None: unreachable.
        With ``wait``, the same command waits (bounded) for the supervisor's end: `status` is final.
        With ``expected``, nothing is decided unless the device runs that system (then the result
        is ``running=PATH``). With ``interrupt`` (a cancel), a switch still running is stopped when
        the rollback stands (a shell command: SFTP cannot send signals)."""
        if session is not None and not interrupt:
            won = await self._decide_sftp(session, what, reason, wait=wait, expected=expected)
            if won is not None:
                return won
        args = (self.dir, what, reason, str(int(wait)), expected, "1" if interrupt else "0")
        lines: list[str] | None = None
        if session is not None:
            try:
                res = await session.run_capture(["sh", "-c", device_scripts.DECIDE, "sh", *args], timeout=wait + 30)
                lines = res.stdout
            except SshError:
                pass
        if lines is None:
            lines = await self._on_any(device_scripts.DECIDE, *args, limit=15.0 + wait)
        if not lines:
            return None
        if "--status--" in lines:
            cut = lines.index("--status--")
            self.status = DeviceStatus.parse(lines[cut + 1 :])
            lines = lines[:cut]
        return (lines[-1].strip() if lines else "") or None

    async def _decide_sftp(self, session: SshSession, what: str, reason: str, *, wait: float, expected: str) -> str | None:
        """`decide` over SFTP (no login shell); None when SFTP is not there or broke."""
        try:
            files = await DeviceFiles.open(session, self.dir)
        except (NoSftp, OSError, asyncssh.Error):
            return None
        try:
            if expected:
                running = await files.readlink(CURRENT_SYSTEM)
                if running != expected:
                    return f"running={running or ''}"
            won = await files.decide(what, reason)
            if won is None:
                return "missing"
            if wait > 0:
                lines = await files.wait_end(wait)
                if lines is not None:
                    self.status = DeviceStatus.parse(lines)
            return won
        except (OSError, asyncssh.Error):
            return None
        finally:
            files.close()

    async def settle(self, session: SshSession | None, limit: float = SETTLE_LIMIT) -> DeviceStatus:
        """Wait until the supervisor is done and return its final status (bounded)."""
        if session is not None:
            try:
                files = await DeviceFiles.open(session, self.dir)
                try:
                    lines = await files.wait_end(limit)
                finally:
                    files.close()
                self.status = DeviceStatus(missing=True) if lines is None else DeviceStatus.parse(lines)
                return self.status
            except (NoSftp, OSError, asyncssh.Error):
                pass
        script, args = device_scripts.WAIT_FINAL, (self.dir, str(int(limit)))
        if session is not None:
            try:
                res = await session.run_capture(["sh", "-c", script, "sh", *args], timeout=limit + 10)
                self.status = DeviceStatus.parse(res.stdout)
                return self.status
            except SshError:
                pass
        lines = await self._on_any(script, *args, limit=limit)
        if lines is not None:
            self.status = DeviceStatus.parse(lines)
        return self.status

    async def abort(self, session: SshSession | None, reason: str) -> DeviceStatus:
        """Cancel: roll back unless the new system was already confirmed, and wait for the device."""
        await self.decide(session, "rollback", reason, wait=SETTLE_LIMIT, interrupt=True)
        return self.status if self.status.final is not None else await self.settle(session)


async def confirm(target: SshTarget, expected: str, window: float, act: DeviceActivation) -> str:
    """A NEW connection within ``window`` seconds proves the device answers and runs ``expected``;
    over that connection NixDeck tells the device to keep it. Returns the decision that won.

    Connection failures are retried until the window closes (a switch may restart sshd); a changed
    host key or a different running system fails at once. Raises TaskFailed with the reason."""
    hosts = act.hosts
    deadline = time.monotonic() + window
    last = "no attempt"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskFailed(f"{target.display_name} did not answer a new connection within {window:g} s: {last}")
        attempt = within(target, left)
        try:
            session = await SshSession.open(attempt, hosts)
        except HostKeyChanged as e:
            raise TaskFailed(f"{target.display_name} answers with a different host key after activation: {e}") from None
        except SshError as e:
            last = str(e)
            await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
            continue
        try:
            # one command proves the running system and confirms it
            won = await act.decide(session, "confirm", wait=CONFIRM_SETTLE, expected=expected)
            if won is not None and won.startswith("running="):
                running = won.partition("=")[2]
                raise TaskFailed(f"{target.display_name} runs {running or 'no system'} instead of {expected}")
        except SshError as e:
            last = str(e)
            continue
        finally:
            await asyncio.shield(session.close())
        if won is None:
            last = "the device did not take the confirmation"
            continue
        return won


async def reboot_into(session: SshSession, target: SshTarget, hosts: KnownHosts, expected: str, timeout: float) -> str:
    """Reboot the device and wait (bounded) until a new connection finds it booted into ``expected``
    and running it; returns a sentence for the step. Raises TaskFailed with the reason."""
    try:
        code = await session.run(REBOOT_ARGV, timeout=30)
    except SshError:
        code = 0  # the connection went down with the device: that is the reboot
    if code != 0:
        raise TaskFailed(f"{target.display_name} refused to reboot: `{' '.join(REBOOT_ARGV)}` exited with code {code}")
    started = time.monotonic()
    deadline = started + timeout
    last = "it did not answer yet"
    await asyncio.sleep(RETRY_PAUSE)
    while time.monotonic() < deadline:
        attempt = within(target, min(10.0, deadline - time.monotonic()))
        try:
            fresh = await SshSession.open(attempt, hosts)
        except HostKeyChanged as e:
            raise TaskFailed(f"{target.display_name} came back with a different host key: {e}") from None
        except SshError as e:
            last = str(e)
            await asyncio.sleep(RETRY_PAUSE)
            continue
        try:
            booted = await fresh.readlink(BOOTED_SYSTEM)
            current = await fresh.readlink(CURRENT_SYSTEM)
        except SshError as e:
            last = str(e)
            continue
        finally:
            await asyncio.shield(fresh.close())
        if booted == expected and current == expected:
            return f"{target.display_name} booted {expected} ({time.monotonic() - started:.1f} s)"
        last = f"it answers but booted {booted or 'nothing'} and runs {current or 'nothing'}"
        await asyncio.sleep(RETRY_PAUSE)
    raise TaskFailed(f"{target.display_name} did not come back into {expected} within {timeout:g} s: {last}")
