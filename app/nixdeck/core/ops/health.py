"""Running a device's health checks (see `core.fleet.health`) after activation, before the confirm:
each attempt is a recorded remote process of the deploy (step ``health``), so its output is in the
task like any other command's."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence

from nixdeck.core.fleet.health import HealthCheck
from nixdeck.core.ops.remote import run_logged
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed


def budget(checks: Sequence[HealthCheck]) -> float:
    """The longest the checks can take: what the device must wait for a decision beyond the window."""
    return sum((c.retries + 1) * c.timeout_s + c.retries * c.interval_s for c in checks)


async def run_checks(
    ctx: TaskContext, session: SshSession, checks: Sequence[HealthCheck], *, job: str,
    tail: collections.deque[str],
) -> str | None:  # fmt: skip
    """Run every check (with its retries); None when all passed, else why the first one failed."""
    for check in checks:
        last = "no attempt"
        for attempt in range(1, check.retries + 2):
            lines: list[str] = []

            def collect(_stream: str, line: str, lines: list[str] = lines) -> None:
                lines.append(line)

            try:
                code = await run_logged(
                    ctx, session, check.command, job=job, step="health", timeout=check.timeout_s, tail=tail,
                    on_line=collect,
                )  # fmt: skip
            except TaskFailed as e:  # timed out, or the connection broke
                last = str(e)
            else:
                if code == 0:
                    break
                said = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
                last = f"exited with code {code}" + (f": {said}" if said else "")
            if attempt <= check.retries:
                await asyncio.sleep(check.interval_s)
        else:
            tries = f" (after {check.retries + 1} attempts)" if check.retries else ""
            return f"health check {check.name} failed{tries}: {last}"
    return None
