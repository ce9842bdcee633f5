"""Benchmark: a fleet deploy with NixDeck against a raw parallel shell loop over the same devices.

Both sides deploy N simulated devices (real sshd on loopback, each with its own /nix and /run) from
the fixture fleet. Each side gets its own freshly started devices with empty stores, so both copy
every closure for real. The toplevels are built once beforehand (warm), and both sides still
evaluate: NixDeck through its Deploy Devices task (real engine: one `nix build` for all devices,
then per device `nix copy`, profile + switch-to-configuration over asyncssh, confirm on a new
connection); the raw side with one `nix build --json`, then for every device in parallel
`nix copy --to ssh-ng://…` followed by `ssh … 'nix-env --set … && …/switch-to-configuration switch'`.

    python bench/deploy.py --devices 10 [--rounds 3]

Each round uses two freshly started fleets and alternates which side runs first; the medians of
the rounds are reported (the machine is shared, single runs are noisy).

Last line: ``RESULT ratio=<nixdeck/raw> nixdeck_s=… raw_s=… devices=N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "app"))

from nixdeck.core.ops import all_operations  # noqa: E402
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission  # noqa: E402
from nixdeck.core.project import Project  # noqa: E402
from nixdeck.core.ssh.knownhosts import KnownHosts  # noqa: E402
from nixdeck.core.ssh.options import write_ssh_config  # noqa: E402
from nixdeck.core.ssh.simdevice import AddressBusy, SimFleet  # noqa: E402
from nixdeck.core.tasks.engine import TaskEngine  # noqa: E402
from nixdeck.core.tasks.model import TaskKind, TaskState  # noqa: E402
from nixdeck.core.tasks.store import TaskStore  # noqa: E402

FLEET_SRC = ROOT / "tests" / "fixtures" / "fleet"
NODE = '{{ mkDevice, ... }}:\nmkDevice {{ name = "{name}"; }}\n'
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@nixdeck.invalid", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@nixdeck.invalid", "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def make_flake(base: Path, names: list[str]) -> Path:
    flake = base / "fleet"
    shutil.copytree(FLEET_SRC, flake)
    (flake / "salt.txt").write_text(uuid.uuid4().hex)
    for name in names:
        (flake / "devices" / f"{name}.nix").write_text(NODE.format(name=name))
    git(flake, "init", "-q", "-b", "main")
    git(flake, "add", "-A")
    git(flake, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "bench")
    return flake


def start_fleet(base: Path, names: list[str], first: int) -> SimFleet:
    for octet in range(first, 250 - len(names)):
        fleet = SimFleet(base, names, first_octet=octet)
        try:
            fleet.start()
            return fleet
        except AddressBusy:
            continue
    raise RuntimeError("no free loopback addresses")


def attrs(flake: Path, names: list[str]) -> list[str]:
    return [f"{flake}#nixosConfigurations.{n}.config.system.build.toplevel" for n in names]


def nix_build(flake: Path, names: list[str]) -> dict[str, str]:
    res = subprocess.run(["nix", "build", "--json", "--no-link", *attrs(flake, names)],
                         capture_output=True, text=True, check=True, env={**os.environ, "NO_COLOR": "1"})
    out = [r["outputs"]["out"] for r in json.loads(res.stdout)]
    # `nix build --json` (2.8) lists results sorted by derivation: name them by their out path
    return {n: next(p for p in out if p.endswith(f"-nixos-system-{n}-25.05.20250101.nixdeck")) for n in names}


def raw_deploy(flake: Path, names: list[str], fleet: SimFleet, hosts: KnownHosts, conf_dir: Path) -> float:
    lines = ["set -e", "cd " + shlex.quote(str(flake))]
    start = time.monotonic()
    paths = nix_build(flake, names)
    for name in names:
        target = fleet.target(name)
        conf = write_ssh_config(target, hosts.path, conf_dir)
        path = paths[name]
        remote = f"nix-env -p /nix/var/nix/profiles/system --set {path} && {path}/bin/switch-to-configuration switch"
        lines.append(
            f"( NIX_SSHOPTS='-F {conf}' nix copy --no-check-sigs --to {target.store_uri()} {path} && "
            f"ssh -F {conf} {target.user}@{target.host} {shlex.quote(remote)} >/dev/null ) &"
        )
    lines.append("wait")
    subprocess.run(["bash", "-c", "\n".join(lines)], check=True, capture_output=True)
    elapsed = time.monotonic() - start
    for name in names:
        link = fleet[name].run_dir / "current-system"
        assert os.readlink(link) == paths[name], f"raw deploy did not switch {name}"
    return elapsed


def nixdeck_deploy(flake: Path, names: list[str], data_dir: Path, fleet: SimFleet) -> float:
    async def main() -> float:
        store = TaskStore(data_dir)
        engine = TaskEngine(store)
        for op in all_operations():
            engine.register(op)
        try:
            start = time.monotonic()
            sub = DeployDevicesSubmission(project_dir=str(flake), devices=names, limit=len(names))
            pid = await engine.submit(TaskKind.DEPLOY_DEVICES.value, sub)
            parent = await engine.wait(pid)
            elapsed = time.monotonic() - start
            if parent.state != TaskState.COMPLETED:
                bad = {k.title: k.error for k in store.children(pid) if k.state != TaskState.COMPLETED}
                raise SystemExit(f"NixDeck deploy ended {parent.state.label}: {parent.error} {bad}")
            if os.environ.get("NIXDECK_BENCH_PROFILE"):
                _profile(store, pid, start)
            for kid in store.children(pid):
                link = fleet[kid.devices[0]].run_dir / "current-system"
                assert os.readlink(link) == kid.result["store_path"]
            return elapsed
        finally:
            await engine.close()
            store.close()

    return asyncio.run(main())


def _profile(store: TaskStore, pid: int, start: float) -> None:
    """Step and process timings of the NixDeck side, relative to the parent's start."""
    parent = store.get(pid)
    t0 = parent.started
    assert t0 is not None
    for task in [parent, *store.children(pid)]:
        print(f"task {task.id} {task.title}: {(task.started - t0).total_seconds():.2f} -> "  # type: ignore[operator]
              f"{(task.ended - t0).total_seconds():.2f}")  # type: ignore[operator]
        for job in store.jobs(task.id):
            for s in job.steps:
                if s.started and s.ended:
                    print(f"   {job.name}/{s.name}: {(s.started - t0).total_seconds():.2f} -> "
                          f"{(s.ended - t0).total_seconds():.2f}")
        for p in store.processes(task.id):
            if p.started and p.ended:
                print(f"      {' '.join(p.argv)[:90]}: {(p.started - t0).total_seconds():.2f} -> "
                      f"{(p.ended - t0).total_seconds():.2f}")


def point_inventory(flake: Path, fleet: SimFleet, names: list[str]) -> None:
    project = Project.open(flake, discover_devices=False)
    project.set_project_settings({"no_check_sigs": True})
    for name in names:
        dev = fleet[name]
        values = {"host": dev.host, "port": dev.port, "user": dev.user, "identity_file": str(fleet.client_key)}
        if name in project.inventory.devices:
            project.set_fields(name, values)
        else:
            project.add_device(name, values)
    git(flake, "add", "-A")
    git(flake, "-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", "inventory")


def run(count: int, rounds: int) -> tuple[list[float], list[float]]:
    """Each round starts two fresh fleets (empty stores) and runs both sides, alternating which
    goes first, so neither side always meets a warmer machine."""
    names = [f"node{i + 1}" for i in range(count)]
    ours_s: list[float] = []
    raw_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nixdeck-bench-deploy-") as tmp:
        base = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(base / "cache")
        data_dir = base / "data"
        flake = make_flake(base, names)
        nix_build(flake, names)  # warm: both sides only evaluate and find the builds done
        hosts = KnownHosts.in_data_dir(data_dir)
        for index in range(rounds):
            ours = start_fleet(base / f"r{index}" / "ours", names, 20)
            theirs = start_fleet(base / f"r{index}" / "raw", names, 20 + count)
            try:
                ours.trust_all(hosts)
                theirs.trust_all(hosts)
                point_inventory(flake, ours, names)
                for side in ("nixdeck", "raw") if index % 2 == 0 else ("raw", "nixdeck"):
                    if side == "nixdeck":
                        ours_s.append(nixdeck_deploy(flake, names, data_dir, ours))
                    else:
                        raw_s.append(raw_deploy(flake, names, theirs, hosts, base / "raw-ssh"))
            finally:
                ours.stop()
                theirs.stop()
            print(f"round {index + 1}: NixDeck {ours_s[-1]:.2f} s, raw shell loop {raw_s[-1]:.2f} s", flush=True)
    return ours_s, raw_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="fresh fleets per round; medians are reported")
    args = parser.parse_args()
    ours, raw = run(args.devices, max(1, args.rounds))
    nixdeck_s, raw_s = statistics.median(ours), statistics.median(raw)
    print(f"median of {len(ours)}: NixDeck {nixdeck_s:.2f} s, raw shell loop {raw_s:.2f} s")
    print(f"RESULT ratio={nixdeck_s / raw_s:.2f} nixdeck_s={nixdeck_s:.2f} raw_s={raw_s:.2f} devices={args.devices}")


if __name__ == "__main__":
    main()
