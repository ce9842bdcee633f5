"""asyncssh sessions to devices: strict host keys, human errors, cancellable remote commands.

A remote command runs as ``echo MARKER=$$ >&2; exec ARGV`` in the login shell that sshd starts
in a new session (sshd calls setsid), so ``$$`` is the process group and session id of
everything the command starts. Cancel or timeout then kills that group on the device (TERM, a
grace period, KILL) over the same connection before closing the channel: closing alone leaves
a ``sleep 1000`` running, and OpenSSH applies a "signal" request to the shell only.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import asyncssh

from nixdeck.core.ssh.errors import (
    HostKeyError,
    SshAuthError,
    SshCommandTimeout,
    SshConnectError,
    SshError,
    SshTimeout,
)
from nixdeck.core.ssh.knownhosts import HostKeyState, KnownHosts, connect_error, fetch_host_key
from nixdeck.core.ssh.options import SshTarget

LineCallback = Callable[[str], None]

KILL_GRACE = 2.0


@dataclass
class CommandResult:
    """Exit status (negative signal number if killed by a signal) and captured output."""

    exit_status: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


async def _translate_host_key_error(
    exc: asyncssh.HostKeyNotVerifiable, target: SshTarget, known_hosts: KnownHosts
) -> SshError:
    try:
        key = await fetch_host_key(target.host, target.port, timeout=target.connect_timeout)
    except SshError:
        return HostKeyError(
            f"host key of {target.label} is not trusted: {exc.reason}", host=target.host, port=target.port
        )
    check = known_hosts.state(target.host, target.port, key)
    if check.state is HostKeyState.CHANGED:
        return known_hosts.changed_error(check, device=target.name)
    if check.state is HostKeyState.UNKNOWN:
        return known_hosts.unknown_error(target.host, target.port, key, device=target.name)
    return HostKeyError(
        f"host key of {target.label} could not be verified: {exc.reason}", host=target.host, port=target.port
    )


class SshSession:
    """One authenticated connection to a device; run commands with `run` / `run_capture`."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SshTarget,
                 known_hosts_path: Path | None = None) -> None:
        self.conn = conn
        self.target = target
        self.known_hosts_path = known_hosts_path

    def host_key(self) -> asyncssh.SSHKey | None:
        """The device's host key this connection verified."""
        try:
            return self.conn.get_server_host_key()
        except Exception:  # noqa: BLE001 - a closed connection has none to tell
            return None

    @classmethod
    async def open(cls, target: SshTarget, known_hosts: KnownHosts) -> SshSession:
        """Connect and authenticate (identity file, then ssh-agent keys if SSH_AUTH_SOCK is set).

        Raises `HostKeyUnknown`, `HostKeyChanged`, `SshAuthError`, `SshTimeout` or
        `SshConnectError`, each with a human reason."""
        known_hosts.ensure_exists()
        keys: Sequence[str] | None = None  # None here means asyncssh's defaults (agent, ~/.ssh/id_*)
        if target.identity_file is not None:
            if not target.identity_file.is_file():
                raise SshAuthError(
                    f"identity file {target.identity_file} for {target.label} does not exist",
                    host=target.host, port=target.port,
                )  # fmt: skip
            keys = [str(target.identity_file)]
        options: dict[str, object] = {
            "known_hosts": str(known_hosts.path),
            "config": None,
            "connect_timeout": target.connect_timeout,
            "login_timeout": target.connect_timeout,
            "keepalive_interval": target.keepalive_interval,
            "keepalive_count_max": target.keepalive_count_max,
        }
        if keys is not None:
            options["client_keys"] = keys
            options["ignore_encrypted"] = True  # an encrypted key is used through the agent
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(target.host, target.port, username=target.user, **options),
                target.connect_timeout + 1,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise await _translate_host_key_error(exc, target, known_hosts) from exc
        except asyncssh.PermissionDenied as exc:
            offered = f"identity {target.identity_file}" if target.identity_file else "default keys"
            raise SshAuthError(
                f"{target.label} refused authentication ({offered}, ssh-agent keys if any): {exc.reason}",
                host=target.host, port=target.port,
            ) from exc  # fmt: skip
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise SshAuthError(
                f"cannot use identity file {target.identity_file}: {exc}", host=target.host, port=target.port
            ) from exc
        except TimeoutError as exc:
            raise SshTimeout(
                f"{target.label} did not answer within {target.connect_timeout:g} s",
                host=target.host, port=target.port,
            ) from exc  # fmt: skip
        except (OSError, asyncssh.Error) as exc:
            raise connect_error(exc, target.host, target.port) from exc
        return cls(conn, target, known_hosts.path)

    async def __aenter__(self) -> SshSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()

    async def run(
        self,
        argv: Sequence[str],
        *,
        on_stdout: LineCallback | None = None,
        on_stderr: LineCallback | None = None,
        timeout: float | None = None,
        input: str | None = None,
        on_command: Callable[[str], None] | None = None,
    ) -> int:
        """Run ``argv`` on the device (quoted with shlex.join), stream its lines to the callbacks
        and return its exit status (negative signal number if a signal ended it).

        On timeout (`SshCommandTimeout`) or task cancellation the command's whole process group
        on the device is killed before this returns or re-raises."""
        if not argv:
            raise ValueError("empty command")
        marker = f"NIXDECK-PGID-{secrets.token_hex(8)}="
        command = f"echo {marker}$$ >&2; exec {shlex.join(argv)}"
        if on_command is not None:
            on_command(command)  # recorded as what really ran (the Process tab shows it)
        pgid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            proc = await self.conn.create_process(
                command,
                encoding="utf-8",
                errors="replace",
                stdin=asyncssh.PIPE if input is not None else asyncssh.DEVNULL,
            )
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(exc, argv) from exc
        if input is not None:
            proc.stdin.write(input)
            proc.stdin.write_eof()

        async def pump(reader: asyncssh.SSHReader[str], callback: LineCallback | None, err: bool) -> None:
            async for line in reader:
                if not line:
                    continue
                text = line.rstrip("\n")
                if err and not pgid.done() and text.startswith(marker):
                    pgid.set_result(int(text[len(marker) :]))
                    continue
                if callback is not None:
                    callback(text)

        pumps = asyncio.gather(pump(proc.stdout, on_stdout, False), pump(proc.stderr, on_stderr, True))
        try:
            await asyncio.wait_for(asyncio.shield(pumps), timeout)
            await proc.wait_closed()
        except TimeoutError:
            await asyncio.shield(self._terminate(proc, pgid, pumps))
            raise SshCommandTimeout(
                f"`{shlex.join(argv)}` on {self.target.label} ran longer than {timeout:g} s and was killed",
                host=self.target.host, port=self.target.port,
            ) from None  # fmt: skip
        except BaseException as exc:  # cancelled, connection lost, or a callback raised
            await asyncio.shield(self._terminate(proc, pgid, pumps))
            if isinstance(exc, OSError | asyncssh.Error):
                raise self._lost(exc, argv) from exc
            raise
        if proc.exit_status is None and proc.exit_signal is None:
            raise self._lost(None, argv)
        code = proc.returncode
        return code if code is not None else -1

    async def run_capture(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        """`run` collecting the lines instead of streaming them."""
        result = CommandResult(0)
        result.exit_status = await self.run(
            argv, on_stdout=result.stdout.append, on_stderr=result.stderr.append, timeout=timeout
        )
        return result

    async def readlink(self, path: str, *, timeout: float = 30.0) -> str | None:
        """Where the symlink ``path`` on the device points (None if it is no symlink or missing).

        Read over SFTP when the device offers it: no remote shell starts, which on a busy device
        is most of a command's cost. Without SFTP it runs ``readlink``."""
        try:
            async with asyncio.timeout(timeout):
                async with self.conn.start_sftp_client() as sftp:
                    try:
                        value = await sftp.readlink(path)
                    except asyncssh.SFTPError:
                        return None
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
        except TimeoutError:
            raise SshCommandTimeout(
                f"reading {path} on {self.target.label} took longer than {timeout:g} s",
                host=self.target.host, port=self.target.port,
            ) from None  # fmt: skip
        except asyncssh.ChannelOpenError:
            pass  # no SFTP subsystem: fall back to a command
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(exc, ["readlink", path]) from exc
        result = await self.run_capture(["readlink", path], timeout=timeout)
        text = result.stdout[0].strip() if result.stdout else ""
        return text if result.exit_status == 0 and text else None

    async def _terminate(
        self,
        proc: asyncssh.SSHClientProcess[str],
        pgid: asyncio.Future[int],
        pumps: asyncio.Future[tuple[None, None]],
    ) -> None:
        """Kill the command's process group on the device, then close the channel."""
        try:
            if not pumps.done():
                group = await asyncio.wait_for(asyncio.shield(pgid), KILL_GRACE)
                # TERM the group (and the session, for children that made their own group),
                # wait up to the grace period, then KILL what is left.
                steps = int(KILL_GRACE / 0.1)
                script = (
                    f"kill -TERM -- -{group} 2>/dev/null; pkill -TERM -s {group} 2>/dev/null; "
                    f"i=0; while [ $i -lt {steps} ] && kill -0 -- -{group} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
                    f"kill -KILL -- -{group} 2>/dev/null; pkill -KILL -s {group} 2>/dev/null; true"
                )
                await self.conn.run(script, check=False, timeout=KILL_GRACE + self.target.connect_timeout)
        except (TimeoutError, OSError, asyncssh.Error):
            pass  # the connection is gone; closing the channel below is all that is left
        finally:
            proc.close()
            try:
                await asyncio.wait_for(asyncio.shield(pumps), KILL_GRACE)
            except (TimeoutError, OSError, asyncssh.Error):
                pumps.cancel()

    def _lost(self, exc: BaseException | None, argv: Sequence[str]) -> SshConnectError:
        why = f": {exc}" if exc is not None else ""
        return SshConnectError(
            f"connection to {self.target.label} was lost while running `{shlex.join(argv)}`{why}",
            host=self.target.host, port=self.target.port,
        )  # fmt: skip


async def connect(target: SshTarget, known_hosts: KnownHosts | Path) -> SshSession:
    """`SshSession.open` accepting a known_hosts path too; use as ``async with await connect(...)``."""
    hosts = known_hosts if isinstance(known_hosts, KnownHosts) else KnownHosts(known_hosts)
    return await SshSession.open(target, hosts)
