"""Nix messages (errors, warnings, ...) as typed values, built from internal-json or plain text.

Nix renders an error as text (with ANSI colours, code excerpts and `… while ...` trace frames) and,
in internal-json, also as fields (`raw_msg`, `file`, `line`, `column`, `trace`). Which fields are filled
depends on the version (2.26 glues `:line:col` to `file` and leaves type errors' location only in the
text or in `trace[]`), so both sources are read and merged here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nixdeck.core.nix.codes import KIND_ERROR, KIND_NOTICE, KIND_WARNING, kind_of_level

_ANSI_RE = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_AT_RE = re.compile(r"^\s*at (.+?):(\d+):(\d+):?\s*$")
_LOCATED_RE = re.compile(r"\blocated at (.+?):(\d+):(\d+):?\s*$")
_GLUED_RE = re.compile(r"^(.*?):(\d+):(\d+)$")
_FRAME_PREFIXES = ("\u2026 ", "... ")
_SHOW_TRACE_HINT = "(use '--show-trace'"
# 2.29+: "Cannot build 'X.drv'.\nReason: builder failed with exit code 1.\nOutput paths: ..."
_CANNOT_BUILD_RE = re.compile(r"^Cannot build '(/nix/store/[^']+\.drv)'\.?\s*Reason: ([^\n]*?)\.?\s*(?:\n|$)", re.S)
_DEPS_FAILED_RE = re.compile(r"^(\d+) dependenc(?:y|ies) failed$")
#: Frames of an evaluation trace kept per message (infinite recursion gives thousands): the first
#: TRACE_HEAD (innermost in the JSON order) and the last TRACE_TAIL; `trace_frames` keeps the count.
TRACE_HEAD = 40
TRACE_TAIL = 10
#: Longest rendered text kept per message (head and tail kept, the middle cut with a note).
TEXT_KEPT = 64 * 1024


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences (colours) and carriage returns."""
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    if "\r" in text:
        text = text.replace("\r", "")
    return text


@dataclass(frozen=True, slots=True)
class TraceFrame:
    """One `… while ...` frame of an evaluation trace, outermost first."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "file": self.file, "line": self.line, "column": self.column}


@dataclass(frozen=True, slots=True)
class NixMessage:
    """A message Nix printed. `message` is the short text, `text` the full rendering (ANSI stripped).

    `kind` is error/warning/notice/info/debug; `trace:` output (logged by Nix at error level) and
    the `(use '--show-trace' ...)` hint are re-kinded to warning and notice.
    """

    level: int
    kind: str
    message: str
    text: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    trace: tuple[TraceFrame, ...] = ()
    raw: str = ""
    source: str = "json"
    trace_frames: int = 0  # frames Nix gave (more than `trace` holds when it was capped)

    def to_json(self) -> dict[str, Any]:
        out = {
            "level": self.level,
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "trace": [f.to_json() for f in self.trace],
            "text": self.text,
        }
        if self.trace_frames > len(self.trace):
            out["trace_frames"] = self.trace_frames
        return out

    @property
    def location(self) -> str | None:
        """`file:line:column` (or less) when known."""
        return format_location(self.file, self.line, self.column)


def format_location(file: str | None, line: int | None, column: int | None) -> str | None:
    if not file:
        return None
    if line is None:
        return file
    if column is None:
        return f"{file}:{line}"
    return f"{file}:{line}:{column}"


@dataclass(slots=True)
class ParsedText:
    """What `parse_message_text` finds in a rendered Nix error."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    frames: list[TraceFrame] = field(default_factory=list)


def is_source_file(path: str) -> bool:
    """A location a person can open: not Nix's own `<nix/derivation-internal.nix>`, `«none»` or `(string)`."""
    return not path.startswith(("<", "\u00ab", "(string)", "(stdin)"))


def _loc(m: re.Match[str]) -> tuple[str, int, int]:
    return m.group(1), int(m.group(2)), int(m.group(3))


def _strip_prefix(text: str) -> str:
    for p in ("error:", "warning:"):
        if text.startswith(p):
            return text[len(p) :].strip()
    return text.strip()


def parse_message_text(text: str) -> ParsedText:
    """Read message, location and trace frames out of Nix's rendered error text.

    Handles the 2.8 layout (message, `at` line, frames after) and the 2.26 layout (`error:` on its
    own, frames outermost first, the real message last as a nested `error: ...`). The location is the
    message's own `at` line if there is one, else the innermost frame that has a location.
    """
    lines = text.split("\n")
    headline = _strip_prefix(lines[0]) if lines else ""
    if headline.endswith(";"):
        headline = headline[:-1]
    head_loc: tuple[str, int, int] | None = None
    tail_msg: str | None = None
    tail_loc: tuple[str, int, int] | None = None
    frames: list[list[Any]] = []  # [message, file, line, column]
    where = "head"
    for raw_line in lines[1:]:
        s = raw_line.strip()
        if not s:
            continue
        if s.startswith(_FRAME_PREFIXES):
            frames.append([s[2:].strip() if s[0] == "\u2026" else s[4:].strip(), None, None, None])
            where = "frame"
            continue
        if s.startswith("error:") and (frames or not headline):
            tail_msg = s[6:].strip()
            where = "tail"
            continue
        m = _AT_RE.match(s) or _LOCATED_RE.search(s)
        if m is None:
            continue
        found = _loc(m)
        if where == "head" and head_loc is None:
            head_loc = found
        elif where == "tail" and tail_loc is None:
            tail_loc = found
        elif where == "frame" and frames[-1][1] is None:
            frames[-1][1:] = found
    message = tail_msg or headline
    if not message:
        message = next((ln.strip() for ln in lines if ln.strip()), "")
    out = ParsedText(message=message, frames=[TraceFrame(f[0], f[1], f[2], f[3]) for f in frames])
    loc: tuple[str, int, int] | None = tail_loc or head_loc
    if loc is None or not is_source_file(loc[0]):
        # innermost frame in a real file: 2.26 renders frames outermost first, 2.8 innermost first
        for fr in (reversed(out.frames) if tail_msg else out.frames):
            if fr.file and is_source_file(fr.file):
                loc = (fr.file, fr.line or 0, fr.column or 0)
                break
    if loc is not None:
        out.file, out.line, out.column = loc
    return out


def _opt_int(v: object) -> int | None:
    return v if type(v) is int else None


def split_location(file: object, line: object, column: object) -> tuple[str | None, int | None, int | None]:
    """Normalise a JSON position; Nix 2.26 glues `:line:col` onto `file`."""
    f = file if isinstance(file, str) and file else None
    ln, col = _opt_int(line), _opt_int(column)
    if f is not None:
        m = _GLUED_RE.match(f)
        if m is not None:
            f = m.group(1)
            if ln is None:
                ln = int(m.group(2))
            if col is None:
                col = int(m.group(3))
    return f, ln, col


def cap_frames(frames: list[TraceFrame]) -> tuple[tuple[TraceFrame, ...], int]:
    """At most TRACE_HEAD + TRACE_TAIL frames, and how many there were."""
    n = len(frames)
    if n <= TRACE_HEAD + TRACE_TAIL:
        return tuple(frames), n
    return (*frames[:TRACE_HEAD], *frames[-TRACE_TAIL:]), n


def cap_text(text: str) -> str:
    if len(text) <= TEXT_KEPT:
        return text
    half = TEXT_KEPT // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


def normalise_build_failure(message: str) -> str:
    """Newer Nix's "Cannot build 'X'.\nReason: ..." as the one line older Nix printed, so a task says
    the same on every version: "builder for 'X' failed with exit code 1",
    "1 dependencies of derivation 'X' failed to build"; other reasons: "Cannot build 'X': reason"."""
    m = _CANNOT_BUILD_RE.match(message)
    if m is None:
        return message
    drv, reason = m.group(1), m.group(2).strip()
    if reason.startswith("builder failed"):
        return f"builder for '{drv}' {reason[len('builder '):]}"
    deps = _DEPS_FAILED_RE.match(reason)
    if deps is not None:
        return f"{deps.group(1)} dependencies of derivation '{drv}' failed to build"
    return f"Cannot build '{drv}': {reason}"


def _kind(level: int, text: str) -> str:
    kind = kind_of_level(level)
    if kind == KIND_ERROR:
        if text.startswith("trace:"):
            return KIND_WARNING
        if text.startswith(_SHOW_TRACE_HINT):
            return KIND_NOTICE
        if text.startswith("warning:"):
            return KIND_WARNING
    return kind


def message_from_json(obj: dict[str, Any], raw: str = "") -> NixMessage:
    """Build a NixMessage from a decoded `{"action":"msg",...}` record (never raises on odd fields)."""
    level = obj.get("level")
    lvl = level if type(level) is int else 3
    msg = obj.get("msg")
    text = strip_ansi(msg if isinstance(msg, str) else "" if msg is None else str(msg)).rstrip()
    kind = _kind(lvl, text)
    file, line, column = split_location(obj.get("file"), obj.get("line"), obj.get("column"))
    frames: list[TraceFrame] = []
    tr = obj.get("trace")
    n_frames = len(tr) if isinstance(tr, list) else 0
    if isinstance(tr, list):
        if n_frames > TRACE_HEAD + TRACE_TAIL:
            tr = tr[:TRACE_HEAD] + tr[-TRACE_TAIL:]
        for fr in tr:
            if isinstance(fr, dict):
                ff, fl, fc = split_location(fr.get("file"), fr.get("line"), fr.get("column"))
                rm = fr.get("raw_msg")
                frames.append(TraceFrame(strip_ansi(rm) if isinstance(rm, str) else "", ff, fl, fc))
    if kind not in (KIND_ERROR, KIND_WARNING):
        text = cap_text(text)
        return NixMessage(lvl, kind, text, text, file, line, column, tuple(frames), raw, trace_frames=n_frames)
    parsed = parse_message_text(text)
    raw_msg = obj.get("raw_msg")
    if kind == KIND_ERROR and isinstance(raw_msg, str) and raw_msg.strip():
        message = normalise_build_failure(strip_ansi(raw_msg).strip())
    elif kind == KIND_ERROR:
        message = parsed.message
    else:
        message = _strip_prefix(text)
    if (file is None or not is_source_file(file)) and frames:
        for fr in frames:  # the JSON trace lists the innermost frame first
            if fr.file and is_source_file(fr.file):
                file, line, column = fr.file, fr.line, fr.column
                break
    if (file is None or not is_source_file(file)) and parsed.file is not None:
        if file is None or is_source_file(parsed.file):
            file, line, column = parsed.file, parsed.line, parsed.column
    if not frames:
        frames = parsed.frames
        n_frames = len(frames)
    kept, _ = cap_frames(frames)
    return NixMessage(lvl, kind, cap_text(message), cap_text(text), file, line, column, kept, raw[:TEXT_KEPT],
                      trace_frames=n_frames)


def message_from_plain(text: str, level: int) -> NixMessage:
    """Build a NixMessage from a plain-format block (`error: ...` with its indented lines)."""
    text = strip_ansi(text).rstrip()
    kind = _kind(level, text)
    if kind == KIND_ERROR:
        p = parse_message_text(text)
        kept, n = cap_frames(p.frames)
        message = p.message
        if message.startswith("Cannot build '"):  # 2.29+: the reason is on the next line of the block
            whole = _strip_prefix(text)
            normalised = normalise_build_failure(whole)
            message = normalised if normalised != whole else message
        return NixMessage(level, kind, cap_text(message), cap_text(text), p.file, p.line, p.column, kept,
                          cap_text(text), "plain", trace_frames=n)
    return NixMessage(level, kind, _strip_prefix(text), text, None, None, None, (), text, "plain")
