"""Turn OpenSSH's complaints in a Nix process's stderr into the same human `SshError`s.

Nix runs ``ssh`` itself (``nix copy --to ssh-ng://``), so a refused host key or login shows up
only as text on Nix's stderr followed by "cannot open connection to remote store". Callers pass
that text here and get the error asyncssh connections would have raised.
"""

from __future__ import annotations

import re

from nixdeck.core.ssh.errors import (
    HostKeyChanged,
    HostKeyError,
    SshAuthError,
    SshConnectError,
    SshError,
    SshTimeout,
)
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.options import SshTarget

_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]+")


def explain_ssh_stderr(stderr: str, target: SshTarget, known_hosts: KnownHosts) -> SshError | None:
    """The SSH failure described by ``stderr`` (from Nix's ssh), or None if there is none."""
    host, port = target.host, target.port
    if (
        "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr
        or "has changed and you have requested strict" in stderr
    ):
        after = stderr.split("sent by the remote host is", 1)[-1]
        match = _FINGERPRINT.search(after)
        known = known_hosts.lookup(host, port)
        return HostKeyChanged(
            host=host,
            port=port,
            presented=match.group(0) if match else "an unknown key",
            known=[(e.patterns, e.line) for e in known],
            known_fingerprints=[e.fingerprint for e in known] or ["(no key)"],
            known_hosts=known_hosts.path,
            device=target.name,
        )
    if re.search(r"No \S+ host key is known for", stderr):
        return known_hosts.unknown_error(host, port, None, device=target.name)
    if "Host key verification failed" in stderr:
        return HostKeyError(f"host key of {target.label} was refused by ssh", host=host, port=port)
    if "Permission denied (" in stderr:
        return SshAuthError(f"{target.label} refused authentication", host=host, port=port)
    if "Connection refused" in stderr:
        return SshConnectError(
            f"connection refused by {target.label} (is sshd running and listening on port {port}?)",
            host=host,
            port=port,
        )
    if "timed out" in stderr:
        return SshTimeout(f"{target.label} did not answer in time", host=host, port=port)
    if "Could not resolve hostname" in stderr:
        return SshConnectError(f"cannot resolve host name {host!r}", host=host, port=port)
    if "No route to host" in stderr or "Network is unreachable" in stderr:
        return SshConnectError(f"{target.label} is unreachable", host=host, port=port)
    return None
