"""Closure diff: what a deploy changes on a device — packages added, removed, version changes and
the closure size delta — from the new toplevel's closure and the device's current system's.

Store path names are split the way Nix's `builtins.parseDrvName` does (the version starts at the
first dash followed by a digit), so `openssl-3.0.13` → (`openssl`, `3.0.13`). Paths whose name and
version stay but whose hash changed are counted as rebuilt. `nix path-info --json` prints a list up
to Nix 2.18 and an object keyed by path from 2.19 on; both are read.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from nixdeck.core.units import format_size

_NAME = re.compile(r"^/nix/store/[0-9a-z]{32}-(.+)$")
_VERSION_START = re.compile(r"-(?=[0-9])")


@dataclass(frozen=True)
class StorePath:
    path: str
    nar_size: int
    references: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        m = _NAME.match(self.path)
        return m.group(1) if m else self.path.rsplit("/", 1)[-1]


def split_name(name: str) -> tuple[str, str]:
    """(pname, version) as `builtins.parseDrvName`: version starts at the first "-<digit>"."""
    m = _VERSION_START.search(name)
    return (name[: m.start()], name[m.end() :]) if m else (name, "")


def parse_path_info(text: str) -> tuple[list[StorePath], list[str]]:
    """Paths with their NAR sizes from `nix path-info --json` (either format), and invalid paths."""
    data: Any = json.loads(text) if text.strip() else []
    paths: list[StorePath] = []
    invalid: list[str] = []
    items: list[tuple[str, Any]]
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(str(e.get("path", "")), e) for e in data if isinstance(e, dict)]
    else:
        items = []
    for path, info in items:
        if not isinstance(info, dict) or info.get("valid") is False or "narSize" not in info:
            invalid.append(path)
            continue
        refs = info.get("references") or []
        paths.append(StorePath(path, int(info.get("narSize") or 0), tuple(str(r) for r in refs)))
    return paths, invalid


def closure_of(root: str, infos: dict[str, StorePath]) -> list[StorePath]:
    """The closure of ``root`` within ``infos`` (the output of one `path-info -r` of several roots)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        p = todo.pop()
        if p in seen or p not in infos:
            continue
        seen.add(p)
        todo.extend(infos[p].references)
    return [infos[p] for p in sorted(seen)]


@dataclass
class ClosureDiff:
    added: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    removed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # (name, old, new)
    rebuilt: int = 0
    old_paths: int = 0
    new_paths: int = 0
    old_size: int = 0
    new_size: int = 0

    @property
    def size_delta(self) -> int:
        return self.new_size - self.old_size

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [{"name": n, "version": v} for n, v in self.added],
            "removed": [{"name": n, "version": v} for n, v in self.removed],
            "changed": [{"name": n, "old": o, "new": w} for n, o, w in self.changed],
            "rebuilt": self.rebuilt,
            "old_paths": self.old_paths,
            "new_paths": self.new_paths,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "size_delta": self.size_delta,
        }

    def summary(self) -> str:
        sign = "+" if self.size_delta >= 0 else "-"
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, "
                f"{self.rebuilt} rebuilt; closure {sign}{format_size(abs(self.size_delta))}")  # fmt: skip

    def lines(self) -> list[str]:
        out = [self.summary()]
        out += [f"  + {n} {v}".rstrip() for n, v in self.added]
        out += [f"  - {n} {v}".rstrip() for n, v in self.removed]
        out += [f"  ~ {n} {o or '(none)'} → {w or '(none)'}" for n, o, w in self.changed]
        return out


def _by_name(paths: list[StorePath]) -> dict[str, dict[str, set[str]]]:
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for p in paths:
        pname, version = split_name(p.name)
        found[pname][version].add(p.path)
    return found


def diff_closures(old: list[StorePath], new: list[StorePath]) -> ClosureDiff:
    """What changes from closure ``old`` (the device's system) to ``new`` (the deploy's)."""
    d = ClosureDiff(old_paths=len(old), new_paths=len(new),
                    old_size=sum(p.nar_size for p in old), new_size=sum(p.nar_size for p in new))  # fmt: skip
    before, after = _by_name(old), _by_name(new)
    for pname in sorted(set(before) | set(after)):
        ov, nv = before.get(pname, {}), after.get(pname, {})
        if not ov:
            d.added += [(pname, v) for v in sorted(nv)]
        elif not nv:
            d.removed += [(pname, v) for v in sorted(ov)]
        elif set(ov) != set(nv):
            d.changed.append((pname, ", ".join(sorted(ov)), ", ".join(sorted(nv))))
        else:
            d.rebuilt += sum(1 for v in nv if nv[v] != ov[v])
    return d
