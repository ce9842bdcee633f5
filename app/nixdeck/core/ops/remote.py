"""What the SSH task kinds share: reaching a device named in the project, and recording remote
commands the way local processes are recorded.

A remote command has no local process, so `RemoteCommandLog` writes the same records a local one
gets (a `ProcessRecord` with stdout and stderr files beside the task, live `OutputAppended` events,
the exit code) plus what really ran: the asyncssh connection (user@host:port, key, host-key
fingerprint) and the exact command string sent; its argv is an OpenSSH command line that
reproduces the command with NixDeck's known_hosts. SSH-layer failures become `UserError`s (the device, the network or
the host key is the problem, so a forced run may treat them as warnings).
"""

from __future__ import annotations

import collections
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from nixdeck.core.project import Project, ProjectError, UnknownDevice
from nixdeck.core.project.inventory import EffectiveSettings
from nixdeck.core.ssh.errors import HostKeyChanged, HostKeyError, HostKeyUnknown, SshCommandTimeout, SshError
from nixdeck.core.ssh.knownhosts import KnownHosts, fingerprint
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.events import OutputAppended
from nixdeck.core.tasks.model import ProcessRecord, utcnow
from nixdeck.core.tasks.submission import scrub

CONNECT_TIMEOUT = 10.0
LOG_TAIL = 20


async def open_project(project_dir: str) -> Project:
    """The project's inventory (no Nix evaluation: cheap, and a broken device cannot block others)."""
    try:
        return await Project.open_async(project_dir, discover_devices=False)
    except ProjectError as e:
        raise UserError(f"cannot open the project {project_dir}: {e}") from None


def no_target(device: str) -> UserError:
    return UserError(f"device {device} has no target: set one with nixdeck project set {device} host=…")


def device_settings(project: Project, device: str) -> EffectiveSettings:
    try:
        return project.device(device).settings
    except UnknownDevice:
        # not in the inventory: a flake device without a target yet, or a typo — say both
        known = sorted(d.name for d in (*project.devices, *project.orphans))
        listed = ", ".join(known[:12]) + (", …" if len(known) > 12 else "") if known else "none"
        raise UserError(
            f"device {device} is not in {project.inventory_path.name} (devices there: {listed}); "
            f"if it is a device of the flake, set its target with nixdeck project set {device} host=…"
        ) from None


def device_target(project: Project, device: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> SshTarget:
    """How to reach ``device``; a device without a host is a `UserError` that says how to set one."""
    settings = device_settings(project, device)
    if settings.host is None:
        raise no_target(device)
    identity: Path | None = None
    if settings.identity_file:
        identity = Path(settings.identity_file).expanduser()
        if not identity.is_absolute():
            identity = project.path / identity
    try:
        return SshTarget(
            settings.host, settings.port, settings.user, identity_file=identity, name=device,
            connect_timeout=connect_timeout,
        )  # fmt: skip
    except SshError as e:
        raise UserError(f"device {device}: {e}") from None


def known_hosts(ctx: TaskContext) -> KnownHosts:
    """NixDeck's known_hosts in the data dir of the task store (the CLI and the window share it)."""
    hosts = KnownHosts.in_data_dir(Path(ctx.engine.store.data_dir))
    hosts.ensure_exists()
    return hosts


def ssh_failure(err: SshError) -> TaskFailed:
    """An SSH-layer error as the task error: the device's problem (UserError) unless a command timed out."""
    if isinstance(err, SshCommandTimeout):
        return TaskFailed(str(err))
    return UserError(str(err))


def host_key_problem(err: HostKeyError, target: SshTarget) -> dict[str, Any]:
    """A refused host key as a task result, so the window can offer its own Trust host key action."""
    problem = "changed" if isinstance(err, HostKeyChanged) else "unknown" if isinstance(err, HostKeyUnknown) else "refused"
    out: dict[str, Any] = {"device": target.name, "host": target.host, "port": target.port, "problem": problem}
    if isinstance(err, HostKeyUnknown) and err.fingerprint:
        out["offered"] = err.fingerprint
    if isinstance(err, HostKeyChanged):
        out["offered"], out["trusted"] = err.presented, list(err.known_fingerprints)
    return out


async def connect(ctx: TaskContext, target: SshTarget) -> SshSession:
    try:
        return await SshSession.open(target, known_hosts(ctx))
    except HostKeyError as e:
        ctx.set_result(host_key=host_key_problem(e, target))
        raise ssh_failure(e) from None
    except SshError as e:
        raise ssh_failure(e) from None


def endpoint(target: SshTarget) -> str:
    """``user@host:port`` (``user@[v6addr]:port``): the connection, port always shown."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.user}@{host}:{target.port}"


def openssh_argv(target: SshTarget, known_hosts: Path | None, command: str) -> list[str]:
    """An OpenSSH command line that runs `command` on the target as NixDeck does: same user, port,
    key and NixDeck's known_hosts, host-key checking strict."""
    argv = ["ssh"]
    if target.port != 22:
        argv += ["-p", str(target.port)]
    if target.identity_file is not None:
        argv += ["-i", str(target.identity_file), "-o", "IdentitiesOnly=yes"]
    if known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    argv += ["-o", "StrictHostKeyChecking=yes", f"{target.user}@{target.host}", "--", command]
    return argv


def connection_facts(session: SshSession) -> dict[str, Any]:
    """What the Process tab shows about the connection a remote command ran on."""
    t = session.target
    key = session.host_key()
    return {
        "via": "asyncssh",
        "user": t.user,
        "host": t.host,
        "port": t.port,
        "connection": endpoint(t),
        "identity_file": str(t.identity_file) if t.identity_file else None,
        "host_key_type": key.get_algorithm() if key is not None else None,
        "host_key_fingerprint": fingerprint(key) if key is not None else None,
        "known_hosts": str(session.known_hosts_path) if session.known_hosts_path else None,
    }


class RemoteCommandLog:
    """Records one remote command as a process of the task (output files, events, exit code).

    The record's `remote` holds the connection (user@host:port, key, host-key fingerprint) and the
    exact command string sent (`command`, set by `sent`); its `argv` is an OpenSSH command line that
    reproduces the command with NixDeck's known_hosts. `shown_argv` (a short form of a long script)
    is kept as `remote["summary"]`. Use as a context manager; pass `stdout`/`stderr` as the
    session's line callbacks. The last `LOG_TAIL` lines of both streams are kept in `tail`.
    """

    def __init__(
        self,
        ctx: TaskContext,
        target: SshTarget,
        argv: Sequence[str],
        *,
        job: str | None = None,
        step: str | None = None,
        tail: collections.deque[str] | None = None,
        echo: Callable[[str, str], None] | None = None,
        intercept: Callable[[str, str], bool] | None = None,
        session: SshSession | None = None,
        shown_argv: Sequence[str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.intercept = intercept
        self.tail = tail if tail is not None else collections.deque(maxlen=LOG_TAIL)
        self.echo = echo
        store = ctx.engine.store
        self.user_command = scrub(shlex.join(argv), ctx.secrets)
        known = session.known_hosts_path if session is not None else None
        self.remote: dict[str, Any] = connection_facts(session) if session is not None else {
            "via": "asyncssh", "user": target.user, "host": target.host, "port": target.port,
            "connection": endpoint(target),
        }  # fmt: skip
        self.remote["command"] = self.user_command
        if shown_argv:
            self.remote["summary"] = scrub(shlex.join(shown_argv), ctx.secrets)
        self.record = store.insert_process(
            ProcessRecord(
                task_id=ctx.task_id, job=job, step=step, attempt=ctx.attempt,
                argv=openssh_argv(target, known, self.user_command), started=utcnow(),
            )
        )  # fmt: skip
        logdir = Path(store.log_dir(ctx.task_id))
        self.paths = {s: logdir / f"{self.record.id}.{s}" for s in ("stdout", "stderr")}
        self._files: dict[str, IO[bytes]] = {}
        self._sizes = {"stdout": 0, "stderr": 0}
        store.update_process(
            self.record.id, stdout_path=str(self.paths["stdout"]), stderr_path=str(self.paths["stderr"]),
            remote=self.remote,
        )

    def sent(self, command: str) -> None:
        """The exact command string the session sent (its process-group wrapper included)."""
        self.remote["command"] = scrub(command, self.ctx.secrets)
        self.ctx.engine.store.update_process(self.record.id, remote=self.remote)

    def __enter__(self) -> RemoteCommandLog:
        for stream, path in self.paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[stream] = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in __exit__
        return self

    def _line(self, stream: str, line: str) -> None:
        if self.intercept is not None and self.intercept(stream, line):
            return  # a line meant for NixDeck itself (e.g. what ran before activation)
        data = (line + "\n").encode("utf-8", "replace")
        self._files[stream].write(data)
        self._sizes[stream] += len(data)
        self.tail.append(line)
        if self.echo is not None:
            self.echo(stream, line)
        self.ctx.engine.bus.emit(OutputAppended(self.ctx.task_id, self.record.id, stream, line + "\n"))

    def stdout(self, line: str) -> None:
        self._line("stdout", line)

    def stderr(self, line: str) -> None:
        self._line("stderr", line)

    def finish(self, exit_code: int | None) -> None:
        """Record how the command ended (a negative code is the signal that killed it)."""
        signal = -exit_code if exit_code is not None and exit_code < 0 else None
        self.ctx.engine.store.update_process(
            self.record.id, ended=utcnow(), exit_code=exit_code if signal is None else None, signal=signal,
            stdout_size=self._sizes["stdout"], stderr_size=self._sizes["stderr"],
        )  # fmt: skip
        self._finished = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for f in self._files.values():
            f.close()
        if not getattr(self, "_finished", False):
            # canceled or the connection broke: the remote group was killed (see SshSession.run)
            self.ctx.engine.store.update_process(
                self.record.id, ended=utcnow(), signal=15,
                stdout_size=self._sizes["stdout"], stderr_size=self._sizes["stderr"],
            )  # fmt: skip


async def run_logged(
    ctx: TaskContext,
    session: SshSession,
    argv: Sequence[str],
    *,
    job: str | None = None,
    step: str | None = None,
    timeout: float | None = None,
    tail: collections.deque[str] | None = None,
    on_line: Callable[[str, str], None] | None = None,
    intercept: Callable[[str, str], bool] | None = None,
    shown_argv: Sequence[str] | None = None,
) -> int:
    """Run ``argv`` on the device as a recorded process (``shown_argv``, when given, is recorded as
    its short summary; the exact command is always recorded); returns its exit status.
    ``intercept`` may consume lines before they are recorded."""
    with RemoteCommandLog(
        ctx, session.target, argv, job=job, step=step, tail=tail, echo=on_line, intercept=intercept,
        session=session, shown_argv=shown_argv,
    ) as log:
        try:
            code = await session.run(
                argv, on_stdout=log.stdout, on_stderr=log.stderr, timeout=timeout, on_command=log.sent
            )
        except SshError as e:
            raise ssh_failure(e) from None
        log.finish(code)
    return code


def describe_remote_exit(argv: Sequence[str], code: int, device: str) -> str:
    text = shlex.join(argv)
    text = text if len(text) <= 80 else text[:77] + "..."
    if code < 0:
        return f"`{text}` on {device} was killed by signal {-code}"
    return f"`{text}` on {device} exited with code {code}"
