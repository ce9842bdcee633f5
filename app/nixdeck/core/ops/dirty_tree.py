"""An honest "Git tree is dirty" warning: which files, and whether they are the user's.

Nix only says the tree is dirty. When the only uncommitted change is NixDeck's own inventory
(`nixdeck.toml`, rewritten by every edit in the window or the CLI), every later build would end
"completed with warnings" for something the user did not do; that case becomes an info that says
so and how to commit it. Uncommitted edits of the user's own files stay a warning, naming them.
"""

from __future__ import annotations

import re
from pathlib import Path

from nixdeck.core.project.gitrepo import git
from nixdeck.core.project.inventory import INVENTORY_FILE

_DIRTY_RE = re.compile(r"Git tree '([^']*)' is dirty")
SHOWN = 5


async def dirty_files(repo: Path) -> list[str] | None:
    """Tracked files with uncommitted changes (what makes Nix call the tree dirty); None if unknown."""
    try:
        res = await git(repo, "status", "--porcelain", "--untracked-files=no", check=False)
    except Exception:  # noqa: BLE001 - git missing or hung: Nix's own words are kept
        return None
    if res.returncode != 0:
        return None
    return [line[3:].split(" -> ")[-1].strip('"') for line in res.stdout.splitlines() if len(line) > 3]


async def explain_dirty_tree(text: str) -> tuple[bool, str]:
    """(is it the user's doing, the message to show) for Nix's dirty-tree warning `text`."""
    m = _DIRTY_RE.search(text)
    files = await dirty_files(Path(m.group(1))) if m else None
    if not files:
        return True, text
    inventory = [f for f in files if Path(f).name == INVENTORY_FILE]
    user = [f for f in files if f not in inventory]
    if not user:
        return False, (f"{text}: only NixDeck's own inventory edit ({', '.join(inventory)}) is uncommitted; "
                       "commit it from the window (Project → Commit inventory…) or with git")
    shown = ", ".join(user[:SHOWN]) + (f" and {len(user) - SHOWN} more" if len(user) > SHOWN else "")
    return True, f"{text}: uncommitted changes in {shown}"
