"""Text from devices and builds, made safe to print on a terminal or show in the window.

A device's output may carry terminal control sequences: OSC 52 writes the clipboard, OSC 0 sets the
window title, others move the cursor to overwrite what was printed. `neutralise` shows every control
character as visible text instead (ESC as `^[`, BEL as `^G`, C1 controls as `\\x9b`); tabs and
newlines stay, and SGR colour sequences may be kept (they only colour text).
"""

from __future__ import annotations

import re

_OTHERS = r"\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f"  # every control but tab, newline and ESC
_ALL = re.compile(rf"[\x1b{_OTHERS}]")
_BUT_SGR = re.compile(rf"\x1b(?!\[[0-9;:]*m)|[{_OTHERS}]")  # an ESC that does not start a colour


def _visible(m: re.Match[str]) -> str:
    o = ord(m.group())
    if o < 0x20:
        return "^" + chr(o + 0x40)
    return "^?" if o == 0x7F else f"\\x{o:02x}"


def neutralise(text: str, *, keep_sgr: bool = False) -> str:
    """`text` with control characters made visible (a CR before a newline is dropped). The scan is
    in C and matches only what is replaced: `tasks log` runs it over whole build logs."""
    return (_BUT_SGR if keep_sgr else _ALL).sub(_visible, text.replace("\r\n", "\n"))


def neutralise_bytes(data: bytes, *, keep_sgr: bool = True) -> bytes:
    """Raw output (complete lines, UTF-8 or not) made safe for a terminal."""
    return neutralise(data.decode("utf-8", "replace"), keep_sgr=keep_sgr).encode("utf-8")
