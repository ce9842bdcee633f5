"""Cutting Nix's stderr byte stream into records, whatever shape the lines arrive in.

- Lines may be split anywhere across chunks; a line longer than `max_line_bytes` is cut: only its
  first `head_bytes` are kept (to say what it was) and the rest is counted and dropped until the
  next newline, so input without newlines (`/dev/zero`, a 200 MB line) keeps memory bounded.
- Up to 2.27 (and Lix) under systemd every line starts with a `<3>`-style syslog prefix.
- Nix 2.28 writes records without a lock: two records can interleave within one line
  (`@nix {A…@nix {B}` then `…A}` on the next line, or `@nix {A}@nix {B}`).
"""

from __future__ import annotations

MARKER = b"@nix {"


class CutLine(bytes):
    """The head of a line that was too long, in its place among the lines; `total` its full length."""

    total: int

    def __new__(cls, head: bytes, total: int) -> CutLine:
        obj = super().__new__(cls, head)
        obj.total = total
        return obj


class LineFramer:
    """Bytes in, complete lines out (without the newline), with long lines cut. See the module doc."""

    def __init__(self, max_line_bytes: int, head_bytes: int = 4096) -> None:
        self.max_line_bytes = max_line_bytes
        self.head_bytes = min(head_bytes, max_line_bytes)
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._cut_head: bytes | None = None  # head of the line being cut
        self._cut_len = 0
        self.cut_lines = 0
        self.cut_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines of `data` (plus what was pending); a cut line comes as a `CutLine`."""
        if self._cut_head is None and not self._pending and len(data) <= self.max_line_bytes:
            lines = data.split(b"\n")  # the usual chunk: no line in it can be too long
            tail = lines.pop()
            if tail:
                self._grow(tail)
            return lines
        out: list[bytes] = []
        nl = data.find(b"\n")
        if nl < 0:
            self._grow(data)
            return out
        if self._cut_head is not None:
            self._cut_len += nl
            out.append(self._finish_cut())
            data = data[nl + 1 :]
        elif self._pending:
            first = b"".join(self._pending) + data[:nl]
            self._pending = []
            self._pending_len = 0
            if len(first) > self.max_line_bytes:
                self._cut_head, self._cut_len = first[: self.head_bytes], len(first)
                out.append(self._finish_cut())
            else:
                out.append(first)
            data = data[nl + 1 :]
        lines = data.split(b"\n")
        tail = lines.pop()
        limit = self.max_line_bytes
        for line in lines:
            if len(line) > limit:
                self._cut_head, self._cut_len = line[: self.head_bytes], len(line)
                out.append(self._finish_cut())
            else:
                out.append(line)
        if tail:
            self._grow(tail)
        return out

    def close(self) -> list[bytes]:
        """The last unterminated line (if any); a line being cut is counted."""
        if self._cut_head is not None:
            return [self._finish_cut()]
        if not self._pending:
            return []
        line = b"".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return [line]

    def _grow(self, data: bytes) -> None:
        if self._cut_head is not None:
            self._cut_len += len(data)
            return
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len > self.max_line_bytes:
            line = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
            self._cut_head, self._cut_len = line[: self.head_bytes], len(line)

    def _finish_cut(self) -> CutLine:
        assert self._cut_head is not None
        self.cut_lines += 1
        self.cut_bytes += self._cut_len - len(self._cut_head)
        cut = CutLine(self._cut_head, self._cut_len)
        self._cut_head = None
        self._cut_len = 0
        return cut


def strip_syslog_prefix(line: bytes) -> bytes:
    """`<3>@nix {...}` -> `@nix {...}` (the prefix Nix adds under systemd)."""
    if len(line) >= 3 and line[0] == 0x3C and line[2] == 0x3E and 0x30 <= line[1] <= 0x37:
        return line[3:]
    return line


def split_records(line: bytes) -> list[bytes]:
    """A line holding several records (and maybe plain text before them), one piece per record."""
    pieces: list[bytes] = []
    start = 0
    pos = line.find(MARKER, 1)
    while pos > 0:
        if pos > start:
            pieces.append(line[start:pos])
        start = pos
        pos = line.find(MARKER, pos + 1)
    pieces.append(line[start:])
    return pieces
