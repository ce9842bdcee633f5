"""Task records: what the store keeps and every view shows (DESIGN §2)."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskState(StrEnum):
    """Lifecycle of a task. `pending` waits for a device lock or its parent, `queued` for a free slot.

    `skipped` is for steps only (a planned step that never ran); a task never ends `skipped`.
    """

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELING = "canceling"
    BACKED_OFF = "backed_off"
    COMPLETED = "completed"
    COMPLETED_WITH_WARNINGS = "completed_with_warnings"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"  # never ran: its condition was false, a cache hit or an earlier failure skipped it

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def ok(self) -> bool:
        return self in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


TERMINAL_STATES = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.COMPLETED_WITH_WARNINGS,
        TaskState.FAILED,
        TaskState.TIMED_OUT,
        TaskState.CANCELED,
        TaskState.INTERRUPTED,
        TaskState.SKIPPED,
    }
)
ACTIVE_STATES = frozenset(set(TaskState) - TERMINAL_STATES)
FAILED_STATES = frozenset({TaskState.FAILED, TaskState.TIMED_OUT, TaskState.INTERRUPTED})


class TaskKind(StrEnum):
    """The operations NixDeck runs. Stored as text, so new kinds need no migration."""

    BUILD_DEVICE = "build_device"
    BUILD_PROJECT = "build_project"
    DEPLOY_DEVICES = "deploy_devices"
    DEPLOY_DEVICE = "deploy_device"
    FLAKE_UPDATE = "flake_update"
    BUILD_IMAGE = "build_image"
    RUN_VM = "run_vm"
    SSH_COMMAND = "ssh_command"
    SSH_COMMANDS = "ssh_commands"
    RUN_COMMAND = "run_command"
    RECORD = "record"
    PROBE_DEVICES = "probe_devices"
    AUTOMATION = "automation"


# kind names as users say them (the window's Kind column and filter, `tasks show`)
KIND_LABELS = {
    "build_device": "Build Device",
    "build_project": "Build Project",
    "deploy_devices": "Deploy Devices",
    "deploy_device": "Deploy to Device",
    "flake_update": "Update Nix Flake",
    "build_image": "Build Image for Device",
    "run_vm": "Run NixOS VM",
    "ssh_command": "Run SSH Command",
    "ssh_commands": "Run SSH Command on Devices",
    "run_command": "Run Command",
    "record": "Record",
}


def kind_label(kind: str) -> str:
    """"Run SSH Command" for `ssh_command`; unknown kinds as words ("my_kind" -> "My kind")."""
    return KIND_LABELS.get(kind) or kind.replace("_", " ").capitalize()


SPECIAL_AUTHORS = ("scheduler", "automation")


def current_author() -> str:
    """The OS user who asked for the task."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def project_key(path: str | os.PathLike[str]) -> str:
    """How a task names its project: the flake directory's real absolute path, so one project is
    one key however it was opened (relative path, symlink, `~`)."""
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_duration(seconds: float) -> str:
    """`4.2s`, `3m07s`, `1h02m03s`: how the CLI and the window show a task's duration."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class StepRecord(BaseModel):
    """One step of a job; steps of a job run in order."""

    model_config = ConfigDict(frozen=False)

    job: str
    index: int
    name: str
    state: TaskState = TaskState.PENDING
    started: datetime | None = None
    ended: datetime | None = None
    detail: str = ""


class JobRecord(BaseModel):
    """A job groups ordered steps; the jobs of one task may run in parallel."""

    name: str
    steps: list[StepRecord] = Field(default_factory=list)

    @property
    def state(self) -> TaskState:
        states = [s.state for s in self.steps]
        if not states:
            return TaskState.PENDING
        for bad in (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.CANCELED, TaskState.INTERRUPTED):
            if bad in states:
                return bad
        if TaskState.RUNNING in states:
            return TaskState.RUNNING
        if all(s.terminal for s in states):
            if TaskState.COMPLETED_WITH_WARNINGS in states:
                return TaskState.COMPLETED_WITH_WARNINGS
            return TaskState.COMPLETED
        if any(s.terminal for s in states):
            return TaskState.RUNNING
        return TaskState.PENDING


class ProcessRecord(BaseModel):
    """One process a task ran: the exact argv, where, with which added environment (redacted).

    A remote command has `remote` set (see core/ops/remote.py RemoteCommandLog)."""

    id: int = 0
    task_id: int
    job: str | None = None
    step: str | None = None
    attempt: int = 1
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    pid: int | None = None
    start_ticks: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    started: datetime | None = None
    ended: datetime | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    stdout_size: int = 0
    stderr_size: int = 0
    # a remote command (no local process): user, host, port, identity, host key, the exact command
    # string sent, and `argv` is then an OpenSSH command line that reproduces it
    remote: dict[str, Any] = Field(default_factory=dict)


class MessageRecord(BaseModel):
    """A parsed message (Nix error/warning/notice/info, or one of NixDeck's own) attached to a task."""

    task_id: int = 0
    level: str  # error | warning | notice | info
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    trace: list[dict[str, Any]] = Field(default_factory=list)
    source: str = "nixdeck"
    created: datetime = Field(default_factory=utcnow)


class TaskRecord(BaseModel):
    """A task as stored: the submission is already redacted."""

    id: int = 0
    kind: str
    title: str
    state: TaskState = TaskState.PENDING
    author: str = Field(default_factory=current_author)
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    ended: datetime | None = None
    project: str | None = None
    devices: list[str] = Field(default_factory=list)
    parent_id: int | None = None
    origin_id: int | None = None
    forced: bool = False
    silent: bool = False
    timeout: float | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    result: dict[str, Any] = Field(default_factory=dict)
    submission: dict[str, Any] = Field(default_factory=dict)
    progress: float | None = None
    phase: str = ""
    attempt: int = 1
    max_attempts: int = 1
    owner_pid: int | None = None
    owner_start: int | None = None
    cancel_requested: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to now while running)."""
        if self.started is None:
            return None
        end = self.ended or utcnow()
        return max(0.0, (end - self.started).total_seconds())

    def summary_json(self) -> dict[str, Any]:
        """The stable `tasks list --json` object."""
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "state": self.state.value,
            "author": self.author,
            "parent_id": self.parent_id,
            "origin_id": self.origin_id,
            "created": self.created.isoformat(),
            "started": self.started.isoformat() if self.started else None,
            "ended": self.ended.isoformat() if self.ended else None,
            "duration": self.duration,
            "devices": self.devices,
            "project": self.project,
            "forced": self.forced,
            "silent": self.silent,
            "error": self.error,
            "progress": self.progress,
            "phase": self.phase,
        }
