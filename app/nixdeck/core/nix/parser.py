"""Incremental, tolerant parser of Nix's stderr (`--log-format internal-json` and plain text).

Feed it raw byte chunks as they arrive (lines may be split anywhere); each `feed` returns the events
the completed lines produced, and the parser's state (messages, derivations, progress) can be read at
any time, e.g. `progress_snapshot()` after each chunk. Nothing in the input makes it raise: unknown
activity/result types, unknown ids, broken JSON, random bytes and huge lines are kept as text or
counted and skipped.

Memory stays flat as the log grows: a line longer than `max_line_bytes` is cut (counted in
`cut_lines`/`cut_bytes`, its head kept as a stderr line); per derivation only the last
`log_lines_kept` build log lines are kept while it builds or after it fails, and the last
`done_lines_kept` once it succeeded (None keeps all); every line is also returned as a `LogLine` event, so a caller that needs the whole log writes
the events to a file (the task's log). Messages are capped at `messages_kept` per kind (newest kept).
Hot path: only lines starting with `@nix {` are JSON-decoded (orjson), progress and log-line results
are handled inline, and no regex runs per line. Version differences handled here: the `<3>` syslog
prefix, records interleaved within a line (2.28, see `framing`), activity 112/113 and results
108/109/110 (Determinate's carry a `payload`), the `sid` key (ignored), `parent` missing (2.8).
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from nixdeck.core.nix.codes import ActivityType
from nixdeck.core.nix.events import Event, LogLine, StderrLine
from nixdeck.core.nix.framing import CutLine, strip_syslog_prefix
from nixdeck.core.nix.messages import strip_ansi
from nixdeck.core.nix.progress import (
    BUILDING,
    CANCELLED,
    DONE,
    FAILED,
    STOPPED,
    UNFINISHED,
    Activity,
    Counter,
    ProgressSnapshot,
)
from nixdeck.core.nix.records import RecordParser

_BUILDS = int(ActivityType.BUILDS)


class NixLogParser(RecordParser):
    """Bytes in, events out. See the module docstring."""

    # ---------------------------------------------------------------- input

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume a chunk of stderr; return the events of the lines it completed."""
        events: list[Event] = []
        if not data or self.closed:
            return events
        if type(data) is not bytes:
            data = bytes(data)
        self._lines(self._framer.feed(data), events)
        return events

    @property
    def cut_lines(self) -> int:
        """Lines longer than `max_line_bytes` (only their head was kept)."""
        return self._framer.cut_lines

    @property
    def cut_bytes(self) -> int:
        return self._framer.cut_bytes

    def _cut(self, line: CutLine, events: list[Event]) -> None:
        self.bad_lines += 1
        text = "".join(c if c.isprintable() else "\ufffd" for c in strip_ansi(line[:200].decode("utf-8", "replace")))
        note = f"[a line of {line.total} bytes was cut to stay within memory: {text}\u2026]"
        self.stderr_lines.append(note)
        events.append(StderrLine(note))

    def close(self) -> list[Event]:
        """End of stream: parse a last unterminated line and settle derivation states."""
        events: list[Event] = []
        if self.closed:
            return events
        self._lines(self._framer.close(), events)
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
        cut_line = CutLine
        for line in lines:
            try:
                if line.__class__ is cut_line:
                    self._cut(line, events)
                    continue
                if line[:1] == b"<":
                    line = strip_syslog_prefix(line)
                if self._broken is not None and self._odd_line(line, events):
                    continue
                if line.startswith(b"@nix {"):
                    try:
                        obj = loads(memoryview(line)[5:])
                    except orjson.JSONDecodeError:
                        if self._odd_line(line, events):
                            continue
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
                                    tail = drv._tail  # inline `add_line`: the hottest path
                                    if tail is None:
                                        drv.add_line(text)
                                    else:
                                        tail.append(text)
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
                elif not self._odd_line(line, events):
                    self._plain_line(line, events)
            except Exception:  # noqa: BLE001 - a log line must never break the parser
                self.bad_lines += 1
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

