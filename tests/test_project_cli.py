"""`nixdeck project ...`: every subcommand, which project it picks, history records, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet_fixtures import ALL_DEVICES, EVAL_BROKEN_DEVICES, commit_all, copy_fleet
from nixdeck.cli import main
from nixdeck.core.project.current import current_project_file
from nixdeck.core.project.history import record_change
from nixdeck.core.project.project import Change
from nixdeck.core.tasks.store import TaskStore

pytestmark = pytest.mark.nix

INVENTORY = """version = 1

[defaults]
user = "deploy"

[devices.web1]
host = "10.0.0.1"
tags = ["web"]

[devices.db1]
tags = ["db"]
"""

DEVICE_KEYS = {"name", "state", "host_name", "target", "host", "user", "port", "tags", "has_target", "error",
               "in_inventory", "settings", "last_build", "last_deploy"}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def nixdeck(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nixdeck", *argv], input=stdin, capture_output=True, text=True,
                          timeout=120, env=os.environ)


def records(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The record tasks, oldest first, as `tasks list --all --json` gives them (a real process:
    common.print_json binds sys.stdout at import, which capsys cannot follow)."""
    res = nixdeck("tasks", "list", "--all", "--json", "--kind", "record")
    assert res.returncode == 0, res.stderr
    return list(reversed(json.loads(res.stdout)))


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    flake = copy_fleet(tmp_path, salt="")
    (flake / "nixdeck.toml").write_text(INVENTORY)
    commit_all(flake, "inventory")
    return flake


def test_open_remembers_the_project_and_devices_json_has_the_documented_shape(
    fleet: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(capsys, "project", "open", str(fleet))
    assert code == 0, err
    assert f"opened {fleet}" in out
    assert current_project_file(data_dir).read_text().strip() == str(fleet)

    monkeypatch.chdir(tmp_path)  # not a flake: the remembered project is used
    code, out, err = cli(capsys, "project", "devices", "--json")
    assert code == 0, err
    devices = json.loads(out)
    assert [d["name"] for d in devices] == list(ALL_DEVICES)
    for d in devices:
        assert set(d) == DEVICE_KEYS
    by = {d["name"]: d for d in devices}
    assert by["web1"] | {"settings": None} == {
        "name": "web1", "state": "ok", "host_name": "web1", "target": "deploy@10.0.0.1", "host": "10.0.0.1",
        "user": "deploy", "port": 22, "tags": ["web"], "has_target": True, "error": None, "in_inventory": True,
        "settings": None, "last_build": None, "last_deploy": None,
    }
    assert by["web1"]["settings"]["confirm"] is True
    assert by["web2"]["host_name"] == "web2-prod" and by["web2"]["has_target"] is False
    assert by["web2"]["target"] is None and by["web2"]["in_inventory"] is False
    for name in EVAL_BROKEN_DEVICES:
        assert by[name]["state"] == "eval-error" and by[name]["error"]

    code, out, _ = cli(capsys, "project", "devices", "--no-eval", "--tag", "db")
    assert code == 0 and "db1" in out and "web1" not in out

    # The open is in the history, silent.
    (rec,) = records(capsys)
    assert rec["kind"] == "record" and rec["silent"] is True and rec["title"] == f"Opened project {fleet}"

    # No remembered project: the current directory, if it is a flake; otherwise a clear error.
    current_project_file(data_dir).unlink()
    monkeypatch.chdir(fleet)
    code, out, _ = cli(capsys, "project", "devices", "--no-eval", "--json")
    assert code == 0 and [d["name"] for d in json.loads(out)] == ["web1", "db1"]
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "project", "devices", "--no-eval")
    assert code == 1 and "no project given" in err and "Traceback" not in err


def test_every_change_is_recorded(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = ["--project", str(fleet)]
    steps = [
        (["project", "add-device", "edge1", "--host", "10.0.0.5", "--port", "2222", "--tag", "edge", *p],
         "Added device edge1", ["edge1"]),
        (["project", "set", "web1", "host=10.0.0.2", "confirm-timeout=60", *p], "Set host, confirm_timeout of web1",
         ["web1"]),
        (["project", "set", "web2", "host=10.0.0.3", *p], "Set host of web2", ["web2"]),  # flake-only device
        (["project", "tag", "prod", "web1", "edge1", *p], "Tagged web1, edge1 with prod", ["web1", "edge1"]),
        (["project", "untag", "prod", "edge1", *p], "Untagged edge1 from prod", ["edge1"]),
        (["project", "set", "--defaults", "port=2200", *p], "Set defaults port", []),
        (["project", "set", "--project-settings", "max-jobs=4", *p], "Set project max_jobs", []),
        (["project", "remove-device", "db1", *p], "Removed db1", ["db1"]),
    ]
    for argv, _, _ in steps:
        code, out, err = cli(capsys, *argv)
        assert code == 0, (argv, err)
    # Nothing to do: nothing recorded.
    code, out, _ = cli(capsys, "project", "tag", "prod", "web1", *p)
    assert code == 0 and out.startswith("nothing to change")

    recs = records(capsys)
    assert [(r["title"], r["devices"], r["silent"], r["state"]) for r in recs] == [
        (title, devices, False, "completed") for _, title, devices in steps
    ]
    task = json.loads(nixdeck("tasks", "show", str(recs[1]["id"]), "--json").stdout)["task"]
    assert task["submission"] == {"change": "device-changed", "summary": "set host, confirm_timeout of web1",
                                  "project": str(fleet), "values": {"host": "10.0.0.2", "confirm_timeout": "60"}}
    assert task["project"] == str(fleet)

    text = (fleet / "nixdeck.toml").read_text()
    assert '[devices.edge1]\nhost = "10.0.0.5"\nport = 2222\ntags = ["edge"]\n' in text
    assert '[devices.web1]\nhost = "10.0.0.2"\ntags = ["web", "prod"]\nconfirm_timeout = 60\n' in text
    assert "[devices.db1]" not in text and "max_jobs = 4" in text and "port = 2200" in text


def test_bad_input_and_broken_inventory_fail_clearly_and_touch_nothing(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(fleet)]
    code, _, err = cli(capsys, "project", "set", "web1", "port=abc", *p)
    assert code == 1
    assert "field: devices.web1.port" in err and "value: 'abc'" in err and "Traceback" not in err
    code, _, err = cli(capsys, "project", "tag", "x", "nosuch", *p)
    assert code == 1 and "no device named 'nosuch'" in err
    code, _, err = cli(capsys, "project", "add-device", "web1", *p)
    assert code == 1 and "already in the inventory" in err

    broken = INVENTORY.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\nport = "22"')
    (fleet / "nixdeck.toml").write_text(broken)
    before = (fleet / "nixdeck.toml").read_bytes()
    for argv in (["project", "set", "web1", "port=22"], ["project", "tag", "x", "web1"],
                 ["project", "add-device", "n1"], ["project", "remove-device", "db1"], ["project", "export"]):
        code, _, err = cli(capsys, *argv, *p)
        assert code == 1, argv
        assert "nixdeck.toml:8: devices.web1.port" in err and "line: 8" in err and "value: '22'" in err
        assert "Traceback" not in err
    assert (fleet / "nixdeck.toml").read_bytes() == before
    assert records(capsys) == []

    # The same through a real process: exit 1, one clear message, no traceback.
    res = nixdeck("project", "set", "web1", "port=22", *p)
    assert res.returncode == 1 and res.stderr.startswith("nixdeck project set: ")
    assert "Traceback" not in res.stderr


def test_export_import_round_trip_is_exact(fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = ["--project", str(fleet)]
    assert cli(capsys, "project", "tag", "blue", "web1", *p)[0] == 0
    code, exported, _ = cli(capsys, "project", "export", *p)
    assert code == 0 and json.loads(exported)["format"] == "nixdeck-inventory"
    toml_before = (fleet / "nixdeck.toml").read_bytes()
    dump = tmp_path / "inventory.json"
    assert cli(capsys, "project", "export", str(dump), *p)[0] == 0
    assert dump.read_text() == exported

    assert cli(capsys, "project", "remove-device", "web1", *p)[0] == 0
    assert cli(capsys, "project", "set", "--defaults", "user=other", *p)[0] == 0
    code, out, err = cli(capsys, "project", "import", str(dump), *p)
    assert code == 0, err
    assert out.startswith("imported the inventory (2 devices)")
    assert cli(capsys, "project", "export", *p)[1] == exported
    assert (fleet / "nixdeck.toml").read_bytes() == toml_before
    assert records(capsys)[-1]["title"].startswith("Imported the inventory (2 devices)")

    # Importing again changes nothing; a broken export is refused and nothing is written.
    assert cli(capsys, "project", "import", str(dump), *p)[1].startswith("nothing to change")
    bad = tmp_path / "bad.json"
    bad.write_text(exported.replace('"web1"', '"bad name"'))
    code, _, err = cli(capsys, "project", "import", str(bad), *p)
    assert code == 1 and "devices.bad name" in err and "Traceback" not in err
    assert (fleet / "nixdeck.toml").read_bytes() == toml_before

    # stdin import, through a real process.
    res = nixdeck("project", "import", "-", *p, stdin=exported)
    assert res.returncode == 0 and res.stdout.startswith("nothing to change")


def test_new_project_is_created_recorded_and_current(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "site"
    code, out, err = cli(capsys, "project", "new", str(target), "--device", "a1", "--device", "b2")
    assert code == 0, err
    assert (target / "devices" / "a1.nix").is_file() and (target / ".git").is_dir()
    assert current_project_file(data_dir).read_text().strip() == str(target)
    (rec,) = records(capsys)
    assert rec["title"] == f"Created project {target} with a1, b2" and rec["silent"] is False
    assert rec["devices"] == ["a1", "b2"]
    code, out, _ = cli(capsys, "project", "add-device", "c3", "--module")
    assert code == 0 and (target / "devices" / "c3.nix").is_file()
    code, out, _ = cli(capsys, "project", "devices", "--no-eval", "--json")
    assert [d["name"] for d in json.loads(out)] == ["a1", "b2", "c3"]
    code, _, err = cli(capsys, "project", "new", str(target))
    assert code == 1 and "not an empty directory" in err


def test_record_change_helper(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    try:
        assert record_change(store, Change("tags-changed", "nothing", changed=False), "/p") is None
        tid = record_change(store, Change("device-added", "added device x", ("x",)), "/p", details={"a": 1})
        assert tid is not None
        t = store.get(tid)
        assert (t.kind, t.title, t.devices, t.project, t.silent) == ("record", "Added device x", ["x"], "/p", False)
        assert t.submission == {"change": "device-added", "summary": "added device x", "project": "/p", "a": 1}
    finally:
        store.close()
