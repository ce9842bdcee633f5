"""The embedded demo: the ``resources/demo`` fleet flake plus one simulated device per entry.

``prepare_demo`` copies ``resources/demo`` to ``<data_dir>/demo/fleet`` as a git flake. An existing
copy is kept (the user may have changed it) unless ``reset`` is asked; the copy is made in a
temporary directory beside the target and renamed into place, so an interrupted setup never leaves a
half-made fleet.

``start_demo`` starts one real OpenSSH server per inventory entry with core/ssh/simdevice.py
(as root: ``127.0.0.<first_octet + i>:22`` each in its own mount/PID namespace with its own /nix;
otherwise high ports on 127.0.0.1 and the shared store), trusts their host keys in NixDeck's
known_hosts, points the demo inventory at the devices and the generated client key (committed, so the
flake stays clean) and leaves the servers running detached: their pids are kept in
``<data_dir>/demo/devices.json`` so ``stop_demo`` (any process) stops them with nothing left behind.
Each device's sshd sets ``NIXDECK_SIM_ROOT`` inside the device's own directory, so the demo systems'
switch-to-configuration never writes to the host (isolated: the device dir, whose ``run/`` is the
device's /run; otherwise simdevice's ``<dir>/sim-root``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nixdeck.core.ssh.errors import SshError
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.options import SshTarget
from nixdeck.core.ssh.session import connect
from nixdeck.core.ssh.simdevice import AddressBusy, SimDeviceError, SimFleet
from nixdeck.core.tasks.procs import is_alive, signal_group, start_ticks

from . import gitrepo
from .errors import DemoAddressBusy, DemoError
from .files import atomic_write
from .inventory import INVENTORY_FILE, Inventory, read_inventory
from .project import Change, Project
from .resources import resource

DEMO_SUBDIR = ("demo", "fleet")
DEMO_FIRST_OCTET = 11
FIRST_OCTET_ENV = "NIXDECK_DEMO_FIRST_OCTET"
STATE_VERSION = 1
STOP_GRACE = 3.0


# --- the fleet flake -----------------------------------------------------------------------------


def demo_fleet_path(data_dir: Path) -> Path:
    return Path(data_dir).joinpath(*DEMO_SUBDIR)


async def prepare_demo_async(data_dir: Path, *, reset: bool = False) -> Path:
    """Set up (or reuse) the demo fleet flake in the data dir; return its path."""
    target = demo_fleet_path(data_dir)
    if target.joinpath("flake.nix").is_file() and target.joinpath(".git").exists() and not reset:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fleet-", dir=target.parent))
    try:
        shutil.copytree(resource("demo"), tmp, dirs_exist_ok=True)
        await gitrepo.init_and_commit(tmp, "NixDeck demo fleet")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def prepare_demo(data_dir: Path, *, reset: bool = False) -> Path:
    """Synchronous ``prepare_demo_async`` (not from inside a running event loop)."""
    return asyncio.run(prepare_demo_async(data_dir, reset=reset))


# --- the simulated devices -----------------------------------------------------------------------


def demo_dir(data_dir: Path) -> Path:
    return Path(data_dir) / DEMO_SUBDIR[0]


def demo_devices_dir(data_dir: Path) -> Path:
    """Where the simulated devices live (keys, sshd configs, each device's /nix and /run)."""
    return demo_dir(data_dir) / "devices"


def demo_state_path(data_dir: Path) -> Path:
    return demo_dir(data_dir) / "devices.json"


def first_octet_default() -> int:
    """``NIXDECK_DEMO_FIRST_OCTET`` (tests use another block than a developer's demo), else 11."""
    raw = os.environ.get(FIRST_OCTET_ENV, "").strip()
    if not raw:
        return DEMO_FIRST_OCTET
    if not raw.isdigit() or not 2 <= int(raw) <= 250:
        raise DemoError(f"{FIRST_OCTET_ENV}: {raw!r} is not an address octet (2-250)", field=FIRST_OCTET_ENV, value=raw)
    return int(raw)


@dataclass(frozen=True)
class RunningDevice:
    """A started simulated device as ``devices.json`` keeps it."""

    name: str
    host: str
    port: int
    user: str
    pid: int  # the device's process group leader (unshare, or sshd when not isolated)
    start_ticks: int | None  # with pid: the process identity, so a reused pid is never signalled
    pid_ns: str | None  # the device's PID namespace (isolated devices)
    isolated: bool
    dir: str
    identity_file: str

    @property
    def running(self) -> bool:
        return is_alive(self.pid, self.start_ticks)

    def target(self) -> SshTarget:
        return SshTarget(self.host, self.port, self.user, identity_file=Path(self.identity_file), name=self.name,
                         connect_timeout=5.0)


@dataclass(frozen=True)
class DemoStart:
    """What ``start_demo`` did. ``changes`` are the inventory updates (record them in the history)."""

    fleet: Path
    devices: list[RunningDevice]
    isolated: bool
    already_running: bool = False
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class DeviceStatus:
    device: RunningDevice
    running: bool
    answers: bool
    reason: str = ""  # why it does not answer


def _demo_fleet(base: Path, names: Sequence[str], first_octet: int, isolated: bool | None) -> SimFleet:
    fleet = SimFleet(base, names, first_octet=first_octet, isolated=isolated)
    for dev in fleet.devices:
        if dev.isolated:
            # simdevice leaves the root at "/" for isolated devices: /run is theirs, but /var is the
            # host's. The device dir keeps both: its run/ is the device's /run.
            dev.env["NIXDECK_SIM_ROOT"] = str(dev.dir)
    return fleet


@contextlib.contextmanager
def _demo_lock(data_dir: Path) -> Iterator[None]:
    """One start/stop at a time per data dir (two terminals, a window and a CLI)."""
    d = demo_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_state(data_dir: Path) -> list[RunningDevice]:
    """The devices ``devices.json`` lists (empty when the demo is not started)."""
    path = demo_state_path(data_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [RunningDevice(**d) for d in data["devices"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoError(f"{path} is unreadable ({exc}); stop leftover sshd by hand and delete it", path=path) from None


def _write_state(data_dir: Path, devices: Sequence[RunningDevice], fleet: Path, *, ready: bool = False) -> None:
    data: dict[str, Any] = {
        "version": STATE_VERSION, "fleet": str(fleet), "ready": ready, "devices": [asdict(d) for d in devices],
    }  # fmt: skip
    atomic_write(demo_state_path(data_dir), (json.dumps(data, indent=2) + "\n").encode(), backup=False)


def demo_ready(data_dir: Path) -> bool:
    """True once a started demo's devices are trusted and its inventory points at them."""
    try:
        return bool(json.loads(demo_state_path(data_dir).read_text(encoding="utf-8")).get("ready"))
    except (OSError, ValueError, AttributeError):
        return False


def _pid_ns_for_children(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid_for_children")
    except OSError:
        return None


def _demo_signing_key(data_dir: Path) -> tuple[Path, str]:
    """The demo project's closure-signing key (made once) and its public half.

    Deploys to the demo use the safe setting a real fleet should use: NixDeck signs each closure
    with this key and the simulated devices trust its public half (no `--no-check-sigs`)."""
    secret = data_dir / "demo" / "signing-key.sec"
    nix = ["nix", "--extra-experimental-features", "nix-command"]
    try:
        if not secret.is_file():
            made = subprocess.run([*nix, "key", "generate-secret", "--key-name", "nixdeck-demo-1"],
                                  capture_output=True, text=True, check=True, timeout=30)
            secret.parent.mkdir(parents=True, exist_ok=True)
            tmp = secret.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(made.stdout.strip() + "\n")
            os.replace(tmp, secret)
        public = subprocess.run([*nix, "key", "convert-secret-to-public"], input=secret.read_text(),
                                capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise DemoError(f"demo: cannot make the signing key with nix: {exc}") from None
    return secret, public


def _trust_signing_key(fleet: SimFleet, public: str) -> None:
    """Each simulated device's nix.conf trusts the demo's signing key."""
    line = f"trusted-public-keys = {public}\n"
    for dev in fleet.devices:
        conf = dev.nix_conf_dir / "nix.conf"
        text = conf.read_text()
        if line not in text:
            atomic_write(conf, (text + line).encode(), backup=False)


def _ship_automations(project: Project) -> Change:
    """A demo copy made before automations shipped gets the shipped ones (only when it has none:
    a user's own edits of them are never undone)."""
    shipped = read_inventory(resource("demo") / INVENTORY_FILE)

    def fn(inv: Inventory) -> tuple[Inventory, Change]:
        if inv.groups or inv.automations:
            return inv, Change("automations-added", "the demo's automations are there", changed=False)
        new = inv.model_copy(update={"groups": shipped.groups, "automations": shipped.automations})
        return new, Change("automations-added", "added the demo's automations", changed=new != inv)

    return project.change_automations(fn)


def _sync_inventory(project: Project, fleet: SimFleet, signing_key: Path) -> list[Change]:
    """Point the demo inventory at the running devices, the demo's client key and signing key."""
    changes = [_ship_automations(project), project.set_defaults({"identity_file": str(fleet.client_key)})]
    changes.append(project.set_project_settings({"signing_key": str(signing_key)}))
    for dev in fleet.devices:
        s = project.device(dev.name).settings
        want: dict[str, object] = {}
        if s.host != dev.host:
            want["host"] = dev.host
        if s.port != dev.port:
            want["port"] = dev.port
        if s.user != dev.user:
            want["user"] = dev.user
        if want:
            changes.append(project.set_fields(dev.name, want))
    return [Change(c.kind, f"demo: {c.summary}", c.devices, c.changed, silent=True) for c in changes if c.changed]


def start_demo(
    data_dir: Path,
    *,
    first_octet: int | None = None,
    isolated: bool | None = None,
    reset: bool = False,
    timeout: float = 20.0,
) -> DemoStart:
    """Prepare the demo fleet and start its devices detached (see the module docstring).

    Devices already running are reused (``already_running``) unless ``reset`` asks for a fresh copy
    of the fleet, which stops them first."""
    data_dir = Path(data_dir)
    octet = first_octet_default() if first_octet is None else first_octet
    with _demo_lock(data_dir):
        running = read_state(data_dir)
        if running and all(d.running for d in running) and demo_ready(data_dir) and not reset:
            return DemoStart(demo_fleet_path(data_dir), running, running[0].isolated, already_running=True)
        if running:
            _stop_devices(data_dir, running)
        fleet_dir = prepare_demo(data_dir, reset=reset)
        project = Project.open(fleet_dir, discover_devices=False)
        names = list(project.inventory.devices)
        if not names:
            raise DemoError(f"the demo inventory {project.inventory_path} lists no devices", path=project.inventory_path)
        try:
            fleet = _demo_fleet(demo_devices_dir(data_dir), names, octet, isolated)
            fleet.start(timeout)
        except AddressBusy as exc:
            raise DemoAddressBusy(
                f"demo: {exc}; stop the other demo (`nixdeck demo stop`) or set {FIRST_OCTET_ENV} to another block",
                field=FIRST_OCTET_ENV, value=octet,
            ) from None  # fmt: skip
        except (SimDeviceError, OSError) as exc:
            raise DemoError(f"demo: the simulated devices did not start: {exc}") from None
        devices: list[RunningDevice] = []
        try:
            for dev in fleet.devices:
                assert dev.process is not None
                pid = dev.process.pid
                devices.append(RunningDevice(
                    dev.name, dev.host, dev.port, dev.user, pid, start_ticks(pid),
                    _pid_ns_for_children(pid) if dev.isolated else None, dev.isolated, str(dev.dir),
                    str(fleet.client_key),
                ))  # fmt: skip
            _write_state(data_dir, devices, fleet_dir)  # first, so `demo stop` finds them whatever happens
            fleet.trust_all(KnownHosts.in_data_dir(data_dir))
            secret, public = _demo_signing_key(data_dir)
            _trust_signing_key(fleet, public)
            changes = _sync_inventory(project, fleet, secret)
            if changes:
                asyncio.run(gitrepo.commit_paths(fleet_dir, "Demo: point the inventory at the simulated devices",
                                                 INVENTORY_FILE))
            _write_state(data_dir, devices, fleet_dir, ready=True)
        except BaseException:
            with contextlib.suppress(SimDeviceError):
                fleet.stop()
            demo_state_path(data_dir).unlink(missing_ok=True)
            raise
        for dev in fleet.devices:
            # Detached on purpose: SimFleet has no "detach", so mark the Popen as done (no "still
            # running" warning at exit) and let go of the address locks; devices.json has the pids.
            if dev.process is not None:
                dev.process.returncode = 0
            dev.unlock_address()
        return DemoStart(fleet_dir, devices, fleet.isolated, changes=changes)


# --- stopping ------------------------------------------------------------------------------------


def _ns_members(pid_ns: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") == pid_ns:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_bytes()
            ppid = int(raw[raw.rfind(b")") + 2 :].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap(pid: int) -> None:
    """Collect the exit status when the device is our own child (``demo run``)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pids: Sequence[int], grace: float) -> list[int]:
    deadline = time.monotonic() + grace
    left = list(pids)
    while True:
        for p in left:
            _reap(p)
        left = [p for p in left if start_ticks(p) is not None]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def _stop_device(dev: RunningDevice, grace: float) -> list[int]:
    """Stop one device and everything it started; the pids that survived (normally none)."""
    if not dev.running:
        _reap(dev.pid)
        return []
    inside = set(_ns_members(dev.pid_ns) if dev.pid_ns else _descendants(dev.pid))
    signal_group(dev.pid, signal.SIGTERM, dev.start_ticks)
    if _wait_gone([dev.pid], grace):
        signal_group(dev.pid, signal.SIGKILL, dev.start_ticks)
        _wait_gone([dev.pid], grace)
    # Isolated: the kernel killed the namespace when its init (sshd) died. Otherwise sshd's session
    # children run in their own sessions: kill what is left by pid.
    inside |= set(_ns_members(dev.pid_ns) if dev.pid_ns else [])
    left = [p for p in inside if start_ticks(p) is not None]
    for p in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return _wait_gone([*left, dev.pid], grace)


def _stop_devices(data_dir: Path, devices: Sequence[RunningDevice], grace: float = STOP_GRACE) -> None:
    survivors: list[str] = []
    for dev in devices:
        left = _stop_device(dev, grace)
        if left:
            survivors.append(f"{dev.name}: pids {', '.join(map(str, left))}")
    known = KnownHosts.in_data_dir(data_dir)
    if known.path.exists():
        for dev in devices:
            known.forget(dev.host, dev.port)
    if survivors:
        raise DemoError("demo: processes survived the stop: " + "; ".join(survivors))
    demo_state_path(data_dir).unlink(missing_ok=True)


def stop_demo(data_dir: Path, *, grace: float = STOP_GRACE) -> list[RunningDevice]:
    """Stop every demo device (from any process); the devices that were listed."""
    with _demo_lock(Path(data_dir)):
        devices = read_state(data_dir)
        _stop_devices(Path(data_dir), devices, grace)
        return devices


# --- status --------------------------------------------------------------------------------------


async def _answers(dev: RunningDevice, known: KnownHosts) -> tuple[bool, str]:
    try:
        async with await connect(dev.target(), known) as session:
            res = await session.run_capture(["true"], timeout=10)
        return (res.exit_status == 0, "" if res.exit_status == 0 else f"`true` exited with {res.exit_status}")
    except SshError as exc:
        return False, str(exc)
    except OSError as exc:
        return False, str(exc)


async def demo_status_async(data_dir: Path) -> list[DeviceStatus]:
    """Each listed device: is its process alive, does it answer SSH with the trusted host key."""
    devices = read_state(data_dir)
    known = KnownHosts.in_data_dir(Path(data_dir))
    checks = await asyncio.gather(*(_answers(d, known) for d in devices if d.running))
    results = iter(checks)
    out = []
    for d in devices:
        ok, reason = next(results) if d.running else (False, "not running")
        out.append(DeviceStatus(d, d.running, ok, reason))
    return out


def demo_status(data_dir: Path) -> list[DeviceStatus]:
    return asyncio.run(demo_status_async(data_dir))

