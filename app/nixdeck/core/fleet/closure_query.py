"""Reading closures for a diff: on the device over SSH (its own store, no copy needed) or from the
local store. Either way one `nix path-info -r --json` per system."""

from __future__ import annotations

import asyncio

from nixdeck.core.errors import NixDeckError
from nixdeck.core.fleet.closure import StorePath, closure_of, parse_path_info
from nixdeck.core.ssh.errors import SshError
from nixdeck.core.ssh.session import SshSession

QUERY_TIMEOUT = 60.0
PATH_INFO = ["nix", "--extra-experimental-features", "nix-command", "path-info", "-r", "--json"]


class ClosureError(NixDeckError):
    """A closure could not be read (missing paths, no nix, a broken connection)."""


def _parse(text: str, what: str) -> list[StorePath]:
    try:
        paths, invalid = parse_path_info(text)
    except ValueError as e:
        raise ClosureError(f"nix path-info printed no JSON for {what}: {e}") from None
    if invalid:
        raise ClosureError(f"the store is missing {len(invalid)} path(s) of {what}, e.g. {invalid[0]}")
    return paths


async def device_closures(session: SshSession, *paths: str) -> list[list[StorePath]]:
    """The closures of ``paths`` in the device's store, from one `nix path-info -r` of them all."""
    try:
        res = await session.run_capture([*PATH_INFO, *paths], timeout=QUERY_TIMEOUT)
    except SshError as e:
        raise ClosureError(str(e)) from None
    what = " and ".join(paths)
    if res.exit_status != 0:
        why = " ".join(ln.strip() for ln in res.stderr[-3:] if ln.strip()) or f"exit code {res.exit_status}"
        raise ClosureError(f"{session.target.display_name} cannot list the closure of {what}: {why}")
    infos = {p.path: p for p in _parse("\n".join(res.stdout), f"{what} on {session.target.display_name}")}
    return [closure_of(p, infos) for p in paths]


async def device_closure(session: SshSession, path: str) -> list[StorePath]:
    """The closure of ``path`` in the device's store."""
    (closure,) = await device_closures(session, path)
    return closure


async def local_closures(*paths: str, nix: str = "nix") -> list[list[StorePath]]:
    """The closures of ``paths`` in the local store, from one `nix path-info -r` of them all."""
    proc = await asyncio.create_subprocess_exec(
        nix, *PATH_INFO[1:], *paths, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, limit=1 << 24,
    )  # fmt: skip
    what = " and ".join(paths)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), QUERY_TIMEOUT)
    except TimeoutError:
        raise ClosureError(f"nix path-info of {what} took longer than {QUERY_TIMEOUT:g} s") from None
    finally:
        if proc.returncode is None:  # timed out or canceled: nothing left behind
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise ClosureError(f"nix path-info of {what} failed: {err.decode(errors='replace').strip()[-300:]}")
    infos = {p.path: p for p in _parse(out.decode(errors="replace"), what)}
    return [closure_of(p, infos) for p in paths]


async def local_closure(path: str, nix: str = "nix") -> list[StorePath]:
    """The closure of ``path`` in the local store."""
    (closure,) = await local_closures(path, nix=nix)
    return closure
