"""The state of a Nix log parser, its plain-text reading and the helpers every record kind uses.

`NixLogParser` (parser.py) is built on `RecordParser` (records.py, the JSON records), which is built
on `ParserState`; they are split only to keep each module small.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nixdeck.core.nix import plain
from nixdeck.core.nix.codes import KIND_DEBUG, KIND_ERROR, KIND_INFO, KIND_NOTICE, KIND_WARNING
from nixdeck.core.nix.events import DerivationChanged, Event, LogLine, MessageEvent, StderrLine
from nixdeck.core.nix.framing import LineFramer
from nixdeck.core.nix.messages import NixMessage, message_from_plain, strip_ansi
from nixdeck.core.nix.progress import (
    BUILDING,
    CANCELLED,
    DONE,
    FAILED,
    STOPPED,
    Activity,
    Derivation,
    ProgressTracker,
)

_INTERRUPTED = "interrupted by the user"


class ParserState:
    """Messages, derivations, activities and counters of one log; plain-text lines."""

    def __init__(
        self,
        *,
        log_lines_kept: int | None = 1000,
        messages_kept: int = 1000,
        stderr_kept: int = 500,
        done_lines_kept: int | None = 50,
        max_line_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.log_lines_kept = log_lines_kept
        self.done_lines_kept = done_lines_kept if log_lines_kept is not None else None
        self.max_line_bytes = max_line_bytes
        self._framer = LineFramer(max_line_bytes)
        self._broken: bytes | None = None  # head of a record another record cut in two (2.28)
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
        self.interleaved_lines = 0
        #: Determinate Nix's HashMismatch payloads (the first few) and their count.
        self.hash_mismatches: list[dict[str, Any]] = []
        self.hash_mismatch_count = 0

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
            d.keep_last(self.done_lines_kept)
        self.progress_version += 1
        events.append(DerivationChanged(d, state))

