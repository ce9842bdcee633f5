"""Text from devices and builds, made safe to print on a terminal or show in the window.

A device's output may carry terminal control sequences: OSC 52 writes the clipboard, OSC 0 sets the
window title, others move the cursor to overwrite what was printed. `neutralise` shows every control
character as visible text instead (ESC as `^[`, BEL as `^G`, C1 controls as `\\x9b`); tabs and
newlines stay, and SGR colour sequences may be kept (they only colour text).
"""

from __future__ import annotations

import re

_SGR = r"\x1b\[[0-9;:]*m"
_CONTROLS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
_KEEP_SGR = re.compile(rf"({_SGR})|\r(?=\n)|({_CONTROLS})")
_ALL = re.compile(rf"\r(?=\n)|({_CONTROLS})")


def _visible(c: str) -> str:
    o = ord(c)
    if o < 0x20:
        return "^" + chr(o + 0x40)
    return "^?" if o == 0x7F else f"\\x{o:02x}"


def neutralise(text: str, *, keep_sgr: bool = False) -> str:
    """`text` with control characters made visible (a CR before a newline is dropped)."""

    def sub(m: re.Match[str]) -> str:
        if keep_sgr and m.group(1):
            return m.group(1)
        bad = m.group(m.lastindex) if m.lastindex else ""
        return _visible(bad) if bad else ""

    return (_KEEP_SGR if keep_sgr else _ALL).sub(sub, text)


def neutralise_bytes(data: bytes, *, keep_sgr: bool = True) -> bytes:
    """Raw output (complete lines, UTF-8 or not) made safe for a terminal."""
    return neutralise(data.decode("utf-8", "replace"), keep_sgr=keep_sgr).encode("utf-8")
