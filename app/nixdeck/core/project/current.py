"""Which project the CLI works on: ``--project``, else the remembered current one, else the cwd.

``nixdeck project open|new`` remember the project in ``<data_dir>/current-project`` (one absolute
path and a newline), so later commands need no ``--project``. A remembered project that has gone
away is an error that says so, not a silent fallback to another directory.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ProjectError
from .files import atomic_write

CURRENT_FILE = "current-project"


def current_project_file(data_dir: Path) -> Path:
    return Path(data_dir) / CURRENT_FILE


def remember_current(data_dir: Path, project_dir: Path) -> None:
    """Make ``project_dir`` the current project of this data dir."""
    atomic_write(current_project_file(data_dir), (str(Path(project_dir).resolve()) + "\n").encode(), backup=False)


def remembered_current(data_dir: Path) -> Path | None:
    """The remembered current project, ``None`` when none was opened yet."""
    try:
        text = current_project_file(data_dir).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return Path(text) if text else None


def resolve_project_dir(explicit: str | Path | None, data_dir: Path, cwd: Path | None = None) -> Path:
    """The project to act on (see the module docstring); raises ProjectError naming what to do."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    current = remembered_current(data_dir)
    if current is not None:
        if not (current / "flake.nix").is_file():
            raise ProjectError(
                f"project: the current project {str(current)!r} has no flake.nix any more; "
                "open another with `nixdeck project open DIR` or pass --project DIR",
                field="project", value=str(current), path=current_project_file(data_dir),
            )  # fmt: skip
        return current
    here = (cwd or Path.cwd()).resolve()
    if (here / "flake.nix").is_file():
        return here
    raise ProjectError(
        "project: no project given: pass --project DIR, run `nixdeck project open DIR` once, "
        "or run this in a flake directory",
        field="project",
    )
