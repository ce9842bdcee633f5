"""Opening the fixture flake with real Nix, merging the inventory, changing it safely."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fleet_fixtures import ALL_DEVICES, EVAL_BROKEN_DEVICES, commit_all, copy_fleet
from nixdeck.core.project import (
    DeviceState,
    FlakeError,
    InvalidValue,
    InventoryFileError,
    Project,
    ProjectError,
    UnknownDevice,
    attr_path,
)
from nixdeck.core.project.files import backup_path

pytestmark = pytest.mark.nix

INVENTORY = """version = 1

[defaults]
user = "deploy"

[devices.web1]
host = "10.0.0.1"
tags = ["web"]

[devices.db1]
tags = ["db"]

[devices.old-box]
host = "10.0.0.99"
"""


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory, nix_under_test: object) -> Project:
    """One evaluation of the git fleet per Nix of the matrix, shared by the read-only tests of this module."""
    flake = copy_fleet(tmp_path_factory.mktemp("opened"), salt="")
    (flake / "nixdeck.toml").write_text(INVENTORY)
    commit_all(flake, "inventory")
    return Project.open(flake)


def test_open_lists_every_device_with_its_state(opened: Project) -> None:
    by_name = {d.name: d for d in opened.devices}
    assert list(by_name) == list(ALL_DEVICES)
    for name in EVAL_BROKEN_DEVICES:
        assert by_name[name].state is DeviceState.EVAL_ERROR
    assert "syntax error" in (by_name["bad-syntax"].error or "")
    assert "undefined variable 'hostNmae'" in (by_name["bad-undef"].error or "")
    assert "bad-throw: simulated evaluation failure" in (by_name["bad-throw"].error or "")
    # Error locations point into the project, not the store copy.
    assert f"{opened.path}/devices/bad-syntax.nix:5:" in (by_name["bad-syntax"].error or "")
    for name in set(ALL_DEVICES) - set(EVAL_BROKEN_DEVICES):
        assert by_name[name].state is DeviceState.OK and by_name[name].error is None
    assert by_name["web2"].host_name == "web2-prod"
    assert by_name["db1"].host_name == "db1"


def test_inventory_is_merged(opened: Project) -> None:
    web1, db1, web2 = (opened.device(n) for n in ("web1", "db1", "web2"))
    assert web1.has_target and web1.target_label == "deploy@10.0.0.1" and web1.tags == ("web",)
    assert not db1.has_target and db1.target_label == "no target yet" and db1.tags == ("db",)
    assert web2.entry is None and web2.target_label == "no target yet" and web2.settings.user == "deploy"
    assert [o.name for o in opened.orphans] == ["old-box"]
    assert opened.orphans[0].state is DeviceState.ORPHANED
    assert opened.device("old-box").settings.host == "10.0.0.99"
    with pytest.raises(UnknownDevice):
        opened.device("nosuch")
    assert attr_path("web1") == "nixosConfigurations.web1.config.system.build.toplevel"
    assert attr_path("web1", "formats.qcow") == "nixosConfigurations.web1.config.formats.qcow"


def test_changes_are_saved_and_survive_reopen(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False, salt="")
    project = Project.open(flake)
    assert not (flake / "nixdeck.toml").exists()  # opening never writes

    assert project.set_fields("web1", {"host": "10.0.0.1", "port": "2222"}).changed
    c = project.tag(["web1", "web2"], "web")
    assert c.kind == "tags-changed" and c.devices == ("web1", "web2")
    assert not project.tag(["web1"], "web").changed  # no-op: nothing written
    project.untag(["web2"], "web")
    project.set_defaults({"user": "deploy", "confirm_timeout": "60"})
    project.set_project_settings({"builders": "ssh://builder x86_64-linux", "max_jobs": "auto"})
    added = project.add_device("new-box", {"host": "fd00::7", "port": 2222})
    assert project.device("new-box").target_label == "deploy@[fd00::7]:2222"
    assert json.loads(json.dumps(project.device("web1").as_dict()))["settings"]["port"] == 2222
    assert added.kind == "device-added"
    assert [o.name for o in project.orphans] == ["new-box"]  # no configuration yet
    with pytest.raises(InvalidValue):
        project.add_device("new-box")
    with pytest.raises(UnknownDevice):
        project.set_fields("nosuch", {"host": "h"})
    with pytest.raises(InvalidValue) as exc:
        project.set_fields("web1", {"port": "99999"})
    assert exc.value.field == "devices.web1.port" and exc.value.value == 99999

    again = Project.open(flake, discover_devices=False)
    assert again.inventory == project.inventory
    web1 = project.device("web1")
    assert (web1.settings.host, web1.settings.port, web1.settings.user, web1.settings.confirm_timeout) == (
        "10.0.0.1", 2222, "deploy", 60)
    assert project.device("web2").tags == ()
    assert project.inventory.project.max_jobs == "auto"
    assert backup_path(flake / "nixdeck.toml").exists()

    project.remove_device("new-box")
    assert project.orphans == []


def test_hand_edits_between_changes_are_kept(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False, salt="")
    project = Project.open(flake, discover_devices=False)
    project.add_device("web1", {"host": "10.0.0.1"})
    f = flake / "nixdeck.toml"
    f.write_text(f.read_text() + '\n[devices.db1]\nhost = "10.0.0.3"\n')
    project.tag(["web1"], "web")
    assert project.inventory.devices["db1"].host == "10.0.0.3"
    assert "10.0.0.3" in f.read_text()


def test_broken_inventory_is_reported_and_never_replaced(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False, salt="")
    f = flake / "nixdeck.toml"
    broken = 'version = 1\n[devices.web1]\nhost = "10.0.0.1"\nport = "22"\n'
    f.write_text(broken)
    with pytest.raises(InvalidValue) as exc:
        Project.open(flake)
    assert exc.value.field == "devices.web1.port" and exc.value.line == 4 and str(f) in str(exc.value)

    f.write_text('version = 1\n[devices.web1]\nhost = "ok"\n')
    project = Project.open(flake, discover_devices=False)
    not_toml = 'version = 1\n[devices.web1\nhost = "10.0.0.1"\n'
    f.write_text(not_toml)  # broken by hand after opening
    with pytest.raises(InventoryFileError) as exc2:
        project.tag(["web1"], "web")
    assert exc2.value.line == 2
    assert f.read_text() == not_toml  # untouched
    assert not backup_path(f).exists()
    with pytest.raises(InventoryFileError):
        project.import_json_text(project.export_json())


def test_export_import_round_trip(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False, salt="")
    (flake / "nixdeck.toml").write_text(INVENTORY)
    project = Project.open(flake, discover_devices=False)
    out = tmp_path / "inventory.json"
    text = project.export_json(out)
    assert out.read_text() == text and json.loads(text)["devices"]["web1"]["host"] == "10.0.0.1"

    project.set_fields("web1", {"host": "10.9.9.9"})
    change = project.import_json(out)
    assert change.kind == "inventory-imported" and change.changed
    assert project.export_json() == text
    assert not project.import_json(out).changed

    bad = tmp_path / "bad.json"
    bad.write_text(text.replace('"10.0.0.1"', '"10.0.0.1; rm -rf /"'))
    before = (flake / "nixdeck.toml").read_bytes()
    with pytest.raises(InvalidValue) as exc:
        project.import_json(bad)
    assert exc.value.field == "devices.web1.host"
    assert (flake / "nixdeck.toml").read_bytes() == before
    with pytest.raises(ProjectError):
        project.import_json(tmp_path / "missing.json")


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as exc:
        Project.open(tmp_path)
    assert exc.value.field == "path"
    flake = copy_fleet(tmp_path, git=False, salt="")
    (flake / "flake.nix").write_text("{ outputs = { self }: { nixosConfigurations = ; }; }\n")
    with pytest.raises(FlakeError) as exc2:
        Project.open(flake)
    assert "syntax error" in str(exc2.value)
    (flake / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    project = Project.open(flake)
    assert project.devices == [] and project.warnings == ["the flake has no nixosConfigurations"]


def test_untracked_device_is_invisible_until_added(tmp_path: Path) -> None:
    """A git flake only sees committed/added files; NixDeck's own module creation adds them."""
    flake = copy_fleet(tmp_path, salt="")
    project = asyncio.run(Project.open_async(flake))
    (flake / "devices" / "web9.nix").write_text((flake / "devices" / "web1.nix").read_text().replace("web1", "web9"))
    asyncio.run(project.refresh_async())
    assert "web9" not in [d.name for d in project.devices]
    (flake / "devices" / "web9.nix").unlink()
    with pytest.raises(InvalidValue):
        asyncio.run(project.create_device_module_async("web1"))
