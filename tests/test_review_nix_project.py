"""Regression tests from a review of the Nix and project layers (real nix, real files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleet_fixtures import FLEET_SRC, commit_all, nix
from nixdeck.core.nix.messages import strip_ansi
from nixdeck.core.nix.parselog import summarize
from nixdeck.core.project import Project, validate
from nixdeck.core.project.errors import InvalidValue, ProjectError


def _subdir_fleet(tmp_path: Path) -> Path:
    """The fixture fleet in `repo/fleet`: a flake in a subdirectory of its git repository."""
    repo = tmp_path / "repo"
    repo.mkdir()
    flake = repo / "fleet"
    shutil.copytree(FLEET_SRC, flake)
    (repo / "README").write_text("not part of the flake\n")
    commit_all(repo, init=True)
    return flake


def test_errors_of_a_flake_in_a_git_subdirectory_map_back_to_the_flake_dir(tmp_path: Path) -> None:
    flake = _subdir_fleet(tmp_path)
    res = nix("build", "--log-format", "internal-json", "-v", "--json", "--no-link",
              f"{flake}#nixosConfigurations.bad-undef.config.system.build.toplevel", cwd=flake)
    assert res.returncode != 0
    summary = summarize([res.stderr.encode()], source_root=flake)
    assert summary.flake_source is not None and summary.flake_source.endswith("-source/fleet")
    mapper = summary._mapper()
    assert mapper is not None
    assert mapper.map_path(summary.errors[0].file) == str(flake / "devices" / "bad-undef.nix")
    assert f"at {flake}/devices/bad-undef.nix:5:24" in mapper.map_text(strip_ansi(summary.errors[0].text))


def test_untracked_file_of_a_flake_in_a_git_subdirectory_is_named_relative_to_the_flake(tmp_path: Path) -> None:
    flake = _subdir_fleet(tmp_path)
    web1 = flake / "devices" / "web1.nix"
    text = web1.read_text()
    assert 'motd = "web1: serves the public site";' in text
    web1.write_text(text.replace('motd = "web1: serves the public site";', "motd = builtins.readFile ./extra.nix;"))
    (flake / "devices" / "extra.nix").write_text("not git-added\n")
    res = nix("build", "--log-format", "internal-json", "-v", "--json", "--no-link", "--show-trace",
              f"{flake}#nixosConfigurations.web1.config.system.build.toplevel", cwd=flake)
    assert res.returncode != 0, res.stderr[-2000:]
    summary = summarize([res.stderr.encode()], source_root=flake)
    assert summary.untracked_files == ["devices/extra.nix"], res.stderr[-3000:]


def test_discovery_errors_of_a_flake_in_a_git_subdirectory_name_the_real_file(tmp_path: Path) -> None:
    flake = _subdir_fleet(tmp_path)
    project = Project.open(flake)
    err = project.device("bad-undef").error or ""
    assert f"{flake}/devices/bad-undef.nix:5:24" in err
    assert f"{flake}/fleet/" not in err


@pytest.mark.parametrize("bad", ["fe80::1%eth0 -oProxyCommand=x", "fe80::1%\n", "fe80::1%-o", "::1%a/b", "fe80::1%"])
def test_ipv6_zone_ids_are_interface_names_only(bad: str) -> None:
    with pytest.raises(InvalidValue):
        validate.host(bad)


def test_ipv6_zone_ids_that_are_interface_names_are_accepted() -> None:
    assert validate.host("fe80::1%eth0") == "fe80::1%eth0"
    assert validate.host("fe80::1%2") == "fe80::1%2"
    assert validate.host("::1") == "::1"


def test_opening_a_flake_whose_path_has_a_space_says_what_to_do(tmp_path: Path) -> None:
    flake = tmp_path / "my fleet"
    shutil.copytree(FLEET_SRC, flake)
    commit_all(flake, init=True)
    probe = nix("eval", "--json", f"{flake}#nixosConfigurations", "--apply", "builtins.attrNames")
    if probe.returncode == 0:  # a Nix that accepts such paths: nothing to explain
        assert Project.open(flake).device("web1").state == "ok"
        return
    with pytest.raises(ProjectError, match="rename or move the project directory"):
        Project.open(flake)
