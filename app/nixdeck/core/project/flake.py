"""Device discovery: the names and ``networking.hostName`` of a flake's ``nixosConfigurations``.

One ``nix eval --json`` call evaluates every device, each under ``builtins.tryEval`` so a device
that throws (a failed assertion, a missing secret) does not hide the others. ``tryEval`` cannot
catch syntax errors, undefined variables or type errors, so when that call fails we list the names
alone (``builtins.attrNames`` does not evaluate the devices) and evaluate each device by itself
to tell which ones are broken and why. Nix's error text is kept, with paths into the store copy of
the flake mapped back to the project directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FlakeError
from .validate import NIX_ATTR_RE

NIX_FEATURES = ["--extra-experimental-features", "nix-command flakes"]
EVAL_TIMEOUT = 600.0
PARALLEL_EVALS = 4

# Evaluates every device's hostName; a device that throws reports ok = false.
DISCOVER_APPLY = (
    "cs: builtins.mapAttrs (n: c: let r = builtins.tryEval (let h = c.config.networking.hostName or null; "
    'in if h == null || builtins.isString h then h else throw "networking.hostName is not a string"); '
    "in { ok = r.success; hostName = if r.success then r.value else null; }) cs"
)
ONE_DEVICE_APPLY = "c: c.config.networking.hostName or null"


@dataclass(frozen=True)
class Completed:
    """Outcome of one external command."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


async def run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = EVAL_TIMEOUT
) -> Completed:
    """Run argv (never a shell) in its own process group; kill the group on timeout or cancel."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise FlakeError(f"{argv[0]}: command not found", field="command", value=argv[0]) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.CancelledError, TimeoutError) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise FlakeError(f"{argv[0]} {argv[1]}: no answer after {timeout:.0f} s", field="timeout", value=timeout) from None
        raise
    rc = proc.returncode if proc.returncode is not None else -1
    return Completed(argv, rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def flake_ref(path: Path) -> str:
    """The flake reference of a directory (Nix picks git+file for a git work tree, else path:)."""
    text = str(path.resolve())
    if any(c in text for c in "#?"):
        raise FlakeError(f"path: {text!r}: Nix cannot use a flake path containing '#' or '?'", field="path", value=text)
    return text


_STORE_SOURCE_RE = re.compile(r"/nix/store/[0-9a-z]{32}-source(?=/)")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_message(stderr: str, flake_dir: Path | None = None) -> str:
    """Nix's error (from the first ``error:`` line on), store source paths mapped to ``flake_dir``."""
    text = _ANSI_RE.sub("", stderr)
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        msg = "\n".join(line for line in lines if line.strip()).strip() or "nix failed without a message"
    else:
        msg = "\n".join(lines[start:]).strip()
        if msg.startswith("error: "):
            msg = msg[len("error: ") :]
    if flake_dir is not None:
        msg = _STORE_SOURCE_RE.sub(lambda _m: str(source_root(flake_dir)), msg)
        if "is not a valid URL" in msg and _URL_UNSAFE_RE.search(str(flake_dir)):
            msg += (
                " (this Nix cannot use a flake whose path has spaces, non-ASCII or other characters not"
                " allowed in a URL: rename or move the project directory)"
            )
    return msg


# Characters Nix's flake URL parser accepts in a path (RFC 3986 pchar without %-escapes, plus '/').
_URL_UNSAFE_RE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")


def source_root(flake_dir: Path) -> Path:
    """The directory Nix copies to ``/nix/store/<hash>-source`` for a flake path: the top of the git
    work tree holding it (Nix looks upwards for ``.git``, the flake being a subdirectory), else itself."""
    d = flake_dir.resolve()
    for candidate in (d, *d.parents):
        if (candidate / ".git").exists():
            return candidate
    return d


@dataclass(frozen=True)
class FlakeDevice:
    """One ``nixosConfigurations`` entry as Nix sees it."""

    name: str
    host_name: str | None
    error: str | None = None  # evaluation error (the device is listed but cannot be built)


@dataclass
class Discovery:
    """Every device found; ``warnings`` for the flake as a whole."""

    devices: list[FlakeDevice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _nix_eval(nix: str, installable: str, apply: str) -> list[str]:
    return [nix, "eval", *NIX_FEATURES, "--json", installable, "--apply", apply]


def _no_configurations(stderr: str) -> bool:
    return "does not provide attribute" in stderr and "nixosConfigurations'" in stderr


async def _eval_one(nix: str, ref: str, name: str, flake_dir: Path, sem: asyncio.Semaphore) -> FlakeDevice:
    if not NIX_ATTR_RE.fullmatch(name):
        return FlakeDevice(name, None, f"the attribute name {name!r} needs quoting; NixDeck cannot address it")
    async with sem:
        res = await run(_nix_eval(nix, f"{ref}#nixosConfigurations.{name}", ONE_DEVICE_APPLY), cwd=flake_dir)
    if res.returncode != 0:
        return FlakeDevice(name, None, error_message(res.stderr, flake_dir))
    value = json.loads(res.stdout)
    return FlakeDevice(name, value if isinstance(value, str) else None)


async def discover(flake_dir: Path, *, nix: str = "nix") -> Discovery:
    """Discover the devices of the flake in ``flake_dir`` (one nix call when nothing is broken)."""
    if not (flake_dir / "flake.nix").is_file():
        raise FlakeError(f"{flake_dir}: not a flake (no flake.nix)", field="path", value=str(flake_dir))
    ref = flake_ref(flake_dir)
    res = await run(_nix_eval(nix, f"{ref}#nixosConfigurations", DISCOVER_APPLY), cwd=flake_dir)
    sem = asyncio.Semaphore(PARALLEL_EVALS)
    if res.returncode == 0:
        data = json.loads(res.stdout)
        names = list(data)
        failed = [n for n in names if not data[n]["ok"]]
        redo = dict(zip(failed, await asyncio.gather(*(_eval_one(nix, ref, n, flake_dir, sem) for n in failed)), strict=True))
        return Discovery([redo.get(n) or FlakeDevice(n, data[n]["hostName"]) for n in names])
    if _no_configurations(res.stderr):
        return Discovery([], ["the flake has no nixosConfigurations"])
    names_res = await run(_nix_eval(nix, f"{ref}#nixosConfigurations", "builtins.attrNames"), cwd=flake_dir)
    if names_res.returncode != 0:
        raise FlakeError(
            f"cannot evaluate the flake: {error_message(names_res.stderr, flake_dir)}", field="flake", value=str(flake_dir)
        )
    names = json.loads(names_res.stdout)
    devices = list(await asyncio.gather(*(_eval_one(nix, ref, n, flake_dir, sem) for n in names)))
    return Discovery(devices)
