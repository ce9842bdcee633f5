"""asyncssh sessions against real sshd devices: trust flow, commands, errors, cancel, isolation."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import pytest

from nixdeck.core.ssh.errors import (
    HostKeyChanged,
    HostKeyUnknown,
    SshAuthError,
    SshCommandTimeout,
    SshConnectError,
)
from nixdeck.core.ssh.knownhosts import HostKeyState, KnownHosts, fetch_host_key, fingerprint
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.ssh.session import SshSession, connect
from ssh_fixtures import StartFleet, fixture_known_hosts, fixture_sim_fleet  # noqa: F401  (fixtures)

pytestmark = pytest.mark.ssh


def test_trust_flow_unknown_then_trusted_then_changed(sim_fleet: StartFleet, known_hosts: KnownHosts) -> None:
    fleet = sim_fleet(1)
    dev = fleet.devices[0]
    target = fleet.target(dev)
    device_fp = subprocess.run(
        ["ssh-keygen", "-lf", f"{dev.host_key_path}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    async def first_contact() -> None:
        with pytest.raises(HostKeyUnknown) as info:
            await SshSession.open(target, known_hosts)
        assert device_fp in str(info.value) and "nixdeck ssh trust dev1" in str(info.value)
        key = await fetch_host_key(dev.host, dev.port)  # fetched, not trusted
        assert fingerprint(key) == device_fp
        assert known_hosts.check(dev.host, dev.port, key) is HostKeyState.UNKNOWN
        known_hosts.trust(dev.host, dev.port, key)
        async with await connect(target, known_hosts.path) as session:
            assert await session.run(["true"]) == 0

    asyncio.run(first_contact())

    dev.regenerate_host_key()  # the device is "reinstalled"
    fleet.restart(dev)
    new_fp = fingerprint(dev.host_public_key())

    async def after_change() -> None:
        with pytest.raises(HostKeyChanged) as info:
            await SshSession.open(target, known_hosts)
        text = str(info.value)
        assert device_fp in text and new_fp in text
        assert f"{known_hosts.path}:1" in text and "nixdeck ssh trust dev1 --replace" in text
        key = await fetch_host_key(dev.host, dev.port)
        known_hosts.trust(dev.host, dev.port, key, replace=True)
        async with await connect(target, known_hosts) as session:
            assert await session.run(["true"]) == 0

    asyncio.run(after_change())


def test_run_streams_lines_and_returns_exit_status(sim_fleet: StartFleet, known_hosts: KnownHosts) -> None:
    fleet = sim_fleet(1)
    fleet.trust_all(known_hosts)

    async def scenario() -> None:
        async with await connect(fleet.target("dev1"), known_hosts) as session:
            out: list[str] = []
            err: list[str] = []
            script = 'echo "one $1"; echo two >&2; printf "%s\\n" "$2"; exit 7'
            tricky = 'it\'s $HOME; `id` "quoted" *'
            code = await session.run(
                ["sh", "-c", script, "sh", "arg with space", tricky],
                on_stdout=out.append,
                on_stderr=err.append,
            )
            assert code == 7
            assert out == ["one arg with space", tricky]
            assert err == ["two"]
            result = await session.run_capture(["cat"], timeout=30)
            assert result.exit_status == 0 and result.stdout == []  # stdin is empty, not left open
            got: list[str] = []
            assert await session.run(["cat"], input="a\nb\n", on_stdout=got.append) == 0
            assert got == ["a", "b"]
            assert await session.run(["no-such-command-xyz"], on_stderr=err.append) == 127
            env = await session.run_capture(["sh", "-c", "echo $NIX_CONF_DIR"])
            assert env.stdout == [str(fleet.devices[0].nix_conf_dir)]

    asyncio.run(scenario())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_and_auth_refused(
    sim_fleet: StartFleet, known_hosts: KnownHosts, tmp_path: Path
) -> None:
    port = _free_port()

    async def refused() -> None:
        with pytest.raises(SshConnectError) as info:
            await SshSession.open(SshTarget("127.0.0.1", port), known_hosts)
        assert f"connection refused by [127.0.0.1]:{port}" in str(info.value)
        with pytest.raises(SshConnectError, match="connection refused"):
            await fetch_host_key("127.0.0.1", port)

    asyncio.run(refused())

    fleet = sim_fleet(1)
    fleet.trust_all(known_hosts)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    dev = fleet.devices[0]

    async def auth() -> None:
        with pytest.raises(SshAuthError, match="refused authentication"):
            await SshSession.open(
                SshTarget(dev.host, dev.port, dev.user, identity_file=stranger), known_hosts
            )
        with pytest.raises(SshAuthError, match="does not exist"):
            await SshSession.open(SshTarget(dev.host, identity_file=tmp_path / "missing"), known_hosts)

    asyncio.run(auth())


def test_cancel_and_timeout_kill_the_remote_command(sim_fleet: StartFleet, known_hosts: KnownHosts) -> None:
    fleet = sim_fleet(1)
    fleet.trust_all(known_hosts)
    dev = fleet.devices[0]

    async def scenario() -> None:
        async with await connect(fleet.target(dev), known_hosts) as session:
            started = asyncio.Event()
            lines: list[str] = []

            def seen(line: str) -> None:
                lines.append(line)
                started.set()

            # a child in the background and one in the foreground, both must go
            task = asyncio.create_task(
                session.run(["sh", "-c", "sleep 1000 & echo started; sleep 1001; echo never"], on_stdout=seen)
            )
            await asyncio.wait_for(started.wait(), 30)
            for _ in range(3000):  # until both sleeps have been exec'd
                if {cmd for _, cmd in dev.command_processes()} >= {"sleep 1000", "sleep 1001"}:
                    break
                await asyncio.sleep(0.01)
            assert {cmd for _, cmd in dev.command_processes()} >= {"sleep 1000", "sleep 1001"}
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert dev.command_processes() == []
            # and seen from inside the device, on a new connection
            async with await connect(fleet.target(dev), known_hosts) as other:
                check = await other.run_capture(["pgrep", "-x", "sleep"])
                assert check.exit_status == 1, check.stdout
            with pytest.raises(SshCommandTimeout, match="longer than 0.5 s"):
                await session.run(["sh", "-c", "sleep 1002 & sleep 1003"], timeout=0.5)
            assert dev.command_processes() == []
            assert await session.run(["true"]) == 0  # the connection is still usable
            # something that escapes its process group on purpose: only stopping the device ends it
            assert await session.run(["sh", "-c", "setsid sleep 1004 </dev/null >/dev/null 2>&1 &"]) == 0

    asyncio.run(scenario())
    for _ in range(3000):
        survivors = [pid for pid, cmd in dev.command_processes() if cmd == "sleep 1004"]
        if survivors:
            break
        time.sleep(0.01)
    assert survivors
    fleet.stop()  # raises if anything survived
    assert not Path(f"/proc/{survivors[0]}").exists()


def test_each_device_has_its_own_nix_and_run(sim_fleet: StartFleet, known_hosts: KnownHosts) -> None:
    fleet = sim_fleet(2)
    fleet.trust_all(known_hosts)
    one, two = fleet.devices
    assert one.isolated and one.port == 22 and one.host != two.host

    async def scenario() -> None:
        async with (
            await connect(fleet.target(one), known_hosts) as s1,
            await connect(fleet.target(two), known_hosts) as s2,
        ):
            mark = f"nixdeck-isolation-{one.host}"
            assert await s1.run(["sh", "-c", f"echo one > /nix/{mark} && echo one > /run/{mark}"]) == 0
            assert await s1.run(["test", "-e", f"/nix/{mark}"]) == 0
            assert await s2.run(["test", "-e", f"/nix/{mark}"]) == 1
            assert await s2.run(["test", "-e", f"/run/{mark}"]) == 1
            assert not Path(f"/nix/{mark}").exists() and not Path(f"/run/{mark}").exists()
            assert one.path_on_device(f"/nix/{mark}").read_text() == "one\n"
            assert one.path_on_device(f"/run/{mark}").exists()

    asyncio.run(scenario())
