"""Device history belongs to its project: kiosk-1 of one project is not kiosk-1 of another."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from engine_helpers import run_engine
from fleet_fixtures import copy_fleet
from nixdeck.cli import main
from nixdeck.core.project.history import DeviceHistory
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskRecord, TaskState, project_key, utcnow
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.tasks.submission import Submission
from nixdeck.ui.devices_model import DeviceRow, DevicesModel


class ProjSub(Submission):
    project_dir: str


class ProjOp(Operation):
    kind = "test_proj"
    submission_type = ProjSub

    async def run(self, ctx: object) -> None:
        return None


def _build(store: TaskStore, project: Path, state: TaskState, minutes_ago: int) -> TaskRecord:
    end = utcnow() - timedelta(minutes=minutes_ago)
    return store.insert_task(TaskRecord(
        kind="build_device", title="Build web1", state=state, devices=["web1"], project=project_key(project),
        started=end - timedelta(seconds=5), ended=end,
    ))


def test_tasks_carry_their_projects_key(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "fleet"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)

    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, TaskRecord]:
        tid = await engine.submit("test_proj", ProjSub(project_dir="link"))
        rec = engine.record("Device added", {}, project="./fleet")
        return await engine.wait(tid), engine.store.get(rec)

    task, rec = run_engine(data_dir, scenario, ops=[ProjOp()])
    assert task.project == str(real) == rec.project


def test_last_build_is_the_projects_own(data_dir: Path, tmp_path: Path, qapp: object,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    demo, other = copy_fleet(tmp_path / "a", git=False), copy_fleet(tmp_path / "b", git=False)
    for flake in (demo, other):
        (flake / "nixdeck.toml").write_text('version = 1\n\n[devices.web1]\nhost = "10.0.0.1"\n')
    store = TaskStore(data_dir)
    try:
        mine = _build(store, demo, TaskState.COMPLETED, 10)
        theirs = _build(store, other, TaskState.FAILED, 1)  # newer, but another project's kiosk
        assert DeviceHistory(store, demo).last_build("web1").id == mine.id  # type: ignore[union-attr]
        assert DeviceHistory(store, other).last_build("web1").id == theirs.id  # type: ignore[union-attr]
        model = DevicesModel(store)
        row = DeviceRow(name="web1", target=None, host=None, port=22, tags=(), state="ok")
        model.set_rows([row], str(demo))
        assert model.device(0).last_build is not None and model.device(0).last_build.id == mine.id
        model.on_tasks_changed([_build(store, other, TaskState.FAILED, 0)])  # another project's build
        assert model.device(0).last_build.id == mine.id  # type: ignore[union-attr]
        model.set_rows([row], str(other))
        assert model.device(0).last_build.id == theirs.id + 1  # type: ignore[union-attr]
    finally:
        store.close()
    assert main(["project", "devices", "--no-eval", "--json", "--project", str(demo)]) == 0
    by = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert by["web1"]["last_build"]["task"] == mine.id and by["web1"]["last_build"]["state"] == "completed"
    assert by["web1"]["last_deploy"] is None
    assert main(["tasks", "list", "--json", "--project", str(other)]) == 0
    assert {t["id"] for t in json.loads(capsys.readouterr().out)} == {theirs.id, theirs.id + 1}
