"""Helpers for the window tests that run real operations: start the app on a project, wait for the
task an action submitted, and a fixture-fleet copy whose devices are reachable simulated devices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleet_fixtures import commit_all, copy_fleet
from nixdeck.core.project.project import Project
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.simdevice import SimFleet
from nixdeck.core.tasks.model import TaskRecord
from nixdeck.ui.app import NixDeckApp
from ui_shell_fixtures import until


def trimmed_fleet(tmp_path: Path, keep: Sequence[str]) -> Path:
    """A committed copy of the fixture fleet with only the `keep` devices (fresh store paths)."""
    flake = copy_fleet(tmp_path, git=False)
    for f in (flake / "devices").glob("*.nix"):
        if f.stem not in keep:
            f.unlink()
    commit_all(flake, init=True)
    return flake


async def submitted_task(nx: NixDeckApp, kind: str, known: Sequence[int] = ()) -> TaskRecord:
    """The newest task of `kind` not in `known`, once an action has submitted it."""
    def why() -> str:
        box = nx.window.error_box
        return f"status {nx.window.statusBar().currentMessage()!r}, error {box.text() if box else None!r}"

    try:
        found = await until(lambda: [t for t in nx.store.list_tasks(kinds=[kind]) if t.id not in known],
                            f"a {kind} task is submitted", guard=60)
    except AssertionError as e:
        raise AssertionError(f"{e} ({why()})") from None
    return found[0]


async def ended(nx: NixDeckApp, task_id: int) -> TaskRecord:
    """The task's final record, once the window's Tasks dock shows it ended too."""
    t = await until(lambda: (lambda r: r if r.state.terminal else None)(nx.engine.live(task_id)),
                    f"task {task_id} ends", guard=90)
    await until(lambda: nx.window.tasks_dock.state_of(task_id) == t.state.value,
                f"the Tasks dock shows task {task_id} {t.state.value} (it shows "
                f"{nx.window.tasks_dock.state_of(task_id)})", guard=30)
    return t


async def shut_down(nx: NixDeckApp) -> None:
    nx.quit_now()
    await until(lambda: nx._done is not None and nx._done.is_set(), "shutdown")


def reachable_fleet(tmp_path: Path, data_dir: Path, fleet: SimFleet, salt: str | None = None) -> Path:
    """A copy of the fixture fleet whose inventory points each of `fleet`'s devices at its simulated
    device (host, port, user, key), with their host keys trusted in NixDeck's known_hosts."""
    flake = copy_fleet(tmp_path, git=False, salt=salt)
    project = Project.open(flake, discover_devices=False)
    project.set_project_settings({"no_check_sigs": True})
    for dev in fleet.devices:
        project.add_device(dev.name, {"host": dev.host, "port": dev.port, "user": dev.user,
                                      "identity_file": str(fleet.client_key)})
    commit_all(flake, "fleet", init=True)
    fleet.trust_all(KnownHosts.in_data_dir(data_dir))
    return flake
