"""Nix operations end to end with the real Nix on copies of the fixture fleet (fresh salt each)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from engine_helpers import async_wait_for, group_pids, live_with_marker, wait_for
from fleet_fixtures import GIT_ENV, commit_all, copy_fleet, git
from nixdeck.cli import main as cli_main
from nixdeck.core.ops.flake_update import FlakeUpdateSubmission
from nixdeck.core.ops.image import BuildImageSubmission
from nixdeck.core.ops.nix_build import BuildDeviceSubmission, BuildProjectSubmission
from nixdeck.core.ops.vm import RunVmSubmission
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskState
from nixops_fixtures import drv_log_lines, messages, run_ops, run_task
from ssh_fixtures import StartFleet, fixture_known_hosts, fixture_sim_fleet  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.nix]


def trimmed_fleet(tmp_path: Path, keep: tuple[str, ...], extra: dict[str, str] | None = None) -> Path:
    """A fleet copy with only `keep` devices (and extra files), committed."""
    fleet = copy_fleet(tmp_path, git=False)
    for f in (fleet / "devices").glob("*.nix"):
        if f.stem not in keep:
            f.unlink()
    for rel, text in (extra or {}).items():
        (fleet / rel).write_text(text)
    commit_all(fleet, init=True)
    return fleet


def test_build_device_and_failing_devices(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)
    bad = ("bad-syntax", "bad-undef", "bad-type", "bad-throw")

    async def scenario(engine: TaskEngine) -> None:
        ids = {d: await engine.submit("build_device", BuildDeviceSubmission(project_dir=str(fleet), device=d))
               for d in ("web1", "fail-build", "warn-trace", "nosuch", *bad)}
        t = {d: await engine.wait(i) for d, i in ids.items()}

        web1 = t["web1"]
        assert web1.state == TaskState.COMPLETED, (web1.error, web1.warnings)
        out = web1.result["out_path"]
        assert out.endswith("-nixos-system-web1-25.05.20250101.nixdeck") and Path(out, "bin").is_dir()
        assert isinstance(web1.result["closure_size"], int) and web1.result["closure_size"] > 0
        assert "built" in web1.phase  # e.g. "4/4 built" (the store keeps progress at most 1/s)
        drvs = web1.result["derivations"]
        assert {d["state"] for d in drvs} == {"done"} and all(d["host"] is None for d in drvs)
        assert any(d["name"] == "nixos-system-web1-25.05.20250101.nixdeck" for d in drvs)

        fb = t["fail-build"]
        assert fb.state == TaskState.FAILED
        assert "builder for" in (fb.error or "") and "simulated compiler error" in (fb.error or "")
        errs = [m.message for m in messages(engine, fb.id, "error")]
        assert any("failed with exit code 1" in m for m in errs)
        failed = [d for d in fb.result["derivations"] if d["state"] == "failed"]
        assert failed and Path(failed[0]["log_file"]).read_text().count("\n") == failed[0]["log_lines"] > 0

        wt = t["warn-trace"]
        assert wt.state == TaskState.COMPLETED_WITH_WARNINGS, wt.error
        assert any("deprecated (warn-trace)" in w for w in wt.warnings)
        assert any("deprecated (warn-trace)" in m.message for m in messages(engine, wt.id, "warning"))

        ns = t["nosuch"]
        assert ns.state == TaskState.FAILED
        assert "device 'nosuch' has no attribute 'config.system.build.toplevel'" in (ns.error or "")

        expect = {
            "bad-syntax": ("syntax error", 5),
            "bad-undef": ("undefined variable 'hostNmae'", 5),
            "bad-type": ("cannot coerce an integer to a string", 6),
            "bad-throw": ("bad-throw: simulated evaluation failure", None),
        }
        for d, (text, line) in expect.items():
            rec = t[d]
            assert rec.state == TaskState.FAILED, d
            assert text in (rec.error or ""), (d, rec.error)
            errs = messages(engine, rec.id, "error")
            hit = next(m for m in errs if text in m.message)
            if line is not None:
                assert hit.file == str(fleet / "devices" / f"{d}.nix") and hit.line == line, (d, hit)
                assert f"{fleet}/devices/{d}.nix:{line}:" in (rec.error or "")
            if d == "bad-type":  # evaluations run with --show-trace: the frames reach the errors pane
                assert any("while evaluating" in (f.get("message") or "") for f in hit.trace), hit.trace

    run_ops(data_dir, scenario)


def test_build_project_one_invocation_per_device_results(tmp_path: Path, data_dir: Path) -> None:
    fleet = trimmed_fleet(tmp_path, ("web1", "web2", "db1", "fail-build", "bad-type"))

    async def scenario(engine: TaskEngine) -> None:
        t = await run_task(engine, "build_project", BuildProjectSubmission(project_dir=str(fleet)))
        assert t.state == TaskState.FAILED
        devs = t.result["devices"]
        assert set(devs) == {"web1", "web2", "db1", "fail-build", "bad-type"}
        for good in ("web1", "web2", "db1"):
            assert Path(devs[good]["out_path"]).is_dir()
        assert "builder for" in devs["fail-build"]["error"]
        assert "cannot coerce" in devs["bad-type"]["error"] and "bad-type.nix:6" in devs["bad-type"]["error"]
        assert "fail-build" in (t.error or "") and "bad-type" in (t.error or "")
        procs = engine.store.processes(t.id)
        builds = [p for p in procs if "build" in p.argv and "--dry-run" not in p.argv]
        # one build for all, then (after the evaluation error) one for the devices that evaluate
        assert len(builds) == 2 and sum("#" in a for a in builds[0].argv) == 5

    run_ops(data_dir, scenario)


def test_build_project_maps_each_device_to_its_own_system(tmp_path: Path, data_dir: Path) -> None:
    """Nix 2.8 prints `--json` results sorted by derivation path: each device must still get its own."""
    fleet = trimmed_fleet(tmp_path, ("web1", "web2", "db1"))

    async def scenario(engine: TaskEngine) -> None:
        t = await run_task(engine, "build_project", BuildProjectSubmission(project_dir=str(fleet)))
        assert t.state == TaskState.COMPLETED, t.error
        devs = t.result["devices"]
        for name, host in (("web1", "web1"), ("web2", "web2-prod"), ("db1", "db1")):
            assert f"-nixos-system-{host}-25.05" in devs[name]["out_path"], devs

    run_ops(data_dir, scenario)


def test_untracked_file_and_dirty_tree(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)
    web1 = fleet / "devices" / "web1.nix"
    web1.write_text(web1.read_text().replace('motd = "web1: serves the public site";', "motd = import ./web1-motd.nix;"))
    (fleet / "devices" / "web1-motd.nix").write_text('"hello"\n')  # not git-added
    db1 = fleet / "devices" / "db1.nix"
    db1.write_text(db1.read_text() + "# a local edit\n")

    async def scenario(engine: TaskEngine) -> None:
        t = await run_task(engine, "build_device", BuildDeviceSubmission(project_dir=str(fleet), device="web1"))
        assert t.state == TaskState.FAILED
        assert "git add devices/web1-motd.nix" in (t.error or "")
        ok = await run_task(engine, "build_device", BuildDeviceSubmission(project_dir=str(fleet), device="db1",
                                                                         closure_size=False))
        assert ok.state == TaskState.COMPLETED_WITH_WARNINGS, ok.error
        assert any("is dirty" in w for w in ok.warnings)

    run_ops(data_dir, scenario)


def test_nix_missing_gives_install_hint(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path, git=False, salt="")

    async def scenario(engine: TaskEngine) -> None:
        sub = BuildDeviceSubmission(project_dir=str(fleet), device="web1", env={"PATH": "/nonexistent"})
        t = await run_task(engine, "build_device", sub)
        assert t.state == TaskState.FAILED
        assert "Nix is not installed" in (t.error or "") and "apt-get install nix-bin" in (t.error or "")

    run_ops(data_dir, scenario)


def test_cancel_slow_build_leaves_no_builder(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)
    marker = "slow-build: step $i/60"

    async def scenario(engine: TaskEngine) -> None:
        tid = await engine.submit("build_device", BuildDeviceSubmission(project_dir=str(fleet), device="slow-build"))
        await async_wait_for(lambda: drv_log_lines(engine, tid, "slow-build: step 2/60"), "the builder to log")
        assert live_with_marker(marker)
        await engine.cancel(tid)
        t = await engine.wait(tid)
        assert t.state == TaskState.CANCELED
        for p in engine.store.processes(tid):
            assert p.pid is not None and not group_pids(p.pid)

    run_ops(data_dir, scenario)
    wait_for(lambda: not live_with_marker(marker), "the builder to be gone", limit=15)


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_big_log_keeps_memory_flat_and_every_line(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)

    async def scenario(engine: TaskEngine) -> None:
        base = _rss()
        peak = base
        tid = await engine.submit("build_device", BuildDeviceSubmission(project_dir=str(fleet), device="big-log",
                                                                         closure_size=False))
        waiter = asyncio.ensure_future(engine.wait(tid))
        while not waiter.done():
            peak = max(peak, _rss())
            await asyncio.sleep(0.05)
        t = waiter.result()
        assert t.state == TaskState.COMPLETED, t.error
        assert (peak - base) < 60 * 2**20, f"RSS grew by {(peak - base) / 2**20:.0f} MiB"
        assert drv_log_lines(engine, tid, "big-log: compiling translation unit") == 200_000
        sw = next(d for d in t.result["derivations"] if d["name"] == "nixos-system-big-log-sw")
        assert sw["log_lines"] == 200_000
        assert len(messages(engine, tid)) < 100  # build log lines are not messages

    run_ops(data_dir, scenario)


def test_build_image_formats(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)

    async def scenario(engine: TaskEngine) -> None:
        ids = {f: await engine.submit("build_image", BuildImageSubmission(project_dir=str(fleet), device="web1",
                                                                          format=f))
               for f in ("qcow", "sd-card", "iso")}
        t = {f: await engine.wait(i) for f, i in ids.items()}
        for f, rec in t.items():
            assert rec.state == TaskState.COMPLETED, (f, rec.error)
            assert Path(rec.result["image"]).is_file() and rec.result["size"] >= 64 * 1024
        assert t["qcow"].result["image"].endswith("/nixos.qcow2")
        assert t["qcow"].result["attribute"] == "nixosConfigurations.web1.config.system.build.images.qcow2"
        assert t["sd-card"].result["image"].endswith("/sd-image/nixos-web1.img")
        assert t["iso"].result["image"].endswith("/iso/nixos-web1.iso")

    run_ops(data_dir, scenario)


def test_run_vm_ends_and_cancel_stops_it(tmp_path: Path, data_dir: Path) -> None:
    fleet = copy_fleet(tmp_path)

    async def scenario(engine: TaskEngine) -> None:
        done = await run_task(engine, "run_vm", RunVmSubmission(project_dir=str(fleet), device="web1",
                                                                env={"NIXDECK_SIM_VM_SECONDS": "1"}))
        assert done.state == TaskState.COMPLETED, done.error
        vm_proc = [p for p in engine.store.processes(done.id) if p.argv[0].endswith("/bin/run-web1-vm")]
        assert len(vm_proc) == 1 and "web1: powered off" in Path(vm_proc[0].stdout_path or "").read_text()

        tid = await engine.submit("run_vm", RunVmSubmission(project_dir=str(fleet), device="web2"))

        def vm_running() -> bool:
            ps = [p for p in engine.store.processes(tid) if p.argv[0].endswith("-vm")]
            return bool(ps) and "uptime 1s" in Path(ps[0].stdout_path or "/dev/null").read_text()

        await async_wait_for(vm_running, "the VM to boot")
        await engine.cancel(tid)
        t = await engine.wait(tid)
        assert t.state == TaskState.CANCELED
        for p in engine.store.processes(tid):
            assert p.pid is not None and not group_pids(p.pid)
        vm = next(p for p in engine.store.processes(tid) if p.argv[0].endswith("-vm"))
        assert "received signal, powering off" in Path(vm.stdout_path or "").read_text()
        assert not live_with_marker("run-web2-prod-vm")

    run_ops(data_dir, scenario)


def _input_flake(path: Path, value: str) -> None:
    path.mkdir(exist_ok=True)
    (path / "flake.nix").write_text('{ outputs = { self }: { value = "' + value + '"; }; }\n')
    commit_all(path, init=not (path / ".git").exists(), message=f"value {value}")


def test_flake_update_reports_revisions_and_commits(tmp_path: Path, data_dir: Path) -> None:
    dep = tmp_path / "dep"
    _input_flake(dep, "1")
    other = tmp_path / "other"
    other.mkdir()
    (other / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "flake.nix").write_text(
        f'{{ inputs.dep.url = "git+file://{dep}"; inputs.other.url = "path:{other}";\n'
        "  outputs = { self, dep, other }: { value = dep.value; }; }\n"
    )
    commit_all(proj, init=True)

    async def scenario(engine: TaskEngine) -> None:
        first = await run_task(engine, "flake_update", FlakeUpdateSubmission(project_dir=str(proj), env=GIT_ENV))
        assert first.state == TaskState.COMPLETED, (first.error, first.warnings)
        assert {c["name"]: c["change"] for c in first.result["changes"]} == {"dep": "added", "other": "added"}
        commit_all(proj, "lock")
        rev1 = git(dep, "rev-parse", "HEAD").strip()
        _input_flake(dep, "2")
        rev2 = git(dep, "rev-parse", "HEAD").strip()
        (other / "flake.nix").write_text("{ outputs = { self }: { changed = true; }; }\n")

        bad = await run_task(engine, "flake_update", FlakeUpdateSubmission(project_dir=str(proj), inputs=["nope"]))
        assert bad.state == TaskState.FAILED and "no input 'nope'" in (bad.error or "") and "dep, other" in bad.error

        t = await run_task(engine, "flake_update",
                           FlakeUpdateSubmission(project_dir=str(proj), inputs=["dep"], commit=True, env=GIT_ENV))
        assert t.state == TaskState.COMPLETED, (t.error, t.warnings)
        (change,) = t.result["changes"]  # only dep: other was not asked for
        assert change["name"] == "dep" and change["change"] == "updated"
        assert change["old"]["rev"] == rev1 and change["new"]["rev"] == rev2 and change["new"]["date"]
        assert rev1[:7] in change["summary"] and rev2[:7] in change["summary"]
        assert t.result["commit"] == git(proj, "rev-parse", "HEAD").strip()
        assert "flake.lock" in git(proj, "show", "--stat", "HEAD")
        assert json.loads((proj / "flake.lock").read_text())["nodes"]["dep"]["locked"]["rev"] == rev2

    run_ops(data_dir, scenario)


def test_cli_build_and_build_all(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = trimmed_fleet(tmp_path, ("web1", "db1", "fail-build"))
    rc = cli_main(["--data-dir", str(data_dir), "build", "--project", str(fleet), "--json", "web1", "db1"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    res = json.loads(out.out)
    assert [r["state"] for r in res] == ["completed", "completed"], res
    assert res[0]["result"]["out_path"].endswith("nixos-system-web1-25.05.20250101.nixdeck")

    rc = cli_main(["--data-dir", str(data_dir), "build", "--project", str(fleet), "--all", "--json"])
    out = capsys.readouterr()
    assert rc == 1
    (r,) = json.loads(out.out)
    assert r["kind"] == "build_project" and r["state"] == "failed"
    assert set(r["result"]["devices"]) == {"web1", "db1", "fail-build"}
    assert "error" in r["result"]["devices"]["fail-build"]
    assert "error: builder for" in out.err  # parsed errors are shown, raw JSON is not
    assert "@nix" not in out.err

    assert cli_main(["--data-dir", str(data_dir), "build", "--project", str(fleet)]) == 2
    (data_dir / "current-project").write_text(f"{fleet}\n")
    rc = cli_main(["--data-dir", str(data_dir), "image", "--format", "raw", "--json", "db1"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert json.loads(out.out)[0]["result"]["image"].endswith("/nixos.img")


@pytest.mark.ssh
def test_remote_builder_from_project_settings(
    tmp_path: Path, data_dir: Path, sim_fleet: StartFleet, known_hosts: KnownHosts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet_ssh = sim_fleet(["builder"])
    dev = fleet_ssh.devices[0]
    fleet_ssh.trust_all(known_hosts)
    spec = f"ssh-ng://{dev.user}@{dev.host} x86_64-linux {fleet_ssh.client_key} 1 1"
    toml = f'[project]\nbuilders = "{spec}"\nmax_jobs = 0\nbuilders_use_substitutes = false\n'
    fleet = trimmed_fleet(tmp_path, ("web1",), {"nixdeck.toml": toml})

    async def scenario(engine: TaskEngine) -> str | None:
        t = await run_task(engine, "build_device", BuildDeviceSubmission(project_dir=str(fleet), device="web1",
                                                                         closure_size=False))
        assert t.state == TaskState.COMPLETED, t.error
        drvs = t.result["derivations"]
        assert drvs and {d["host"] for d in drvs} == {f"ssh-ng://{dev.user}@{dev.host}"}
        (proc,) = engine.store.processes(t.id)
        assert proc.argv[proc.argv.index("--builders") + 1] == spec and "--max-jobs" in proc.argv
        assert proc.env["NIX_SSHOPTS"].startswith("-F ")
        # the derivation really was built on the builder, and parse-log sees the same host
        assert dev.path_on_device(t.result["out_path"]).exists()
        return proc.stderr_path

    stderr_path = run_ops(data_dir, scenario)
    capsys.readouterr()
    assert cli_main(["parse-log", "--json", str(stderr_path)]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert {d["machine"] for d in parsed["derivations"]} == {f"ssh-ng://{dev.user}@{dev.host}"}
