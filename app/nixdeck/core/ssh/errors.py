"""SSH errors with a human reason.

Every failure of the SSH layer is an `SshError` whose `str()` is a sentence a user can act on
(the task engine shows it as the task's error reason). Subclasses let callers tell user errors
(unreachable device, untrusted key) apart from bugs.
"""

from __future__ import annotations

from pathlib import Path

from nixdeck.core.errors import NixDeckError


class SshError(NixDeckError):
    """Base of every SSH-layer failure; `str(err)` is the human reason."""

    def __init__(self, reason: str, *, host: str = "", port: int = 22) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host = host
        self.port = port


class SshConnectError(SshError):
    """The device could not be reached (refused, unreachable, DNS, connection lost)."""


class SshTimeout(SshConnectError):
    """Connecting (or logging in) took longer than the connect timeout."""


class SshAuthError(SshError):
    """The device refused every key we offered."""


class SshCommandTimeout(SshError):
    """A remote command ran longer than its timeout and was killed on the device."""


class HostKeyError(SshError):
    """The device's host key is not trusted by NixDeck's known_hosts."""


class HostKeyUnknown(HostKeyError):
    """No key is known for this host: the user must trust it explicitly first."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        fingerprint: str | None,
        known_hosts: Path,
        device: str | None = None,
    ) -> None:
        name = device or host_label(host, port)
        shown = f" It offers {fingerprint}." if fingerprint else ""
        reason = (
            f"The host key of {host_label(host, port)} is not trusted yet.{shown} "
            f"Verify the fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) "
            f"and trust it with `nixdeck ssh trust {name}` (NixDeck's known_hosts: {known_hosts})."
        )
        super().__init__(reason, host=host, port=port)
        self.fingerprint = fingerprint
        self.known_hosts = known_hosts


class HostKeyChanged(HostKeyError):
    """The device offers a key that differs from the one we trusted: refused loudly."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        presented: str,
        known: list[tuple[str, int]],
        known_fingerprints: list[str],
        known_hosts: Path,
        device: str | None = None,
    ) -> None:
        name = device or host_label(host, port)
        where = ", ".join(f"{known_hosts}:{line}" for _, line in known) or str(known_hosts)
        trusted = ", ".join(known_fingerprints)
        reason = (
            f"HOST KEY CHANGED for {host_label(host, port)}: refusing to connect. "
            f"It now offers {presented}, but NixDeck trusted {trusted} (at {where}). "
            f"Someone may be intercepting the connection, or the device was reinstalled. "
            f"Verify the new fingerprint on the device, then run `nixdeck ssh trust {name} --replace`."
        )
        super().__init__(reason, host=host, port=port)
        self.presented = presented
        self.known_fingerprints = known_fingerprints
        self.known_lines = [line for _, line in known]
        self.known_hosts = known_hosts


def host_label(host: str, port: int) -> str:
    """`host` or `[host]:port`, the way OpenSSH names a host in known_hosts."""
    return host if port == 22 else f"[{host}]:{port}"
