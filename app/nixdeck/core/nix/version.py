"""Finding the `nix` binary and its version; clear errors when it is missing or too old."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from nixdeck.core.nix.errors import NixError

#: Oldest Nix NixDeck drives (flakes + `nix build --json`; Debian bookworm's nix-bin).
MIN_VERSION = (2, 8)
INSTALL_HINT = (
    "install it with `apt-get install nix-bin` (Debian/Ubuntu) or from https://nixos.org/download, "
    "then enable `experimental-features = nix-command flakes`"
)
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class NixMissing(NixError):
    """No usable `nix` binary."""


class NixTooOld(NixError):
    """`nix` is older than MIN_VERSION."""


@dataclass(frozen=True, slots=True, order=True)
class NixVersion:
    major: int
    minor: int
    patch: int = 0
    raw: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    @property
    def has_flake_update_inputs(self) -> bool:
        """`nix flake update X` updates one input (2.19+); older: `nix flake lock --update-input X`."""
        return self.at_least(2, 19)

    @property
    def has_print_out_paths(self) -> bool:
        return self.at_least(2, 9)

    @property
    def glues_error_location(self) -> bool:
        """2.26-style `file:line:col` in error records (the parser handles both)."""
        return self.at_least(2, 20)


def parse_version(text: str) -> NixVersion:
    """`nix (Nix) 2.8.0` -> NixVersion(2, 8, 0). Raises NixMissing if no version is found."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    m = _VERSION_RE.search(first)
    if m is None:
        raise NixMissing(f"`nix --version` printed no version ({first!r}); {INSTALL_HINT}")
    return NixVersion(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), first)


def find_nix(env: Mapping[str, str] | None = None, nix: str | None = None) -> str:
    """Absolute path of `nix` on PATH (or `nix` if given as a path). Raises NixMissing."""
    if nix and os.sep in nix:
        if os.access(nix, os.X_OK):
            return nix
        raise NixMissing(f"Nix is not installed: {nix} is not an executable file; {INSTALL_HINT}")
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(nix or "nix", path=path)
    if found is None:
        raise NixMissing(f"Nix is not installed (no `nix` on PATH); {INSTALL_HINT}")
    return found


def check_version(version: NixVersion) -> NixVersion:
    if (version.major, version.minor) < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise NixTooOld(f"Nix {version} is too old: NixDeck needs Nix {need} or newer; {INSTALL_HINT}")
    return version


def _interpret(nix: str, rc: int, out: str, err: str) -> NixVersion:
    if rc != 0:
        detail = (err or out).strip().splitlines()
        raise NixMissing(f"`{nix} --version` failed ({detail[-1] if detail else f'exit {rc}'}); {INSTALL_HINT}")
    return check_version(parse_version(out))


VERSION_TIMEOUT = 30.0


def _hung(nix: str, timeout: float) -> NixMissing:
    return NixMissing(
        f"`{nix} --version` did not answer within {timeout:g} s and was killed: Nix seems to hang (a stuck "
        "nix-daemon socket, a wrapper waiting for input, a network file system?); check that "
        f"`{nix} --version` works in a terminal"
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def detect_nix(
    env: Mapping[str, str] | None = None, nix: str | None = None, *, timeout: float = VERSION_TIMEOUT
) -> tuple[str, NixVersion]:
    """Find nix and read its version (blocking; a hang is killed after `timeout`). Raises NixMissing /
    NixTooOld."""
    path = find_nix(env, nix)
    try:
        proc = subprocess.Popen(
            [path, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=dict(env) if env is not None else None, start_new_session=True,
        )
    except OSError as e:
        raise NixMissing(f"cannot run `{path} --version`: {e.strerror or e}; {INSTALL_HINT}") from e
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)  # the whole group: a wrapper's child must not keep the pipes open
        proc.communicate()
        raise _hung(path, timeout) from None
    return path, _interpret(path, proc.returncode, out, err)


async def detect_nix_async(
    env: Mapping[str, str] | None = None, nix: str | None = None, *, timeout: float = VERSION_TIMEOUT
) -> tuple[str, NixVersion]:
    """`detect_nix` for use on the event loop; a hang is killed, never abandoned."""
    path = find_nix(env, nix)
    try:
        proc = await asyncio.create_subprocess_exec(
            path, "--version", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(env) if env is not None else None, start_new_session=True,
        )
    except OSError as e:
        raise NixMissing(f"cannot run `{path} --version`: {e.strerror or e}; {INSTALL_HINT}") from e
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException as e:  # a timeout, or the task was cancelled: the process must not outlive us
        _kill_group(proc.pid)
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        if isinstance(e, TimeoutError):
            raise _hung(path, timeout) from None
        raise
    return path, _interpret(path, proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
