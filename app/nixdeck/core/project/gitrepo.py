"""The few git operations NixDeck does on a project: init, add, commit.

A flake in a git work tree only sees files git knows about, so files NixDeck creates are added.
Commits made for the user (a new project, the demo fleet) fall back to a NixDeck identity only
when git has none configured, and never ask for a signing passphrase.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ToolError
from .flake import Completed, run

GIT_TIMEOUT = 120.0
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "NixDeck",
    "GIT_AUTHOR_EMAIL": "nixdeck@localhost",
    "GIT_COMMITTER_NAME": "NixDeck",
    "GIT_COMMITTER_EMAIL": "nixdeck@localhost",
}


async def git(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Completed:
    res = await run(["git", "-C", str(repo), *args], env=env, timeout=GIT_TIMEOUT)
    if check and res.returncode != 0:
        raise ToolError(f"git {args[0]} failed: {res.stderr.strip() or res.stdout.strip()}", field="git", value=args[0])
    return res


async def is_work_tree(path: Path) -> bool:
    res = await git(path, "rev-parse", "--is-inside-work-tree", check=False)
    return res.returncode == 0 and res.stdout.strip() == "true"


async def add(repo: Path, *paths: str) -> None:
    await git(repo, "add", "--", *paths)


async def init_and_commit(repo: Path, message: str) -> None:
    """``git init`` (branch main), add everything, commit."""
    await git(repo, "init", "-q", "-b", "main")
    await git(repo, "add", "-A")
    has_identity = (await git(repo, "config", "user.email", check=False)).returncode == 0
    await git(
        repo,
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "--no-verify",
        "-m",
        message,
        env=None if has_identity else FALLBACK_IDENTITY,
    )


async def commit_paths(repo: Path, message: str, *paths: str) -> bool:
    """Commit only ``paths`` (when they changed); True if a commit was made. Same identity rules."""
    res = await git(repo, "status", "--porcelain", "--", *paths)
    if not res.stdout.strip():
        return False
    await git(repo, "add", "--", *paths)
    has_identity = (await git(repo, "config", "user.email", check=False)).returncode == 0
    await git(
        repo, "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message, "--", *paths,
        env=None if has_identity else FALLBACK_IDENTITY,
    )  # fmt: skip
    return True
