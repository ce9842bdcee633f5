"""Final phase summaries: what a finished task's `phase` says instead of its last live phrase.

While a task runs its phase is a live phrase ("copying /nix/store/…", "running on kiosk-1"). When it
ends the engine replaces it with one of these, computed from what is recorded (state, steps,
children, result), so every kind gets an honest outcome ("exited 2", "4/4 built", "canceled during
copy", "3/4 deployed · 1 failed") without each operation having to remember it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nixdeck.core.tasks.model import FAILED_STATES, StepRecord, TaskRecord, TaskState

# What a child that ended well did, per parent kind ("4/4 deployed").
_CHILD_VERBS = {"deploy_devices": "deployed", "build_project": "built", "ssh_commands": "done"}
_BAD_VERBS = {
    TaskState.FAILED: "failed",
    TaskState.TIMED_OUT: "timed out",
    TaskState.CANCELED: "canceled",
    TaskState.INTERRUPTED: "interrupted",
}
_BUILD_KINDS = ("build_device", "build_image", "run_vm")
_EXIT_RE = re.compile(r"exited with code (\d+)|killed by signal (\d+)")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _exit_code(result: dict[str, Any]) -> int | None:
    code = result.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _children_summary(kind: str, state: TaskState, kids: Sequence[TaskRecord]) -> str:
    n = len(kids)
    ok = sum(1 for k in kids if k.state.ok)
    failed = sum(1 for k in kids if k.state in FAILED_STATES)
    unstarted = sum(1 for k in kids if k.state == TaskState.CANCELED and k.started is None)
    canceled = sum(1 for k in kids if k.state == TaskState.CANCELED) - unstarted
    parts = [f"{ok}/{n} {_CHILD_VERBS.get(kind, 'done')}"]
    if failed:
        parts.append(f"{failed} failed")
    if canceled:
        parts.append(f"{canceled} canceled")
    if unstarted:
        parts.append(f"{unstarted} not started")
    head = _BAD_VERBS.get(state)
    if head and not (state == TaskState.FAILED and failed):
        parts.insert(0, head)
    return " · ".join(parts)


def _bad_step(state: TaskState, steps: Sequence[StepRecord]) -> StepRecord | None:
    """The step the task ended in: the last started one that did not complete."""
    started = [s for s in steps if s.started is not None and not s.state.ok and s.state != TaskState.SKIPPED]
    same = [s for s in started if s.state == state]
    pick = same or started
    return max(pick, key=lambda s: s.index) if pick else None


def _ok_summary(task: TaskRecord, steps: Sequence[StepRecord]) -> str:
    res = task.result
    code = _exit_code(res)
    warned = f" · {_plural(len(task.warnings), 'warning')}" if task.warnings else ""
    if code is not None:
        return f"exited {code}{warned}"
    devices = res.get("devices")
    if task.kind == "build_project" and isinstance(devices, dict) and devices:
        built = sum(1 for v in devices.values() if isinstance(v, dict) and v.get("out_path"))
        return f"{built}/{len(devices)} built{warned}"
    if task.kind in _BUILD_KINDS and res.get("out_path"):
        return f"1/1 built{warned}"
    if task.kind == "deploy_device" and res.get("outcome"):
        return f"deployed ({res['outcome']}){warned}"
    if task.progress == 1.0 and task.phase:
        return task.phase + warned  # the operation's own final words ("2 input(s) changed")
    ran = [s for s in steps if s.state.ok]
    if ran and len(ran) < len(steps):
        return f"done ({len(ran)} of {len(steps)} steps ran){warned}"
    return f"done{warned}"


def final_phase(task: TaskRecord, state: TaskState, steps: Sequence[StepRecord], kids: Sequence[TaskRecord]) -> str:
    """The phase a task keeps once it ended in `state` (see the module docstring)."""
    if kids:
        return _children_summary(task.kind, state, kids)
    if state.ok:
        return _ok_summary(task, steps)
    verb = _BAD_VERBS.get(state, state.label)
    code = _exit_code(task.result)
    if state == TaskState.FAILED and code not in (None, 0):
        return f"exited {code}"
    if task.started is None:
        return f"{verb} while waiting"
    step = _bad_step(state, steps)
    m = _EXIT_RE.search(task.error or "") if state == TaskState.FAILED else None
    exit_text = (f"exited {m.group(1)}" if m.group(1) else f"killed by signal {m.group(2)}") if m else ""
    if exit_text and (step is None or len(steps) == 1):
        return exit_text
    if step is not None:
        return f"{verb} during {step.name}" + (f" ({exit_text})" if exit_text else "")
    return verb


def finish_steps(steps: Sequence[StepRecord]) -> list[StepRecord]:
    """Steps a finished task left unfinished: never started -> `skipped` (also those canceled before
    they ran); started but not ended -> `interrupted`. Returns the steps it changed."""
    changed = []
    for s in steps:
        never_ran = s.started is None and s.state in (TaskState.PENDING, TaskState.QUEUED, TaskState.CANCELED)
        if never_ran:
            s.state = TaskState.SKIPPED
            s.detail = s.detail or "not run"
        elif not s.state.terminal:
            s.state = TaskState.INTERRUPTED
        else:
            continue
        changed.append(s)
    return changed


_COUNT_RE = re.compile(r" \(×(\d+)\)$")


def add_counted(warnings: Sequence[str], message: str) -> list[str]:
    """`warnings` with `message` added, or its count raised when it is there already ("… (×3)")."""
    out = list(warnings)
    for i, w in enumerate(out):
        m = _COUNT_RE.search(w)
        base, n = (w[: m.start()], int(m.group(1))) if m else (w, 1)
        if base == message:
            out[i] = f"{message} (×{n + 1})"
            return out
    out.append(message)
    return out
