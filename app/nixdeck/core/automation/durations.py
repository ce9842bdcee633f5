"""Durations as users write them: ``30s``, ``15m``, ``1h30m``, ``2d`` (or a number of seconds)."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")
EXAMPLES = "e.g. 30s, 15m, 1h30m, 2d"
MAX_SECONDS = 366 * 86400.0


def parse_duration(value: object) -> float:
    """Seconds (> 0, at most a year) of a duration; ValueError saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({EXAMPLES})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        m = _DURATION.fullmatch(text)
        if not text or m is None or not any(m.groups()):
            raise ValueError(f"{value!r} is not a duration ({EXAMPLES})")
        d, h, mi, s, ms = m.groups()
        seconds = (int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
                   + int(ms or 0) / 1000)
    else:
        raise ValueError(f"{value!r} is not a duration ({EXAMPLES})")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration ({EXAMPLES})")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{value!r} is longer than a year")
    return seconds


def format_seconds(seconds: float) -> str:
    """``90`` → ``1m30s`` (how a plan shows a duration)."""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:g}s"
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return "".join(f"{n}{u}" for n, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if n)
