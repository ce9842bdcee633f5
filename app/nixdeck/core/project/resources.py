"""Where NixDeck's bundled resources (demo fleet, project templates) are.

``NIXDECK_RESOURCES`` wins; then ``resources/`` inside the installed package (wheels); then the
``resources/`` folder of the source tree (editable installs, tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import nixdeck


def resources_dir() -> Path:
    env = os.environ.get("NIXDECK_RESOURCES")
    candidates = [Path(env)] if env else []
    package = Path(nixdeck.__file__).resolve().parent
    candidates += [package / "resources", package.parents[1] / "resources"]
    for c in candidates:
        if (c / "templates").is_dir():
            return c
    raise FileNotFoundError(f"NixDeck resources not found (tried {', '.join(map(str, candidates))})")


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
