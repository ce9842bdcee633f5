"""Where and how to reach a device, and the OpenSSH options Nix gets for it.

Nix runs its own ``ssh`` for ``nix copy --to ssh-ng://`` and ``ssh://`` and reads extra options
from ``NIX_SSHOPTS``, which it splits on whitespace (no quoting) and which Nix 2.8 needs for the
port (it ignores ``host:port`` in a store URI). So NixDeck writes one ssh_config file per target
(paths quoted, port, user, identity, our known_hosts, strict checking, batch mode, timeouts) and
passes only ``NIX_SSHOPTS=-F <file>``. ``-F`` also keeps ``~/.ssh/config`` out of the way, so
Nix's ssh and asyncssh see the same settings. Host-key checking is always strict.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nixdeck.core.ssh.errors import SshError, host_label

# curve25519 first: the post-quantum default doubles OpenSSH's handshake time here; the rest
# are fallbacks every OpenSSH since 7.x knows, so old clients and servers still agree on one.
FAST_KEX = ",".join(
    [
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group14-sha256",
    ]
)


@dataclass(frozen=True)
class SshTarget:
    """A device's SSH endpoint as the inventory describes it (``name`` is for messages)."""

    host: str
    port: int = 22
    user: str = "root"
    identity_file: Path | None = None
    name: str | None = None
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host) or self.host.startswith("-"):
            raise SshError(f"invalid host name {self.host!r}", host=self.host, port=self.port)
        if not 0 < self.port < 65536:
            raise SshError(f"invalid SSH port {self.port}", host=self.host, port=self.port)
        if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*", self.user):
            raise SshError(f"invalid SSH user {self.user!r}", host=self.host, port=self.port)

    @property
    def label(self) -> str:
        """``user@host`` or ``user@[host]:port`` for messages."""
        return f"{self.user}@{host_label(self.host, self.port)}"

    @property
    def display_name(self) -> str:
        return self.name or host_label(self.host, self.port)

    def store_uri(self, scheme: str = "ssh-ng") -> str:
        """``ssh-ng://user@host`` (no port: Nix 2.8 ignores it; it comes from the ssh config)."""
        if scheme not in ("ssh-ng", "ssh"):
            raise ValueError(f"not an ssh store scheme: {scheme}")
        return f"{scheme}://{self.user}@{self.host}"


def _quoted(path: Path) -> str:
    text = str(path)
    if '"' in text or "\n" in text:
        raise SshError(f"path cannot be written to an ssh_config: {text!r}")
    return f'"{text}"'


def ssh_config_text(target: SshTarget, known_hosts: Path) -> str:
    """An ssh_config that applies to this one target (the file is used with ``-F`` only)."""
    lines = [
        f"# Written by NixDeck for {target.label}; rewritten on every use, do not edit.",
        "Host *",
        f"  Port {target.port}",
        f"  User {target.user}",
        f"  UserKnownHostsFile {_quoted(known_hosts)}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  UpdateHostKeys no",
        "  CheckHostIP no",
        "  HashKnownHosts no",
        "  BatchMode yes",
        f"  ConnectTimeout {max(1, round(target.connect_timeout))}",
        f"  ServerAliveInterval {max(1, round(target.keepalive_interval))}",
        f"  ServerAliveCountMax {target.keepalive_count_max}",
        f"  KexAlgorithms {FAST_KEX}",
        "  LogLevel ERROR",
    ]
    if target.identity_file is not None:
        lines += [f"  IdentityFile {_quoted(target.identity_file)}", "  IdentitiesOnly yes"]
    return "\n".join(lines) + "\n"


def _no_whitespace(path: Path) -> Path:
    """Nix splits NIX_SSHOPTS on whitespace: reach a spaced path through a private symlink."""
    if not any(c.isspace() for c in str(path)):
        return path
    for base in (Path(tempfile.gettempdir()), Path("/tmp")):
        if any(c.isspace() for c in str(base)):
            continue
        links = base / f"nixdeck-ssh-{os.getuid()}"
        links.mkdir(mode=0o700, exist_ok=True)
        info = links.lstat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or links.is_symlink():
            raise SshError(f"{links} is not a private directory of this user")
        for stale in links.glob("*.conf"):
            if not stale.exists():  # its data dir is gone
                stale.unlink(missing_ok=True)
        link = links / f"{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.conf"
        tmp = links / f".{link.name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path)
        os.replace(tmp, link)
        return link
    raise SshError(f"cannot pass {path} to Nix: the path contains whitespace")


def write_ssh_config(target: SshTarget, known_hosts: Path, config_dir: Path) -> Path:
    """Write (atomically) the target's ssh_config under ``config_dir`` and return its path."""
    config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", f"{target.user}@{target.host}_{target.port}")
    path = config_dir / f"{safe}.conf"
    fd, tmp = tempfile.mkstemp(prefix=f".{safe}.", dir=config_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(ssh_config_text(target, known_hosts))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class NixSshOptions:
    """What a Nix process needs to reach a target over ssh with our checks."""

    config_file: Path
    target: SshTarget

    @property
    def nix_sshopts(self) -> str:
        return f"-F {_no_whitespace(self.config_file)}"

    def env(self) -> dict[str, str]:
        """Environment additions for ``nix copy`` / ``nix build --store`` to this target."""
        return {"NIX_SSHOPTS": self.nix_sshopts}

    def ssh_argv(self, *remote: str) -> list[str]:
        """A plain ``ssh`` command line to the target with the same options."""
        return ["ssh", "-F", str(self.config_file), f"{self.target.user}@{self.target.host}", "--", *remote]


def nix_ssh_options(target: SshTarget, known_hosts: Path, data_dir: Path) -> NixSshOptions:
    """Write the per-target ssh_config in ``<data_dir>/ssh/config.d`` and describe it."""
    return NixSshOptions(write_ssh_config(target, known_hosts, data_dir / "ssh" / "config.d"), target)
