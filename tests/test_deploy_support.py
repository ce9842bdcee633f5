"""Shared setup of the deploy and ssh-operation tests (no tests of its own).

`DeployWorld`: a copy of the fixture fleet (fresh store paths), extra ``nodeN`` devices, a simulated
device (real sshd, own /nix and /run) per flake device, NixDeck's known_hosts trusting them, the
inventory pointing at them, and a real engine with every operation registered.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

import engine_helpers
from fleet_fixtures import commit_all, copy_fleet
from nixdeck.core.ops import all_operations
from nixdeck.core.project import Project
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.simdevice import SimDevice, SimFleet
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import ProcessRecord, TaskRecord
from ssh_fixtures import start_fleet

T = TypeVar("T")

NODE = """{{ mkDevice, ... }}:
mkDevice {{ name = "{name}"; motd = "{motd}"; }}
"""

def switch_variant(suffix: str, script: str, *, motd: str = "NAME", let: str = "", device_args: str = "") -> str:
    """A device NAME like `NODE` whose toplevel runs ``script`` as its switch-to-configuration
    (``@out@`` in it is the toplevel itself); ``let`` adds bindings, ``device_args`` mkDevice arguments."""
    body = "\n".join("    " + line if line else "" for line in script.strip("\n").splitlines())
    return (
        "{ drv, mkDevice, ... }:\nlet\n" + let
        + f'  good = mkDevice {{ name = "NAME"; motd = "{motd}"; {device_args}}};\n'
        + "  top = good.config.system.build.toplevel;\n"
        + f'  toplevel = drv "nixos-system-NAME-{suffix}" \'\'\n'
        + "    mkdir -p $out/bin\n"
        + "    for f in etc sw nixos-version system activate; do ln -s ${top}/$f $out/$f; done\n"
        + "    cat > $out/bin/switch-to-configuration <<\'NIXDECK_EOF\'\n" + body + "\n    NIXDECK_EOF\n"
        + '    sed -i "s|@out@|$out|" $out/bin/switch-to-configuration\n'
        + "    chmod +x $out/bin/switch-to-configuration\n  \'\';\nin\n"
        + "{ _type = \"configuration\"; config = good.config // { system = good.config.system // "
        + "{ build = good.config.system.build // { inherit toplevel; }; }; }; }\n"
    )


# A device whose switch makes sshd refuse every login from then on (as a bad sshd config would):
# it appends `DenyUsers *` to the running sshd's config (NIX_CONF_DIR is <device dir>/etc/nix)
# and reloads it (SIGHUP: sessions that are
# open stay open, new logins are refused), then links /run/current-system like a real switch.
LOCKOUT = r"""{ drv, mkDevice, ... }:
let
  good = mkDevice { name = "NAME"; motd = "locked out"; };
  top = good.config.system.build.toplevel;
  toplevel = drv "nixos-system-NAME-lockout" ''
    mkdir -p $out/bin
    for f in etc sw nixos-version system activate; do ln -s ${top}/$f $out/$f; done
    cat > $out/bin/switch-to-configuration <<'NIXDECK_EOF'
    #!/bin/sh
    action="$1"
    if [ "$action" = switch ] || [ "$action" = test ]; then
      ln -sfn "@out@" /run/current-system
      cfg="$(dirname "$(dirname "$NIX_CONF_DIR")")/sshd_config"  # the sim device's sshd config
      log="$(dirname "$cfg")/sshd.log"
      before="$(grep -c 'Server listening' "$log")"
      echo "DenyUsers *" >> "$cfg"
      kill -HUP 1
      # like systemd's restart job: return once the new sshd listens
      i=0
      while [ "$(grep -c 'Server listening' "$log")" -le "$before" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
      echo "reloading sshd.service"
    fi
    exit 0
    NIXDECK_EOF
    sed -i "s|@out@|$out|" $out/bin/switch-to-configuration
    chmod +x $out/bin/switch-to-configuration
  '';
in
{ _type = "configuration"; config = good.config // { system = good.config.system // { build = good.config.system.build // { inherit toplevel; }; }; }; }
"""

# A device whose switch-to-configuration hangs (to cancel a deploy in the middle of activation).
HANGING = switch_variant("hanging", """
#!/bin/sh
echo "activating (this takes a while)"
sleep 300
""")


@dataclass
class DeployWorld:
    flake: Path
    data_dir: Path
    fleet: SimFleet
    known_hosts: KnownHosts

    @property
    def project_dir(self) -> str:
        return str(self.flake)

    def device(self, name: str) -> SimDevice:
        return self.fleet[name]

    def current_system(self, name: str) -> str | None:
        link = self.device(name).run_dir / "current-system"
        return os.readlink(link) if link.is_symlink() else None

    def profile_system(self, name: str) -> str | None:
        link = self.device(name).path_on_device("/nix/var/nix/profiles/system")
        if not link.is_symlink():
            return None
        gen = link.parent / os.readlink(link)
        return os.readlink(gen) if gen.is_symlink() else None

    def has_path(self, name: str, store_path: str) -> bool:
        return self.device(name).path_on_device(store_path).exists()

    def write_device(self, name: str, text: str, *, commit: bool = True) -> None:
        (self.flake / "devices" / f"{name}.nix").write_text(text.replace("NAME", name))
        if commit:
            commit_all(self.flake, f"change {name}")

    def run(self, scenario: Callable[[TaskEngine], Awaitable[T]]) -> T:
        return run_engine(self.data_dir, scenario)


def run_engine(data_dir: Path, scenario: Callable[[TaskEngine], Awaitable[T]], **kw: Any) -> T:
    """`engine_helpers.run_engine` with every real operation registered."""
    return engine_helpers.run_engine(data_dir, scenario, ops=all_operations(), **kw)


def make_world(
    tmp_path: Path,
    data_dir: Path,
    devices: Sequence[str],
    *,
    nodes: Sequence[str] = (),
    no_target: Sequence[str] = (),
    variants: dict[str, str] | None = None,
    confirm_timeout: int | None = None,
) -> DeployWorld:
    """A project with ``devices`` (fixture devices or new ``nodes``), each on its own sim device."""
    flake = copy_fleet(tmp_path, git=False)
    for name in nodes:
        (flake / "devices" / f"{name}.nix").write_text(NODE.format(name=name, motd=f"{name} v1"))
    for name, text in (variants or {}).items():
        (flake / "devices" / f"{name}.nix").write_text(text.replace("NAME", name))
    reachable = [d for d in devices if d not in no_target]
    fleet = start_fleet(tmp_path / "devices", reachable)
    hosts = KnownHosts.in_data_dir(data_dir)
    fleet.trust_all(hosts)
    project = Project.open(flake, discover_devices=False)
    project.set_project_settings({"no_check_sigs": True})
    for name in devices:
        values: dict[str, object] = {}
        if name not in no_target:
            dev = fleet[name]
            values = {"host": dev.host, "port": dev.port, "user": dev.user, "identity_file": str(fleet.client_key)}
            if confirm_timeout is not None:
                values["confirm_timeout"] = confirm_timeout
        project.add_device(name, values)
    commit_all(flake, "fleet", init=True)
    return DeployWorld(flake, data_dir, fleet, hosts)


@pytest.fixture(name="worlds")
def fixture_worlds(tmp_path: Path, data_dir: Path) -> Iterator[Callable[..., DeployWorld]]:
    made: list[DeployWorld] = []

    def make(devices: Sequence[str], **kw: Any) -> DeployWorld:
        world = make_world(tmp_path, data_dir, devices, **kw)
        made.append(world)
        return world

    yield make
    for world in made:
        world.fleet.stop()  # raises if anything the tasks ran on a device survived


def children(engine: TaskEngine, parent: int) -> dict[str, TaskRecord]:
    return {k.devices[0]: k for k in engine.store.children(parent)}


def processes(engine: TaskEngine, task_ids: Sequence[int]) -> list[ProcessRecord]:
    return [p for t in task_ids for p in engine.store.processes(t)]


async def wait_for(predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll until ``predicate`` holds (a generous limit only to turn a hang into a failure)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)

# A device whose closure holds a 200 MB blob of random bytes (no two builds share it): a copy that
# takes long enough to be interrupted in the middle.
BIG_BLOB_BYTES = 200_000_000
BIG = f"""{{ drv, mkDevice, ... }}:
let
  blob = drv "NAME-blob" ''
    mkdir -p $out
    head -c {BIG_BLOB_BYTES} /dev/urandom > $out/blob
  '';
in
mkDevice {{ name = "NAME"; motd = "NAME with a big blob"; packages = [ blob ]; }}
"""


def read_bytes(pid: int) -> int:
    """How many bytes a process has read so far (``rchar`` of /proc/PID/io); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
