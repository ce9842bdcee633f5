"""The embedded demo fleet: set up in the data dir, every device builds offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_fixtures import FLEET_SRC, attr, git, nix
from nixdeck.core.project import DeviceState, Project, prepare_demo
from nixdeck.core.project.resources import resource

pytestmark = pytest.mark.nix

DEMO = {"gateway": "127.0.0.11", "kiosk-1": "127.0.0.12", "kiosk-2": "127.0.0.13", "sensor-hub": "127.0.0.14"}


def test_demo_uses_the_fixture_machinery() -> None:
    assert resource("demo", "lib.nix").read_text() == (FLEET_SRC / "lib.nix").read_text()


def test_demo_fleet_is_prepared_and_builds_offline(data_dir: Path) -> None:
    fleet = prepare_demo(data_dir)
    assert fleet == data_dir / "demo" / "fleet"
    assert git(fleet, "status", "--porcelain") == ""

    project = Project.open(fleet)
    assert [d.name for d in project.devices] == sorted(DEMO)
    assert project.orphans == []
    for d in project.devices:
        assert d.state is DeviceState.OK and d.host_name == d.name
        assert (d.settings.host, d.settings.port, d.settings.user) == (DEMO[d.name], 22, "root")
        assert d.tags
    assert project.device("kiosk-1").tags == ("kiosk", "lobby")

    installables = [attr(fleet, name) for name in DEMO]
    res = nix("build", "--json", "--no-link", *installables, cwd=fleet)
    assert res.returncode == 0, res.stderr
    outs = [Path(r["outputs"]["out"]) for r in json.loads(res.stdout)]
    assert len(outs) == 4
    for out in outs:
        assert (out / "bin" / "switch-to-configuration").is_file()

    # A second call keeps the user's copy; reset makes a fresh one.
    (fleet / "mine.txt").write_text("x")
    assert prepare_demo(data_dir) == fleet and (fleet / "mine.txt").exists()
    assert prepare_demo(data_dir, reset=True) == fleet and not (fleet / "mine.txt").exists()
    assert [p.name for p in fleet.parent.iterdir()] == ["fleet"]  # no temporary copies left
