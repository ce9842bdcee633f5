"""How the task views write times, durations and device lists (display only)."""

from __future__ import annotations

import re
from datetime import datetime

from nixdeck.core.tasks.model import format_duration
from nixdeck.core.units import format_size


def fmt_duration(seconds: float | None) -> str:
    """`4.2s`, `3m07s`, `1h02m03s`; `` for unknown."""
    return "" if seconds is None else format_duration(seconds)


def fmt_time(d: datetime | None, *, full: bool = False) -> str:
    """Local time; today's times without the date unless `full`."""
    if d is None:
        return ""
    local = d.astimezone()
    if not full and local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def fmt_devices(devices: list[str], most: int = 3) -> str:
    if len(devices) <= most:
        return ", ".join(devices)
    return ", ".join(devices[:most]) + f" +{len(devices) - most}"


fmt_size = format_size  # one spelling for the window, the CLI and the records


def one_line(text: str) -> str:
    """A title as one line: newlines (e.g. of an inline script) shown as ⏎."""
    return " ⏎ ".join(part.strip() for part in text.strip().splitlines()) if "\n" in text else text


_TRUST_HINT = re.compile(r"(?:trust it with|then run) `nixdeck ssh trust [^`]+`")


def for_window(text: str) -> str:
    """A core message as the window says it: the CLI's trust hint becomes the window's own action."""
    return _TRUST_HINT.sub("use Trust host key… (Ctrl+K, or the button in the Errors tab)", text)
