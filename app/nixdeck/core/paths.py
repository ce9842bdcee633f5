"""Where NixDeck keeps its data: the platformdirs data dir, or NIXDECK_DATA_DIR / --data-dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from nixdeck.core.errors import NixDeckError


class DataDirError(NixDeckError):
    """The data dir cannot be created or written."""


def default_data_dir() -> Path:
    """NIXDECK_DATA_DIR when set, else the user's data dir (e.g. ~/.local/share/nixdeck)."""
    env = os.environ.get("NIXDECK_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("nixdeck", appauthor=False))


def ensure_data_dir(path: Path | None = None) -> Path:
    """Create the data dir if needed and check that it is writable, with a message a person can act on."""
    d = (path or default_data_dir()).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataDirError(f"cannot create the data dir {d}: {e.strerror or e}") from e
    if not os.access(d, os.W_OK | os.X_OK):
        raise DataDirError(
            f"the data dir {d} is not writable by {os.environ.get('USER', 'this user')}: "
            "fix its permissions or pass --data-dir / set NIXDECK_DATA_DIR"
        )
    return d
