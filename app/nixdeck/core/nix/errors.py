"""Turning Nix errors into what a person can act on.

Error paths point into the store copy of the flake (`/nix/store/<hash>-source/...`); these helpers
map them back to the project tree, find files a git flake cannot see (not `git add`ed), name the
device and attribute of a missing attribute, and tell a dirty-tree warning from an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nixdeck.core.nix.messages import NixMessage, strip_ansi
from nixdeck.core.tasks.errors import TaskFailed

_SOURCE_PATH_RE = re.compile(r"(/nix/store/[a-z0-9]{32}-source)(/[^'\"\s:]*)?")
_UNTRACKED_RES = (
    re.compile(r"getting status of '(/nix/store/[a-z0-9]{32}-source)/([^']+)'"),
    re.compile(r"path '(/nix/store/[a-z0-9]{32}-source)/([^']+)' does not exist"),
    re.compile(r"opening file '(/nix/store/[a-z0-9]{32}-source)/([^']+)': No such file"),
)
# 2.34 (lazy trees: no store copy): "Path 'x.nix' in the repository "/repo" is not tracked by Git."
_NOT_TRACKED_RE = re.compile(r"Path '([^']+)' in the repository \"([^\"]+)\" is not tracked by Git")
_NOT_PROVIDE_RE = re.compile(r"flake '([^']*)' does not provide attribute (.*)$", re.S)
_ATTR_MISSING_RE = re.compile(r"attribute '([^']+)' missing")
_DEVICE_RE = re.compile(r"(?:^|\.)nixosConfigurations\.(\"[^\"]+\"|[^.]+)\.?(.*)$")
_DIRTY_RE = re.compile(r"Git tree '([^']*)' is dirty")


class StorePathMapper:
    """Maps `/nix/store/<hash>-source/rel` to `<source_root>/rel`.

    With `store_source` (from `nix flake metadata --json` `path`, or `NixLogParser.flake_source`)
    only that store path is mapped. Without it, any `-source` path is mapped when `rel` exists in
    the tree (other inputs are `-source` paths too; their files are not in the project).
    """

    def __init__(self, source_root: str | Path, store_source: str | None = None) -> None:
        self.root = Path(source_root)
        self.store_source = store_source.rstrip("/") if store_source else None

    def map_path(self, path: str | None) -> str | None:
        if not path:
            return path
        if self.store_source is not None:
            # the flake may sit in a subdirectory of its source (a git flake below the repo's top)
            if path == self.store_source or path.startswith(self.store_source + "/"):
                rel = path[len(self.store_source) :].lstrip("/")
                return str(self.root / rel) if rel else str(self.root)
            return path
        m = _SOURCE_PATH_RE.match(path)
        if m is None:
            return path
        rel = path[len(m.group(1)) :].lstrip("/")
        candidate = self.root / rel
        return str(candidate) if rel and candidate.exists() else path

    def map_text(self, text: str) -> str:
        """Rewrite every mappable store path in a text."""
        return _SOURCE_PATH_RE.sub(lambda m: self.map_path(m.group(0)) or m.group(0), text)


def untracked_files(
    messages: Iterable[NixMessage | str], source_root: str | Path | None = None, store_source: str | None = None
) -> list[str]:
    """Files a git flake could not see, relative to the flake root, in order, without duplicates.

    With `source_root`, only files that exist in the working tree are returned (those are the ones
    to `git add`; a file missing from the tree too is a plain mistake, not an untracked file).
    `store_source` is the flake's store directory (`NixLogParser.flake_source`): for a flake in a
    subdirectory of its repository, paths are made relative to that subdirectory.
    """
    sub = ""
    if store_source:
        m0 = _SOURCE_PATH_RE.match(store_source)
        if m0 is not None:
            sub = store_source[len(m0.group(1)) :].strip("/")
    out: list[str] = []
    for m in messages:
        text = strip_ansi(m if isinstance(m, str) else m.text)
        for rx in _UNTRACKED_RES:
            for hit in rx.finditer(text):
                rel = hit.group(2)
                if sub:
                    if not rel.startswith(sub + "/"):
                        continue
                    rel = rel[len(sub) + 1 :]
                if rel in out:
                    continue
                if source_root is not None and not (Path(source_root) / rel).exists():
                    continue
                out.append(rel)
        for hit in _NOT_TRACKED_RE.finditer(text):
            rel = hit.group(1)
            if source_root is not None:
                full = Path(hit.group(2)) / rel
                try:  # relative to the flake, which may sit below the repository's top
                    rel = str(full.resolve().relative_to(Path(source_root).resolve()))
                except ValueError:
                    continue
                if not full.exists():
                    continue
            if rel not in out:
                out.append(rel)
    return out


def git_add_hint(files: list[str]) -> str:
    """The sentence shown with untracked files."""
    quoted = " ".join(f"'{f}'" if " " in f else f for f in files)
    return f"these files are not tracked by git, so the flake cannot see them; run: git add {quoted}"


@dataclass(frozen=True, slots=True)
class MissingAttribute:
    """A requested attribute a flake does not have."""

    device: str | None
    attribute: str  # path below nixosConfigurations.<device> (or the whole path if no device)
    flake: str | None = None

    def describe(self) -> str:
        where = f" in flake '{self.flake}'" if self.flake else ""
        if self.device is None:
            return f"the flake has no attribute '{self.attribute}'{where}"
        return f"device '{self.device}' has no attribute '{self.attribute}'{where}"


def _split_device(attr_path: str) -> tuple[str | None, str]:
    m = _DEVICE_RE.search(attr_path)
    if m is None:
        return None, attr_path
    return m.group(1).strip('"'), m.group(2)


def missing_attribute(message: NixMessage | str, requested: str | None = None) -> MissingAttribute | None:
    """Recognise "does not provide attribute ..." / "attribute 'x' missing" and name device + attribute.

    `requested` is the attribute path NixDeck asked for (e.g.
    `nixosConfigurations.dev1.config.system.build.sdImage`); it names the device when Nix's message
    only gives the last attribute.
    """
    text = strip_ansi(message if isinstance(message, str) else message.text)
    m = _NOT_PROVIDE_RE.search(text)
    if m is not None:
        candidates = re.findall(r"'([^']+)'", m.group(2))
        chosen = next((c for c in candidates if c.startswith("nixosConfigurations.")), None)
        if chosen is None:
            chosen = requested or (candidates[-1] if candidates else m.group(2).strip())
        device, attr = _split_device(chosen)
        return MissingAttribute(device, attr, m.group(1))
    m2 = _ATTR_MISSING_RE.search(text)
    if m2 is not None:
        if requested:
            device, attr = _split_device(requested)
            return MissingAttribute(device, attr)
        return MissingAttribute(None, m2.group(1))
    return None


def is_dirty_tree_warning(message: NixMessage | str) -> bool:
    """`warning: Git tree '...' is dirty`: uncommitted changes; a warning, never an error."""
    return _DIRTY_RE.search(strip_ansi(message if isinstance(message, str) else message.text)) is not None


class NixError(TaskFailed):
    """A Nix call failed or cannot be made; the message says why and what to do."""
