"""Activation on a device over asyncssh: set the system profile, run switch-to-configuration, confirm
on a new connection, roll back.

Exit codes are read, not guessed from text: switch-to-configuration exits 0 when all went well, 4 when
the new system is active but some units failed (we name them from its output), anything else is a
failed activation. `switch` and `boot` make a new generation of the system profile (as nixos-rebuild
does); `test` and `dry-activate` leave the profile alone. Confirm and rollback apply to `switch` and
`test` only: `boot` changes nothing until the next reboot and `dry-activate` changes nothing at all.
"""

from __future__ import annotations

import asyncio
import collections
import re
import secrets
import time
from dataclasses import dataclass, field

from nixdeck.core.nix.commands import SYSTEM_PROFILE, set_profile_argv, switch_argv
from nixdeck.core.ops.remote import describe_remote_exit, known_hosts, run_logged
from nixdeck.core.ssh.errors import HostKeyChanged, SshError
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError

SWITCH_OK = 0
SWITCH_UNITS_FAILED = 4
CONFIRMED_ACTIONS = ("switch", "test")
PROFILE_ACTIONS = ("switch", "boot")
CURRENT_SYSTEM = "/run/current-system"
RETRY_PAUSE = 0.5

_FAILED_LIST = re.compile(r"the following units failed:\s*(.+)$")
_JOB_FAILED = re.compile(r"Job for (\S+?) failed")


def has_confirm(action: str) -> bool:
    """Whether a deploy with this action is confirmed (and rolled back when it is not)."""
    return action in CONFIRMED_ACTIONS


def no_confirm_reason(action: str) -> str:
    if action == "boot":
        return "no confirm or rollback for boot: the new system starts at the next reboot"
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
    """What the device ran before activation: what to go back to."""

    current: str | None  # readlink /run/current-system
    profile: str | None  # readlink -f of the system profile


@dataclass
class Activation:
    exit_code: int
    failed_units: list[str] = field(default_factory=list)


# One remote command for the whole activation (each command starts the login shell, which on a
# busy device costs more than the work): report what ran before, set the profile, switch.
# Values arrive as positional parameters, never inside the script text.
ACTIVATE_SCRIPT = """\
tag="$1"; system="$2"; action="$3"; profile="$4"; set_profile="$5"
echo "$tag current=$(readlink /run/current-system 2>/dev/null)" >&2
echo "$tag profile=$(readlink -e "$profile" 2>/dev/null)" >&2
if [ "$set_profile" = 1 ]; then
  nix-env -p "$profile" --set "$system" || { rc=$?; echo "$tag profile-failed=$rc" >&2; exit "$rc"; }
fi
echo "$tag switching" >&2
exec "$system/bin/switch-to-configuration" "$action"
"""


async def _readlink(session: SshSession, path: str, *, follow: bool = False) -> str | None:
    if not follow:
        return await session.readlink(path)
    res = await session.run_capture(["readlink", "-e", path], timeout=30)
    text = res.stdout[0].strip() if res.stdout else ""
    return text if res.exit_status == 0 and text else None


async def activate(
    ctx: TaskContext,
    session: SshSession,
    path: str,
    action: str,
    *,
    job: str,
    tail: collections.deque[str],
) -> tuple[DeviceSystem, Activation]:
    """Read what runs now, set the profile (switch/boot), run switch-to-configuration; returns what
    ran before and the outcome. TaskFailed unless switch-to-configuration exits 0 or 4."""
    device = session.target.display_name
    switch = switch_argv(path, action)
    profile_argv = set_profile_argv(path)
    tag = f"NIXDECK-{secrets.token_hex(6)}"
    facts: dict[str, str] = {}
    lines: list[str] = []

    def intercept(stream: str, line: str) -> bool:
        if stream == "stderr" and line.startswith(tag + " "):
            key, _, value = line[len(tag) + 1 :].partition("=")
            facts[key] = value.strip()
            return True
        lines.append(line)
        return False

    with_profile = action in PROFILE_ACTIONS
    shown = [*profile_argv, "&&", *switch] if with_profile else switch
    argv = ["sh", "-c", ACTIVATE_SCRIPT, "sh", tag, path, action, SYSTEM_PROFILE, "1" if with_profile else "0"]
    code = await run_logged(
        ctx, session, argv, job=job, step="activate", tail=tail, intercept=intercept, shown_argv=shown
    )
    before = DeviceSystem(facts.get("current") or None, facts.get("profile") or None)
    if "profile-failed" in facts:
        raise TaskFailed(f"setting the system profile failed: {describe_remote_exit(profile_argv, code, device)}")
    if "switching" not in facts:
        raise TaskFailed(f"activation did not start on {device}: the remote shell exited with code {code}")
    if code == SWITCH_OK:
        return before, Activation(code)
    if code == SWITCH_UNITS_FAILED:
        return before, Activation(code, failed_units(lines))
    raise TaskFailed(f"activation failed: {describe_remote_exit(switch, code, device)}")


async def confirm(ctx: TaskContext, target: SshTarget, expected: str, window: float) -> None:
    """A NEW connection within ``window`` seconds proves the device answers and runs ``expected``.

    Connection failures are retried until the window closes (a switch may restart sshd); a changed
    host key or a different running system fails at once. Raises TaskFailed with the reason."""
    hosts = known_hosts(ctx)
    deadline = time.monotonic() + window
    last = "no attempt"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskFailed(f"{target.display_name} did not answer a new connection within {window:g} s: {last}")
        attempt = SshTarget(
            target.host, target.port, target.user, identity_file=target.identity_file, name=target.name,
            connect_timeout=max(1.0, left),
        )  # fmt: skip
        try:
            session = await SshSession.open(attempt, hosts)
        except HostKeyChanged as e:
            raise TaskFailed(f"{target.display_name} answers with a different host key after activation: {e}") from None
        except SshError as e:
            last = str(e)
            await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
            continue
        try:
            running = await _readlink(session, CURRENT_SYSTEM)
        except SshError as e:
            last = str(e)
            continue
        finally:
            await asyncio.shield(session.close())
        if running != expected:
            raise TaskFailed(f"{target.display_name} runs {running or 'no system'} instead of {expected}")
        return


async def rollback(
    ctx: TaskContext,
    session: SshSession | None,
    target: SshTarget,
    action: str,
    before: DeviceSystem,
    *,
    job: str,
    tail: collections.deque[str],
) -> str:
    """Go back to what ran before: over the deploy's connection if it still works, else a new one.

    Returns a sentence for the task error; never raises for an unreachable device (it says so)."""
    if action == "switch" and before.profile is None:
        return "no previous generation to roll back to (first deploy to this device)"
    if before.current is None and action == "test":
        return "nothing ran before this test activation: nothing to roll back to"
    sessions: list[SshSession] = [session] if session is not None else []
    opened: SshSession | None = None
    errors: list[str] = []
    try:
        for attempt in range(2):
            if attempt == 1:
                try:
                    opened = await SshSession.open(target, known_hosts(ctx))
                except SshError as e:
                    errors.append(str(e))
                    break
                sessions.append(opened)
            if not sessions:
                continue
            try:
                return await _rollback_on(ctx, sessions[-1], action, before, job=job, tail=tail)
            except UserError as e:  # the connection broke (SSH errors arrive as user errors)
                errors.append(str(e))
            except TaskFailed as e:
                return f"rollback failed: {e}"
    finally:
        if opened is not None:
            await asyncio.shield(opened.close())
    return "rollback could not reach the device: " + "; ".join(errors)


async def _rollback_on(
    ctx: TaskContext, session: SshSession, action: str, before: DeviceSystem, *, job: str, tail: collections.deque[str]
) -> str:
    device = session.target.display_name
    if action == "switch":
        argv = ["nix-env", "-p", SYSTEM_PROFILE, "--rollback"]
        code = await run_logged(ctx, session, argv, job=job, step="confirm", tail=tail)
        if code != 0:
            raise TaskFailed(describe_remote_exit(argv, code, device))
        system = await _readlink(session, SYSTEM_PROFILE, follow=True)
        if system is None:
            raise TaskFailed("the system profile is gone after the rollback")
        back = "switch"
    else:
        assert before.current is not None
        system, back = before.current, "test"
    argv = switch_argv(system, back)
    code = await run_logged(ctx, session, argv, job=job, step="confirm", tail=tail)
    if code not in (SWITCH_OK, SWITCH_UNITS_FAILED):
        raise TaskFailed(f"re-activating {system} failed: {describe_remote_exit(argv, code, device)}")
    return f"rolled back to {system}"
