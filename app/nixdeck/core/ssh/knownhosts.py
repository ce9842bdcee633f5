"""NixDeck's own known_hosts file (OpenSSH format) and the explicit trust flow.

NixDeck never reads or writes ``~/.ssh/known_hosts``: trust is given inside NixDeck, by the
user, after seeing a fingerprint. asyncssh and Nix's ssh both read this same file, so a host
is trusted by both or by neither. There is no mode that turns checking off.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import hmac
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from nixdeck.core.ssh.errors import (
    HostKeyChanged,
    HostKeyUnknown,
    SshConnectError,
    SshError,
    SshTimeout,
    host_label,
)

KNOWN_HOSTS_RELPATH = Path("ssh") / "known_hosts"
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


class KnownHostsUnreadable(SshError):
    """NixDeck's known_hosts cannot be read as text: named with its line, and never rewritten."""


def _split(text: str) -> list[str]:
    """Lines with their endings, split on "\\n" only (as OpenSSH counts them)."""
    return _LINE.findall(text)


def known_hosts_path(data_dir: Path) -> Path:
    """Where NixDeck keeps its known_hosts inside the data dir."""
    return data_dir / KNOWN_HOSTS_RELPATH


def fingerprint(key: asyncssh.SSHKey) -> str:
    """SHA256 fingerprint exactly as OpenSSH prints it (``SHA256:base64-without-padding``)."""
    return key.get_fingerprint("sha256")


def key_line(key: asyncssh.SSHKey) -> str:
    """``<algorithm> <base64>`` of a public key, without a comment."""
    algo, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algo} {blob}"


class HostKeyState(enum.Enum):
    """What our known_hosts says about a presented key."""

    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    CHANGED = "changed"


@dataclass(frozen=True)
class KnownHostEntry:
    """One parsed line of the file (1-based ``line`` for error messages)."""

    line: int
    patterns: str
    key: asyncssh.SSHKey
    marker: str = ""  # "", "@revoked" or "@cert-authority"

    def matches(self, host: str, port: int) -> bool:
        return _patterns_match(self.patterns, host_label(host, port))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


def _same_key(a: asyncssh.SSHKey, b: asyncssh.SSHKey) -> bool:
    return a.public_data == b.public_data


def _hashed_match(pattern: str, name: str) -> bool:
    # |1|base64(salt)|base64(HMAC-SHA1(salt, name)) as written by HashKnownHosts.
    try:
        _, kind, salt, digest = pattern.split("|")
        if kind != "1":
            return False
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    # OpenSSH patterns know only * and ? ("[host]:port" brackets are literal)
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.I)


def _patterns_match(patterns: str, name: str) -> bool:
    if patterns.startswith("|"):
        return _hashed_match(patterns, name)
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if _wildcard(pattern).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


@dataclass(frozen=True)
class HostKeyCheck:
    """The outcome of `KnownHosts.check`: the state and the entries that decided it."""

    state: HostKeyState
    host: str
    port: int
    presented: str
    known: tuple[KnownHostEntry, ...]


class KnownHosts:
    """NixDeck's known_hosts file: parse, check, trust (atomic rewrite), forget."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KnownHosts:
        return cls(known_hosts_path(data_dir))

    def ensure_exists(self) -> Path:
        """Create the (empty) file so ssh and asyncssh can be pointed at it; an existing file must be
        text (asyncssh would fail on it with an internal error)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            self._write_lines([])
        else:
            self._read()
        return self.path

    def _read(self) -> str:
        """The file's text ("" when missing); bytes that are not UTF-8 are an error naming the line,
        never replaced (a rewrite would then lose them)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return ""
        except OSError as e:
            raise KnownHostsUnreadable(f"cannot read NixDeck's known_hosts {self.path}: {e.strerror or e}") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise KnownHostsUnreadable(
                f"NixDeck's known_hosts {self.path} line {line} is not text (byte {raw[e.start]:#04x}): fix or "
                "delete that line (nothing was changed; trusted keys are one `host algorithm key` per line)"
            ) from None

    def entries(self) -> list[KnownHostEntry]:
        """All parsable entries; broken lines are skipped (OpenSSH does the same)."""
        text = self._read()
        result: list[KnownHostEntry] = []
        for number, raw in enumerate(_split(text), start=1):
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = ""
            if fields[0].startswith("@"):
                marker, fields = fields[0], fields[1:]
            if len(fields) < 3:
                continue
            try:
                key = asyncssh.import_public_key(f"{fields[1]} {fields[2]}")
            except (asyncssh.KeyImportError, ValueError):
                continue
            result.append(KnownHostEntry(number, fields[0], key, marker))
        return result

    def lookup(self, host: str, port: int = 22) -> list[KnownHostEntry]:
        """Plain (non-marker) entries for ``host:port``."""
        return [e for e in self.entries() if not e.marker and e.matches(host, port)]

    def state(self, host: str, port: int, key: asyncssh.SSHKey) -> HostKeyCheck:
        """Classify a presented key without raising."""
        entries = [e for e in self.entries() if e.matches(host, port)]
        revoked = [e for e in entries if e.marker == "@revoked" and _same_key(e.key, key)]
        plain = tuple(e for e in entries if not e.marker)
        presented = fingerprint(key)
        if revoked:
            return HostKeyCheck(HostKeyState.CHANGED, host, port, presented, tuple(revoked))
        if any(_same_key(e.key, key) for e in plain):
            return HostKeyCheck(HostKeyState.TRUSTED, host, port, presented, plain)
        if plain:
            return HostKeyCheck(HostKeyState.CHANGED, host, port, presented, plain)
        return HostKeyCheck(HostKeyState.UNKNOWN, host, port, presented, ())

    def check(self, host: str, port: int, key: asyncssh.SSHKey, *, device: str | None = None) -> HostKeyState:
        """TRUSTED or UNKNOWN; a changed key raises `HostKeyChanged` (never a silent state)."""
        result = self.state(host, port, key)
        if result.state is HostKeyState.CHANGED:
            raise self.changed_error(result, device=device)
        return result.state

    def changed_error(self, result: HostKeyCheck, *, device: str | None = None) -> HostKeyChanged:
        return HostKeyChanged(
            host=result.host,
            port=result.port,
            presented=result.presented,
            known=[(e.patterns, e.line) for e in result.known],
            known_fingerprints=[e.fingerprint for e in result.known],
            known_hosts=self.path,
            device=device,
        )

    def unknown_error(
        self, host: str, port: int, key: asyncssh.SSHKey | None, *, device: str | None = None
    ) -> HostKeyUnknown:
        return HostKeyUnknown(
            host=host,
            port=port,
            fingerprint=fingerprint(key) if key is not None else None,
            known_hosts=self.path,
            device=device,
        )

    def trust(self, host: str, port: int, key: asyncssh.SSHKey, *, replace: bool = False) -> None:
        """Record ``key`` for ``host:port``. Refuses to add beside a different known key unless
        ``replace`` (which drops every old entry for that host first). Atomic: temp + rename."""
        result = self.state(host, port, key)
        if result.state is HostKeyState.TRUSTED and not replace:
            return
        if result.state is HostKeyState.CHANGED and not replace:
            raise self.changed_error(result)
        lines = self._lines()
        if replace:
            drop = {e.line for e in self.entries() if e.matches(host, port) and e.marker != "@cert-authority"}
            lines = [text for number, text in enumerate(lines, start=1) if number not in drop]
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{host_label(host, port)} {key_line(key)}\n")
        self._write_lines(lines)

    def forget(self, host: str, port: int = 22) -> int:
        """Remove every plain entry for ``host:port``; returns how many lines went."""
        drop = {e.line for e in self.lookup(host, port)}
        if drop:
            lines = [text for number, text in enumerate(self._lines(), start=1) if number not in drop]
            self._write_lines(lines)
        return len(drop)

    def _lines(self) -> list[str]:
        """The lines with their own endings: every line NixDeck does not change is kept byte for byte."""
        return _split(self._read())

    def _write_lines(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".known_hosts.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("".join(lines))
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


async def fetch_host_key(host: str, port: int = 22, *, timeout: float = 10.0) -> asyncssh.SSHKey:
    """The key a host presents, fetched WITHOUT trusting it (the handshake stops after kex)."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port, config=None), timeout)
    except TimeoutError as exc:
        raise SshTimeout(
            f"{host_label(host, port)} did not answer within {timeout:g} s", host=host, port=port
        ) from exc
    except (OSError, asyncssh.Error) as exc:
        raise connect_error(exc, host, port) from exc
    if key is None:
        raise SshError(f"{host_label(host, port)} presented no host key", host=host, port=port)
    return key


def connect_error(exc: BaseException, host: str, port: int) -> SshError:
    """A human `SshError` for a socket-level or protocol failure while connecting."""
    label = host_label(host, port)
    if isinstance(exc, ConnectionRefusedError):
        reason = f"connection refused by {label} (is sshd running and listening on port {port}?)"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve host name {host!r}: {exc.strerror or exc}"
    elif isinstance(exc, TimeoutError | asyncssh.ConnectionLost) and "timeout" in str(exc).lower():
        return SshTimeout(f"{label} did not answer in time ({exc})", host=host, port=port)
    elif isinstance(exc, OSError):
        reason = f"cannot connect to {label}: {exc.strerror or exc}"
    elif isinstance(exc, asyncssh.ConnectionLost):
        reason = f"connection to {label} was lost: {exc.reason or 'closed by the remote side'}"
    elif isinstance(exc, asyncssh.Error):
        reason = f"SSH connection to {label} failed: {exc.reason}"
    else:
        reason = f"SSH connection to {label} failed: {exc}"
    return SshConnectError(reason, host=host, port=port)
