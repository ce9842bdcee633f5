"""Recognising lines of Nix's plain (non-JSON) stderr: message starts, build and copy lines.

Used for whole plain logs (`nix build` without `--log-format internal-json`) and for the plain lines
Nix and ssh mix into an internal-json stream ("warning: unknown setting", "ssh: connect to host ...").
"""

from __future__ import annotations

import re

_BUILDING_RE = re.compile(r"^building '(/nix/store/[^']+\.drv)'(?: on '([^']*)')?")
_COPYING_N_RE = re.compile(r"^copying (\d+) paths")
_COPYING_PATH_RE = re.compile(r"^copying path '([^']+)' (?:to|from) '([^']*)'")
_WILL_RE = re.compile(r"^(?:these (\d+) (derivations|paths) will be|this (derivation|path) will be)")
_FAILED_DRV_RE = re.compile(
    r"(?:builder for|build of|derivation|dependencies of derivation) '(/nix/store/[a-z0-9]{32}-[^']+\.drv)'"
    r"[^\n]*?(?:failed|couldn't be built)"
)
_CANNOT_BUILD_RE = re.compile(r"(?:cannot build derivation|Cannot build) '(/nix/store/[a-z0-9]{32}-[^']+\.drv)'")

#: Line starts that continue the message block above them.
CONTINUATION_STARTS = (" ", "\t", "\u2022", "\u2026", "\u2192")


def block_level(text: str) -> int | None:
    """Nix level of a line that starts a message block, or None if it does not start one."""
    if text.startswith("error:"):
        return 0
    if text.startswith("warning:"):
        return 1
    if text.startswith("trace:"):
        return 0  # Nix logs trace output at error level; messages.py re-kinds it to warning
    if _WILL_RE.match(text):
        return 3
    return None


def building(text: str) -> tuple[str, str | None] | None:
    """`building '/nix/store/x.drv' [on 'ssh://host']...` -> (drv path, host)."""
    m = _BUILDING_RE.match(text)
    if m is None:
        return None
    return m.group(1), (m.group(2) or None)


def copying_count(text: str) -> int | None:
    m = _COPYING_N_RE.match(text)
    return int(m.group(1)) if m else None


def copying_path(text: str) -> str | None:
    m = _COPYING_PATH_RE.match(text)
    return m.group(1) if m else None


def failed_derivations(text: str) -> list[str]:
    """Derivations an error message says failed (`builder for '...drv' failed`, dependencies...)."""
    found = [m.group(1) for m in _FAILED_DRV_RE.finditer(text)]
    found += [m.group(1) for m in _CANNOT_BUILD_RE.finditer(text)]
    return found


def pname(name: str) -> str:
    """Nix's DrvName split: `nixos-system-dev1-1` -> `nixos-system-dev1` (the `-L` log prefix)."""
    for i, ch in enumerate(name):
        if ch == "-" and i + 1 < len(name) and not name[i + 1].isalpha():
            return name[:i]
    return name
