"""Incremental, tolerant parser of Nix's stderr (`--log-format internal-json` and plain text).

Feed it raw byte chunks as they arrive (lines may be split anywhere); each `feed` returns the events
the completed lines produced, and the parser's state (messages, derivations, progress) can be read at
any time, e.g. `progress_snapshot()` after each chunk. Nothing in the input makes it raise: unknown
activity/result types, unknown ids, broken JSON, random bytes and huge lines are kept as text or
counted and skipped.

Memory stays flat as the log grows: per derivation only the last `log_lines_kept` build log lines are
kept while it builds or after it fails, and the last `done_lines_kept` once it succeeded (None keeps
all); every line is also returned as a `LogLine` event, so a caller that needs the whole log writes
the events to a file (the task's log). Messages are capped at `messages_kept` per kind (newest kept).
Hot path: only lines starting with `@nix {` are JSON-decoded (orjson), progress and log-line results
are handled inline, and no regex runs per line.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import replace
from typing import Any

import orjson

from nixdeck.core.nix import plain
from nixdeck.core.nix.codes import (
    KIND_DEBUG,
    KIND_ERROR,
    KIND_INFO,
    KIND_NOTICE,
    KIND_WARNING,
    ActivityType,
    ResultType,
)
from nixdeck.core.nix.events import (
    ActivityStarted,
    ActivityStopped,
    DerivationChanged,
    Event,
    LogLine,
    MessageEvent,
    PhaseChanged,
    StderrLine,
)
from nixdeck.core.nix.messages import NixMessage, message_from_json, message_from_plain, strip_ansi
from nixdeck.core.nix.progress import (
    BUILDING,
    CANCELLED,
    DONE,
    FAILED,
    STOPPED,
    UNFINISHED,
    Activity,
    Counter,
    Derivation,
    ProgressSnapshot,
    ProgressTracker,
)

_BUILD = int(ActivityType.BUILD)
_BUILDS = int(ActivityType.BUILDS)
_POST_BUILD_HOOK = int(ActivityType.POST_BUILD_HOOK)
_COPY_PATHS = int(ActivityType.COPY_PATHS)
_COPY_PATH = int(ActivityType.COPY_PATH)
# The flake's own directory in the store: the source root, or a subdirectory of it for a flake in
# a subdirectory of a git repository (`?dir=`, or a path below the work tree's top).
_FLAKE_EVAL_RE = re.compile(r"^evaluating file '(/nix/store/[a-z0-9]{32}-source(?:/[^']+?)?)/flake\.nix'")
_INTERRUPTED = "interrupted by the user"


def _leading_count(text: str, prefix: str) -> int | None:
    """`copying 3 paths` -> 3."""
    if not text.startswith(prefix):
        return None
    word = text[len(prefix) :].split(" ", 1)[0]
    return int(word) if word.isdigit() else None


def _int(v: object, default: int = 0) -> int:
    return v if type(v) is int else default


class NixLogParser:
    """Bytes in, events out. See the module docstring."""

    def __init__(
        self,
        *,
        log_lines_kept: int | None = 1000,
        messages_kept: int = 1000,
        stderr_kept: int = 500,
        done_lines_kept: int | None = 50,
        max_line_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.log_lines_kept = log_lines_kept
        self.done_lines_kept = done_lines_kept if log_lines_kept is not None else None
        self.max_line_bytes = max_line_bytes
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._acts: dict[int, Activity] = {}
        self.progress = ProgressTracker()
        #: Bumped whenever a counter or a derivation changes (cheap "did anything move?" check).
        self.progress_version = 0
        self.derivations: dict[str, Derivation] = {}
        self._plain_names: dict[str, Derivation] = {}
        self.messages: dict[str, deque[NixMessage]] = {
            k: deque(maxlen=messages_kept) for k in (KIND_ERROR, KIND_WARNING, KIND_NOTICE, KIND_INFO, KIND_DEBUG)
        }
        self.message_counts: dict[str, int] = dict.fromkeys(self.messages, 0)
        self.stderr_lines: deque[str] = deque(maxlen=stderr_kept)
        self.stray_log: deque[str] = deque(maxlen=log_lines_kept)
        self._block: list[str] | None = None
        self._block_level = 0
        self._builds_seen = False
        self._copy_fallback: Activity | None = None
        self._credited_done = 0
        self._credited_failed = 0
        self.plain_copies_expected = 0
        self.plain_copies_started = 0
        self.plain_builds_announced = 0
        #: Store path of the flake being evaluated (`/nix/store/<hash>-source`), when the log shows it.
        self.flake_source: str | None = None
        self.interrupted = False
        self.closed = False
        self.json_lines = 0
        self.plain_lines = 0
        self.bad_lines = 0
        self.log_line_count = 0

    # ---------------------------------------------------------------- input

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume a chunk of stderr; return the events of the lines it completed."""
        events: list[Event] = []
        if not data or self.closed:
            return events
        if type(data) is not bytes:
            data = bytes(data)
        if data.find(b"\n") < 0:
            self._pending.append(data)
            self._pending_len += len(data)
            if self._pending_len > self.max_line_bytes:
                line = b"".join(self._pending)
                self._pending = []
                self._pending_len = 0
                self._lines([line], events)
            return events
        if self._pending:
            self._pending.append(data)
            data = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
        lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            self._pending = [tail]
            self._pending_len = len(tail)
        self._lines(lines, events)
        return events

    def close(self) -> list[Event]:
        """End of stream: parse a last unterminated line and settle derivation states."""
        events: list[Event] = []
        if self.closed:
            return events
        if self._pending:
            line = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
            self._lines([line], events)
        self._flush_block(events)
        self.closed = True
        for d in self.derivations.values():
            if d.state == STOPPED or (d.state == BUILDING and d.activity_id is None):
                # plain logs never say a build ended: no failure named means it succeeded
                self._set_state(d, CANCELLED if self.interrupted else DONE, events)
            elif d.state == BUILDING:
                self._set_state(d, CANCELLED if self.interrupted else UNFINISHED, events)
        return events

    def _lines(self, lines: list[bytes], events: list[Event]) -> None:
        loads = orjson.loads
        acts = self._acts
        for line in lines:
            try:
                if line.startswith(b"@nix {"):
                    try:
                        obj = loads(memoryview(line)[5:])
                    except orjson.JSONDecodeError:
                        self.bad_lines += 1
                        self._plain_line(line, events)
                        continue
                    if type(obj) is not dict:
                        self.bad_lines += 1
                        continue
                    self.json_lines += 1
                    if self._block is not None:
                        self._flush_block(events)
                    action = obj.get("action")
                    if action == "result":
                        rtype = obj.get("type")
                        if rtype == 105:  # progress
                            a = acts.get(obj.get("id"))  # type: ignore[arg-type]
                            f = obj.get("fields")
                            if a is not None and type(f) is list and len(f) >= 4:
                                d, e, r, fl = f[0], f[1], f[2], f[3]
                                if type(d) is int and type(e) is int and type(r) is int and type(fl) is int:
                                    a.done = d
                                    a.expected = e
                                    a.running = r
                                    a.failed = fl
                                    a.reported = True
                                    self.progress_version += 1
                                    if a.type == _BUILDS:
                                        self._builds_seen = True
                        elif rtype == 101:  # build log line
                            f = obj.get("fields")
                            if type(f) is list and f:
                                text = f[0]
                                if type(text) is not str:
                                    text = str(text)
                                a = acts.get(obj.get("id"))  # type: ignore[arg-type]
                                drv = a.derivation if a is not None else None
                                self.log_line_count += 1
                                if drv is not None:
                                    drv.log_tail.append(text)
                                    drv.line_count += 1
                                    events.append(LogLine(drv.drv_path, text))
                                else:
                                    self.stray_log.append(text)
                                    events.append(LogLine(None, text))
                        else:
                            self._result(obj, rtype, events)
                    elif action == "start":
                        self._start(obj, events)
                    elif action == "stop":
                        self._stop(obj, events)
                    elif action == "msg":
                        self._msg(obj, line, events)
                else:
                    self._plain_line(line, events)
            except Exception:  # noqa: BLE001 - a log line must never break the parser
                self.bad_lines += 1

    # --------------------------------------------------------- json records

    def _result(self, obj: dict[str, Any], rtype: object, events: list[Event]) -> None:
        a = self._acts.get(obj.get("id"))  # type: ignore[arg-type]
        f = obj.get("fields")
        if type(f) is not list:
            f = []
        if rtype == ResultType.SET_EXPECTED:
            if a is not None and len(f) >= 2 and type(f[0]) is int and type(f[1]) is int:
                self.progress.set_expected(a, f[0], f[1])
                self.progress_version += 1
        elif rtype == ResultType.SET_PHASE:
            drv = a.derivation if a is not None else None
            if drv is not None and f and isinstance(f[0], str):
                drv.phase = f[0]
                self.progress_version += 1
                events.append(PhaseChanged(drv.drv_path, f[0]))
        elif rtype == ResultType.POST_BUILD_LOG_LINE:
            if f:
                text = f[0] if isinstance(f[0], str) else str(f[0])
                drv = a.derivation if a is not None else None
                self.log_line_count += 1
                if drv is not None:
                    drv.add_line(text)
                else:
                    self.stray_log.append(text)
                events.append(LogLine(drv.drv_path if drv else None, text, post_build=True))
        elif rtype == ResultType.UNTRUSTED_PATH:
            self.progress.untrusted_paths += 1
            self.progress_version += 1
        elif rtype == ResultType.CORRUPTED_PATH:
            self.progress.corrupted_paths += 1
            self.progress_version += 1
        elif rtype == ResultType.FILE_LINKED:
            self.progress.files_linked += 1
            if f:
                self.progress.bytes_linked += _int(f[0])
        # unknown result types are ignored

    def _start(self, obj: dict[str, Any], events: list[Event]) -> None:
        aid = obj.get("id")
        if type(aid) is not int:
            self.bad_lines += 1
            return
        atype = _int(obj.get("type"))
        parent = obj.get("parent")
        fields = obj.get("fields")
        text = obj.get("text")
        act = Activity(
            aid,
            atype,
            _int(obj.get("level"), 3),
            text if isinstance(text, str) else "",
            parent if type(parent) is int and parent != 0 else None,
            fields if type(fields) is list else [],
        )
        old = self._acts.get(aid)
        if old is not None:  # id reused without a stop: retire the old one first
            self._stop({"id": aid}, events)
        self._acts[aid] = act
        self.progress.started(act)
        f = act.fields
        if atype == _BUILD:
            if f and isinstance(f[0], str) and f[0]:
                drv = self._derivation(f[0])
                host = f[1] if len(f) > 1 and isinstance(f[1], str) and f[1] else None
                if host is None and drv.host and drv.state == BUILDING:
                    # ssh-ng forwards the remote daemon's own (local, host "") Build activity for the
                    # same derivation: keep the builder's name and the outer activity
                    act.derivation = drv
                    events.append(ActivityStarted(act))
                    return
                drv.host = host
                drv.activity_id = aid
                act.derivation = drv
                self._set_state(drv, BUILDING, events, force=True)
        elif atype == _COPY_PATHS:
            n = _leading_count(act.text, "copying ")
            if n is not None:
                act.expected = n  # 2.8 reports no progress for ssh-ng copies; a resProgress overrides
                self._copy_fallback = act
        elif atype == _POST_BUILD_HOOK:
            if f and isinstance(f[0], str):
                act.derivation = self.derivations.get(f[0])
        elif act.parent is not None:
            p = self._acts.get(act.parent)
            if p is not None:
                act.derivation = p.derivation
        events.append(ActivityStarted(act))

    def _stop(self, obj: dict[str, Any], events: list[Event]) -> None:
        act = self._acts.pop(obj.get("id"), None)  # type: ignore[arg-type]
        if act is None:
            return
        if act.type == _COPY_PATH:
            fb = self._copy_fallback
            if fb is not None and not fb.reported and fb.id in self._acts:
                fb.done += 1
        elif act is self._copy_fallback:
            self._copy_fallback = None
        self.progress.stopped(act)
        self.progress_version += 1
        drv = act.derivation
        if act.type == _BUILD and drv is not None and drv.activity_id == act.id and drv.state == BUILDING:
            state = STOPPED
            if self._builds_seen:
                c = self.progress.counter(_BUILDS)
                if c.failed > self._credited_failed:
                    self._credited_failed += 1
                    state = FAILED
                elif c.done > self._credited_done:
                    self._credited_done += 1
                    state = DONE
            self._set_state(drv, state, events)
        events.append(ActivityStopped(act))

    def _msg(self, obj: dict[str, Any], line: bytes, events: list[Event]) -> None:
        level = obj.get("level")
        if type(level) is int and level >= 4:
            # debug-level chatter: count it, keep a few, learn the flake's store path
            msg = obj.get("msg")
            text = strip_ansi(msg) if isinstance(msg, str) else ""
            if self.flake_source is None and text.startswith("evaluating file '/nix/store/"):
                m = _FLAKE_EVAL_RE.match(text)
                if m is not None:
                    self.flake_source = m.group(1)
            self._add_message(NixMessage(level, KIND_DEBUG, text, text), events)
            return
        raw = line.decode("utf-8", "replace") if len(line) < 1_000_000 else ""
        self._add_message(message_from_json(obj, raw), events)

    # ----------------------------------------------------------- plain text

    def _plain_line(self, raw: bytes, events: list[Event]) -> None:
        self.plain_lines += 1
        text = strip_ansi(raw.decode("utf-8", "replace"))
        blk = self._block
        if blk is not None:
            if not text.strip() or text.startswith(plain.CONTINUATION_STARTS):
                blk.append(text)
                return
            self._flush_block(events)
        if not text.strip():
            return
        level = plain.block_level(text)
        if level is not None:
            self._block = [text]
            self._block_level = level
            return
        if text.startswith("(use '--show-trace'"):
            self._add_message(NixMessage(2, KIND_NOTICE, text, text, raw=text, source="plain"), events)
            return
        b = plain.building(text)
        if b is not None:
            drv = self._derivation(b[0])
            drv.host = b[1]
            self._plain_names[drv.name] = drv
            self._plain_names[plain.pname(drv.name)] = drv
            self._set_state(drv, BUILDING, events, force=True)
            self._add_message(NixMessage(3, KIND_INFO, text, text, raw=text, source="plain"), events)
            return
        i = text.find("> ")
        if i > 0 and self._plain_names:
            owner = self._plain_names.get(text[:i])
            if owner is not None:
                line = text[i + 2 :]
                owner.add_line(line)
                self.log_line_count += 1
                events.append(LogLine(owner.drv_path, line))
                return
        n = plain.copying_count(text)
        if n is not None:
            self.plain_copies_expected += n
        elif plain.copying_path(text) is not None:
            self.plain_copies_started += 1
        else:
            self.stderr_lines.append(text)
            events.append(StderrLine(text))
            return
        self._add_message(NixMessage(3, KIND_INFO, text, text, raw=text, source="plain"), events)

    def _flush_block(self, events: list[Event]) -> None:
        blk = self._block
        if blk is None:
            return
        self._block = None
        text = "\n".join(blk).rstrip()
        msg = message_from_plain(text, self._block_level)
        if msg.kind == KIND_INFO and text.startswith("these ") and " derivations will be built" in text:
            try:
                self.plain_builds_announced += int(text.split(" ", 2)[1])
            except ValueError:
                pass
        elif msg.kind == KIND_INFO and text.startswith("this derivation will be built"):
            self.plain_builds_announced += 1
        self._add_message(msg, events)

    # -------------------------------------------------------------- helpers

    def _add_message(self, msg: NixMessage, events: list[Event]) -> None:
        self.messages[msg.kind].append(msg)
        self.message_counts[msg.kind] += 1
        if msg.kind == KIND_ERROR:
            text = msg.text
            if _INTERRUPTED in text:
                self.interrupted = True
                for d in self.derivations.values():
                    if d.state in (BUILDING, STOPPED):
                        self._set_state(d, CANCELLED, events)
            for drv_path in plain.failed_derivations(text):
                failed = self._derivation(drv_path)
                if failed.state != FAILED:
                    self._set_state(failed, FAILED, events)
        events.append(MessageEvent(msg))

    def _derivation(self, drv_path: str) -> Derivation:
        d = self.derivations.get(drv_path)
        if d is None:
            d = self.derivations[drv_path] = Derivation(drv_path, self.log_lines_kept)
        return d

    def _set_state(self, d: Derivation, state: str, events: list[Event], force: bool = False) -> None:
        if d.state == state and not force:
            return
        d.state = state
        if state == DONE and self.done_lines_kept is not None and len(d.log_tail) > self.done_lines_kept:
            d.log_tail = deque(d.last_lines(self.done_lines_kept), maxlen=self.done_lines_kept)
        self.progress_version += 1
        events.append(DerivationChanged(d, state))

    # ------------------------------------------------------------- queries

    def progress_snapshot(self) -> ProgressSnapshot:
        """Counters now (cost: one pass over the live activities).

        Plain logs carry no counters: builds are then counted from the derivations seen and copies
        from the `copying N paths` / `copying path` lines.
        """
        snap = self.progress.snapshot()
        if not self._builds_seen and self.derivations and snap.builds == Counter():
            states = [d.state for d in self.derivations.values()]
            done, failed = states.count(DONE), states.count(FAILED)
            running = states.count(BUILDING)
            expected = max(self.plain_builds_announced, len(states))
            snap = replace(snap, builds=Counter(done, expected, running, failed))
        if self.plain_copies_expected and snap.copied_paths == Counter():
            snap = replace(snap, copied_paths=Counter(self.plain_copies_started, self.plain_copies_expected))
        return snap

    def activities(self) -> list[Activity]:
        """Live activities (stopped ones are forgotten to keep memory flat)."""
        return list(self._acts.values())

    def children(self, activity_id: int | None) -> list[Activity]:
        """Live activities whose parent is `activity_id` (None: roots, including 2.8's parentless ones)."""
        return [a for a in self._acts.values() if a.parent == activity_id or (
            activity_id is None and a.parent is not None and a.parent not in self._acts)]

    def log_lines(self, drv_path: str) -> list[str]:
        """All build log lines kept for a derivation (the last `log_lines_kept`)."""
        d = self.derivations.get(drv_path)
        return d.last_lines(None) if d is not None else []

    @property
    def format(self) -> str:
        """`internal-json`, `plain`, `mixed` (JSON with stray plain lines) or `empty`."""
        if self.json_lines and self.plain_lines:
            return "mixed"
        if self.json_lines:
            return "internal-json"
        if self.plain_lines:
            return "plain"
        return "empty"
