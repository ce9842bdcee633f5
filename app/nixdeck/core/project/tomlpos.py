"""Where a dotted field is in TOML text: error messages name the line."""

from __future__ import annotations

import json
import re

_HEADER_RE = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY_RE = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)\s*=""")


def _unquote(key: str) -> str:
    key = key.strip()
    return str(json.loads(key)) if key.startswith('"') else key


def locate_line(text: str, loc: tuple[str, ...]) -> int | None:
    """Best-effort 1-based line of a dotted field in TOML text (tables and ``key =`` lines)."""
    table: tuple[str, ...] = ()
    best: int | None = None
    for n, line in enumerate(text.splitlines(), 1):
        h = _HEADER_RE.match(line)
        if h:
            table = tuple(_unquote(k) for k in re.findall(r'"(?:[^"\\]|\\.)*"|[^.\s]+', h[1]))
            if table == loc or (best is None and loc[: len(table)] == table and table):
                best = n
            continue
        k = _KEY_RE.match(line)
        if k and table + (_unquote(k[1]),) == loc[: len(table) + 1]:
            return n
    return best
