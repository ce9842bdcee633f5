"""NixDeck's known_hosts file: format, trust, replace, changed keys (no network needed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
from pathlib import Path

import asyncssh
import pytest

from nixdeck.core.ssh.errors import HostKeyChanged
from nixdeck.core.ssh.knownhosts import HostKeyState, KnownHosts, fingerprint, known_hosts_path


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


def test_path_is_in_data_dir(data_dir: Path) -> None:
    assert KnownHosts.in_data_dir(data_dir).path == data_dir / "ssh" / "known_hosts"
    assert known_hosts_path(data_dir) == data_dir / "ssh" / "known_hosts"


def test_fingerprint_matches_openssh(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    openssh = subprocess.run(
        ["ssh-keygen", "-lf", f"{key_file}.pub"], capture_output=True, text=True, check=True
    )
    key = asyncssh.read_public_key(f"{key_file}.pub")
    assert fingerprint(key).startswith("SHA256:")
    assert openssh.stdout.split()[1] == fingerprint(key)


def test_trust_writes_openssh_format(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "ssh" / "known_hosts")
    k22, k2222 = new_key(), new_key()
    assert hosts.check("10.0.0.1", 22, k22) is HostKeyState.UNKNOWN
    hosts.trust("10.0.0.1", 22, k22)
    hosts.trust("10.0.0.1", 2222, k2222)
    hosts.trust("10.0.0.1", 22, k22)  # idempotent
    lines = hosts.path.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("10.0.0.1 ssh-ed25519 AAAA")
    assert lines[1].startswith("[10.0.0.1]:2222 ssh-ed25519 AAAA")
    assert hosts.check("10.0.0.1", 22, k22) is HostKeyState.TRUSTED
    assert hosts.check("10.0.0.1", 2222, k2222) is HostKeyState.TRUSTED
    assert hosts.check("10.0.0.2", 22, k22) is HostKeyState.UNKNOWN
    # ssh-keygen reads our file the same way
    found = subprocess.run(
        ["ssh-keygen", "-F", "[10.0.0.1]:2222", "-f", str(hosts.path)], capture_output=True, text=True
    )
    assert found.returncode == 0 and "2222" in found.stdout
    assert not list(hosts.path.parent.glob(".known_hosts.*"))  # no temp files left


def test_changed_key_is_refused_with_both_fingerprints(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "known_hosts")
    hosts.path.write_text("# comment\n\nother ssh-ed25519 AAAAnotbase64\n")
    old, new = new_key(), new_key()
    hosts.trust("dev.example", 22, old)
    with pytest.raises(HostKeyChanged) as info:
        hosts.check("dev.example", 22, new, device="web1")
    text = str(info.value)
    assert fingerprint(old) in text and fingerprint(new) in text
    assert f"{hosts.path}:4" in text
    assert "nixdeck ssh trust web1 --replace" in text
    with pytest.raises(HostKeyChanged):
        hosts.trust("dev.example", 22, new)  # never silently added beside the old key
    hosts.trust("dev.example", 22, new, replace=True)
    assert hosts.check("dev.example", 22, new) is HostKeyState.TRUSTED
    assert [e.fingerprint for e in hosts.lookup("dev.example")] == [fingerprint(new)]
    assert hosts.path.read_text().startswith("# comment\n")  # other lines kept


def test_hashed_wildcard_revoked_and_forget(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "known_hosts")
    hashed, wild, revoked = new_key(), new_key(), new_key()
    salt = b"0123456789abcdef0123"
    mac = hmac.new(salt, b"[h.example]:2200", hashlib.sha1).digest()
    entry = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"
    algo, blob = hashed.export_public_key("openssh").decode().split()[:2]
    walgo, wblob = wild.export_public_key("openssh").decode().split()[:2]
    ralgo, rblob = revoked.export_public_key("openssh").decode().split()[:2]
    hosts.path.write_text(
        f"{entry} {algo} {blob}\n*.lab,!bad.lab {walgo} {wblob}\n@revoked * {ralgo} {rblob}\n"
    )
    assert hosts.check("h.example", 2200, hashed) is HostKeyState.TRUSTED
    assert hosts.check("h.example", 22, hashed) is HostKeyState.UNKNOWN
    assert hosts.check("a.lab", 22, wild) is HostKeyState.TRUSTED
    assert hosts.check("bad.lab", 22, wild) is HostKeyState.UNKNOWN
    assert hosts.state("new.host", 22, revoked).state is HostKeyState.CHANGED
    assert hosts.forget("h.example", 2200) == 1
    assert hosts.check("h.example", 2200, hashed) is HostKeyState.UNKNOWN
