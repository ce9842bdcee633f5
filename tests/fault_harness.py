"""Fault injection for fleet deploys: run `nixdeck deploy` as a real process, hit it with kill -9,
SIGTERM or a cancel from another process at one phase (build, copy, activate, confirm), let the
next NixDeck recover, then check every device, the records and the process tables.

Shared by tests/test_fault_injection.py and bench/faults.py (which runs more trials and prints
`RESULT trials=… inconsistent_devices=… orphans=… lost_records=… wrong_states=…`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from nixdeck.core.ops.deploy_recovery import recover_activations
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from nixdeck.core.tasks.store import TaskStore
from test_deploy_support import DeployWorld, switch_variant, wait_for

PHASES = ("build", "copy", "activate", "confirm")
FAULTS = ("kill9", "sigterm", "cancel")
SLOW_SWITCH_SECONDS = 3

# Each trial gives every device a fresh system: a build that takes a moment, a blob that makes the
# copy take a moment, and (for the activate phase) a switch that takes a few seconds.
TRIAL_DEVICE = switch_variant("trial-TRIAL", """
#!/bin/sh
action="$1"
echo "activating $action (trial TRIAL)"
sleep SWITCH_SLEEP
case "$action" in switch|test) ln -sfn "@out@" /run/current-system ;; esac
echo "activated"
""", motd="NAME trial TRIAL", device_args='buildScript = "sleep BUILD_SLEEP"; packages = [ blob ]; ', let="""\
  blob = drv "NAME-blob-TRIAL" ''
    mkdir -p $out
    head -c 20000000 /dev/urandom > $out/blob
  '';
""")


@dataclass
class TrialOutcome:
    fault: str
    phase: str
    devices: int
    inconsistent_devices: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    lost_records: list[str] = field(default_factory=list)
    wrong_states: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.inconsistent_devices or self.orphans or self.lost_records or self.wrong_states)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in vars(self).items() if isinstance(v, list) and v]
        return f"{self.fault}@{self.phase}: " + ("ok" if not parts else "; ".join(parts))


def _store(world: DeployWorld) -> TaskStore:
    return TaskStore(world.data_dir, recover=False)


def _newest_parent(world: DeployWorld, after_id: int) -> TaskRecord | None:
    store = _store(world)
    try:
        tasks = store.list_tasks(kinds=[TaskKind.DEPLOY_DEVICES.value], limit=1)
    finally:
        store.close()
    return tasks[0] if tasks and tasks[0].id > after_id else None


def _step_running(world: DeployWorld, task_ids: Sequence[int], step: str) -> bool:
    store = _store(world)
    try:
        for tid in task_ids:
            for job in store.jobs(tid):
                if any(s.name == step and s.state == TaskState.RUNNING for s in job.steps):
                    return True
        return False
    finally:
        store.close()


def _switching(world: DeployWorld, devices: Sequence[str], known: dict[str, int]) -> bool:
    for name in devices:
        base = world.device(name).path_on_device("/nix/var/nixdeck/activations")
        acts = sorted(base.iterdir()) if base.is_dir() else []
        if len(acts) > known[name]:
            text = (acts[-1] / "status").read_text() if (acts[-1] / "status").exists() else ""
            if "switch-pid=" in text:
                return True
    return False


def _activation_count(world: DeployWorld, name: str) -> int:
    base = world.device(name).path_on_device("/nix/var/nixdeck/activations")
    return len(list(base.iterdir())) if base.is_dir() else 0


def _group_alive(pgid: int) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found.append(f"pid {entry}: " + f.read().replace(b"\0", b" ").decode(errors="replace")[:120])
        except (OSError, IndexError, ValueError):
            continue
    return found


def run_trial(world: DeployWorld, devices: Sequence[str], fault: str, phase: str, trial: int) -> TrialOutcome:
    """One deploy of ``devices`` hit by ``fault`` at ``phase``; the outcome lists what went wrong."""
    out = TrialOutcome(fault, phase, len(devices))
    before = {d: (world.current_system(d), world.profile_system(d)) for d in devices}
    for d in devices:
        text = (TRIAL_DEVICE.replace("TRIAL", f"{trial}")
                .replace("BUILD_SLEEP", "2" if phase == "build" else "0")
                .replace("SWITCH_SLEEP", str(SLOW_SWITCH_SECONDS) if phase == "activate" else "0"))  # fmt: skip
        world.write_device(d, text, commit=False)
    from fleet_fixtures import commit_all

    commit_all(world.flake, f"trial {trial}")
    known = {d: _activation_count(world, d) for d in devices}
    store = _store(world)
    try:
        last = store.list_tasks(limit=1)
        after_id = last[0].id if last else 0
    finally:
        store.close()
    env = {**os.environ, "NIXDECK_DATA_DIR": str(world.data_dir)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "nixdeck", "deploy", "--project", world.project_dir, *devices],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip

    async def reach_phase() -> None:
        await wait_for(lambda: _newest_parent(world, after_id) is not None or cli.poll() is not None, "the deploy task")
        parent = _newest_parent(world, after_id)
        if parent is None:
            return
        if phase == "build":
            await wait_for(lambda: _step_running(world, [parent.id], "build") or cli.poll() is not None, "the build")
            await asyncio.sleep(0.5)
        elif phase == "activate":
            await wait_for(lambda: _switching(world, devices, known) or cli.poll() is not None, "a switch")
        else:
            def kids() -> list[int]:
                store = _store(world)
                try:
                    return [k.id for k in store.children(parent.id)]
                finally:
                    store.close()

            await wait_for(lambda: _step_running(world, kids(), phase) or cli.poll() is not None, f"the {phase} step")

    try:
        asyncio.run(reach_phase())
        parent = _newest_parent(world, after_id)
        if fault == "kill9":
            os.kill(cli.pid, signal.SIGKILL)
        elif fault == "sigterm":
            os.kill(cli.pid, signal.SIGTERM)
        elif parent is not None:
            subprocess.run(
                [sys.executable, "-m", "nixdeck", "tasks", "cancel", str(parent.id)],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False,
            )  # fmt: skip
        try:
            cli.wait(timeout=180)
        except subprocess.TimeoutExpired:
            out.wrong_states.append("the CLI did not end after the fault")
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()

    # the next NixDeck: recovery of the records, then of the devices' activations
    store = TaskStore(world.data_dir)
    store.close()

    async def settle(engine: TaskEngine) -> list[int]:
        return await recover_activations(engine)

    world.run(settle)
    out.orphans += _group_alive(cli.pid)
    for d in devices:
        deadline = time.monotonic() + 15
        while world.device(d).command_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        out.orphans += [f"{d}: {cmd}" for _, cmd in world.device(d).command_processes()]
    _check_records(world, after_id, devices, fault, before, out)
    return out


def _check_records(
    world: DeployWorld,
    after_id: int,
    devices: Sequence[str],
    fault: str,
    before: dict[str, tuple[str | None, str | None]],
    out: TrialOutcome,
) -> None:
    store = _store(world)
    try:
        parent = _newest_parent(world, after_id)
        if parent is None:
            out.lost_records.append("no deploy task was recorded")
            return
        kids = {k.devices[0]: k for k in store.children(parent.id) if k.devices}
        everything = [parent, *kids.values()]
        for t in everything:
            if not t.state.terminal:
                out.wrong_states.append(f"task {t.id} is {t.state.value} after recovery")
            elif fault in ("sigterm", "cancel") and t.state == TaskState.INTERRUPTED:
                out.wrong_states.append(f"task {t.id} is interrupted after {fault} (expected canceled or done)")
        for d in devices:
            current, profile = world.current_system(d), world.profile_system(d)
            kid = kids.get(d)
            new = kid.result.get("store_path") if kid is not None else None
            if kid is None and parent.state not in (TaskState.INTERRUPTED, TaskState.CANCELED):
                out.lost_records.append(f"no deploy record for {d}")
            if current != profile:
                out.inconsistent_devices.append(f"{d}: running {current} but profile {profile}")
                continue
            allowed = {before[d][0], new}
            if current not in allowed:
                out.inconsistent_devices.append(f"{d}: runs {current}, neither the previous nor the new system")
            elif kid is not None and kid.state in (TaskState.COMPLETED, TaskState.COMPLETED_WITH_WARNINGS):
                if current != new:
                    out.inconsistent_devices.append(f"{d}: its deploy completed but it runs {current}")
            elif kid is not None and current == new and kid.result.get("activation", {}).get("final") != "confirm":
                out.inconsistent_devices.append(f"{d}: runs the new system that was never confirmed")
    finally:
        store.close()
