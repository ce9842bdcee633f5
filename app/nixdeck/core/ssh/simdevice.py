"""Simulated devices: real OpenSSH servers on loopback, each with its own /nix and /run.

Used by the tests and by the demo so that deploys run against real sshd and real Nix. As root,
device N is ``sshd`` on ``127.0.0.N:22`` inside its own mount and PID namespace
(``unshare --mount --pid --fork --mount-proc``) with the device dir's ``nix/`` bound over
``/nix``, ``run/`` over ``/run`` and ``sim-state/`` over ``/var/lib/nixdeck-sim`` (where the fixture
fleet's fake switch-to-configuration keeps its records): ``nix copy`` really transfers, switching
acts only on that device, and stopping the namespace's init (sshd) makes the kernel kill whatever the device's
commands left behind. Without root there is no isolation (``SimDevice.isolated`` is False):
devices listen on high ports of 127.0.0.1 and share the host's store.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from nixdeck.core.ssh.errors import host_label
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.options import SshTarget

SSHD = "/usr/sbin/sshd"

# PID 1 of an isolated device: runs the command (sshd), passes SIGHUP on (a reload), and when the
# device "reboots" (the fake
# NixOS `reboot` of resources/demo/lib.nix leaves a request and ends every other process), brings
# it back with the system that the last switch/boot made the boot default, as a real boot would.
SIM_INIT = r"""trap 'kill "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
trap 'kill -HUP "$pid" 2>/dev/null' HUP
state=/var/lib/nixdeck-sim
while :; do
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
  [ -e "$state/reboot-requested" ] || exit 0
  rm -f "$state/reboot-requested"
  kill -KILL -1 2>/dev/null
  booted="$(readlink "$state/boot-system")"
  if [ -n "$booted" ]; then
    ln -sfn "$booted" /run/current-system
    ln -sfn "$booted" /run/booted-system
  fi
  echo "$(date +%s) $booted" >> "$state/boots"
done
"""
SIM_STATE = "/var/lib/nixdeck-sim"
HIGH_PORT_BASE = 22000

NIX_CONF = """\
experimental-features = nix-command flakes
build-users-group =
sandbox = false
substituters =
flake-registry = {registry}
"""


class SimDeviceError(RuntimeError):
    """A simulated device could not be set up, started or stopped cleanly."""


class AddressBusy(SimDeviceError):
    """Another fleet (another test process, the demo) holds this loopback address."""


def _quote(value: str | Path) -> str:
    text = str(value)
    if '"' in text or "\n" in text:
        raise SimDeviceError(f"path not usable in sshd_config: {text!r}")
    return f'"{text}"'


def _keygen(path: Path, comment: str) -> None:
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def _ns(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # the comm field may hold spaces and parentheses: split after the last ')'
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_ns_init(pid: int) -> bool:
    """PID 1 of its PID namespace (an isolated device's init)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return line.split()[-1] == "1" and len(line.split()) > 2
    except OSError:
        pass
    return False


def _is_sshd(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == SSHD
    except OSError:
        return False


class SimDevice:
    """One simulated device: its directory, keys, sshd config and (when started) its sshd."""

    def __init__(
        self, name: str, directory: Path, host: str, port: int, *, isolated: bool, client_pubkey: Path
    ) -> None:
        self.name = name
        self.dir = directory
        self.host = host
        self.port = port
        self.isolated = isolated
        self.client_pubkey = client_pubkey
        self.user = "root" if isolated else _current_user()
        self.process: subprocess.Popen[bytes] | None = None
        #: Extra environment of every session (sshd ``SetEnv``), e.g. ``NIXDECK_SIM_FAIL_UNITS``;
        #: takes effect at the next start.
        self.env: dict[str, str] = {}
        self._pid_ns: str | None = None
        self._lock_fd: int | None = None

    # --- layout -------------------------------------------------------------------------
    @property
    def nix_dir(self) -> Path:
        """The host path of the device's ``/nix`` (isolated devices only)."""
        return self.dir / "nix"

    @property
    def run_dir(self) -> Path:
        """The host path of the device's ``/run`` (isolated devices only)."""
        return self.dir / "run"

    @property
    def sim_state_dir(self) -> Path:
        """The host path of the device's ``/var/lib/nixdeck-sim`` (isolated devices only)."""
        return self.dir / "sim-state"

    @property
    def nix_conf_dir(self) -> Path:
        return self.dir / "etc" / "nix"

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def config_path(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    def path_on_device(self, device_path: str) -> Path:
        """Host path of a file the device sees at ``device_path`` (under /nix or /run)."""
        for mount, local in (("/nix", self.nix_dir), ("/run", self.run_dir), (SIM_STATE, self.sim_state_dir)):
            if self.isolated and (device_path == mount or device_path.startswith(mount + "/")):
                return local / device_path[len(mount) + 1 :]
        return Path(device_path)

    def prepare(self) -> None:
        """Create the device dir, host key (kept across restarts), nix.conf and sshd_config."""
        if self.isolated:
            for reserved in ("/run", "/nix"):
                if self.dir.resolve().is_relative_to(reserved):
                    raise SimDeviceError(f"device dir {self.dir} must not be under {reserved}")
        for sub in (self.nix_dir, self.run_dir / "sshd", self.nix_conf_dir, self.dir / "cache", self.sim_state_dir):
            sub.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir / "sshd", 0o755)
        if not self.host_key_path.exists():
            _keygen(self.host_key_path, f"{self.name}-host")
        (self.nix_conf_dir / "registry.json").write_text('{"flakes":[],"version":2}\n')
        (self.nix_conf_dir / "nix.conf").write_text(
            NIX_CONF.format(registry=self.nix_conf_dir / "registry.json")
        )
        shutil.copyfile(self.client_pubkey, self.dir / "authorized_keys")
        self.config_path.write_text(self.sshd_config())

    def sshd_config(self) -> str:
        env = [f"NIX_CONF_DIR={self.nix_conf_dir}", f"XDG_CACHE_HOME={self.dir / 'cache'}"]
        if not self.isolated:
            env.append(f"NIXDECK_SIM_ROOT={self.dir / 'sim-root'}")  # no own /run: act under the device dir
        env += [f"{k}={v}" for k, v in self.env.items()]
        return "\n".join(
            [
                f"ListenAddress {self.host}:{self.port}",
                f"HostKey {_quote(self.host_key_path)}",
                f"AuthorizedKeysFile {_quote(self.dir / 'authorized_keys')}",
                "PidFile none",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "UseDNS no",
                "PrintMotd no",
                "PrintLastLog no",
                "X11Forwarding no",
                "MaxStartups 100",
                "MaxSessions 50",
                "Subsystem sftp internal-sftp",  # as on NixOS (services.openssh.allowSFTP)
                "SetEnv " + " ".join(_quote(e) for e in env),
                "",
            ]
        )

    def regenerate_host_key(self) -> None:
        """Give the device a new host key (takes effect at the next start): a 'reinstall'."""
        _keygen(self.host_key_path, f"{self.name}-host")

    def host_public_key(self) -> asyncssh.SSHKey:
        return asyncssh.read_public_key(f"{self.host_key_path}.pub")

    def validate(self) -> None:
        """``sshd -t``: a broken config fails here with sshd's own words."""
        res = subprocess.run(
            self._in_device([SSHD, "-t", "-f", str(self.config_path)]),
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if res.returncode != 0:
            raise SimDeviceError(
                f"sshd config of {self.name} is invalid ({self.config_path}): {res.stderr.strip()}"
            )

    def _in_device(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the device: own mount + PID namespace with its /nix and /run."""
        if not self.isolated:
            if os.geteuid() == 0:
                Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privsep dir, as root
            return argv
        Path("/nix").mkdir(exist_ok=True)  # mount point; Debian's nix lives in /usr/bin
        Path(SIM_STATE).mkdir(parents=True, exist_ok=True)  # mount point, stays empty on the host
        script = (
            'mount --bind "$1/nix" /nix && mount --bind "$1/run" /run && '
            f'mount --bind "$1/sim-state" {SIM_STATE} && shift && exec /bin/sh -c "$0" sim-init "$@"'
        )
        return [
            "unshare", "--mount", "--propagation", "private", "--pid", "--fork",
            "--kill-child=SIGKILL", "--mount-proc", "--", "/bin/sh", "-c", script, SIM_INIT,
            str(self.dir), *argv,
        ]  # fmt: skip

    # --- lifecycle ----------------------------------------------------------------------
    def lock_address(self) -> None:
        lock_dir = Path(tempfile.gettempdir()) / "nixdeck-sim-locks"
        lock_dir.mkdir(exist_ok=True)
        fd = os.open(lock_dir / f"{self.host}_{self.port}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AddressBusy(
                f"{host_label(self.host, self.port)} is used by another simulated fleet"
            ) from None
        self._lock_fd = fd
        if _port_open(self.host, self.port):
            self.unlock_address()
            raise AddressBusy(f"something already listens on {host_label(self.host, self.port)}")

    def unlock_address(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def spawn(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise SimDeviceError(f"{self.name} is already running")
        self.config_path.write_text(self.sshd_config())
        argv = self._in_device([SSHD, "-D", "-e", "-f", str(self.config_path)])
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def poll_ready(self) -> bool:
        """True once sshd accepts connections; raises if it died."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise SimDeviceError(
                f"sshd of {self.name} exited with {self.process.returncode}: {self.log_tail()}"
            )
        if not _port_open(self.host, self.port):
            return False
        if self.isolated:
            self._pid_ns = _ns(self.process.pid, "pid_for_children")
            if self._pid_ns is None or self._pid_ns == _ns(os.getpid(), "pid"):
                raise SimDeviceError(f"{self.name} did not get its own PID namespace")
        return True

    def log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def processes(self) -> list[tuple[int, str]]:
        """Host pids and command lines of everything running in the device, sshd included."""
        if self.isolated and self._pid_ns is not None:
            return [(p, _cmdline(p)) for p in _all_pids() if _ns(p, "pid") == self._pid_ns]
        if self.process is None:
            return []
        return [(p, _cmdline(p)) for p in _descendants(self.process.pid)]

    def command_processes(self) -> list[tuple[int, str]]:
        """Processes in the device other than sshd itself (and its init): what remote commands left running."""
        return [(p, cmd) for p, cmd in self.processes() if not _is_sshd(p) and not _is_ns_init(p)]

    def stop(self, grace: float = 3.0) -> None:
        """Stop sshd and everything started through it; raises if anything survives."""
        proc = self.process
        if proc is None:
            self.unlock_address()
            return
        victims = [p for p, _ in self.processes()]
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_all([proc.pid], signal.SIGKILL, group=True)
            proc.wait(timeout=grace)
        # Isolated: the kernel killed the PID namespace when its init (sshd) died.
        # Not isolated: session children live in their own sessions; kill them by pid.
        leftover = self.processes() if self.isolated else [(p, _cmdline(p)) for p in victims if _alive(p)]
        _kill_all([p for p, _ in leftover], signal.SIGKILL)
        deadline = time.monotonic() + grace
        while leftover and time.monotonic() < deadline:
            time.sleep(0.02)
            leftover = [(p, c) for p, c in leftover if _alive(p)]
        self.process = None
        self.unlock_address()
        if leftover:
            raise SimDeviceError(f"{self.name}: processes survived stop: {leftover}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _kill_all(pids: Iterable[int], sig: signal.Signals, *, group: bool = False) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def can_isolate() -> bool:
    """Isolated devices need root (mount/PID namespaces, port 22, binding over /nix)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


class SimFleet:
    """N simulated devices started and stopped together.

    ``devices`` is a count (names ``dev1``..) or a list of names; device i listens on
    ``<prefix>.<first_octet + i>:22`` (isolated) or ``127.0.0.1:<22000 + octet>`` (not root).
    One client key (``client_key``) is authorized on every device.
    """

    def __init__(
        self,
        base_dir: Path,
        devices: int | Sequence[str],
        *,
        first_octet: int = 11,
        prefix: str = "127.0.0",
        isolated: bool | None = None,
    ) -> None:
        names = [f"dev{i + 1}" for i in range(devices)] if isinstance(devices, int) else list(devices)
        if not names or first_octet < 2 or first_octet + len(names) - 1 > 254:
            raise SimDeviceError(f"cannot place {len(names)} devices from octet {first_octet}")
        self.base_dir = base_dir
        self.isolated = can_isolate() if isolated is None else isolated
        if self.isolated and not can_isolate():
            raise SimDeviceError("isolated simulated devices need root and unshare")
        self.client_key = base_dir / "client_ed25519"
        self.devices: list[SimDevice] = []
        for i, name in enumerate(names):
            octet = first_octet + i
            host, port = (f"{prefix}.{octet}", 22) if self.isolated else ("127.0.0.1", HIGH_PORT_BASE + octet)
            self.devices.append(
                SimDevice(
                    name, base_dir / name, host, port,
                    isolated=self.isolated, client_pubkey=Path(f"{self.client_key}.pub"),
                )
            )  # fmt: skip

    def __getitem__(self, name: str) -> SimDevice:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def target(self, device: SimDevice | str, **options: Any) -> SshTarget:
        """How NixDeck reaches ``device``: its address, user and the fleet's client key."""
        dev = self[device] if isinstance(device, str) else device
        return SshTarget(
            dev.host, dev.port, dev.user, identity_file=self.client_key, name=dev.name, **options
        )

    def start(self, timeout: float = 20.0) -> None:
        """Prepare, validate and start every device, then wait until all accept connections."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not self.client_key.exists():
            _keygen(self.client_key, "nixdeck-sim-client")
        started: list[SimDevice] = []
        try:
            for device in self.devices:
                device.prepare()
                device.validate()
            for device in self.devices:
                device.lock_address()
                started.append(device)
            self._spawn_and_wait(self.devices, timeout)
        except BaseException:
            for device in started:
                try:
                    device.stop()
                except SimDeviceError:
                    pass
            raise

    def restart(self, device: SimDevice, timeout: float = 20.0) -> None:
        """Stop and start one device (e.g. after `SimDevice.regenerate_host_key`)."""
        device.stop()
        device.prepare()
        device.validate()
        device.lock_address()
        self._spawn_and_wait([device], timeout)

    @staticmethod
    def _spawn_and_wait(devices: Sequence[SimDevice], timeout: float) -> None:
        for device in devices:
            device.spawn()
        waiting = list(devices)
        deadline = time.monotonic() + timeout
        while waiting:
            waiting = [d for d in waiting if not d.poll_ready()]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(f"{d.name} ({d.log_tail(3)})" for d in waiting)
                raise SimDeviceError(f"simulated devices not ready after {timeout:g} s: {names}")
            if waiting:
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop all devices; raises `SimDeviceError` listing anything that survived."""
        errors: list[str] = []
        for device in self.devices:
            try:
                device.stop()
            except SimDeviceError as exc:
                errors.append(str(exc))
        if errors:
            raise SimDeviceError("; ".join(errors))

    def trust_all(self, known_hosts: KnownHosts) -> None:
        """Write every device's host key into ``known_hosts`` (the demo trusts its own devices)."""
        for device in self.devices:
            known_hosts.trust(device.host, device.port, device.host_public_key(), replace=True)

    def __enter__(self) -> SimFleet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
