"""TaskContext: what an operation sees while its task runs (processes, steps, progress, children)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.events import MessagesAdded, OutputAppended, StepChanged
from nixdeck.core.tasks.model import MessageRecord, ProcessRecord, StepRecord, TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.runner import ExecutableNotFound, LineSink, OutputLost, ProcessOutcome, ProcessRunner
from nixdeck.core.tasks.submission import Submission, redact_env, scrub, scrub_data

if TYPE_CHECKING:
    from nixdeck.core.tasks.engine import TaskEngine


@dataclass(slots=True)
class ProcessResult:
    """A finished process: its stored record and how it ended."""

    record: ProcessRecord
    outcome: ProcessOutcome

    @property
    def exit_code(self) -> int | None:
        return self.outcome.exit_code

    @property
    def stdout_path(self) -> Path:
        return Path(self.record.stdout_path or "")

    @property
    def stderr_path(self) -> Path:
        return Path(self.record.stderr_path or "")

    def stdout_text(self, limit: int = 16 * 1024 * 1024) -> str:
        with open(self.stdout_path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")

    def stderr_tail(self, lines: int = 20) -> list[str]:
        return tail_lines(self.stderr_path, lines)


def tail_lines(path: Path, n: int) -> list[str]:
    """The last n lines of a file, read from its end (cheap for huge logs)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            block = min(size, 64 * 1024)
            while True:
                f.seek(size - block)
                data = f.read(block)
                if data.count(b"\n") > n or block == size:
                    break
                block = min(size, block * 4)
    except OSError:
        return []
    return [ln.decode("utf-8", "replace") for ln in data.splitlines()[-n:]]


class StepHandle:
    """Handle of a running step; `warn()` ends it `completed_with_warnings`."""

    def __init__(self, ctx: TaskContext, step: StepRecord) -> None:
        self._ctx = ctx
        self.step = step
        self.warned = False

    def detail(self, text: str) -> None:
        self.step.detail = text
        self._ctx._save_step(self.step)

    def warn(self, message: str) -> None:
        self.warned = True
        self._ctx.warn(message)


class TaskContext:
    """Handed to `Operation.run`. All effects of an operation go through it so they are recorded."""

    def __init__(self, engine: TaskEngine, task: TaskRecord, submission: Submission, secrets: Sequence[str]) -> None:
        self.engine = engine
        self.task = task
        self.submission = submission
        self.secrets = list(secrets)
        self.attempt = task.attempt
        self._steps: dict[tuple[str, str], StepRecord] = {}
        self._job_sizes: dict[str, int] = {}
        self.children: list[int] = []
        self.deadline: asyncio.Timeout | None = None  # set by the engine; tells a timeout from a cancel

    @property
    def timed_out(self) -> bool:
        """True once the task's timeout fired (steps then end `timed_out`, not `canceled`)."""
        return self.deadline is not None and self.deadline.expired()

    @property
    def task_id(self) -> int:
        return self.task.id

    @property
    def forced(self) -> bool:
        return self.task.forced

    @property
    def store(self) -> Any:
        return self.engine.store

    # -- messages, warnings, result, progress ------------------------------------------------
    def warn(self, message: str) -> None:
        """A warning: the task ends `completed_with_warnings` unless it fails."""
        self.engine._add_warning(self.task.id, message)

    def add_messages(self, messages: Sequence[MessageRecord]) -> None:
        """Parsed (e.g. Nix) messages, stored and shown in their panes."""
        if not messages:
            return
        msgs = [m.model_copy(update={"task_id": self.task.id} | self._scrubbed_message(m)) for m in messages]
        self.engine.store.add_messages(self.task.id, msgs)
        self.engine.bus.emit(MessagesAdded(self.task.id, msgs))

    def _scrubbed_message(self, m: MessageRecord) -> dict[str, Any]:
        if not self.secrets:
            return {}
        return {"message": scrub(m.message, self.secrets), "file": scrub_data(m.file, self.secrets),
                "trace": scrub_data(m.trace, self.secrets)}

    def set_result(self, **values: Any) -> None:
        self.engine._set_result(self.task.id, values)

    def progress(self, fraction: float | None, phase: str = "") -> None:
        self.engine._progress(self.task.id, fraction, phase)

    def user_problem(self, message: str) -> None:
        """A user error: fails the task, or only warns when the task is a forced rerun."""
        if self.forced:
            self.warn(message)
        else:
            raise UserError(message)

    # -- jobs and steps -----------------------------------------------------------------------
    def plan(self, job: str, steps: Sequence[str]) -> None:
        """Declare a job's steps up front, so views show what is still to come."""
        for name in steps:
            self._get_step(job, name)

    def _get_step(self, job: str, name: str) -> StepRecord:
        key = (job, name)
        if key not in self._steps:
            idx = self._job_sizes.get(job, 0)
            self._job_sizes[job] = idx + 1
            self._steps[key] = StepRecord(job=job, index=idx, name=name)
            self._save_step(self._steps[key])
        return self._steps[key]

    def _save_step(self, step: StepRecord) -> None:
        shown = step.model_copy()
        if self.secrets:  # a step's detail often quotes what failed: argv, a path, a host
            shown.name, shown.detail = scrub(step.name, self.secrets), scrub(step.detail, self.secrets)
        self.engine.store.save_step(self.task.id, shown)
        self.engine.bus.emit(StepChanged(self.task.id, shown))

    def skip_remaining(self, job: str, reason: str = "skipped") -> None:
        """The job's steps that have not run end `skipped` with `reason` as their detail."""
        for (j, _), s in self._steps.items():
            if j == job and not s.state.terminal:
                s.state, s.detail = TaskState.SKIPPED, reason
                self._save_step(s)

    @asynccontextmanager
    async def step(self, name: str, job: str = "main", detail: str = "") -> AsyncIterator[StepHandle]:
        """Run one step: it is `running` inside the block, then completed / failed / canceled."""
        s = self._get_step(job, name)
        s.state, s.started, s.ended, s.detail = TaskState.RUNNING, utcnow(), None, detail or s.detail
        self._save_step(s)
        handle = StepHandle(self, s)
        try:
            yield handle
        except asyncio.CancelledError:
            s.state, s.ended = (TaskState.TIMED_OUT if self.timed_out else TaskState.CANCELED), utcnow()
            self._save_step(s)
            raise
        except TimeoutError:
            s.state, s.ended = TaskState.TIMED_OUT, utcnow()
            self._save_step(s)
            raise
        except UserError as e:
            s.state, s.ended = (TaskState.COMPLETED_WITH_WARNINGS if self.forced else TaskState.FAILED), utcnow()
            s.detail = s.detail or str(e)
            self._save_step(s)
            raise
        except BaseException as e:
            s.state, s.ended = TaskState.FAILED, utcnow()
            s.detail = s.detail or str(e)
            self._save_step(s)
            raise
        else:
            s.state = TaskState.COMPLETED_WITH_WARNINGS if handle.warned else TaskState.COMPLETED
            s.ended = utcnow()
            self._save_step(s)

    # -- processes ----------------------------------------------------------------------------
    async def run_process(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        secret_env: Sequence[str] = (),
        job: str | None = None,
        step: str | None = None,
        on_stdout: LineSink | None = None,
        on_stderr: LineSink | None = None,
        emit_stdout: bool = True,
        emit_stderr: bool = True,
        check: bool = True,
        stdin_data: bytes | None = None,
        on_start: Callable[[ProcessRecord], None] | None = None,
    ) -> ProcessResult:
        """Run a local process as part of this task; its argv, env (redacted) and output are recorded.

        With `check`, a non-zero exit raises TaskFailed naming the program and code.
        """
        store = self.engine.store
        env_add = dict(env or {})
        secrets = self.secrets + [v for k, v in env_add.items() if k in set(secret_env)]
        rec = store.insert_process(
            ProcessRecord(
                task_id=self.task.id, job=job, step=step, attempt=self.attempt, argv=[scrub(a, secrets) for a in argv],
                cwd=scrub(str(cwd), secrets) if cwd is not None else None, env=redact_env(env_add, secret_env, secrets),
                started=utcnow(),
            )
        )
        logdir = store.log_dir(self.task.id)
        out_path, err_path = logdir / f"{rec.id}.stdout", logdir / f"{rec.id}.stderr"
        rec = rec.model_copy(update={"stdout_path": str(out_path), "stderr_path": str(err_path)})
        bus, tid = self.engine.bus, self.task.id

        def sink(stream: str, user: LineSink | None, emit: bool) -> LineSink | None:
            if user is None and not emit:
                return None

            def fn(data: bytes) -> None:
                if user is not None:
                    user(data)
                if emit:
                    bus.emit(OutputAppended(tid, rec.id, stream, data.decode("utf-8", "replace")))

            return fn

        runner = ProcessRunner(
            argv, cwd=cwd, env_add=env_add, stdout_path=out_path, stderr_path=err_path,
            on_stdout=sink("stdout", on_stdout, emit_stdout), on_stderr=sink("stderr", on_stderr, emit_stderr),
            secrets=secrets, grace=self.engine.grace, stdin_data=stdin_data,
        )
        try:
            await runner.start()
        except ExecutableNotFound as e:
            store.update_process(rec.id, ended=utcnow(), stdout_path=str(out_path), stderr_path=str(err_path))
            raise TaskFailed(str(e)) from None
        except OSError as e:
            store.update_process(rec.id, ended=utcnow())
            raise TaskFailed(f"cannot start {argv[0]}: {e.strerror or e}") from None
        store.update_process(
            rec.id, pid=runner.pid, start_ticks=runner.start_ticks, stdout_path=str(out_path), stderr_path=str(err_path)
        )
        rec = rec.model_copy(update={"pid": runner.pid, "start_ticks": runner.start_ticks})
        if on_start is not None:
            on_start(rec)
        try:
            outcome = await runner.wait()
        except OutputLost as e:
            store.update_process(rec.id, ended=utcnow(), signal=15)
            raise TaskFailed(str(e)) from None
        except BaseException:
            store.update_process(rec.id, ended=utcnow(), signal=15)
            raise
        ended = utcnow()
        store.update_process(
            rec.id, exit_code=outcome.exit_code, signal=outcome.signal, ended=ended,
            stdout_size=outcome.stdout_size, stderr_size=outcome.stderr_size,
        )
        rec = rec.model_copy(
            update={"exit_code": outcome.exit_code, "signal": outcome.signal, "ended": ended,
                    "stdout_size": outcome.stdout_size, "stderr_size": outcome.stderr_size}
        )
        result = ProcessResult(rec, outcome)
        if check and not outcome.ok:
            raise TaskFailed(describe_exit(argv, outcome))
        return result

    # -- children -----------------------------------------------------------------------------
    async def submit_child(self, kind: str, submission: Submission, **opts: Any) -> int:
        """A child task of this one (e.g. Deploy to Device under Deploy Devices)."""
        opts.setdefault("forced", self.forced)
        opts.setdefault("author", self.task.author)
        opts.setdefault("project", self.task.project)
        child = await self.engine.submit(kind, submission, parent_id=self.task.id, **opts)
        self.children.append(child)
        return child

    async def wait_children(self, ids: Sequence[int] | None = None) -> list[TaskRecord]:
        """Wait until these (default: all) children are terminal; returns their records."""
        want = list(ids if ids is not None else self.children)
        for cid in want:
            await self.engine.wait(cid)
        return [self.engine.store.get(cid) for cid in want]


def describe_exit(argv: Sequence[str], outcome: ProcessOutcome) -> str:
    prog = Path(argv[0]).name if argv else "process"
    if outcome.signal is not None:
        return f"{prog} was killed by signal {outcome.signal}"
    return f"{prog} exited with code {outcome.exit_code}"
