"""LineIndex: a sparse line index over an append-only log file, read in bounded pieces.

Only the byte offset of every BLOCK-th line is kept (a 1 GB log of 10M lines costs ~5 MB), and a
line is read back by reading its small block. Indexing and searching advance a bounded number of
bytes per call, so the GUI can do them in timer ticks and never holds a whole log in memory.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from itertools import accumulate, repeat
from operator import add
from pathlib import Path
from typing import BinaryIO

BLOCK = 16  # lines per block
MAX_BLOCK_BYTES = 8 * 1024 * 1024  # a block of giant lines is cut here
CACHE_BLOCKS = 256
READ = 1024 * 1024


class LineIndex:
    """Byte offsets of lines 0, BLOCK, 2·BLOCK, … of a file that only grows."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.reset()

    def reset(self) -> None:
        self.marks = array("Q", [0])  # marks[k] = offset of line k*BLOCK
        self.lines = 0  # complete lines indexed
        self.indexed = 0  # offset just after the last complete line
        self.max_line = 0  # longest line seen, in bytes
        self._cache: OrderedDict[int, list[bytes]] = OrderedDict()
        self._fh: BinaryIO | None = None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _file(self) -> BinaryIO | None:
        if self._fh is None and self.path is not None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open while the view lives
            except OSError:
                return None
        return self._fh

    def size(self) -> int:
        """Current size of the file on disk (0 when it does not exist yet)."""
        if self.path is None:
            return 0
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def pending(self) -> int:
        """Bytes on disk not indexed yet (negative when the file shrank: call reset())."""
        return self.size() - self.indexed

    def index_more(self, budget: int = READ) -> int:
        """Index up to about `budget` more bytes; returns the number of new complete lines."""
        f = self._file()
        if f is None:
            return 0
        f.seek(self.indexed)
        data = f.read(budget)
        cut = data.rfind(b"\n") + 1
        while cut == 0 and len(data) >= budget and len(data) < MAX_BLOCK_BYTES:
            more = f.read(budget)  # one line longer than the budget: read on to its end
            if not more:
                break
            data += more
            cut = data.rfind(b"\n") + 1
        if cut == 0:
            return 0
        parts = data[:cut].split(b"\n")
        parts.pop()  # empty piece after the final newline
        lens = list(map(len, parts))
        if lens:
            self.max_line = max(self.max_line, max(lens))
        ends = accumulate(map(add, lens, repeat(1)))  # starts of the following lines, relative
        first = (-(self.lines + 1)) % BLOCK  # first i whose next line number is a multiple of BLOCK
        base = self.indexed
        ends_list = list(ends)
        self.marks.extend(base + e for e in ends_list[first::BLOCK])
        self.lines += len(parts)
        self.indexed += cut
        return len(parts)

    # -- reading lines ----------------------------------------------------------------------
    def _block(self, k: int) -> list[bytes]:
        cached = self._cache.get(k)
        if cached is not None:
            self._cache.move_to_end(k)
            return cached
        f = self._file()
        count = min(BLOCK, self.lines - k * BLOCK)
        if f is None or count <= 0:
            return []
        start = self.marks[k]
        end = self.marks[k + 1] if k + 1 < len(self.marks) else self.indexed
        f.seek(start)
        data = f.read(min(end - start, MAX_BLOCK_BYTES))
        lines = data.split(b"\n")[:count]
        if end - start > MAX_BLOCK_BYTES:
            lines[-1] += " … (cut)".encode()
        lines += [b"\xe2\x80\xa6 (line too long to show)"] * (count - len(lines))
        if count == BLOCK:  # only full blocks never change
            self._cache[k] = lines
            if len(self._cache) > CACHE_BLOCKS:
                self._cache.popitem(last=False)
        return lines

    def line(self, n: int) -> bytes:
        """Line n (0-based) without its newline."""
        if not 0 <= n < self.lines:
            return b""
        block = self._block(n // BLOCK)
        i = n % BLOCK
        return block[i] if i < len(block) else b""

    def line_start(self, n: int) -> int:
        """Byte offset where line n starts (n == lines gives the indexed end)."""
        if n >= self.lines:
            return self.indexed
        k, i = divmod(max(0, n), BLOCK)
        block = self._block(k)
        return int(self.marks[k]) + sum(len(b) + 1 for b in block[:i])

    def line_at(self, offset: int) -> int:
        """The line holding byte `offset` (within the indexed part)."""
        k = bisect_right(self.marks, offset) - 1
        f = self._file()
        if f is None or k < 0:
            return 0
        start = int(self.marks[k])
        f.seek(start)
        return min(self.lines - 1, k * BLOCK + f.read(offset - start).count(b"\n"))

    # -- search -----------------------------------------------------------------------------
    def search(self, needle: str, start: int, *, backward: bool = False, chunk: int = READ) -> Iterator[int | None]:
        """Find `needle` (ASCII case-insensitive) from byte `start`, wrapping once.

        A generator: yields None after each chunk scanned (so callers can spread the work over
        timer ticks) and finally the offset of the match; ends without one when there is none.
        """
        f = self._file()
        pat = needle.encode("utf-8").lower()
        if f is None or not pat:
            return
        end = self.indexed
        start = max(0, min(start, end))
        over = len(pat) - 1
        if not backward:
            for lo, hi in ((start, end), (0, min(start + over, end))):
                pos = lo
                while pos < hi:
                    f.seek(pos)
                    data = f.read(min(chunk, hi - pos) + over).lower()
                    if pos + len(data) > hi:
                        data = data[: hi - pos]
                    i = data.find(pat)
                    if i >= 0:
                        yield pos + i
                        return
                    pos += chunk
                    yield None
        else:
            for lo, hi in ((0, start), (start, end)):
                pos = hi
                while pos > lo:
                    a = max(lo, pos - chunk)
                    f.seek(a)
                    data = f.read(min(pos + over, hi) - a).lower()
                    i = data.rfind(pat, 0, pos - a + over)  # only matches starting before pos
                    if i >= 0:
                        yield a + i
                        return
                    pos = a
                    yield None
