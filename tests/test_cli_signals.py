"""SIGTERM, SIGHUP and SIGINT of the CLI cancel its tasks through the engine: the record says
`canceled` with the signal as reason, and no process of the task's groups is left (a real CLI
process, a real `sh`/`sleep`, a real slow Nix build of tests/fixtures/fleet, and remote commands on
real sshd devices)."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from engine_helpers import db_rows, group_pids, live_with_marker, nixdeck_bg, wait_for
from fleet_fixtures import copy_fleet
from test_deploy_support import DeployWorld, fixture_worlds  # noqa: F401  (fixture)


def _running(data_dir: Path, marker: str | None = None) -> tuple[int, int] | None:
    """(task id, pid) once a running task's process has started (its argv holding `marker`)."""
    rows = db_rows(
        data_dir,
        "SELECT t.id, p.pid FROM tasks t JOIN processes p ON p.task_id = t.id "
        "WHERE t.state = 'running' AND p.pid IS NOT NULL AND p.argv LIKE ? ORDER BY p.id",
        (f"%{marker or ''}%",),
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def _assert_canceled_by(data_dir: Path, tid: int, sig: signal.Signals) -> None:
    [(state, error, owner, ended)] = [tuple(r) for r in db_rows(
        data_dir, "SELECT state, error, owner_pid, ended FROM tasks WHERE id = ?", (tid,))]
    assert state == "canceled", (state, error)
    assert error == f"nixdeck received {sig.name}"
    assert owner is None and ended is not None
    for (pid, p_ended) in db_rows(data_dir, "SELECT pid, ended FROM processes WHERE task_id = ?", (tid,)):
        assert p_ended is not None
        assert group_pids(pid) == [], f"process group {pid} is empty"
    assert [r[0] for r in db_rows(data_dir, "SELECT state FROM tasks WHERE state NOT IN "
            "('completed', 'failed', 'canceled', 'timed_out', 'interrupted', 'completed_with_warnings')")] == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_cancels_the_running_command(data_dir: Path, sig: signal.Signals) -> None:
    marker = f"nixdeck-sig-{uuid.uuid4().hex}"
    with nixdeck_bg(data_dir, "run", "--", "sh", "-c", "sleep 300; :", marker) as proc:
        tid, sh_pid = wait_for(lambda: _running(data_dir, marker), "the command to run")
        wait_for(lambda: len(group_pids(sh_pid)) == 2, "sh and its sleep")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, err
    assert f"nixdeck: {sig.name} received: canceling task {tid}" in err
    assert f"canceled: nixdeck received {sig.name}" in err
    assert "Traceback" not in err
    _assert_canceled_by(data_dir, tid, sig)
    assert live_with_marker(marker) == []


def test_sigterm_stops_a_slow_nix_build_and_its_builder(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)
    builder = "slow-build: step $i/60"  # the builder script's text sits in its command line
    with nixdeck_bg(data_dir, "build", "--project", str(fleet), "slow-build") as proc:
        tid, _ = wait_for(lambda: _running(data_dir, "build"), "nix build to start", limit=180)
        wait_for(lambda: live_with_marker(builder), "the builder to run", limit=180)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    _assert_canceled_by(data_dir, tid, signal.SIGTERM)
    # Nix got SIGTERM and ends its builder itself; a hang bound only
    wait_for(lambda: not live_with_marker(builder), "the builder to be gone", limit=30)


@pytest.mark.ssh
def test_sigterm_ends_remote_commands_on_real_devices(worlds: Callable[..., DeployWorld]) -> None:
    names = ["node1", "node2"]
    world = worlds(names, nodes=names)
    devices = [world.device(n) for n in names]
    with nixdeck_bg(world.data_dir, "ssh", "run", "--project", world.project_dir, *names, "--",
                    "sh", "-c", "sleep 300 & sleep 301; wait") as proc:
        wait_for(lambda: all(any("sleep 301" in c for _, c in d.command_processes()) for d in devices),
                 "the commands to run on both devices", limit=120)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signal.SIGTERM, err
    rows = [tuple(r) for r in db_rows(world.data_dir, "SELECT parent_id, state, error FROM tasks ORDER BY id")]
    assert rows[0] == (None, "canceled", "nixdeck received SIGTERM"), rows
    assert {r[1:] for r in rows[1:]} == {("canceled", "nixdeck received SIGTERM")} and len(rows) == 3
    for device in devices:
        assert device.command_processes() == [], "nothing is left on the devices"
