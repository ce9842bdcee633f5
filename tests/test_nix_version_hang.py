"""A `nix --version` that hangs is killed, with its whole process group, and the reason says so
(it was abandoned after 30 s with an empty reason). The fake Nix is a `sys.executable` script."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from engine_helpers import pid_alive, wait_for
from nixdeck.core.nix.version import NixMissing, detect_nix, detect_nix_async

HANGING = """#!{py}
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # holds our pipes too
with open({pids!r}, "w") as f:
    f.write(f"{{os.getpid()}} {{child.pid}}\\n")
time.sleep(600)
"""


def _hanging_nix(tmp_path: Path) -> tuple[dict[str, str], Path]:
    d = tmp_path / "bin"
    d.mkdir()
    pids = tmp_path / "pids"
    nix = d / "nix"
    nix.write_text(HANGING.format(py=sys.executable, pids=str(pids)))
    nix.chmod(0o755)
    return {"PATH": str(d)}, pids


def _all_gone(pids: Path) -> None:
    started = [int(p) for p in wait_for(lambda: pids.exists() and pids.read_text().split(), "the fake nix")]
    wait_for(lambda: not any(pid_alive(p) for p in started), "nix and its child to be killed", limit=10)


def test_hanging_nix_version_is_killed_with_a_reason(tmp_path: Path) -> None:
    env, pids = _hanging_nix(tmp_path)
    with pytest.raises(NixMissing, match=r"--version` did not answer within 0\.5 s and was killed") as e:
        detect_nix(env, timeout=0.5)
    assert "works in a terminal" in str(e.value)
    _all_gone(pids)


def test_hanging_nix_version_is_killed_async(tmp_path: Path) -> None:
    env, pids = _hanging_nix(tmp_path)
    with pytest.raises(NixMissing, match=r"did not answer within 0\.5 s and was killed"):
        asyncio.run(detect_nix_async(env, timeout=0.5))
    _all_gone(pids)


def test_cancelled_version_check_kills_nix(tmp_path: Path) -> None:
    env, pids = _hanging_nix(tmp_path)

    async def main() -> None:
        check = asyncio.ensure_future(detect_nix_async(env))
        while not pids.exists():
            await asyncio.sleep(0.02)
        check.cancel()
        with pytest.raises(asyncio.CancelledError):
            await check

    asyncio.run(main())
    _all_gone(pids)
