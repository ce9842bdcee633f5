"""Retention: `prune` deletes old finished tasks, their children and log files, by age and/or count.

Bad limits are refused, never read as "everything": SQLite takes `OFFSET -1` as 0, so `keep = -1`
would have deleted the whole history.
"""

from __future__ import annotations

import math
import shutil
from datetime import timedelta
from typing import TYPE_CHECKING

from nixdeck.core.tasks.errors import StoreError
from nixdeck.core.tasks.model import TERMINAL_STATES, utcnow

if TYPE_CHECKING:
    from nixdeck.core.tasks.store import TaskStore

MAX_KEEP = 2**62
MAX_DAYS = 36500.0


def check_limits(older_than_days: float | None, keep: int | None) -> None:
    if keep is not None and not 0 <= keep <= MAX_KEEP:
        raise StoreError(f"keep must be between 0 and {MAX_KEEP}, not {keep}")
    if older_than_days is not None and not (math.isfinite(older_than_days) and 0 <= older_than_days <= MAX_DAYS):
        raise StoreError(f"older-than-days must be between 0 and {MAX_DAYS:g}, not {older_than_days:g}")


def prune(store: TaskStore, *, older_than_days: float | None = None, keep: int | None = None) -> int:
    """Delete finished top-level tasks (with children and log files); returns how many top-level ones."""
    check_limits(older_than_days, keep)
    conn = store._conn
    term = [s.value for s in TERMINAL_STATES]
    q = f"SELECT id FROM tasks WHERE parent_id IS NULL AND state IN ({', '.join('?' * len(term))})"
    ids: set[int] = set()
    if older_than_days is not None:
        cutoff = (utcnow() - timedelta(days=older_than_days)).isoformat()
        ids |= {int(r[0]) for r in conn.execute(q + " AND created < ?", (*term, cutoff))}
    if keep is not None:
        rows = conn.execute(q + " ORDER BY id DESC LIMIT -1 OFFSET ?", (*term, keep))
        ids |= {int(r[0]) for r in rows}
    if not ids:
        return 0
    all_ids = set(ids)
    frontier = list(ids)
    while frontier:
        chunk = frontier[:500]
        frontier = frontier[500:]
        q2 = f"SELECT id FROM tasks WHERE parent_id IN ({', '.join('?' * len(chunk))})"
        kids = {int(r[0]) for r in conn.execute(q2, chunk)} - all_ids
        all_ids |= kids
        frontier += list(kids)
    with store.transaction() as c:
        ordered = sorted(all_ids)
        for i in range(0, len(ordered), 500):
            part = ordered[i : i + 500]
            c.execute(f"DELETE FROM tasks WHERE id IN ({', '.join('?' * len(part))})", part)
    for tid in all_ids:
        shutil.rmtree(store.logs_dir / str(tid), ignore_errors=True)
    return len(ids)
