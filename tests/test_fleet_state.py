"""Fleet state: probes of real sshd devices, drift against the builds of this project, closure diffs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from nixdeck.cli import main
from nixdeck.core.fleet.closure import StorePath, diff_closures, parse_path_info, split_name
from nixdeck.core.fleet.drift import Build, drift
from nixdeck.core.fleet.probe import DeviceState, parse_probe
from nixdeck.core.fleet.state_store import FleetStateStore
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.ops.nix_build import BuildDeviceSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_deploy_support import NODE, DeployWorld, fixture_worlds  # noqa: F401  (fixture)

Worlds = Callable[..., DeployWorld]
H = "0" * 32


def test_store_path_names_split_like_parse_drv_name() -> None:
    assert split_name("openssl-3.0.13") == ("openssl", "3.0.13")
    assert split_name("nixos-system-web-25.05.20250101.abc") == ("nixos-system-web", "25.05.20250101.abc")
    assert split_name("etc-web1") == ("etc-web1", "")
    assert split_name("python3.11-requests-2.31.0") == ("python3.11-requests", "2.31.0")


def test_path_info_of_both_nix_formats_and_missing_paths() -> None:
    old_format = json.dumps([{"path": f"/nix/store/{H}-a-1.0", "narSize": 10}])
    new_format = json.dumps({f"/nix/store/{H}-a-1.0": {"narSize": 10}, f"/nix/store/{'1' * 32}-b": None})
    assert parse_path_info(old_format) == ([StorePath(f"/nix/store/{H}-a-1.0", 10)], [])
    paths, invalid = parse_path_info(new_format)
    assert paths == [StorePath(f"/nix/store/{H}-a-1.0", 10)] and invalid == [f"/nix/store/{'1' * 32}-b"]


def test_closure_diff_names_added_removed_changed_rebuilt_and_size() -> None:
    def p(hash_char: str, name: str, size: int) -> StorePath:
        return StorePath(f"/nix/store/{hash_char * 32}-{name}", size)

    old = [p("a", "openssl-3.0.13", 100), p("b", "curl-8.5.0", 50), p("c", "etc-web", 5), p("d", "gone-1", 7)]
    new = [p("e", "openssl-3.0.14", 110), p("b", "curl-8.5.0", 50), p("f", "etc-web", 6), p("g", "jq-1.7", 20)]
    d = diff_closures(old, new)
    assert d.added == [("jq", "1.7")]
    assert d.removed == [("gone", "1")]
    assert d.changed == [("openssl", "3.0.13", "3.0.14")]
    assert d.rebuilt == 1
    assert d.size_delta == 186 - 162
    assert "1 added, 1 removed, 1 changed, 1 rebuilt" in d.summary()


def _state(**kw: object) -> DeviceState:
    base: dict[str, object] = {"project": "/p", "device": "d", "probed_at": datetime.now(UTC), "online": True}
    return DeviceState.model_validate({**base, **kw})


def test_drift_states() -> None:
    builds = [Build("/nix/store/new", 9, None), Build("/nix/store/old", 3, None)]
    assert drift(None, builds).state == "unknown"
    assert drift(_state(online=False, reason="connection refused"), builds).state == "unreachable"
    assert drift(_state(current="/nix/store/new"), builds).state == "in sync"
    assert drift(_state(current="/nix/store/old"), builds).state == "outdated"
    assert drift(_state(current="/nix/store/other"), builds).state == "diverged"
    assert drift(_state(current="/nix/store/new", booted="/nix/store/old"), builds).state == "needs reboot"
    assert drift(_state(current=None), builds).state == "unknown"
    assert drift(_state(current="/nix/store/new"), []).state == "unknown"


def test_probe_output_is_parsed_and_broken_lines_ignored() -> None:
    lines = ["current=/nix/store/x-sys", "booted=", "profile-link=system-3-link",
             "generation=system-2-link 1700000000 /nix/store/w-sys", "generation=system-3-link 1700000100 /nix/store/x-sys",
             "generation=garbage", "uptime=12.5", "store-free-kib=1024", "systemd=absent", "nonsense"]  # fmt: skip
    s = parse_probe(lines, project="/p", device="d", probed_at=datetime.now(UTC))
    assert s.current == "/nix/store/x-sys" and s.booted is None
    assert [g.number for g in s.generations] == [2, 3]
    assert s.running_generation is not None and s.running_generation.number == 3
    assert s.store_free_bytes == 1024 * 1024 and s.uptime_s == 12.5
    assert s.failed_units is None and s.lacks == ["systemd"]


def _submit_wait(world: DeployWorld, kind: str, sub: object) -> TaskRecord:
    async def scenario(engine: TaskEngine) -> TaskRecord:
        tid = await engine.submit(kind, sub, project=world.project_dir)  # type: ignore[arg-type]
        return await engine.wait(tid)

    return world.run(scenario)


def _status(world: DeployWorld, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    code = main(["--data-dir", str(world.data_dir), "status", "--project", world.project_dir, "--json", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return {r["name"]: r for r in json.loads(out.out)}


@pytest.mark.nix
@pytest.mark.ssh
def test_status_shows_drift_through_builds_deploys_and_hand_changes(
    worlds: Worlds, capsys: pytest.CaptureFixture[str]
) -> None:
    world = worlds(["node1", "node2"], nodes=["node1", "node2"])
    first = _status(world, capsys)
    assert first["node1"]["online"] is True and first["node1"]["drift"] == "unknown"
    assert "lacks" in first["node1"] and "systemd" in first["node1"]["lacks"]  # type: ignore[operator]

    deploy = _submit_wait(world, TaskKind.DEPLOY_DEVICES.value,
                          DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1", "node2"]))
    assert deploy.state == TaskState.COMPLETED, deploy.error
    synced = _status(world, capsys)
    assert synced["node1"]["drift"] == "in sync" and synced["node2"]["drift"] == "in sync"
    assert synced["node1"]["generation"] == 1

    # a newer build of node2: it is outdated until deployed
    world.write_device("node2", NODE.format(name="node2", motd="node2 v2"))
    build = _submit_wait(world, TaskKind.BUILD_DEVICE.value,
                         BuildDeviceSubmission(project_dir=world.project_dir, device="node2"))
    assert build.state == TaskState.COMPLETED, build.error
    assert _status(world, capsys)["node2"]["drift"] == "outdated"

    # someone switched node1 by hand to a system NixDeck never built for it
    node2_path = str(build.result["out_path"])
    link = world.device("node1").run_dir / "current-system"
    os.unlink(link)
    os.symlink(node2_path, link)
    assert _status(world, capsys)["node1"]["drift"] == "diverged"

    # a device that is down is unreachable, with the reason, and the cached view says the same
    world.device("node2").stop()
    down = _status(world, capsys)
    assert down["node2"]["drift"] == "unreachable" and down["node2"]["online"] is False
    assert "refused" in str(down["node2"]["reason"]).lower() or "connect" in str(down["node2"]["reason"]).lower()
    assert _status(world, capsys, "--cached")["node2"]["drift"] == "unreachable"
    with FleetStateStore(world.data_dir) as fleet:
        assert len(fleet.history(str(world.flake.resolve()), "node2")) == 5


@pytest.mark.nix
@pytest.mark.ssh
def test_diff_before_deploy_and_the_diff_step_of_a_deploy(worlds: Worlds, capsys: pytest.CaptureFixture[str]) -> None:
    world = worlds(["node1"], nodes=["node1"])
    deploy = _submit_wait(world, TaskKind.DEPLOY_DEVICES.value,
                          DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1"]))
    assert deploy.state == TaskState.COMPLETED, deploy.error
    blob = """{ drv, mkDevice, ... }:
let jq = drv "jq-1.7" "mkdir -p $out/bin; echo jq > $out/bin/jq";
in mkDevice { name = "node1"; motd = "node1 v2"; packages = [ jq ]; }
"""
    world.write_device("node1", blob)
    capsys.readouterr()
    code = main(["--data-dir", str(world.data_dir), "diff", "node1", "--project", world.project_dir, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    d = json.loads(out.out)
    assert {"name": "jq", "version": "1.7"} in d["added"]
    assert d["removed"] == [] and d["size_delta"] > 0 and d["old_paths"] > 0
    changed = {c["name"] for c in d["changed"]}
    assert changed == set(), changed  # same names and versions: the rest was rebuilt
    assert d["rebuilt"] >= 2  # the toplevel and /etc (the motd changed)

    deploy = _submit_wait(world, TaskKind.DEPLOY_DEVICES.value,
                          DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1"]))
    assert deploy.state == TaskState.COMPLETED, deploy.error

    async def child(engine: TaskEngine) -> TaskRecord:
        return engine.store.children(deploy.id)[0]

    kid = world.run(child)
    assert {"name": "jq", "version": "1.7"} in kid.result["diff"]["added"]
    assert kid.result["diff"]["from"] == d["from"]
