"""Recovery of tasks whose NixDeck ended (killed, crashed) while they ran: they become `interrupted`.

The owner check and the update are not atomic: between reading a task and finding its owner gone,
that owner may have finished the task and exited. So each task is claimed with a compare-and-set
on the state and owner it was read with; only claimed tasks (and tasks recovery ended before but
whose processes it could not stop yet) have their processes stopped and their steps closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nixdeck.core.tasks.model import TaskRecord, TaskState, utcnow
from nixdeck.core.tasks.procs import is_alive, own_identity, terminate_groups_blocking
from nixdeck.core.tasks.summary import final_phase, finish_steps

if TYPE_CHECKING:
    from nixdeck.core.tasks.store import TaskStore


def stale_tasks(store: TaskStore) -> list[TaskRecord]:
    """Active tasks whose owner is neither this process nor another live NixDeck."""
    me = own_identity()
    stale: list[TaskRecord] = []
    for t in store.active_tasks():
        if (t.owner_pid, t.owner_start) == me:
            continue
        if t.owner_pid is not None and is_alive(t.owner_pid, t.owner_start):
            continue
        stale.append(t)
    return stale


def recover(store: TaskStore, grace: float = 3.0) -> list[int]:
    """Claim every stale task as interrupted, then stop what is left of its processes; returns the ids."""
    now = utcnow()
    claimed: list[TaskRecord] = []
    for t in stale_tasks(store):
        who = f"pid {t.owner_pid}" if t.owner_pid else "it"
        error = t.error or f"NixDeck ({who}) ended while the task was {t.state.label}; its processes were stopped"
        if store.claim_interrupted(t, error, now):
            claimed.append(t)
    leftovers = store.open_processes_of_interrupted()
    terminate_groups_blocking([(p.pid, p.start_ticks) for p in leftovers if p.pid is not None], grace)
    for p in leftovers:
        store.update_process(p.id, ended=now)
    for t in claimed:
        steps = [s for j in store.jobs(t.id) for s in j.steps]
        for s in finish_steps(steps):  # never started: skipped; running: interrupted
            s.ended = s.ended or (now if s.state == TaskState.INTERRUPTED else None)
            store.save_step(t.id, s)
        store.update_task(t.id, phase=final_phase(t, TaskState.INTERRUPTED, steps, []))  # not its last live phrase
    return [t.id for t in claimed]
