"""Nix 2.8 over our OpenSSH options: nix copy with strict host keys, ports, profiles on the device."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from nixdeck.core.ssh.diagnose import explain_ssh_stderr
from nixdeck.core.ssh.errors import HostKeyChanged, HostKeyUnknown, SshConnectError
from nixdeck.core.ssh.knownhosts import KnownHosts, fingerprint
from nixdeck.core.ssh.options import NixSshOptions, SshTarget, nix_ssh_options
from nixdeck.core.ssh.session import connect
from ssh_fixtures import StartFleet, fixture_known_hosts, fixture_sim_fleet  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

# a small closure: "top" refers to "dep"
EXPR = """
let
  mk = name: script: builtins.derivation {
    inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ];
  };
  dep = mk "nixdeck-ssh-dep-%(tag)s" "echo dep > $out";
in mk "nixdeck-ssh-top-%(tag)s" "echo ${dep} > $out"
"""


def build(tag: str) -> str:
    res = subprocess.run(
        ["nix", "build", "--json", "--no-link", "--impure", "--expr", EXPR % {"tag": tag}],
        capture_output=True,
        text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )
    assert res.returncode == 0, res.stderr
    return str(json.loads(res.stdout)[0]["outputs"]["out"])


def nix(options: NixSshOptions, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nix", *args], capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1", **options.env())
    )


def test_nix_copy_with_strict_host_keys(
    sim_fleet: StartFleet, known_hosts: KnownHosts, data_dir: Path
) -> None:
    fleet = sim_fleet(2)
    one, two = fleet.devices
    target = fleet.target(one)
    options = nix_ssh_options(target, known_hosts.path, data_dir)
    assert options.env() == {"NIX_SSHOPTS": f"-F {options.config_file}"}
    top = build("a")
    other = build("b")

    # not trusted yet: refused, explained
    res = nix(options, "copy", "--no-check-sigs", "--to", target.store_uri(), top)
    assert res.returncode != 0
    assert isinstance(explain_ssh_stderr(res.stderr, target, known_hosts), HostKeyUnknown)

    fleet.trust_all(known_hosts)
    res = nix(options, "copy", "--no-check-sigs", "--to", target.store_uri("ssh-ng"), top)
    assert res.returncode == 0, res.stderr
    res = nix(options, "copy", "--to", target.store_uri("ssh"), other)  # legacy ssh:// store
    assert res.returncode == 0, res.stderr
    for path in (top, other):
        assert one.path_on_device(path).is_file()  # really transferred into dev1's own store
        assert not two.path_on_device(path).exists()
    dep = one.path_on_device(top).read_text().strip()
    assert one.path_on_device(dep).is_file()  # the closure came along

    async def set_profile() -> None:
        async with await connect(target, known_hosts) as session:
            code = await session.run(["nix-env", "-p", "/nix/var/nix/profiles/system", "--set", top])
            assert code == 0
            link = await session.run_capture(["readlink", "/nix/var/nix/profiles/system"])
            assert link.stdout == ["system-1-link"]
            target_of = await session.run_capture(["readlink", "-f", "/nix/var/nix/profiles/system"])
            assert target_of.stdout == [top]

    asyncio.run(set_profile())

    # a changed host key makes nix copy fail, and we say why with both fingerprints
    old_fp = fingerprint(one.host_public_key())
    one.regenerate_host_key()
    fleet.restart(one)
    res = nix(options, "copy", "--no-check-sigs", "--to", target.store_uri(), build("c"))
    assert res.returncode != 0
    err = explain_ssh_stderr(res.stderr, target, known_hosts)
    assert isinstance(err, HostKeyChanged)
    assert old_fp in str(err) and fingerprint(one.host_public_key()) in str(err)
    assert f"{known_hosts.path}:1" in str(err)


def test_nix_reaches_a_non_22_port_through_a_spaced_data_dir(sim_fleet: StartFleet, tmp_path: Path) -> None:
    fleet = sim_fleet(1, isolated=False)  # a plain sshd on a high port of 127.0.0.1
    dev = fleet.devices[0]
    assert not dev.isolated and dev.port != 22
    data_dir = tmp_path / "data dir with spaces"
    hosts = KnownHosts.in_data_dir(data_dir)
    fleet.trust_all(hosts)
    assert hosts.path.read_text().startswith(f"[127.0.0.1]:{dev.port} ssh-ed25519 ")
    target = fleet.target(dev)
    options = nix_ssh_options(target, hosts.path, data_dir)
    assert " " not in options.nix_sshopts.removeprefix("-F ")
    for scheme in ("ssh-ng", "ssh"):
        res = nix(options, "store", "ping", "--store", target.store_uri(scheme))
        assert res.returncode == 0, res.stderr
    # the same target on a port nobody listens on: Nix fails, we explain
    closed = SshTarget("127.0.0.1", dev.port + 1, dev.user, identity_file=fleet.client_key)
    bad = nix_ssh_options(closed, hosts.path, data_dir)
    res = nix(bad, "store", "ping", "--store", closed.store_uri())
    assert res.returncode != 0
    err = explain_ssh_stderr(res.stderr, closed, hosts)
    assert isinstance(err, SshConnectError) and "connection refused" in str(err)
