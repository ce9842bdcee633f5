"""The embedded demo fleet: ``resources/demo`` copied to ``<data_dir>/demo/fleet`` as a git flake.

An existing copy is kept (the user may have changed it) unless ``reset`` is asked. The copy is made
in a temporary directory beside the target and renamed into place, so an interrupted setup never
leaves a half-made fleet. The simulated devices themselves are core/ssh/simdevice.py's business.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from . import gitrepo
from .resources import resource

DEMO_SUBDIR = ("demo", "fleet")


def demo_fleet_path(data_dir: Path) -> Path:
    return Path(data_dir).joinpath(*DEMO_SUBDIR)


async def prepare_demo_async(data_dir: Path, *, reset: bool = False) -> Path:
    """Set up (or reuse) the demo fleet flake in the data dir; return its path."""
    target = demo_fleet_path(data_dir)
    if target.joinpath("flake.nix").is_file() and target.joinpath(".git").exists() and not reset:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fleet-", dir=target.parent))
    try:
        shutil.copytree(resource("demo"), tmp, dirs_exist_ok=True)
        await gitrepo.init_and_commit(tmp, "NixDeck demo fleet")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def prepare_demo(data_dir: Path, *, reset: bool = False) -> Path:
    """Synchronous ``prepare_demo_async`` (not from inside a running event loop)."""
    return asyncio.run(prepare_demo_async(data_dir, reset=reset))
