"""The JSON records of `--log-format internal-json`: results, activity starts and stops, messages.

Also the lines that are not one clean record: Nix 2.28 interleaves two records within a line, and a
record cut in two by another one is put together again from the next line.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from nixdeck.core.nix.codes import KIND_DEBUG, ActivityType, ResultType
from nixdeck.core.nix.events import ActivityStarted, ActivityStopped, Event, LogLine, PhaseChanged
from nixdeck.core.nix.framing import MARKER, split_records
from nixdeck.core.nix.messages import NixMessage, message_from_json, strip_ansi
from nixdeck.core.nix.parser_state import ParserState
from nixdeck.core.nix.progress import BUILDING, DONE, FAILED, STOPPED, Activity, BuildResult

_BUILD = int(ActivityType.BUILD)
_BUILDS = int(ActivityType.BUILDS)
_POST_BUILD_HOOK = int(ActivityType.POST_BUILD_HOOK)
_COPY_PATHS = int(ActivityType.COPY_PATHS)
_COPY_PATH = int(ActivityType.COPY_PATH)
_FAILED_STATUSES = frozenset((
    "PermanentFailure", "InputRejected", "OutputRejected", "TransientFailure", "CachedFailure", "TimedOut",
    "MiscFailure", "DependencyFailed", "LogLimitExceeded", "NotDeterministic", "NoSubstituters",
))  # fmt: skip
HASH_MISMATCHES_KEPT = 20
# The flake's own directory in the store: the source root, or a subdirectory of it for a flake in
# a subdirectory of a git repository (`?dir=`, or a path below the work tree's top).
_FLAKE_EVAL_RE = re.compile(r"^evaluating file '(/nix/store/[a-z0-9]{32}-source(?:/[^']+?)?)/flake\.nix'")


def _leading_count(text: str, prefix: str) -> int | None:
    """`copying 3 paths` -> 3."""
    if not text.startswith(prefix):
        return None
    word = text[len(prefix) :].split(" ", 1)[0]
    return int(word) if word.isdigit() else None


def _int(v: object, default: int = 0) -> int:
    return v if type(v) is int else default


class RecordParser(ParserState):
    """Handlers of decoded records (see the module docstring)."""

    def _odd_line(self, line: bytes, events: list[Event]) -> bool:
        """A line that is not one clean record: syslog-prefixed, interleaved, or the tail of a cut
        record. Handles it and returns True, or returns False for the normal path."""
        broken, self._broken = self._broken, None
        if broken is not None and not line.startswith(MARKER):
            try:
                obj = orjson.loads(memoryview(broken + line)[5:])
            except orjson.JSONDecodeError:
                obj = None
            if type(obj) is dict:
                self.bad_lines -= 1  # the head was counted as bad when it was cut off
                self._record(obj, broken + line, events)
                return True
        if line.find(MARKER, 1) < 0:
            return False
        self.interleaved_lines += 1
        pieces = split_records(line)
        for i, piece in enumerate(pieces):
            if not piece.startswith(MARKER):
                self._plain_line(piece, events)
                continue
            try:
                obj = orjson.loads(memoryview(piece)[5:])
            except orjson.JSONDecodeError:
                self.bad_lines += 1
                if i == 0:
                    self._broken = piece  # its rest may come on the next line
                continue
            if type(obj) is dict:
                self._record(obj, piece, events)
            else:
                self.bad_lines += 1
        return True

    def _record(self, obj: dict[str, Any], line: bytes, events: list[Event]) -> None:
        """One decoded record outside the hot path."""
        self.json_lines += 1
        if self._block is not None:
            self._flush_block(events)
        action = obj.get("action")
        if action == "result":
            self._result(obj, obj.get("type"), events)
        elif action == "start":
            self._start(obj, events)
        elif action == "stop":
            self._stop(obj, events)
        elif action == "msg":
            self._msg(obj, line, events)
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
        elif rtype == ResultType.FETCH_STATUS:
            if a is not None and f and isinstance(f[0], str):
                a.status = f[0]
        elif rtype == ResultType.FETCH_TO_STORE or rtype == ResultType.BUILD_RESULT:
            payload = obj.get("payload")
            if isinstance(payload, dict):  # Determinate: 109 HashMismatch, 110 BuildResult
                self._payload(a, rtype, payload, events)
            elif a is not None and f and isinstance(f[0], str):  # upstream FetchToStore: [storePath]
                a.status = f[0]
        # unknown result types are ignored

    def _payload(self, a: Activity | None, rtype: object, payload: dict[str, Any], events: list[Event]) -> None:
        if rtype == ResultType.BUILD_RESULT:
            drv = a.derivation if a is not None else None
            drv_path = payload.get("drvPath") or payload.get("drv_path")
            if drv is None and isinstance(drv_path, str) and drv_path:
                drv = self._derivation(drv_path)
            if drv is None:
                return
            status = payload.get("status")
            start, stop, times = payload.get("startTime"), payload.get("stopTime"), payload.get("timesBuilt")
            drv.result = BuildResult(
                status if isinstance(status, str) else None,
                start if type(start) is int else None,
                stop if type(stop) is int else None,
                times if type(times) is int else None,
            )
            self.progress_version += 1
            if isinstance(status, str) and status in _FAILED_STATUSES and drv.state != FAILED:
                self._set_state(drv, FAILED, events)
        else:
            self.hash_mismatch_count += 1
            if len(self.hash_mismatches) < HASH_MISMATCHES_KEPT:
                self.hash_mismatches.append({str(k): v for k, v in list(payload.items())[:20]})

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
                act.announced = n  # 2.8 reports no progress for ssh-ng copies, newer Nix one short
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
            # each path copied: its CopyPaths parent (2.8 names none: the CopyPaths running now)
            owner = self._acts.get(act.parent) if act.parent is not None else None
            if owner is None or owner.type != _COPY_PATHS:
                fb = self._copy_fallback
                owner = fb if fb is not None and fb.id in self._acts else None
            if owner is not None:
                owner.children_done += 1
        elif act is self._copy_fallback:
            self._copy_fallback = None
        self.progress.stopped(act)
        self.progress_version += 1
        drv = act.derivation
        if act.type == _BUILD and drv is not None and drv.activity_id == act.id and drv.state == BUILDING:
            state = STOPPED
            if drv.result is not None and drv.result.status:
                state = FAILED if drv.result.status in _FAILED_STATUSES else DONE
                if self._builds_seen:
                    c = self.progress.counter(_BUILDS)
                    if state == FAILED and c.failed > self._credited_failed:
                        self._credited_failed += 1
                    elif state == DONE and c.done > self._credited_done:
                        self._credited_done += 1
            elif self._builds_seen:
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

