"""What every Nix operation shares: its submission base and the project's build settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from nixdeck.core.nix.attrs import device_attr
from nixdeck.core.nix.commands import BuildSettings, NixCommands
from nixdeck.core.nix.outputs import NixOutputError, parse_json
from nixdeck.core.ops.nixrun import find_nix_cached, run_nix
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.submission import Submission


class NixProjectSubmission(Submission):
    """The project (flake directory) an operation works on, and extra environment for its Nix calls."""

    project_dir: str = Field(min_length=1)
    #: Added to the environment of every Nix call (e.g. NIX_SSHOPTS for remote builders, PATH).
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("project_dir")
    @classmethod
    def _abs(cls, v: str) -> str:
        return str(Path(v).expanduser().absolute())


BUILDERS_SSH_CONFIG = """\
# Written by NixDeck for Nix's remote builders; rewritten on every build, do not edit.
Host *
  UserKnownHostsFile "{known_hosts}"
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  ConnectTimeout 15
  ServerAliveInterval 15
  ServerAliveCountMax 4
"""


def builders_ssh_config(data_dir: Path) -> Path:
    """ssh_config for remote builders: host keys are checked against NixDeck's known_hosts.

    Nix's ssh stores (remote builders included) honour NIX_SSHOPTS; the builder's key is given in
    the `builders` spec (`ssh-ng://root@host x86_64-linux /path/key 4 1`).
    """
    from nixdeck.core.ssh.knownhosts import KnownHosts

    known = KnownHosts.in_data_dir(data_dir).path
    d = data_dir / "ssh"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / "builders.conf"
    if any(c.isspace() or c == '"' for c in str(path)) or '"' in str(known):
        raise TaskFailed(f"cannot pass {path} to Nix: the data dir path contains whitespace or quotes")
    tmp = d / f".builders.conf.{os.getpid()}"
    tmp.write_text(BUILDERS_SSH_CONFIG.format(known_hosts=known))
    os.replace(tmp, path)
    return path


def check_device_name(name: str) -> str:
    if not name or name.startswith("-") or any(c.isspace() or c in "\"\\#/" for c in name):
        raise ValueError(f"invalid device name {name!r}")
    return name


@dataclass(frozen=True)
class NixProject:
    """An opened project as Nix operations need it."""

    path: Path
    settings: BuildSettings
    env: dict[str, str]
    nix: str
    commands: NixCommands


def settings_from_inventory(project_settings: Any) -> BuildSettings:
    """BuildSettings from the inventory's `[project]` table (builders, builders_use_substitutes, max_jobs)."""
    return BuildSettings(
        builders=getattr(project_settings, "builders", None),
        builders_use_substitutes=getattr(project_settings, "builders_use_substitutes", None),
        max_jobs=getattr(project_settings, "max_jobs", None),
    )


async def open_nix_project(ctx: TaskContext, sub: NixProjectSubmission) -> NixProject:
    """Read the project's inventory (no evaluation) and find nix; user errors for a bad directory."""
    from nixdeck.core.project import Project, ProjectError

    try:
        project = await Project.open_async(sub.project_dir, discover_devices=False)
    except ProjectError as e:
        raise UserError(f"cannot open project {sub.project_dir}: {e}") from None
    except OSError as e:
        raise UserError(f"cannot open project {sub.project_dir}: {e.strerror or e}") from None
    settings = settings_from_inventory(project.inventory.project)
    env = dict(sub.env)
    if settings.builders and "NIX_SSHOPTS" not in env:
        env["NIX_SSHOPTS"] = f"-F {builders_ssh_config(Path(ctx.store.data_dir))}"
    nix, version = await find_nix_cached(env)
    return NixProject(project.path, settings, env, nix, NixCommands(version, nix, settings))


async def device_names(ctx: TaskContext, p: NixProject, *, job: str | None = None, step: str | None = None) -> list[str]:
    """Names of the flake's nixosConfigurations (`builtins.attrNames`: devices are not evaluated)."""
    cmd = p.commands.eval_json(f"{p.path}#nixosConfigurations", apply="builtins.attrNames")
    run = await run_nix(ctx, cmd, env=p.env, job=job, step=step, source_root=p.path)
    try:
        names = parse_json(run.stdout(), "nix eval")
    except NixOutputError as e:
        raise TaskFailed(str(e)) from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TaskFailed("nix eval printed no list of device names")
    return names


async def closure_size(ctx: TaskContext, p: NixProject, path: str, *, job: str | None = None,
                       step: str | None = None) -> int | None:
    """`nix path-info -S --json`: the closure size in bytes (None if it cannot be read)."""
    run = await run_nix(ctx, p.commands.path_info([path], closure_size=True), env=p.env, job=job, step=step,
                        check=False, store_messages=False)
    if not run.ok:
        return None
    try:
        data = parse_json(run.stdout(), "nix path-info")
    except NixOutputError:
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        size = data[0].get("closureSize")
    elif isinstance(data, dict):  # newer Nix: {path: info}
        info = next(iter(data.values()), None)
        size = info.get("closureSize") if isinstance(info, dict) else None
    else:
        size = None
    return size if isinstance(size, int) else None


def toplevel(device: str) -> str:
    return device_attr(device, "config", "system", "build", "toplevel")


def file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
