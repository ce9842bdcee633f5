"""Running an automation: a parent task (kind ``automation``) whose steps are child tasks.

Steps run in order; each is a child of the operation's own kind (build, deploy…), or a
``skipped`` child (false ``when``, cache hit, or an earlier failure stopped the run) so the tree
shows every step the definition has. ``on_failure``: ``abort`` stops the run, ``continue`` goes
on (the failure becomes a warning), ``{ retry, delay }`` runs the step again, ``{ run }`` starts
another automation and stops. Hooks: ``before`` (a failure stops the run), ``after`` (after a
success), ``on_error`` (once, after a failure). A group run is in ``groups``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from nixdeck.core.ops.remote import open_project
from nixdeck.core.project import Project
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.engine import derive_parent_state
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

from . import catalog as catalog_mod
from . import refs
from .cache import find_hit, flake_facts
from .catalog import Catalog
from .durations import format_seconds, parse_duration
from .errors import AutomationError
from .model import Automation, RetryOnFailure, RunOnFailure, Step
from .resolve import Resolver, needs_flake
from .start import AutomationSubmission, check_params, inventory_devices, run_options
from .stepops import DEFAULT_KIND, ChildSpec, child_for, step_view


class AutomationExec:
    """One run of one automation inside its parent task."""

    def __init__(self, ctx: TaskContext, project: Project, cat: Catalog, sub: AutomationSubmission) -> None:
        self.ctx, self.project, self.cat, self.sub = ctx, project, cat, sub
        self.name = sub.automation or ""
        self.devices = inventory_devices(project)
        self.views: dict[str, dict[str, Any]] = {}
        self.superseded: list[int] = []
        self.continued: list[int] = []
        self.resolver = Resolver({}, None, self.views)

    # -- bookkeeping ------------------------------------------------------------------------------
    def _save(self) -> None:
        self.ctx.set_result(superseded=self.superseded, continued=self.continued,
                            steps={k: {"state": v["state"], "task": v["task"]} for k, v in self.views.items()})

    def _record(self, step: Step, label: str, state: TaskState, reason: str) -> TaskRecord:
        """A finished child for a step that never became a task of its own (skipped, or refused)."""
        try:
            kind = self._spec(step).kind
        except (UserError, AutomationError):
            kind = DEFAULT_KIND[step.op]
        title = f"Step {label}" + (f" ({step.op})" if f"({step.op})" not in label else "")
        tid = self.ctx.engine.record(
            title, {"step": label, "op": step.op}, kind=kind, silent=False, parent_id=self.ctx.task_id,
            state=state, error=reason.removeprefix("skipped: "), phase=reason, project=self.ctx.task.project,
            author=self.ctx.task.author,
        )
        self.ctx.children.append(tid)
        return self.ctx.store.get(tid)  # type: ignore[no-any-return]

    def skip(self, step: Step, label: str, reason: str) -> None:
        rec = self._record(step, label, TaskState.SKIPPED, reason)
        if step.name:
            self.views[step.name] = step_view(rec, [], step.op, skipped=reason)

    def _spec(self, step: Step) -> ChildSpec:
        return child_for(step.op, self.resolver.args(step), self.sub.project_dir, self.devices)

    # -- one step -----------------------------------------------------------------------------
    async def step(self, step: Step, label: str) -> tuple[dict[str, Any], str | None]:
        """Run a step; its view for references and, when it failed, why."""
        try:
            if not self.resolver.when(step):
                reason = f"skipped: when {step.when!r} is false"
                self.skip(step, label, reason)
                return self.views.get(step.name or "", step_view(None, [], step.op, skipped=reason)), None
            if step.op == "automation":
                return await self._compose(step, label)
            spec = self._spec(step)
        except (UserError, AutomationError) as e:
            rec = self._record(step, label, TaskState.FAILED, f"step {label}: {e}")
            return self._view(step, rec, []), f"step {label}: {e}"
        retry = step.on_failure if isinstance(step.on_failure, RetryOnFailure) else None
        attempts = 1 + (retry.retry if retry else 0)
        for attempt in range(1, attempts + 1):
            cid = await self.ctx.submit_child(spec.kind, spec.submission, timeout=spec.timeout,
                                              forced=spec.forced or self.ctx.forced)
            self.ctx.progress(None, f"step {label}" + (f" (attempt {attempt} of {attempts})" if attempt > 1 else ""))
            (rec,) = await self.ctx.wait_children([cid])
            if rec.state.ok or attempt == attempts or rec.state == TaskState.CANCELED:
                break
            assert retry is not None
            self.superseded.append(cid)
            self._save()
            delay = parse_duration(retry.delay) if retry.delay else 0.0
            self.ctx.progress(None, f"step {label} failed; retrying in {format_seconds(delay)} "
                                    f"(attempt {attempt + 1} of {attempts})")
            await asyncio.sleep(delay)
        view = self._view(step, rec, spec.targets)
        return view, None if rec.state.ok else f"step {label} failed: {rec.error or rec.state.label}"

    def _view(self, step: Step, rec: TaskRecord, targets: list[str]) -> dict[str, Any]:
        view = step_view(rec, targets, step.op)
        if step.name:
            self.views[step.name] = view
        self._save()
        return view

    async def _compose(self, step: Step, label: str) -> tuple[dict[str, Any], str | None]:
        args = self.resolver.args(step)
        target = args.get("name")
        if not isinstance(target, str):
            raise UserError(f"with.name: {target!r} is not an automation name")
        given = args.get("params", {})
        if not isinstance(given, dict):
            raise UserError(f"with.params: {given!r} is not a table")
        rec = await self.start_other(target, given)
        view = self._view(step, rec, [])
        return view, None if rec.state.ok else f"step {label} failed: automation {target} {rec.state.label}"

    async def start_other(self, target: str, given: dict[str, Any]) -> TaskRecord:
        """Run another automation as a child (author ``automation``, origin this run)."""
        chain = [*self.sub.chain, self.name]
        if target in chain:
            raise UserError(f"recursion refused: {' → '.join([*chain, target])}")
        a = self.cat.runnable(target, direct=False)
        values = check_params(self.cat, self.project, target, given, text=False)
        sub = AutomationSubmission(project_dir=self.sub.project_dir, automation=target, params=values,
                                   chain=chain, direct=False)
        cid = await self.ctx.submit_child(TaskKind.AUTOMATION.value, sub, title=f"Automation {target}",
                                          author="automation", origin_id=self.ctx.task_id, **run_options(a))
        (rec,) = await self.ctx.wait_children([cid])
        return rec

    # -- the run ------------------------------------------------------------------------------
    async def steps(self, steps: Sequence[Step], what: str) -> str | None:
        """Run steps in order; the first failure that stops them (None: they all went through)."""
        stop: str | None = None
        for i, step in enumerate(steps):
            label = step.label(i) if what == "step" else f"{what} hook #{i + 1}" + (f" {step.name}" if step.name else "")
            if stop is not None:
                self.skip(step, label, f"not run: {stop}")
                continue
            view, error = await self.step(step, label)
            if error is None:
                continue
            policy = step.on_failure
            if policy == "continue" and view.get("task") is not None:
                self.continued.append(int(view["task"]))
                self._save()
                self.ctx.warn(f"{error} (on_failure = continue)")
                continue
            if isinstance(policy, RunOnFailure):
                try:
                    await self.start_other(policy.run, {})
                except (UserError, AutomationError) as e:
                    self.ctx.warn(f"on_failure run {policy.run}: {e}")
            stop = error
        return stop

    async def run(self) -> None:
        ctx, sub, name = self.ctx, self.sub, self.name
        if name in sub.chain:
            raise UserError(f"recursion refused: {' → '.join([*sub.chain, name])}")
        try:
            a = self.cat.runnable(name, direct=sub.direct)
            params = check_params(self.cat, self.project, name, sub.params, text=False)
        except AutomationError as e:
            raise UserError(str(e)) from None
        if ctx.attempt > 1:  # the engine retries the run: the earlier attempt's children do not count
            self.superseded.extend(k.id for k in ctx.store.children(ctx.task_id))
        flake = await flake_facts(self.project.path) if needs_flake(a) else None
        self.resolver = Resolver(params, flake, self.views)
        ctx.set_result(automation=name, params=params)
        ctx.plan("steps", [s.label(i) for i, s in enumerate(a.steps)])
        if await self._cached(a):
            return
        failed = await self.steps(a.hooks.before, "before")
        if failed is not None:
            for i, s in enumerate(a.steps):
                self.skip(s, s.label(i), f"not run: {failed}")
        else:
            failed = await self.steps(a.steps, "step")
        if failed is None:
            failed = await self.steps(a.hooks.after, "after")
        else:
            for i, s in enumerate(a.hooks.after):
                self.skip(s, f"after hook #{i + 1}", f"not run: {failed}")
        self._save()
        if failed is not None:
            await self.steps(a.hooks.on_error, "on_error")
            ctx.progress(None, f"stopped: {failed.split(': ', 1)[0]}")
            raise TaskFailed(failed)
        ctx.progress(1.0, f"{len(a.steps)} step(s) done")

    async def _cached(self, a: Automation) -> bool:
        if a.cache is None:
            return False
        key = str(refs.substitute(a.cache.key, self.resolver.value))
        self.ctx.set_result(cache_key=key)
        hit = find_hit(self.ctx.store, self.ctx.task.project or self.sub.project_dir, self.name, key, parse_duration(a.cache.ttl))
        if hit is None:
            return False
        reason = f"skipped: same key as run #{hit}"
        for i, step in enumerate(a.steps):
            self.skip(step, step.label(i), reason)
        self.ctx.set_result(cache_hit=hit)
        self.ctx.progress(1.0, reason)
        return True


class AutomationRun(Operation):
    """The ``automation`` task kind: one automation's run, or a group's run of its members."""

    kind = TaskKind.AUTOMATION.value
    submission_type = AutomationSubmission
    default_timeout = None  # a definition's own timeout, else none: its steps have theirs
    uses_slot = False  # it only waits for its children

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, AutomationSubmission)
        return f"Automation {submission.automation}" if submission.automation else f"Group {submission.group}"

    def final_state(self, task: TaskRecord, own: TaskState, children: Sequence[TaskRecord],
                    has_warnings: bool) -> TaskState | None:
        """Failed attempts that a retry replaced, and failures a step continued past, do not fail the run."""
        ignored = set(task.result.get("superseded", [])) | set(task.result.get("continued", []))
        states = [k.state for k in children if k.id not in ignored]
        return derive_parent_state(own, states, has_warnings)

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, AutomationSubmission)
        project = await open_project(sub.project_dir)
        cat = catalog_mod.from_inventory(project.inventory)
        if sub.group is not None:
            from .groups import GroupExec

            await GroupExec(ctx, project, cat, sub).run()
        else:
            await AutomationExec(ctx, project, cat, sub).run()


OPERATIONS: list[Operation] = [AutomationRun()]
