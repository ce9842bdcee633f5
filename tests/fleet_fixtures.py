"""Helpers for tests that use the fake NixOS fleet in tests/fixtures/fleet (see its lib.nix, a link
to the demo fleet's: one copy of the fake-NixOS machinery; copies made here hold the file itself).

Devices: web1, web2 (hostName web2-prod), db1 build fine; fail-build (builder exits 1),
bad-syntax, bad-undef, bad-type (type error with a trace), bad-throw (throw) fail; warn-trace
builds with a trace warning; big-log prints 200,000 build-log lines; slow-build takes ~60 s;
units-fail's switch-to-configuration exits 4.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

FLEET_SRC = Path(__file__).parent / "fixtures" / "fleet"
GOOD_DEVICES = ("web1", "web2", "db1")
EVAL_BROKEN_DEVICES = ("bad-syntax", "bad-undef", "bad-throw")  # fail already when listed
ALL_DEVICES = tuple(sorted(p.stem for p in (FLEET_SRC / "devices").glob("*.nix")))

GIT_ENV = {
    "GIT_AUTHOR_NAME": "NixDeck Tests",
    "GIT_AUTHOR_EMAIL": "tests@nixdeck.invalid",
    "GIT_COMMITTER_NAME": "NixDeck Tests",
    "GIT_COMMITTER_EMAIL": "tests@nixdeck.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity; return stdout."""
    env = {**os.environ, **GIT_ENV}
    res = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True)
    return res.stdout


def copy_fleet(tmp_path: Path, git: bool = True, *, salt: str | None = None, name: str = "fleet") -> Path:
    """Copy the fixture fleet to ``tmp_path/name``; write ``salt.txt`` (random unless given; ``""``
    writes none, so store paths are shared with other tests); git-init and commit when ``git``."""
    dest = tmp_path / name
    shutil.copytree(FLEET_SRC, dest)
    if salt is None:
        salt = uuid.uuid4().hex
    if salt:
        (dest / "salt.txt").write_text(salt)
    if git:
        commit_all(dest, init=True)
    return dest


def commit_all(repo: Path, message: str = "fleet", *, init: bool = False) -> None:
    if init:
        _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", message)


_git = git


def nix(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real nix (flakes enabled) and capture its output; never raises on failure."""
    argv = ["nix", "--extra-experimental-features", "nix-command flakes", *args]
    return subprocess.run(
        argv, cwd=cwd, env={**os.environ, "NO_COLOR": "1", **(env or {})}, capture_output=True, text=True, timeout=300
    )


def attr(flake: Path, device: str, output: str = "toplevel") -> str:
    """Installable for a device output (``toplevel``, ``vm``, ``images.qcow2``, ``formats.qcow``...)."""
    sub = output if output.startswith("formats.") else f"system.build.{output}"
    return f"{flake}#nixosConfigurations.{device}.config.{sub}"
