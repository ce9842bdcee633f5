"""ProcessRunner: one local process in its own process group, output streamed to files and callbacks.

Output is read in chunks and split into complete lines, so memory stays flat whatever the size;
a line longer than MAX_LINE is passed on in pieces. Cancel sends SIGTERM to the whole group (Nix
kills its builders on SIGTERM), then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from nixdeck.core.tasks.procs import group_members, signal_group, start_ticks

CHUNK = 256 * 1024
MAX_LINE = 1024 * 1024
INSTALL_HINTS = {
    "nix": "install it with `apt-get install nix-bin` (Debian) or from https://nixos.org/download",
    "nix-env": "install it with `apt-get install nix-bin`",
    "nix-instantiate": "install it with `apt-get install nix-bin`",
    "ssh": "install it with `apt-get install openssh-client`",
    "git": "install it with `apt-get install git`",
    "qemu-system-x86_64": "install it with `apt-get install qemu-system-x86`",
}

LineSink = Callable[[bytes], None]
T = TypeVar("T")


class ExecutableNotFound(Exception):
    """The program to run does not exist or is not executable."""

    def __init__(self, program: str) -> None:
        hint = INSTALL_HINTS.get(Path(program).name, "check that it is installed and on PATH")
        super().__init__(f"{program} not found: {hint}")
        self.program = program


class OutputLost(Exception):
    """The process's output could not be recorded (e.g. disk full): it was stopped, not left blocked."""

    def __init__(self, program: str, error: BaseException, path: Path | None = None) -> None:
        prog = Path(program).name
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            where = path or error.filename or "the output"
            text = f"disk full writing {where}: {prog} was stopped; free some space on that disk and run it again"
        elif str(error).startswith("disk full writing "):
            text = f"{error}; {prog} was stopped"  # the store could not record what the output held
        else:
            why = error.strerror if isinstance(error, OSError) and error.strerror else str(error) or type(error).__name__
            text = f"the output of {prog} could not be recorded ({why}); it was stopped"
        super().__init__(text)
        self.error = error


@dataclass(slots=True)
class ProcessOutcome:
    """How a process ended: exit code, or the signal that killed it."""

    exit_code: int | None
    signal: int | None
    stdout_size: int
    stderr_size: int
    killed_by_us: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Redactor:
    def __init__(self, secrets: Sequence[str]) -> None:
        self._pairs = [(s.encode(), b"***") for s in secrets if s]
        # bytes kept back when a long line is cut, so a secret is never split across two writes
        self.hold = max((len(s) for s, _ in self._pairs), default=1) - 1

    def __call__(self, data: bytes) -> bytes:
        for s, r in self._pairs:
            if s in data:
                data = data.replace(s, r)
        return data


async def _to_the_end(aw: Awaitable[T]) -> T:
    """Await `aw` to its end even if the caller is cancelled again meanwhile (cleanup must finish)."""
    fut = asyncio.ensure_future(aw)
    while True:
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if fut.done():
                raise


class ProcessRunner:
    """Runs argv (never a shell string) and reports a typed outcome."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env_add: Mapping[str, str] | None = None,
        stdout_path: Path,
        stderr_path: Path,
        on_stdout: LineSink | None = None,
        on_stderr: LineSink | None = None,
        secrets: Sequence[str] = (),
        grace: float = 5.0,
        stdin_data: bytes | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = str(cwd) if cwd is not None else None
        self.env_add = dict(env_add or {})
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.grace = grace
        self.stdin_data = stdin_data
        self._redact = _Redactor(secrets)
        self.pid: int | None = None
        self.start_ticks: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._killed = False
        self._output_error: BaseException | None = None
        self._output_path: Path | None = None
        self._stopping: asyncio.Task[None] | None = None

    def _resolve(self) -> str:
        prog = self.argv[0]
        if os.sep in prog:
            if os.access(prog, os.X_OK) and not os.path.isdir(prog):
                return prog
            raise ExecutableNotFound(prog)
        path = (self.env_add.get("PATH") or os.environ.get("PATH", os.defpath))
        found = shutil.which(prog, path=path)
        if found is None:
            raise ExecutableNotFound(prog)
        return found

    async def start(self) -> None:
        """Spawn the process; raises ExecutableNotFound or OSError with the reason."""
        if not self.argv:
            raise ValueError("empty command")
        self._resolve()
        env = dict(os.environ)
        env.update(self.env_add)
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise FileNotFoundError(f"working directory {self.cwd} does not exist")
        for d in {self.stdout_path.parent, self.stderr_path.parent}:
            d.mkdir(parents=True, exist_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if self.stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=MAX_LINE,
        )
        self.pid = self._proc.pid
        self.start_ticks = start_ticks(self.pid)

    def _lost_output(self, error: BaseException, path: Path) -> None:
        """Writing or handling output failed: stop the process (a pump that stopped reading would
        leave it blocked on a full pipe until the task's timeout) and fail with the reason."""
        if self._output_error is None:
            self._output_error = error
            self._output_path = path
            self._stopping = asyncio.ensure_future(self.terminate())

    async def _pump(self, reader: asyncio.StreamReader, path: Path, sink: LineSink | None) -> int:
        try:
            f = open(path, "ab", buffering=0)  # noqa: SIM115 - closed below
        except OSError as e:
            self._lost_output(e, path)
            while await reader.read(CHUNK):
                pass
            return 0
        try:
            return await self._pump_into(reader, f, sink, path)
        finally:
            f.close()

    async def _pump_into(self, reader: asyncio.StreamReader, f: IO[bytes], sink: LineSink | None, path: Path) -> int:
        size = 0
        partial = b""
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            if self._output_error is not None:
                continue  # keep the pipe drained while the process is being stopped
            try:
                data = partial + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) < MAX_LINE:
                    partial = data
                    continue
                if cut == 0:
                    red = self._redact(data)
                    cut = max(0, len(red) - self._redact.hold)
                    out, partial = red[:cut], red[cut:]
                else:
                    out, partial = self._redact(data[:cut]), data[cut:]
                f.write(out)
                size += len(out)
                if sink is not None:
                    sink(out)
            except Exception as e:  # noqa: BLE001 - disk full, a sink's failure: reported by wait()
                self._lost_output(e, path)
        if partial and self._output_error is None:
            try:
                out = self._redact(partial) + b"\n"
                f.write(out)
                size += len(out)
                if sink is not None:
                    sink(out)
            except Exception as e:  # noqa: BLE001
                self._lost_output(e, path)
        return size

    async def wait(self) -> ProcessOutcome:
        """Stream output until the process and its pipes end; on cancel, end the whole group first."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        pumps = asyncio.gather(
            self._pump(proc.stdout, self.stdout_path, self.on_stdout),
            self._pump(proc.stderr, self.stderr_path, self.on_stderr),
        )
        try:
            if self.stdin_data is not None and proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read it all
                    proc.stdin.write(self.stdin_data)
                    await proc.stdin.drain()
                proc.stdin.close()
            rc = await proc.wait()
            try:
                # children that kept our pipes open: give them a moment, then end them
                sizes = await asyncio.wait_for(asyncio.shield(pumps), timeout=2.0)
            except TimeoutError:
                await self.terminate()
                sizes = await pumps
        except asyncio.CancelledError:
            # a second cancel (or a timeout) arriving meanwhile must not stop the cleanup half-way
            await _to_the_end(self.terminate())
            with contextlib.suppress(Exception):
                if self._stopping is not None:
                    await _to_the_end(self._stopping)
                await _to_the_end(asyncio.wait_for(pumps, timeout=self.grace + 5.0))
            raise
        if self._stopping is not None:
            await _to_the_end(self._stopping)
        self.terminate_leftovers()
        if self._output_error is not None:
            raise OutputLost(self.argv[0], self._output_error, self._output_path)
        sig = -rc if rc < 0 else None
        return ProcessOutcome(
            exit_code=rc if rc >= 0 else None,
            signal=sig,
            stdout_size=sizes[0],
            stderr_size=sizes[1],
            killed_by_us=self._killed,
        )

    def terminate_leftovers(self) -> None:
        """Background processes the command left in its group are ended: nothing is left running."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, 0)  # cheap: is anything of the group left?
        except (ProcessLookupError, PermissionError):
            return
        if group_members(self.pid, self.start_ticks):
            signal_group(self.pid, signal.SIGKILL, self.start_ticks)

    async def terminate(self) -> None:
        """SIGTERM the process group, wait up to `grace`, then SIGKILL it."""
        if self.pid is None:
            return
        self._killed = True
        if not signal_group(self.pid, signal.SIGTERM, self.start_ticks):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if not group_members(self.pid, self.start_ticks):
                return
        signal_group(self.pid, signal.SIGKILL, self.start_ticks)
        for _ in range(100):
            if not group_members(self.pid, self.start_ticks):
                return
            await asyncio.sleep(0.02)
