"""A group run: the parent of its members' runs, in dependency order.

Each member starts as soon as everything it ``depends_on`` has ended, so independent members run
in parallel (within the engine's limits). A member whose dependency failed or was canceled is
submitted and canceled before it starts, with the reason "dependency NAME failed"; a disabled
member is a ``skipped`` child; the group's state derives from its members'.
"""

from __future__ import annotations

import asyncio

from nixdeck.core.project import Project
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind, TaskState

from .catalog import Catalog
from .start import AutomationSubmission, run_options


class GroupExec:
    def __init__(self, ctx: TaskContext, project: Project, cat: Catalog, sub: AutomationSubmission) -> None:
        self.ctx, self.project, self.cat, self.sub = ctx, project, cat, sub
        self.group = sub.group or ""
        self.ended: dict[str, asyncio.Event] = {}
        self.states: dict[str, TaskState] = {}

    async def member(self, name: str) -> None:
        ctx = self.ctx
        entry = self.cat.entry(name)
        assert entry.definition is not None
        deps = [d for d in entry.definition.depends_on if d in self.ended]
        try:
            for dep in deps:
                await self.ended[dep].wait()
            bad = [d for d in deps if not (self.states[d].ok or self.states[d] == TaskState.SKIPPED)]
            sub = AutomationSubmission(project_dir=self.sub.project_dir, automation=name, direct=False)
            why = self.cat.refusal(name, direct=False)
            if why is not None and not bad:
                tid = ctx.engine.record(
                    f"Automation {name}", {"automation": name}, kind=TaskKind.AUTOMATION.value,
                    silent=False, parent_id=ctx.task_id, state=TaskState.SKIPPED, error=why,
                    phase=f"skipped: {why}", project=ctx.task.project, author=ctx.task.author,
                )
                ctx.children.append(tid)
                self.states[name] = TaskState.SKIPPED
                return
            cid = await ctx.submit_child(TaskKind.AUTOMATION.value, sub, title=f"Automation {name}",
                                         **run_options(entry.definition))
            if bad:
                await ctx.engine.cancel(cid, reason=f"dependency {bad[0]} failed")
            (rec,) = await ctx.wait_children([cid])
            self.states[name] = rec.state
            done = sum(1 for s in self.states.values() if s.terminal)
            ctx.progress(done / len(self.ended), f"{done}/{len(self.ended)} members done")
        finally:
            self.states.setdefault(name, TaskState.CANCELED)
            self.ended[name].set()

    async def run(self) -> None:
        why = self.cat.group_refusal(self.group)
        if why is not None:
            raise UserError(why)
        order = [m for level in self.cat.levels(self.group) for m in level]
        self.ended = {m: asyncio.Event() for m in order}
        self.ctx.set_result(group=self.group, order=order)
        self.ctx.progress(0.0, f"0/{len(order)} members done")
        await asyncio.gather(*(self.member(m) for m in order))
        self.ctx.set_result(members={m: self.states[m].value for m in order})
