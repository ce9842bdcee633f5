"""`nixdeck demo start|status|stop|run`: real sshd per demo device, trusted keys, nothing left behind.

The demo normally uses 127.0.0.11-14; these tests use blocks from 127.0.0.41 on (never a developer's
running demo, never the SSH tests' 100-199), each test with its own data dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

from nixdeck.core.project import Project, demo_status, start_demo, stop_demo
from nixdeck.core.project.demo import DemoAddressBusy, demo_ready, demo_state_path, read_state
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.session import connect

pytestmark = pytest.mark.nix

NAMES = ["gateway", "kiosk-1", "kiosk-2", "sensor-hub"]
BLOCKS = range(41, 98, 4)


def nixdeck(data_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nixdeck", "--data-dir", str(data_dir), *argv],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def cli_start(data_dir: Path) -> int:
    """`demo start` on the first free block (NIXDECK_DEMO_FIRST_OCTET); returns the first octet."""
    for first in BLOCKS:
        res = nixdeck(data_dir, "demo", "start", NIXDECK_DEMO_FIRST_OCTET=str(first))
        if res.returncode == 0:
            return first
        assert "NIXDECK_DEMO_FIRST_OCTET" in res.stderr, res.stderr  # only "address in use" may retry
    raise AssertionError("no free loopback block for the demo")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != b"Z":
            found.append(f"{pid}: {cmd}")
    return found


def ssh(data_dir: Path, dev: dict[str, object], command: str) -> subprocess.CompletedProcess[str]:
    """OpenSSH with strict host key checking against NixDeck's known_hosts only."""
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={data_dir / 'ssh' / 'known_hosts'}", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "IdentitiesOnly=yes", "-i", str(dev["identity_file"]), "-p", str(dev["port"]),
         f"{dev['user']}@{dev['host']}", command],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_demo_start_status_stop(data_dir: Path) -> None:
    first = cli_start(data_dir)
    try:
        state = json.loads(demo_state_path(data_dir).read_text())
        devices = state["devices"]
        assert [d["name"] for d in devices] == NAMES
        assert [d["host"] for d in devices] == [f"127.0.0.{first + i}" for i in range(4)]
        fleet = data_dir / "demo" / "fleet"

        # The inventory points at the devices and the demo's client key, committed (the flake stays clean).
        project = Project.open(fleet, discover_devices=False)
        for d in devices:
            s = project.device(d["name"]).settings
            assert (s.host, s.port, s.user, s.identity_file) == (d["host"], d["port"], d["user"], d["identity_file"])
        git = subprocess.run(["git", "-C", str(fleet), "status", "--porcelain"], capture_output=True, text=True)
        assert git.stdout == ""

        known = KnownHosts.in_data_dir(data_dir)
        for d in devices:
            (entry,) = known.lookup(d["host"], d["port"])
            key = asyncssh.read_public_key(Path(d["dir"]) / "ssh_host_ed25519_key.pub")
            assert entry.key.public_data == key.public_data
            # OpenSSH, strict: the device answers with that host key; its switch writes in its own dir.
            res = ssh(data_dir, d, "echo $NIXDECK_SIM_ROOT; ls -A /nix/store 2>/dev/null | wc -l")
            assert res.returncode == 0, res.stderr
            root, store_entries = res.stdout.split()
            assert root == d["dir"]
            if d["isolated"]:
                assert store_entries == "0"  # its own, empty /nix

        # A newcomer's deploy is real: built, copied (signed with the demo's key), switched, confirmed.
        res = nixdeck(data_dir, "deploy", "--project", str(fleet), "kiosk-1", "kiosk-2", "--json")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        for d in devices[1:3]:
            current = Path(d["dir"]) / "run" / "current-system"
            assert current.is_symlink() and os.readlink(current).startswith("/nix/store/"), d
        assert not (Path(devices[0]["dir"]) / "run" / "current-system").exists()

        # A command left running on a device must not survive the stop.
        res = ssh(data_dir, devices[0], "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
        assert res.returncode == 0, res.stderr

        res = nixdeck(data_dir, "demo", "status", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert [(s["name"], s["running"], s["answers"]) for s in json.loads(res.stdout)] == [
            (n, True, True) for n in NAMES
        ]
        res = nixdeck(data_dir, "demo", "start")
        assert res.returncode == 0 and "already running" in res.stdout

        # The inventory changes are in the history, silent.
        res = nixdeck(data_dir, "tasks", "list", "--all", "--json")
        titles = {t["title"] for t in json.loads(res.stdout) if t["silent"]}
        assert "Demo: set defaults identity_file" in titles
    finally:
        res = nixdeck(data_dir, "demo", "stop")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "stopped 4 simulated devices"
    assert processes_mentioning(str(data_dir)) == []
    assert not any(d.get("pid_ns") and _ns_alive(d["pid_ns"]) for d in devices)
    assert not demo_state_path(data_dir).exists()
    assert KnownHosts.in_data_dir(data_dir).entries() == []
    res = nixdeck(data_dir, "demo", "status")
    assert res.returncode == 1 and "not running" in res.stdout
    assert nixdeck(data_dir, "demo", "stop").stdout.strip() == "the demo is not running"


def _ns_alive(pid_ns: str) -> bool:
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == pid_ns:
                return True
        except OSError:
            continue
    return False


def test_demo_without_isolation_uses_high_ports_and_stops_cleanly(data_dir: Path) -> None:
    """The non-root fallback (forced here): 127.0.0.1 high ports, the shared store."""
    for first in BLOCKS:
        try:
            started = start_demo(data_dir, first_octet=first, isolated=False)
            break
        except DemoAddressBusy:
            continue
    try:
        assert not started.isolated
        assert [(d.host, d.port) for d in started.devices] == [("127.0.0.1", 22000 + first + i) for i in range(4)]
        statuses = demo_status(data_dir)
        assert [(s.device.name, s.answers) for s in statuses] == [(n, True) for n in NAMES], statuses

        async def whoami() -> list[str]:
            async with await connect(started.devices[1].target(), KnownHosts.in_data_dir(data_dir)) as s:
                res = await s.run_capture(["sh", "-c", "echo $NIXDECK_SIM_ROOT"])
            return res.stdout

        import asyncio

        assert asyncio.run(whoami()) == [f"{started.devices[1].dir}/sim-root"]  # simdevice's choice
    finally:
        stopped = stop_demo(data_dir)
    assert [d.name for d in stopped] == NAMES
    assert processes_mentioning(str(data_dir)) == []
    assert read_state(data_dir) == []


def test_demo_run_stops_the_devices_when_the_window_ends(data_dir: Path) -> None:
    for first in BLOCKS:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nixdeck", "--data-dir", str(data_dir), "demo", "run", "--first-octet", str(first)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and not demo_ready(data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            out, err = proc.communicate()
            assert "NIXDECK_DEMO_FIRST_OCTET" in err, out + err
            continue
        break
    try:
        statuses = demo_status(data_dir)
        assert [s.answers for s in statuses] == [True] * 4, statuses
        deadline = time.monotonic() + 60  # the window is up once it logs (not a timing assert)
        while not (data_dir / "gui.log").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and (data_dir / "gui.log").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert "stopped 4 simulated devices" in out, out + err
    assert processes_mentioning(str(data_dir)) == []
    assert not demo_state_path(data_dir).exists()
