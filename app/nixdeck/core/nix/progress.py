"""Activities, derivations and progress counters, accounted the way Nix's own progress bar does.

Nix reports progress per activity (`resProgress`: done/expected/running/failed, `resSetExpected`:
how many items of a child type a parent expects). The totals for one activity type are: the sums
of its live activities, plus what stopped activities finished, with `expected` raised to what
parents announced (see `progress-bar.cc`). Counters of different units are kept apart: builds,
copied paths, copied bytes, downloaded bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from nixdeck.core.nix.codes import ActivityType

_COPY_PATHS = int(ActivityType.COPY_PATHS)

# Derivation states.
BUILDING = "building"
STOPPED = "stopped"  # the Build activity ended; success not yet known (no progress seen)
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
UNFINISHED = "unfinished"  # still building when the log ended


class Activity:
    """A live (or just stopped) Nix activity. `parent` is None when Nix did not say (2.8) or 0.

    `children_done` counts the per-item child activities that ended (CopyPath under CopyPaths) and
    `announced` the count the start text gave (`copying 3 paths`): over ssh-ng Nix reports CopyPaths
    progress before each path is sent, so its own counter stops one short. `status` is the last
    FetchStatus (2.20+) of a FetchTree activity.
    """

    __slots__ = (
        "id", "type", "level", "text", "parent", "fields",
        "done", "expected", "running", "failed", "expected_by_type", "derivation", "reported",
        "children_done", "announced", "status",
    )

    def __init__(self, aid: int, atype: int, level: int, text: str, parent: int | None, fields: list[Any]) -> None:
        self.id = aid
        self.type = atype
        self.level = level
        self.text = text
        self.parent = parent
        self.fields = fields
        self.done = 0
        self.expected = 0
        self.running = 0
        self.failed = 0
        self.expected_by_type: dict[int, int] | None = None
        self.derivation: Derivation | None = None
        self.reported = False  # got a resProgress
        self.children_done = 0
        self.announced = 0
        self.status: str | None = None

    def __repr__(self) -> str:
        return f"Activity(id={self.id}, type={self.type}, text={self.text!r})"

    @property
    def items_done(self) -> int:
        return max(self.done, self.children_done)

    @property
    def items_expected(self) -> int:
        return max(self.expected, self.announced, self.children_done)


def drv_name(drv_path: str) -> str:
    """`/nix/store/<hash>-nixos-system-x-1.drv` -> `nixos-system-x-1`."""
    base = drv_path.rsplit("/", 1)[-1]
    if len(base) > 33 and base[32] == "-":
        base = base[33:]
    return base[:-4] if base.endswith(".drv") else base


_NO_LINES: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Determinate Nix's BuildResult (result 110): how the build ended and when (Unix seconds)."""

    status: str | None = None
    start_time: int | None = None
    stop_time: int | None = None
    times_built: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "start_time": self.start_time, "stop_time": self.stop_time,
                "times_built": self.times_built}

    def describe(self) -> str:
        """`built in 12 s (status Built)`, for the derivation's info."""
        parts = []
        if self.start_time is not None and self.stop_time is not None and self.stop_time >= self.start_time:
            parts.append(f"built in {self.stop_time - self.start_time} s")
        if self.status:
            parts.append(f"status {self.status}")
        return ", ".join(parts)


class Derivation:
    """A derivation being or having been built: state, host, phase and the tail of its build log.

    `log_tail` keeps the last `max_lines` lines (None: all); it is made on the first line, so a
    derivation that printed nothing costs only this object (a log naming 500k derivations stays
    small). Every line is also emitted as a `LogLine` event, so callers that want the full log
    stream it to a file. `result` is Determinate Nix's BuildResult when the log carried one.
    """

    __slots__ = ("drv_path", "state", "host", "phase", "_tail", "_max", "line_count", "activity_id", "result")

    def __init__(self, drv_path: str, max_lines: int | None) -> None:
        self.drv_path = drv_path
        self.state = BUILDING
        self.host: str | None = None
        self.phase: str | None = None
        self._tail: deque[str] | None = None
        self._max = max_lines
        self.line_count = 0
        self.activity_id: int | None = None
        self.result: BuildResult | None = None

    @property
    def name(self) -> str:
        return drv_name(self.drv_path)

    @property
    def log_tail(self) -> deque[str] | tuple[str, ...]:
        return self._tail if self._tail is not None else _NO_LINES

    def add_line(self, line: str) -> None:
        tail = self._tail
        if tail is None:
            tail = self._tail = deque(maxlen=self._max)
        tail.append(line)
        self.line_count += 1

    def keep_last(self, n: int) -> None:
        """Drop all but the last `n` kept lines (and keep at most `n` from now on)."""
        self._max = n
        if self._tail is not None:
            self._tail = deque(self._tail, maxlen=n)

    def last_lines(self, n: int | None = None) -> list[str]:
        """The last `n` kept lines (all kept lines when n is None)."""
        tail = self.log_tail
        if n is None or n >= len(tail):
            return list(tail)
        if n <= 0:
            return []
        return list(tail)[-n:]

    def to_json(self, last_lines: int | None = 20) -> dict[str, Any]:
        out: dict[str, Any] = {
            "drv_path": self.drv_path,
            "name": self.name,
            "state": self.state,
            "host": self.host,
            "machine": self.host,
            "phase": self.phase,
            "log_lines": self.line_count,
            "last_log_lines": self.last_lines(last_lines),
        }
        if self.result is not None:
            out["build_result"] = self.result.to_json()
        return out


@dataclass(frozen=True, slots=True)
class Counter:
    """done/expected/running/failed of one kind of item (builds, paths, bytes)."""

    done: int = 0
    expected: int = 0
    running: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"done": self.done, "expected": self.expected, "running": self.running, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Cheap copy of the counters at one moment (see `NixLogParser.progress_snapshot`)."""

    builds: Counter
    copied_paths: Counter
    copied_bytes: Counter
    downloaded_bytes: Counter
    untrusted_paths: int
    corrupted_paths: int
    running_builds: tuple[tuple[str, str | None, str | None], ...]  # (drv_path, host, phase)

    def to_json(self) -> dict[str, Any]:
        return {
            "builds": self.builds.to_json(),
            "copies": {
                "paths": self.copied_paths.to_json(),
                "bytes": self.copied_bytes.to_json(),
            },
            "downloads": self.downloaded_bytes.to_json(),
            "untrusted_paths": self.untrusted_paths,
            "corrupted_paths": self.corrupted_paths,
        }


class _TypeTotals:
    __slots__ = ("done", "failed", "expected", "live", "seen")

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.expected = 0
        self.live: dict[int, Activity] = {}
        self.seen = False


class ProgressTracker:
    """Per-activity-type totals (Nix's `ActivitiesByType`)."""

    def __init__(self) -> None:
        self.by_type: dict[int, _TypeTotals] = {}
        self.untrusted_paths = 0
        self.corrupted_paths = 0
        self.files_linked = 0
        self.bytes_linked = 0

    def totals(self, atype: int) -> _TypeTotals:
        t = self.by_type.get(atype)
        if t is None:
            t = self.by_type[atype] = _TypeTotals()
        return t

    def started(self, act: Activity) -> None:
        self.totals(act.type).live[act.id] = act

    def stopped(self, act: Activity) -> None:
        t = self.totals(act.type)
        t.live.pop(act.id, None)
        t.done += act.items_done if act.type == _COPY_PATHS else act.done
        t.failed += act.failed
        if act.expected_by_type:
            for child, n in act.expected_by_type.items():
                self.totals(child).expected -= n

    def set_expected(self, act: Activity, child_type: int, n: int) -> None:
        if act.expected_by_type is None:
            act.expected_by_type = {}
        t = self.totals(child_type)
        t.expected += n - act.expected_by_type.get(child_type, 0)
        t.seen = True
        act.expected_by_type[child_type] = n

    def counter(self, atype: int) -> Counter:
        t = self.by_type.get(atype)
        if t is None:
            return Counter()
        done, expected, running, failed = t.done, t.done, 0, t.failed
        items = atype == _COPY_PATHS
        for a in t.live.values():
            done += a.items_done if items else a.done
            expected += a.items_expected if items else a.expected
            running += a.running
            failed += a.failed
        return Counter(done, max(expected, t.expected), running, failed)

    def seen(self, atype: int) -> bool:
        """Whether any progress for this activity type was reported."""
        t = self.by_type.get(atype)
        return t is not None and t.seen

    def snapshot(self) -> ProgressSnapshot:
        running = tuple(
            (a.derivation.drv_path, a.derivation.host, a.derivation.phase)
            for a in self.totals(ActivityType.BUILD).live.values()
            if a.derivation is not None
        )
        return ProgressSnapshot(
            builds=self.counter(ActivityType.BUILDS),
            copied_paths=self.counter(ActivityType.COPY_PATHS),
            copied_bytes=self.counter(ActivityType.COPY_PATH),
            downloaded_bytes=self.counter(ActivityType.FILE_TRANSFER),
            untrusted_paths=self.untrusted_paths,
            corrupted_paths=self.corrupted_paths,
            running_builds=running,
        )
