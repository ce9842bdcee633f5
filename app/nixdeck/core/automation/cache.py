"""What ``${flake.rev}`` and ``${flake.lock_hash}`` are, and whether a run's cache key already
succeeded within its ttl ("skipped: same key as run #N")."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from nixdeck.core.project import gitrepo
from nixdeck.core.tasks.model import TaskKind, TaskState, utcnow

LOOKBACK = 500  # recent automation runs searched for a cache hit


async def flake_facts(project_dir: Path) -> dict[str, str]:
    """``rev``: the git commit of the flake (``-dirty`` when the tree has changes; ``none`` outside
    git); ``lock_hash``: SHA-256 of flake.lock (``none`` without one)."""
    rev = "none"
    try:
        res = await gitrepo.git(project_dir, "rev-parse", "HEAD", check=False)
        if res.returncode == 0 and res.stdout.strip():
            rev = res.stdout.strip()
            status = await gitrepo.git(project_dir, "status", "--porcelain", "--untracked-files=no", check=False)
            if status.returncode == 0 and status.stdout.strip():
                rev += "-dirty"
    except OSError:
        pass
    try:
        lock_hash = hashlib.sha256((project_dir / "flake.lock").read_bytes()).hexdigest()
    except OSError:
        lock_hash = "none"
    return {"rev": rev, "lock_hash": lock_hash}


def find_hit(store: Any, project: str, automation: str, key: str, ttl: float) -> int | None:
    """The newest successful run of ``automation`` in ``project`` with this key, ended within ``ttl``
    seconds (a run that was itself a cache hit does not count)."""
    since = utcnow() - timedelta(seconds=ttl)
    ok = [TaskState.COMPLETED.value, TaskState.COMPLETED_WITH_WARNINGS.value]
    for t in store.list_tasks(kinds=[TaskKind.AUTOMATION.value], states=ok, limit=LOOKBACK):
        if (t.submission.get("automation") == automation and t.project == project
                and t.result.get("cache_key") == key and not t.result.get("cache_hit")
                and t.ended is not None and t.ended >= since):
            return int(t.id)
    return None
