"""What `nix flake update` changed: old -> new revision and date per input, from two flake.lock texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from nixdeck.core.nix.outputs import NixOutputError

ADDED = "added"
REMOVED = "removed"
UPDATED = "updated"
UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class LockedInput:
    """The locked state of one input: revision (git), narHash, lastModified and a short URL."""

    rev: str | None
    nar_hash: str | None
    last_modified: int | None
    url: str

    @property
    def date(self) -> str | None:
        """`YYYY-MM-DD` (UTC) of lastModified, as Nix prints it."""
        if self.last_modified is None:
            return None
        return datetime.fromtimestamp(self.last_modified, UTC).strftime("%Y-%m-%d")

    @property
    def short(self) -> str:
        return (self.rev or self.nar_hash or "?")[:12]


@dataclass(frozen=True, slots=True)
class InputChange:
    name: str  # input path: `fakepkgs`, or `a/b` for an input of an input
    change: str  # added / removed / updated / unchanged
    old: LockedInput | None
    new: LockedInput | None

    def to_json(self) -> dict[str, Any]:
        def side(x: LockedInput | None) -> dict[str, Any] | None:
            return None if x is None else {
                "rev": x.rev, "nar_hash": x.nar_hash, "last_modified": x.last_modified, "date": x.date, "url": x.url,
            }
        return {"name": self.name, "change": self.change, "old": side(self.old), "new": side(self.new)}

    def describe(self) -> str:
        if self.change == ADDED and self.new:
            return f"{self.name}: added {self.new.short} ({self.new.date})"
        if self.change == REMOVED and self.old:
            return f"{self.name}: removed (was {self.old.short})"
        if self.old and self.new:
            return f"{self.name}: {self.old.short} ({self.old.date}) \u2192 {self.new.short} ({self.new.date})"
        return f"{self.name}: {self.change}"


def _url(locked: dict[str, Any]) -> str:
    t = locked.get("type", "?")
    for key in ("url", "path"):
        if isinstance(locked.get(key), str):
            return f"{t}:{locked[key]}"
    if "owner" in locked and "repo" in locked:
        return f"{t}:{locked['owner']}/{locked['repo']}"
    return str(t)


def _inputs(lock_text: str | bytes | None) -> dict[str, LockedInput]:
    """Input path -> locked state, for root inputs and (as `a/b`) inputs of inputs."""
    if lock_text is None or not lock_text.strip():
        return {}
    try:
        data = orjson.loads(lock_text)
    except orjson.JSONDecodeError as e:
        raise NixOutputError(f"flake.lock is not valid JSON: {e}") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        raise NixOutputError("flake.lock has no nodes")
    root = data.get("root", "root")
    out: dict[str, LockedInput] = {}

    def walk(node_key: str, prefix: str, depth: int) -> None:
        node = nodes.get(node_key)
        if not isinstance(node, dict) or depth > 8:
            return
        inputs = node.get("inputs")
        for name, target in (inputs if isinstance(inputs, dict) else {}).items():
            if not isinstance(target, str):  # `follows` (a list): not locked itself
                continue
            child = nodes.get(target)
            if not isinstance(child, dict):
                continue
            raw_locked = child.get("locked")
            locked: dict[str, Any] = raw_locked if isinstance(raw_locked, dict) else {}
            lm = locked.get("lastModified")
            path = f"{prefix}{name}"
            out[path] = LockedInput(
                locked.get("rev") if isinstance(locked.get("rev"), str) else None,
                locked.get("narHash") if isinstance(locked.get("narHash"), str) else None,
                lm if type(lm) is int else None,
                _url(locked),
            )
            walk(target, path + "/", depth + 1)

    walk(root, "", 0)
    return out


def diff_locks(old_text: str | bytes | None, new_text: str | bytes | None, *, include_unchanged: bool = False) -> list[InputChange]:
    """Per input, what changed between two flake.lock texts (None or "" for no lock file)."""
    old, new = _inputs(old_text), _inputs(new_text)
    out: list[InputChange] = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a is None:
            out.append(InputChange(name, ADDED, None, b))
        elif b is None:
            out.append(InputChange(name, REMOVED, a, None))
        elif (a.rev, a.nar_hash, a.last_modified) != (b.rev, b.nar_hash, b.last_modified):
            out.append(InputChange(name, UPDATED, a, b))
        elif include_unchanged:
            out.append(InputChange(name, UNCHANGED, a, b))
    return out
