"""The copy step of a device deploy: sign (when the project has a key), ``nix copy --to ssh-ng://``
with NixDeck's ssh options, and open the activation's connection beside it; failures in words
(see `deploy_device` for the signing choices)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from pathlib import Path

from nixdeck.core.nix.commands import NixCommands
from nixdeck.core.nix.messages import strip_ansi
from nixdeck.core.ops.nixrun import NixRun, find_nix_cached, run_nix
from nixdeck.core.ops.remote import LOG_TAIL, connect, known_hosts
from nixdeck.core.project import Project
from nixdeck.core.ssh.diagnose import explain_ssh_stderr
from nixdeck.core.ssh.options import SshTarget, nix_ssh_options
from nixdeck.core.ssh.session import SshSession
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError

JOB = "deploy"


def run_tail(run: NixRun | None, n: int = LOG_TAIL) -> list[str]:
    """The last lines a person needs from a failed Nix call: failed builds' logs, then the errors."""
    if run is None:
        return []
    lines: list[str] = []
    for d in run.parser.derivations.values():
        if d.state == "failed":
            lines += d.last_lines(n)
    lines += list(run.parser.stderr_lines)[-n:]
    lines += [strip_ansi(e.text or e.message) for e in run.errors]
    return [ln for text in lines for ln in text.splitlines()][-n:]


async def copy_closure(
    ctx: TaskContext,
    project: Project,
    target: SshTarget,
    path: str,
    *,
    substitute: bool,
    tail: collections.deque[str],
) -> None:
    """``nix copy --to ssh-ng://…`` (signing it first when the project has a key); human errors."""
    settings = project.inventory.project
    nix_path, version = await find_nix_cached()
    cmds = NixCommands(version, nix_path)
    hosts = known_hosts(ctx)
    options = nix_ssh_options(target, hosts.path, Path(ctx.engine.store.data_dir))
    if settings.signing_key and not settings.no_check_sigs:
        key = Path(settings.signing_key).expanduser()
        key = key if key.is_absolute() else project.path / key
        if not key.is_file():
            raise UserError(f"the project's signing key {key} does not exist (setting project.signing_key)")
        sign = await run_nix(ctx, cmds.store_sign(str(key), [path]), job=JOB, step="copy", check=False)
        if not sign.ok:
            tail.extend(run_tail(sign))
            raise TaskFailed(f"signing the closure with {key} failed: {sign.first_error() or 'nix store sign failed'}")
    cmd = cmds.copy_to(
        target.store_uri(), [path], no_check_sigs=bool(settings.no_check_sigs), substitute_on_destination=substitute
    )
    run = await run_nix(ctx, cmd, env=options.env(), job=JOB, step="copy", check=False)
    if run.ok:
        return
    tail.extend(run_tail(run))
    text = "\n".join([*run.parser.stderr_lines, *(strip_ansi(e.text or e.message) for e in run.errors)])
    ssh = explain_ssh_stderr(text, target, hosts)
    if ssh is not None:
        raise UserError(f"copying the closure to {target.display_name} failed: {ssh}")
    if "lacks a valid signature" in text or "lacks a signature" in text:
        raise UserError(
            f"{target.display_name} refused the closure: its paths are not signed by a key the device trusts. "
            "Set the project setting signing_key=PATH (and add its public key to the device's "
            "trusted-public-keys) or allow unsigned copies with the project setting no_check_sigs=true."
        )
    first = run.first_error() or f"nix copy exited with code {run.exit_code}"
    lost = _connection_lost(run.parser.stderr_lines, text)
    what = f"was interrupted: the connection broke mid-copy ({lost})" if lost else f"failed or was interrupted: {first}"
    raise TaskFailed(
        f"copying the closure to {target.display_name} {what}. Nothing was activated; paths already "
        "copied are kept, so a rerun continues where this one stopped."
    )


_LOST = ("closed by remote host", "Connection reset", "Broken pipe", "unexpected end-of-file", "Connection timed out")


def _connection_lost(stderr_lines: Iterable[str], text: str) -> str | None:
    """The line saying the SSH connection went away during the copy (ssh's own line first)."""
    lines = [strip_ansi(ln).strip() for ln in stderr_lines]
    for marker in _LOST:
        for line in lines:
            if marker in line:
                return line.removeprefix("error: ").rstrip(".")
    return next((m for m in _LOST if m in text), None)


async def copy_and_connect(
    ctx: TaskContext,
    project: Project,
    target: SshTarget,
    path: str,
    *,
    substitute: bool,
    tail: collections.deque[str],
) -> SshSession:
    """Copy the closure while the activation connection opens beside it (both check the host key
    against the same known_hosts, so a refused key stops both and nothing is copied). When both
    fail, asyncssh's reason wins: it names both fingerprints of a changed key."""
    connecting = asyncio.create_task(connect(ctx, target))
    try:
        await copy_closure(ctx, project, target, path, substitute=substitute, tail=tail)
    except BaseException as copy_error:
        if isinstance(copy_error, TaskFailed):
            try:
                session = await connecting
            except TaskFailed as e:
                tail.append(f"error: {e}")
                raise e from None
            await asyncio.shield(session.close())
            raise
        connecting.cancel()
        try:
            session = await asyncio.shield(connecting)
        except BaseException:  # noqa: BLE001 - canceled or failed: nothing to close
            pass
        else:
            await asyncio.shield(session.close())
        raise
    return await connecting
