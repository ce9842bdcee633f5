"""New projects from resources/templates: a real NixOS flake (nixpkgs input), git-initialised.

It cannot be built offline, so we check it parses (nix-instantiate --parse) and has the structure."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from fleet_fixtures import git
from nixdeck.core.project import DeviceState, InvalidValue, Project, ProjectError
from nixdeck.core.project.resources import resource

pytestmark = pytest.mark.nix


def parses(path: Path) -> None:
    res = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"{path}: {res.stderr}"


def test_template_files_parse() -> None:
    root = resource("templates")
    files = sorted(root.rglob("*.nix"))
    assert len(files) >= 5
    for f in files:
        parses(f)
    flake = (root / "new-project" / "flake.nix").read_text()
    assert 'inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05"' in flake
    assert "nixosConfigurations" in flake and "lib.nixosSystem" in flake


def test_new_project(tmp_path: Path) -> None:
    dest = tmp_path / "fleet"
    project = Project.new(dest, ["edge-1", "edge-2"])
    assert project.path == dest.resolve()
    for rel in ("flake.nix", "nixdeck.toml", "modules/common.nix", "tags/web.nix", "devices/edge-1.nix",
                "devices/edge-2.nix", ".gitignore", "README.md"):
        assert (dest / rel).is_file(), rel
    for f in dest.rglob("*.nix"):
        parses(f)
    assert 'networking.hostName = "edge-1";' in (dest / "devices" / "edge-1.nix").read_text()
    # tags/<tag>.nix is a list of modules.
    res = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "-E",
                          f"builtins.length (import {dest}/tags/web.nix)"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout) >= 1, res.stderr

    assert [d.name for d in project.devices] == ["edge-1", "edge-2"]
    assert all(d.state is DeviceState.NOT_EVALUATED and not d.has_target for d in project.devices)
    assert git(dest, "status", "--porcelain") == ""
    assert "New NixDeck project" in git(dest, "log", "--format=%s")
    assert set(git(dest, "ls-files").split()) >= {"flake.nix", "nixdeck.toml", "devices/edge-1.nix",
                                                  "devices/.gitkeep", "modules/common.nix"}

    # Nix reads the inventory the way the template's flake does (tags -> module lists).
    project.tag(["edge-1"], "web")
    res = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E",
         f"(builtins.fromTOML (builtins.readFile {dest}/nixdeck.toml)).devices.edge-1.tags"],
        capture_output=True, text=True, timeout=60)
    assert json.loads(res.stdout) == ["web"], res.stderr

    module = asyncio.run(project.create_device_module_async("edge-3"))
    parses(module)
    assert "A  devices/edge-3.nix" in git(dest, "status", "--porcelain")


def test_new_project_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as exc:
        Project.new(tmp_path / "a", ["ok", "not_ok"])
    assert exc.value.value == "not_ok"
    assert not (tmp_path / "a").exists()
    with pytest.raises(InvalidValue):
        Project.new(tmp_path / "b", ["x", "x"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("mine")
    with pytest.raises(ProjectError) as exc2:
        Project.new(tmp_path / "c", ["x"])
    assert exc2.value.field == "path"
    assert (tmp_path / "c" / "keep.txt").read_text() == "mine"


def test_new_project_without_devices_or_git(tmp_path: Path) -> None:
    project = Project.new(tmp_path / "empty", [], git=False)
    assert project.devices == [] and not (tmp_path / "empty" / ".git").exists()
    assert project.inventory.defaults.user == "root"
