"""Committing NixDeck's own edits of `nixdeck.toml`, reviewed: the diff and the message first.

Every inventory edit (a tag, a target) rewrites `nixdeck.toml`; left uncommitted it makes the git
tree dirty for every later build. The window offers this commit after an edit; only
`nixdeck.toml` is committed, never the user's other changes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .gitrepo import commit_paths, git, is_work_tree
from .inventory import INVENTORY_FILE

MAX_DIFF = 200_000


@dataclass(frozen=True)
class InventoryDiff:
    """`nixdeck.toml`'s uncommitted change: the unified diff (or the whole new file when untracked)."""

    path: Path
    diff: str
    tracked: bool


async def inventory_diff(project_dir: Path | str) -> InventoryDiff | None:
    """The uncommitted change of the project's `nixdeck.toml`; None when clean or not in git."""
    root = Path(project_dir)
    if not await is_work_tree(root):
        return None
    status = (await git(root, "status", "--porcelain", "--", INVENTORY_FILE, check=False)).stdout
    if not status.strip():
        return None
    tracked = not status.startswith("??")
    diff = (await git(root, "diff", "HEAD", "--", INVENTORY_FILE, check=False)).stdout if tracked else ""
    if not diff:
        text = (root / INVENTORY_FILE).read_text(errors="replace")
        diff = "".join(f"+{line}\n" for line in text.splitlines())
    return InventoryDiff(root / INVENTORY_FILE, diff[:MAX_DIFF], tracked)


def inventory_uncommitted(project_dir: Path | str) -> bool:
    """Quick check (one `git status`, no event loop): does git see nixdeck.toml changed?"""
    try:
        res = subprocess.run(["git", "-C", str(project_dir), "status", "--porcelain", "--", INVENTORY_FILE],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0 and bool(res.stdout.strip())


def commit_message(summaries: Sequence[str]) -> str:
    """`NixDeck: tagged kiosk-1 with lab`, or a subject with one line per edit."""
    edits = list(dict.fromkeys(s.strip() for s in summaries if s.strip()))
    if not edits:
        return f"NixDeck: update the inventory ({INVENTORY_FILE})"
    if len(edits) == 1:
        return f"NixDeck: {edits[0]}"
    return f"NixDeck: {len(edits)} inventory edits\n\n" + "\n".join(f"- {e}" for e in edits)


async def commit_inventory(project_dir: Path | str, message: str) -> bool:
    """Commit only `nixdeck.toml` with `message`; False when there was nothing to commit."""
    if not message.strip():
        raise ValueError("the commit message is empty")
    return await commit_paths(Path(project_dir), message, INVENTORY_FILE)
