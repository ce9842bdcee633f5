"""TaskEngine: submit, queue, limit, run, time out, cancel, retry and re-run tasks (DESIGN §2).

Scheduling: a task is `pending` while it waits for its devices' locks, `queued` while it waits for
one of `max_concurrent` slots, then `running`. A parent's final state derives from its own outcome
and its children's. Cancel requests from other processes (the CLI) arrive through the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.events import EventBus, StepChanged, Subscriber, TaskChanged, TaskCreated
from nixdeck.core.tasks.locks import DeviceLocks, waiting_for_slot
from nixdeck.core.tasks.model import (
    FAILED_STATES,
    SPECIAL_AUTHORS,
    TaskRecord,
    TaskState,
    current_author,
    project_key,
    utcnow,
)
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.procs import is_alive, own_identity
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.submission import (
    RecordSubmission,
    Submission,
    has_redactions,
    redact,
    scrub,
    scrub_data,
    secret_values,
)
from nixdeck.core.tasks.summary import add_counted, final_phase, finish_steps

log = logging.getLogger(__name__)


def derive_parent_state(own: TaskState, children: Iterable[TaskState], has_warnings: bool = False) -> TaskState:
    """A parent's final state from its own outcome and its (terminal) children's states."""
    states = list(children)
    if own in (TaskState.CANCELED, TaskState.TIMED_OUT, TaskState.INTERRUPTED, TaskState.FAILED):
        return own
    if any(s in FAILED_STATES for s in states):
        return TaskState.FAILED
    if any(s == TaskState.CANCELED for s in states):
        return TaskState.CANCELED
    if has_warnings or own == TaskState.COMPLETED_WITH_WARNINGS or TaskState.COMPLETED_WITH_WARNINGS in states:
        return TaskState.COMPLETED_WITH_WARNINGS
    return TaskState.COMPLETED


class TaskEngine:
    """Runs tasks on the current asyncio loop and records everything in the TaskStore."""

    def __init__(
        self,
        store: TaskStore,
        *,
        max_concurrent: int = 4,
        grace: float = 5.0,
        author: str | None = None,
        retry_delay: float = 2.0,
        cancel_poll: float = 0.5,
    ) -> None:
        self.store = store
        self.bus = EventBus()
        self.grace = grace
        self.author = author or current_author()
        self.retry_delay = retry_delay
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self._slot_users = 0
        self._locks = DeviceLocks(store.data_dir / "locks")
        self._ops: dict[str, Operation] = {}
        self._drivers: dict[int, asyncio.Task[None]] = {}
        self._live: dict[int, TaskRecord] = {}
        self._originals: dict[int, Submission] = {}
        self._secrets: dict[int, list[str]] = {}  # every known secret of a task: scrubbed from all it records
        self._cancel_requested: set[int] = set()
        self._cancel_reasons: dict[int, str] = {}
        self._started: set[int] = set()
        self._last_progress_write: dict[int, float] = {}
        self._identity = own_identity()
        self._poller: asyncio.Task[None] | None = None
        self._cancel_poll = cancel_poll
        self._closed = False

    # -- registry and events --------------------------------------------------------------------
    def register(self, op: Operation) -> None:
        self._ops[op.kind] = op

    def operation(self, kind: str) -> Operation:
        try:
            return self._ops[kind]
        except KeyError:
            raise NixDeckError(f"unknown task kind {kind!r}") from None

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def _changed(self, task_id: int, **fields: Any) -> TaskRecord:
        """Write fields to the store and the live copy, and tell subscribers."""
        if self._secrets.get(task_id):
            fields = self._scrubbed(task_id, fields)
        self.store.update_task(task_id, **fields)
        t = self._live.get(task_id)
        t = t.model_copy(update=fields) if t is not None else self.store.get(task_id)
        if task_id in self._live:
            self._live[task_id] = t
        self.bus.emit(TaskChanged(t))
        return t

    def _scrubbed(self, task_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Error reasons, warnings, phases and results may quote a secret: it never reaches the store."""
        secrets = self._secrets.get(task_id, [])
        texts = ("title", "error", "warnings", "phase", "result")
        return {k: scrub_data(v, secrets) if k in texts else v for k, v in fields.items()}

    def drives(self, task_id: int) -> bool:
        """True while this engine runs the task (its events come from here, not from the store)."""
        return task_id in self._live

    def live(self, task_id: int) -> TaskRecord:
        """The freshest record of a task (in memory while this engine runs it)."""
        return self._live.get(task_id) or self.store.get(task_id)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_cancel_requests())

    async def _poll_cancel_requests(self) -> None:
        """Cancel requests written by another process (e.g. `nixdeck tasks cancel`)."""
        pid, _ = self._identity
        while self._drivers:
            await asyncio.sleep(self._cancel_poll)
            try:
                rows = self.store._conn.execute(
                    "SELECT id FROM tasks WHERE cancel_requested = 1 AND owner_pid = ?", (pid,)
                ).fetchall()
            except Exception:  # noqa: BLE001 - a busy database must not stop the poller
                continue
            for (tid,) in rows:
                if tid in self._drivers and tid not in self._cancel_requested:
                    await self.cancel(int(tid), "canceled from another NixDeck process (nixdeck tasks cancel)")

    # -- submit ---------------------------------------------------------------------------------
    async def submit(
        self,
        kind: str,
        submission: Submission,
        *,
        title: str | None = None,
        devices: Sequence[str] | None = None,
        parent_id: int | None = None,
        origin_id: int | None = None,
        forced: bool = False,
        timeout: float | None = None,
        retries: int = 0,
        silent: bool = False,
        project: str | None = None,
        author: str | None = None,
    ) -> int:
        """Create a task and start driving it; returns its id at once."""
        op = self.operation(kind)
        if not isinstance(submission, op.submission_type):
            raise NixDeckError(f"{kind} takes {op.submission_type.__name__}, not {type(submission).__name__}")
        if timeout is not None and not timeout > 0:
            raise NixDeckError(f"a timeout must be a positive number of seconds, not {timeout:g}")
        if retries < 0:
            raise NixDeckError(f"retries must be 0 or more, not {retries}")
        secrets = [*secret_values(submission), *self._secrets.get(parent_id or 0, [])]
        author = author or self.author
        project = project or getattr(submission, "project_dir", None)  # device history is per project
        if project:
            project = project_key(project)
        if author not in SPECIAL_AUTHORS and author != current_author() and author != self.author:
            raise NixDeckError(f"author must be the OS user or one of {', '.join(SPECIAL_AUTHORS)}")
        pid, ticks = self._identity
        task = TaskRecord(
            kind=kind,
            title=scrub(title or op.title(submission), secrets),
            state=TaskState.PENDING,
            author=author,
            project=project,
            devices=list(devices if devices is not None else op.devices(submission)),
            parent_id=parent_id,
            origin_id=origin_id,
            forced=forced,
            silent=silent,
            timeout=timeout if timeout is not None else op.default_timeout,
            submission=scrub_data(redact(submission), secrets),
            max_attempts=max(1, retries + 1),
            owner_pid=pid,
            owner_start=ticks,
        )
        task = self.store.insert_task(task)
        self._live[task.id] = task
        self._originals[task.id] = submission
        self._secrets[task.id] = secrets
        self.bus.emit(TaskCreated(task))
        log.info("task %s submitted: %s (%s) by %s", task.id, task.title, kind, author)
        self._drivers[task.id] = asyncio.get_running_loop().create_task(self._drive(task.id, op))
        self._ensure_poller()
        return task.id

    def record(
        self,
        title: str,
        details: dict[str, Any] | Submission | None = None,
        *,
        kind: str = "record",
        silent: bool = True,
        devices: Sequence[str] = (),
        result: dict[str, Any] | None = None,
        project: str | None = None,
        author: str | None = None,
        state: TaskState = TaskState.COMPLETED,
        parent_id: int | None = None,
        error: str | None = None,
        phase: str = "",
    ) -> int:
        """An immediate record-only task (e.g. "device added"): stored finished, optionally silent.
        With ``parent_id`` it is a finished child (e.g. an automation's ``skipped`` step)."""
        sub = details if isinstance(details, Submission) else RecordSubmission(**(details or {}))
        secrets = secret_values(sub)
        title = scrub(title, secrets)
        now = utcnow()
        task = self.store.insert_task(
            TaskRecord(
                kind=kind, title=title, state=state, author=author or self.author, created=now, started=now,
                ended=now, devices=list(devices), silent=silent, submission=scrub_data(redact(sub), secrets),
                result=scrub_data(result or {}, secrets),
                project=project_key(project) if project else None, timeout=None, parent_id=parent_id,
                error=scrub(error, secrets) if error else error, phase=scrub(phase, secrets),
            )
        )
        self.bus.emit(TaskCreated(task))
        return task.id

    # -- driving --------------------------------------------------------------------------------
    async def _drive(self, task_id: int, op: Operation) -> None:
        task = self._live[task_id]
        locked: list[str] = []
        slot = False
        final: TaskState = TaskState.FAILED
        error: str | None = None
        ctx: TaskContext | None = None
        self._started.add(task_id)
        try:
            if task_id in self._cancel_requested:  # canceled before its driver ever ran
                raise asyncio.CancelledError
            if op.locks_devices and task.devices:
                await self._locks.acquire(task.devices, task_id, lambda why: self._changed(task_id, phase=why))
                locked = list(task.devices)
            if op.uses_slot:
                busy = self._slots.locked()
                self._changed(task_id, state=TaskState.QUEUED,
                              phase=waiting_for_slot(self._slot_users, self.max_concurrent) if busy else "")
                await self._slots.acquire()
                slot = True
                self._slot_users += 1
            attempt = 1
            while True:
                t = self._changed(task_id, state=TaskState.RUNNING, started=self._live[task_id].started or utcnow(),
                                  attempt=attempt, error=None, phase="")
                ctx = TaskContext(self, t, self._originals[task_id], self._secrets[task_id])
                final, error = await self._attempt(op, ctx, t.timeout)
                if final not in FAILED_STATES or final == TaskState.TIMED_OUT or attempt >= t.max_attempts:
                    break
                if task_id in self._cancel_requested:
                    final, error = TaskState.CANCELED, self._cancel_reason(task_id)
                    break
                delay = self.retry_delay * (2 ** (attempt - 1))
                self._changed(task_id, state=TaskState.BACKED_OFF, error=error,
                              phase=f"attempt {attempt} failed; retrying in {delay:.0f}s")
                await asyncio.sleep(delay)
                attempt += 1
        except asyncio.CancelledError:
            final = TaskState.CANCELED if task_id in self._cancel_requested else TaskState.INTERRUPTED
            error = self._cancel_reason(task_id) if final == TaskState.CANCELED else "NixDeck was closing while the task waited"
        except Exception as e:  # noqa: BLE001 - a scheduling error ends the task, never the app
            self._log_bug(task_id, "failed in the engine")
            final, error = TaskState.FAILED, f"internal error: {e}"
        finally:
            if slot:
                self._slots.release()
                self._slot_users -= 1
            self._locks.release(locked)
        # children: cancel leftovers of a failed parent, then wait for all of them
        kids = self.store.children(task_id)
        if final in (TaskState.CANCELED, TaskState.TIMED_OUT, TaskState.INTERRUPTED):
            for k in kids:
                if not k.state.terminal:
                    await self.cancel(k.id)
        for k in kids:
            d = self._drivers.get(k.id)
            if d is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(d)
        kids = self.store.children(task_id)
        warnings = self._live[task_id].warnings
        if kids:
            derived = op.final_state(self._live[task_id], final, kids, bool(warnings))
            final = derived if derived is not None else derive_parent_state(final, [k.state for k in kids], bool(warnings))
            if final in FAILED_STATES and error is None:
                bad = [k for k in kids if k.state in FAILED_STATES]
                error = f"{len(bad)} of {len(kids)} failed: " + ", ".join(k.title for k in bad[:5])
        elif final == TaskState.COMPLETED and warnings:
            final = TaskState.COMPLETED_WITH_WARNINGS
        live = self._live[task_id]  # progress writes are throttled: the final record gets the latest
        try:
            phase = self._final_phase(live.model_copy(update={"error": error}), final, kids)
            self._changed(task_id, state=final, ended=utcnow(), error=error, owner_pid=None, owner_start=None,
                          cancel_requested=False, progress=1.0 if final.ok else live.progress, phase=phase)
            log.info("task %s ended %s: %s%s", task_id, final.label, phase, f" ({error})" if error else "")
        finally:
            # even when the store refuses the write (disk full), this engine is done with the task
            self._drivers.pop(task_id, None)
            self._live.pop(task_id, None)
            self._cancel_requested.discard(task_id)
            self._cancel_reasons.pop(task_id, None)
            self._secrets.pop(task_id, None)
            self._started.discard(task_id)
            self._last_progress_write.pop(task_id, None)

    def _final_phase(self, live: TaskRecord, final: TaskState, kids: list[TaskRecord]) -> str:
        """Close the steps that never ran (`skipped`) and say how the task ended (core/tasks/summary)."""
        try:
            steps = [s for j in self.store.jobs(live.id) for s in j.steps]
            for s in finish_steps(steps):
                self.store.save_step(live.id, s)
                self.bus.emit(StepChanged(live.id, s.model_copy()))
            return final_phase(live, final, steps, kids)
        except Exception:  # noqa: BLE001 - a summary must never keep a task from ending
            log.exception("task %s: cannot summarize its end", live.id)
            return final.label

    async def _attempt(self, op: Operation, ctx: TaskContext, timeout: float | None) -> tuple[TaskState, str | None]:
        task_id = ctx.task_id
        deadline = asyncio.timeout(timeout)
        ctx.deadline = deadline
        try:
            async with deadline:
                await op.run(ctx)
        except TimeoutError as e:
            if deadline.expired():
                return TaskState.TIMED_OUT, f"timed out after {timeout:g} s"
            return TaskState.FAILED, f"timed out: {e}" if str(e) else "an operation step timed out"
        except asyncio.CancelledError:
            if task_id in self._cancel_requested:
                return TaskState.CANCELED, self._cancel_reason(task_id)
            raise
        except UserError as e:
            if ctx.forced:
                ctx.warn(str(e))
                return TaskState.COMPLETED_WITH_WARNINGS, None
            return TaskState.FAILED, str(e)
        except NixDeckError as e:
            return TaskState.FAILED, str(e)
        except Exception as e:  # noqa: BLE001 - an operation's bug ends its task, not the app
            self._log_bug(task_id, f"operation {op.kind} raised")
            return TaskState.FAILED, f"internal error in {op.kind}: {type(e).__name__}: {e}"
        return (TaskState.COMPLETED_WITH_WARNINGS if self._live[task_id].warnings else TaskState.COMPLETED), None

    def _log_bug(self, task_id: int, what: str) -> None:
        """The traceback of a bug, logged with the task's secrets scrubbed (it reaches the screen)."""
        log.error("task %s %s\n%s", task_id, what, scrub(traceback.format_exc().rstrip(), self._secrets.get(task_id, [])))

    # -- effects used by TaskContext ------------------------------------------------------------
    def _add_warning(self, task_id: int, message: str) -> None:
        """A warning; one said again (e.g. by each Nix call of a build) is kept once, with a count."""
        t = self.live(task_id)
        self._changed(task_id, warnings=add_counted(t.warnings, message))

    def _set_result(self, task_id: int, values: dict[str, Any]) -> None:
        t = self.live(task_id)
        self._changed(task_id, result={**t.result, **values})

    def _progress(self, task_id: int, fraction: float | None, phase: str) -> None:
        t = self._live.get(task_id)
        if t is None:
            return
        phase = scrub(phase, self._secrets.get(task_id, [])) if phase else phase
        t = t.model_copy(update={"progress": fraction, "phase": phase or t.phase})
        self._live[task_id] = t
        now = time.monotonic()
        if now - self._last_progress_write.get(task_id, 0.0) > 1.0:
            self._last_progress_write[task_id] = now
            self.store.update_task(task_id, progress=fraction, phase=t.phase)
        self.bus.emit(TaskChanged(t))

    # -- wait, cancel, rerun --------------------------------------------------------------------
    async def wait(self, task_id: int) -> TaskRecord:
        """Wait until the task is terminal (a task of another process is polled)."""
        d = self._drivers.get(task_id)
        if d is not None:
            try:
                await asyncio.shield(d)
            except asyncio.CancelledError:
                # the waiter itself is cancelled (e.g. a parent timing out): that must propagate
                me = asyncio.current_task()
                if not d.done() or (me is not None and me.cancelling()):
                    raise
            return self.store.get(task_id)
        while True:
            t = self.store.get(task_id)
            if t.state.terminal:
                return t
            if t.owner_pid is None or not is_alive(t.owner_pid, t.owner_start):
                self.store.recover()
                return self.store.get(task_id)
            await asyncio.sleep(0.2)

    def _cancel_reason(self, task_id: int) -> str:
        return self._cancel_reasons.get(task_id, f"canceled by {self.author}")

    async def cancel(self, task_id: int, reason: str | None = None) -> bool:
        """Cancel a task and its children; `reason` becomes their error. False when it had already ended."""
        t = self.live(task_id)
        if t.state.terminal:
            return False
        driver = self._drivers.get(task_id)
        if driver is None:
            # owned by another process: ask it through the database, or recover if it is gone
            if t.owner_pid is not None and is_alive(t.owner_pid, t.owner_start):
                self.store.update_task(task_id, cancel_requested=True)
                for k in self.store.children(task_id):
                    if not k.state.terminal:
                        self.store.update_task(k.id, cancel_requested=True)
            else:
                self.store.recover()
            return True
        if task_id in self._cancel_requested:
            return True  # already on its way out: a second driver.cancel() would only disturb its cleanup
        self._cancel_requested.add(task_id)
        if reason:
            self._cancel_reasons[task_id] = reason
        if t.state in (TaskState.RUNNING, TaskState.BACKED_OFF):
            self._changed(task_id, state=TaskState.CANCELING, cancel_requested=True)
        for k in self.store.children(task_id):
            if not k.state.terminal:
                await self.cancel(k.id, reason or f"canceled with its parent task {task_id}")
        if task_id in self._started:
            driver.cancel()
        # else: the driver sees the request as soon as it starts (cancelling a coroutine that never
        # started would skip its bookkeeping and leave the task pending for ever)
        return True

    def submission_for(self, task_id: int) -> Submission:
        """The submission of a stored task, validated again (secrets must still be in memory)."""
        if task_id in self._originals:
            return self._originals[task_id]
        t = self.store.get(task_id)
        op = self.operation(t.kind)
        if has_redactions(t.submission):
            raise UserError(
                f"task {task_id} was submitted with secrets, which are never stored: submit it again instead"
            )
        try:
            return op.submission_type.model_validate(t.submission)
        except ValidationError as e:
            raise UserError(f"task {task_id}'s stored submission is no longer valid: {e}") from None

    async def rerun(self, task_id: int, *, force: bool = False, failed_only: bool = False) -> int:
        """A new task from a stored one's submission, linked by origin_id; optionally forced / failed only."""
        t = self.store.get(task_id)
        if t.kind not in self._ops:
            raise UserError(f"task {task_id} ({t.kind}) cannot be re-run")
        if not t.state.terminal:
            raise UserError(f"task {task_id} is still {t.state.label}; cancel it or wait for it to end")
        op = self.operation(t.kind)
        sub = self.submission_for(task_id)
        if failed_only:
            failed = [k for k in self.store.children(task_id) if k.state in FAILED_STATES or k.state == TaskState.CANCELED]
            if not failed:
                raise UserError(f"task {task_id} has no failed children to re-run")
            sub = op.rerun_failed(sub, failed)
        title = op.title(sub) if failed_only else t.title
        return await self.submit(
            t.kind, sub, title=title, origin_id=task_id, forced=force, timeout=t.timeout,
            retries=t.max_attempts - 1, silent=t.silent, project=t.project,
            devices=None if failed_only else t.devices,
        )

    # -- shutdown -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def hold_devices(self, devices: Sequence[str]) -> AsyncIterator[None]:
        """Hold the devices' locks outside a task (e.g. while settling an interrupted deploy)."""
        await self._locks.acquire(devices)
        try:
            yield
        finally:
            self._locks.release(devices)

    def running_ids(self) -> list[int]:
        return list(self._drivers)

    async def close(self, *, cancel: bool = True) -> None:
        """Cancel (or interrupt) every task this engine drives and wait until they are recorded."""
        self._closed = True
        for tid in list(self._drivers):
            t = self._live.get(tid)
            if t is not None and t.parent_id is None:
                if cancel:
                    await self.cancel(tid)
                else:
                    self._drivers[tid].cancel()
        for tid in list(self._drivers):
            if cancel:
                await self.cancel(tid)
        pending = [d for d in self._drivers.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
