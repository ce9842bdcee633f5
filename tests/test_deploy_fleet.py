"""Deploy Devices / Deploy to Device against real sshd devices with their own /nix and /run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nixdeck.core.ops.deploy_device import DeployDeviceSubmission
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission, parse_waves
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import TaskChanged
from nixdeck.core.tasks.model import TaskKind, TaskState
from test_deploy_support import DeployWorld, children, fixture_worlds  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

Worlds = Callable[..., DeployWorld]
DEPLOY = TaskKind.DEPLOY_DEVICES.value


def test_parse_waves() -> None:
    assert parse_waves([], 7) == [7]
    assert parse_waves(["1", "10%", "100%"], 20) == [1, 2, 20]
    assert parse_waves(["2", "50%"], 5) == [2, 3, 5]
    assert parse_waves(["10"], 3) == [3]
    with pytest.raises(ValueError, match="percentage"):
        parse_waves(["0%"], 3)
    with pytest.raises(ValueError, match="not a count"):
        parse_waves(["x"], 3)


def test_deploy_all_in_parallel(worlds: Worlds) -> None:
    names = ["web1", "db1", "units-fail", "node4", "node5", "node6"]
    world = worlds(names, nodes=["node4", "node5", "node6"])

    async def scenario(engine: TaskEngine) -> tuple[int, dict[str, object]]:
        pid = await engine.submit(DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=names))
        parent = await engine.wait(pid)
        return pid, {"parent": parent, "kids": children(engine, pid), "jobs": engine.store.jobs(pid)}

    pid, got = world.run(scenario)
    parent, kids = got["parent"], got["kids"]
    assert isinstance(kids, dict)
    assert parent.state == TaskState.COMPLETED_WITH_WARNINGS, parent.error  # type: ignore[attr-defined]
    assert set(kids) == set(names)
    # one build for all devices, in the parent
    processes = [p for p in world.run(lambda e: _procs(e, pid))]
    builds = [p for p in processes if p.argv[1:2] == ["build"]]
    assert len(builds) == 1 and sum(a.endswith(".toplevel") for a in builds[0].argv) == len(names)
    for name, kid in kids.items():
        path = kid.result["store_path"]
        assert world.current_system(name) == path, name
        assert world.profile_system(name) == path, name
        steps = {s.name: s for job in world.run(lambda e, k=kid: _jobs(e, k.id)) for s in job.steps}
        assert [s for s in steps] == ["build", "copy", "diff", "activate", "confirm"]
        assert "built by task" in steps["build"].detail
        if name == "units-fail":
            assert kid.state == TaskState.COMPLETED_WITH_WARNINGS
            assert kid.result["failed_units"] == ["nginx.service", "sensor-reader.service"]
            assert any("nginx.service" in w for w in kid.warnings)
        else:
            assert kid.state == TaskState.COMPLETED, (name, kid.error)
            assert kid.result["outcome"] == "confirmed"
    summary = parent.result["devices"]  # type: ignore[attr-defined]
    assert summary["units-fail"]["failed_units"] == ["nginx.service", "sensor-reader.service"]
    assert summary["web1"]["state"] == "completed"


async def _procs(engine: TaskEngine, pid: int) -> list:  # type: ignore[type-arg]
    return engine.store.processes(pid)


async def _jobs(engine: TaskEngine, tid: int) -> list:  # type: ignore[type-arg]
    return engine.store.jobs(tid)


def test_unreachable_no_target_and_changed_key_fail_alone_then_rerun_failed(worlds: Worlds) -> None:
    names = ["node1", "node2", "node3", "node4", "node5"]
    world = worlds(names, nodes=names, no_target=["node5"])
    world.device("node2").stop()  # connection refused
    changed = world.device("node3")
    changed.regenerate_host_key()
    world.fleet.restart(changed)

    async def first(engine: TaskEngine) -> int:
        pid = await engine.submit(DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=names))
        await engine.wait(pid)
        return pid

    pid = world.run(first)

    async def inspect(engine: TaskEngine) -> tuple[object, dict[str, object]]:
        return engine.store.get(pid), children(engine, pid)

    parent, kids = world.run(inspect)
    assert isinstance(kids, dict)
    assert parent.state == TaskState.FAILED  # type: ignore[attr-defined]
    for ok in ("node1", "node4"):
        assert kids[ok].state == TaskState.COMPLETED, kids[ok].error
        assert world.current_system(ok) == kids[ok].result["store_path"]
    refused = kids["node2"]
    assert refused.state == TaskState.FAILED
    assert "connection refused by" in refused.error and "is sshd running" in refused.error
    key = kids["node3"]
    assert key.state == TaskState.FAILED
    assert "HOST KEY CHANGED" in key.error and "nixdeck ssh trust node3 --replace" in key.error
    assert key.error.count("SHA256:") >= 2  # both fingerprints
    hk = key.result["host_key"]  # for the window's own Trust host key action
    assert hk["device"] == "node3" and hk["problem"] == "changed" and hk["offered"] in key.error
    assert key.phase == "failed during copy"
    # nothing was copied to the device whose key changed
    store = changed.nix_dir / "store"
    assert not [p for p in (store.iterdir() if store.exists() else []) if "nixos-system-node3" in p.name]
    assert world.current_system("node3") is None
    nt = kids["node5"]
    assert nt.state == TaskState.FAILED
    assert nt.error == "device node5 has no target: set one with nixdeck project set node5 host=…"
    summary = parent.result["devices"]  # type: ignore[attr-defined]
    assert any("connection refused" in line for line in summary["node2"]["log"])
    assert "log" not in summary["node1"]

    # fix two of the three, then re-run only the failed ones
    world.fleet.restart(world.device("node2"))
    world.known_hosts.trust(changed.host, changed.port, changed.host_public_key(), replace=True)

    async def rerun(engine: TaskEngine) -> tuple[object, dict[str, object]]:
        new = await engine.rerun(pid, failed_only=True)
        rec = await engine.wait(new)
        return rec, children(engine, new)

    again, kids2 = world.run(rerun)
    assert isinstance(kids2, dict)
    assert again.origin_id == pid  # type: ignore[attr-defined]
    assert sorted(kids2) == ["node2", "node3", "node5"]
    assert kids2["node2"].state == TaskState.COMPLETED
    assert kids2["node3"].state == TaskState.COMPLETED
    assert kids2["node5"].state == TaskState.FAILED
    assert world.current_system("node3") == kids2["node3"].result["store_path"]


def test_waves_halt_on_failures(worlds: Worlds) -> None:
    names = ["node1", "node2", "node3", "node4", "node5"]
    world = worlds(names, nodes=names)
    world.device("node1").stop()  # the canary is down

    phases: list[str] = []

    async def scenario(engine: TaskEngine) -> tuple[object, dict[str, object]]:
        sub = DeployDevicesSubmission(project_dir=world.project_dir, devices=names, waves=["1", "40%", "100%"])
        pid = await engine.submit(DEPLOY, sub)
        engine.subscribe(
            lambda e: phases.append(e.task.phase)
            if isinstance(e, TaskChanged) and e.task.id == pid and e.task.phase and phases[-1:] != [e.task.phase]
            else None
        )
        return await engine.wait(pid), children(engine, pid)

    parent, kids = world.run(scenario)
    # what the Tasks panel shows for the parent while it runs
    assert "wave 1/3 · 0/5 done · 1 deploying · 4 waiting for wave 2" in phases, phases
    assert "wave 1/3 · 1/5 done · 1 failed · halted, 4 not started" in phases, phases
    assert phases[-1] == "0/5 deployed · 1 failed · 4 not started", phases  # the final summary
    assert isinstance(kids, dict)
    assert parent.state == TaskState.FAILED  # type: ignore[attr-defined]
    assert "halted after 1 failed device" in parent.error  # type: ignore[attr-defined]
    assert kids["node1"].state == TaskState.FAILED
    for name in names[1:]:
        assert kids[name].state == TaskState.CANCELED, name
        assert kids[name].error.startswith("not started: the rollout halted after 1 failed device"), kids[name].error
        assert parent.result["devices"][name]["outcome"] == "not started"  # type: ignore[attr-defined]
        assert world.current_system(name) is None
    assert parent.result["halted"]  # type: ignore[attr-defined]


def test_standalone_boot_builds_itself_and_skips_confirm(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"])

    async def scenario(engine: TaskEngine) -> tuple[object, list]:  # type: ignore[type-arg]
        sub = DeployDeviceSubmission(project_dir=world.project_dir, device="node1", action="boot")
        tid = await engine.submit(TaskKind.DEPLOY_DEVICE.value, sub)
        return await engine.wait(tid), engine.store.jobs(tid)

    rec, jobs = world.run(scenario)
    assert rec.state == TaskState.COMPLETED, rec.error  # type: ignore[attr-defined]
    path = rec.result["store_path"]  # type: ignore[attr-defined]
    steps = {s.name: s for s in jobs[0].steps}
    assert steps["build"].detail == path
    assert steps["confirm"].detail.startswith("skipped: no confirm for boot")
    assert steps["confirm"].state == TaskState.COMPLETED
    assert world.profile_system("node1") == path
    assert world.current_system("node1") is None  # boot does not activate now
    assert (world.device("node1").sim_state_dir / "last-boot").read_text().strip() == path


def test_unsigned_closure_is_refused_and_a_project_key_signs_it(worlds: Worlds) -> None:
    import subprocess

    from fleet_fixtures import commit_all
    from nixdeck.core.project import Project

    world = worlds(["node1"], nodes=["node1"])
    project = Project.open(world.flake, discover_devices=False)
    project.set_project_settings({"no_check_sigs": False})
    commit_all(world.flake, "signatures checked")

    def deploy() -> tuple[TaskState, str | None]:
        async def scenario(engine: TaskEngine) -> tuple[TaskState, str | None]:
            pid = await engine.submit(DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1"]))
            await engine.wait(pid)
            kid = children(engine, pid)["node1"]
            return kid.state, kid.error

        return world.run(scenario)

    state, error = deploy()
    assert state == TaskState.FAILED
    assert error is not None and "not signed by a key the device trusts" in error and "no_check_sigs" in error
    assert world.current_system("node1") is None

    # the safe way: the project signs with its key, the device trusts the public half
    nix = ["nix", "--extra-experimental-features", "nix-command"]
    secret = world.flake.parent / "deploy-key.sec"
    secret.write_text(subprocess.run([*nix, "key", "generate-secret", "--key-name", "nixdeck-test-1"],
                                     capture_output=True, text=True, check=True).stdout)
    public = subprocess.run([*nix, "key", "convert-secret-to-public"], input=secret.read_text(),
                            capture_output=True, text=True, check=True).stdout.strip()
    conf = world.device("node1").nix_conf_dir / "nix.conf"
    conf.write_text(conf.read_text() + f"trusted-public-keys = {public}\n")
    project.set_project_settings({"signing_key": str(secret)})
    commit_all(world.flake, "signing key")
    state, error = deploy()
    assert state == TaskState.COMPLETED, error
    assert world.current_system("node1") is not None


def test_cli_deploy_by_tag_with_boot(worlds: Worlds, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fleet_fixtures import commit_all
    from nixdeck.cli import main
    from nixdeck.core.project import Project

    world = worlds(["node1", "node2", "node3"], nodes=["node1", "node2", "node3"])
    Project.open(world.flake, discover_devices=False).tag(["node1", "node3"], "web")
    commit_all(world.flake, "tags")
    code = main(["deploy", "--project", world.project_dir, "--tag", "web", "--action", "boot", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no confirm for boot" in captured.err
    (parent,) = json.loads(captured.out[captured.out.index("[\n") :])
    assert parent["kind"] == DEPLOY and parent["state"] == "completed"
    assert sorted(parent["result"]["devices"]) == ["node1", "node3"]
    assert world.profile_system("node1") == parent["result"]["devices"]["node1"]["store_path"]
    assert world.profile_system("node2") is None
    assert main(["deploy", "--project", world.project_dir, "--waves", "0%"]) == 2


def test_cli_deploy_of_the_whole_fleet_skips_devices_without_a_target(
    worlds: Worlds, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from nixdeck.cli import main

    world = worlds(["node1", "node2"], nodes=["node1", "node2"], no_target=["node2"])
    code = main(["deploy", "--project", world.project_dir, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = next(ln for ln in captured.err.splitlines() if "with no target yet:" in ln)
    assert "node2" in skipped and "node1" not in skipped
    (parent,) = json.loads(captured.out[captured.out.index("[\n") :])
    assert parent["state"] == "completed" and sorted(parent["result"]["devices"]) == ["node1"]
