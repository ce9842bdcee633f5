"""Run SSH Command tasks and the `nixdeck ssh` CLI against real sshd devices."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nixdeck.cli import main
from nixdeck.core.ops.ssh_command import SshCommandsSubmission
from nixdeck.core.ssh.knownhosts import fingerprint
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_deploy_support import DeployWorld, children, fixture_worlds, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh]

Worlds = Callable[..., DeployWorld]
MANY = TaskKind.SSH_COMMANDS.value


def test_ssh_run_on_several_devices_streams_output_and_records_exit_status(worlds: Worlds) -> None:
    names = ["node1", "node2", "node3"]
    world = worlds(names, nodes=names)
    script = 'echo "out from $NIX_CONF_DIR"; echo "to stderr" >&2; [ "$1" != fail ] || exit 3'

    async def scenario(
        engine: TaskEngine,
    ) -> tuple[TaskRecord, dict[str, TaskRecord], dict[str, str], dict[str, list[str]]]:
        sub = SshCommandsSubmission(project_dir=world.project_dir, devices=names, argv=["sh", "-c", script, "sh", "ok"])
        seen: list[str] = []
        copies: dict[str, list[str]] = {}
        engine.subscribe(lambda ev: seen.append(getattr(ev, "text", "")))
        pid = await engine.submit(MANY, sub)
        parent = await engine.wait(pid)
        kids = children(engine, pid)
        outputs = {}
        for name, kid in kids.items():
            (proc,) = engine.store.processes(kid.id)
            dev = world.device(name)
            # what really ran: the asyncssh connection, its verified host key, the exact command string
            assert proc.exit_code == 0 and proc.remote["via"] == "asyncssh"
            assert proc.remote["connection"] == f"root@{dev.host}:{dev.port}"
            assert proc.remote["host_key_fingerprint"] == fingerprint(dev.host_public_key())
            assert proc.remote["identity_file"] and proc.remote["known_hosts"] == str(world.known_hosts.path)
            command = proc.remote["command"]
            assert command.startswith("echo NIXDECK-PGID-") and command.endswith("; exec " + shlex.join(sub.argv))
            # argv is an OpenSSH line that reproduces it with NixDeck's known_hosts (run below)
            assert proc.argv[0] == "ssh" and f"UserKnownHostsFile={world.known_hosts.path}" in proc.argv
            assert proc.argv[-3:] == [f"root@{dev.host}", "--", shlex.join(sub.argv)]
            copies[name] = proc.argv
            outputs[name] = Path(proc.stdout_path or "").read_text() + Path(proc.stderr_path or "").read_text()
        assert any("to stderr" in s for s in seen)  # streamed live
        return parent, kids, outputs, copies

    parent, kids, outputs, copies = world.run(scenario)
    again = subprocess.run(copies["node2"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert f"out from {world.device('node2').nix_conf_dir}" in again.stdout
    assert parent.state == TaskState.COMPLETED, parent.error
    for name in names:
        assert kids[name].result["exit_code"] == 0
        assert f"out from {world.device(name).nix_conf_dir}" in outputs[name]  # ran on that device
        assert "to stderr" in outputs[name]
    assert parent.result["devices"]["node2"]["exit_code"] == 0

    async def failing(engine: TaskEngine) -> tuple[TaskRecord, dict[str, TaskRecord]]:
        sub = SshCommandsSubmission(project_dir=world.project_dir, devices=names, argv=["sh", "-c", script, "sh", "fail"])
        pid = await engine.submit(MANY, sub)
        return await engine.wait(pid), children(engine, pid)

    parent, kids = world.run(failing)
    assert parent.state == TaskState.FAILED
    for kid in kids.values():
        assert kid.state == TaskState.FAILED and kid.result["exit_code"] == 3
        assert "exited with code 3" in (kid.error or "")
        assert kid.phase == "exited 3"  # not "running on node1"
    assert parent.phase == "0/3 done · 3 failed"


def test_cancel_of_ssh_run_leaves_nothing_on_the_devices(worlds: Worlds) -> None:
    names = ["node1", "node2"]
    world = worlds(names, nodes=names, no_target=[])
    devices = [world.device(n) for n in names]

    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, dict[str, TaskRecord]]:
        sub = SshCommandsSubmission(
            project_dir=world.project_dir, devices=names, argv=["sh", "-c", "sleep 300 & sleep 301; wait"]
        )
        pid = await engine.submit(MANY, sub)
        await wait_for(lambda: all(any("sleep 301" in c for _, c in d.command_processes()) for d in devices),
                       "the commands to run")  # fmt: skip
        await engine.cancel(pid)
        return await engine.wait(pid), children(engine, pid)

    parent, kids = world.run(scenario)
    assert parent.state == TaskState.CANCELED
    assert all(k.state == TaskState.CANCELED for k in kids.values())
    assert all(k.phase == "canceled during run" for k in kids.values()), [k.phase for k in kids.values()]
    assert parent.phase == "canceled · 0/2 done · 2 canceled", parent.phase  # not "0/2 done · 2 running"
    for device in devices:
        assert device.command_processes() == []


def test_ssh_run_reports_unreachable_and_missing_target(worlds: Worlds) -> None:
    world = worlds(["node1", "node2", "node3"], nodes=["node1", "node2", "node3"], no_target=["node3"])
    world.device("node2").stop()

    async def scenario(engine: TaskEngine) -> dict[str, TaskRecord]:
        sub = SshCommandsSubmission(project_dir=world.project_dir, devices=["node1", "node2", "node3"], argv=["true"])
        pid = await engine.submit(MANY, sub)
        await engine.wait(pid)
        return children(engine, pid)

    kids = world.run(scenario)
    assert kids["node1"].state == TaskState.COMPLETED
    assert "connection refused" in (kids["node2"].error or "")
    assert kids["node3"].error == "device node3 has no target: set one with nixdeck project set node3 host=…"


def test_cli_trust_and_run(worlds: Worlds, capsys: pytest.CaptureFixture[str]) -> None:
    world = worlds(["node1", "node2"], nodes=["node1", "node2"])
    dev = world.device("node1")
    world.known_hosts.forget(dev.host, dev.port)
    fp = fingerprint(dev.host_public_key())

    # without a terminal it refuses to ask; --yes trusts
    assert main(["ssh", "trust", "node1", "--project", world.project_dir]) == 2
    assert fp in capsys.readouterr().out
    assert not world.known_hosts.lookup(dev.host, dev.port)
    assert main(["ssh", "trust", "node1", "--project", world.project_dir, "--yes"]) == 0
    assert f"trusted {fp}" in capsys.readouterr().out
    assert [e.fingerprint for e in world.known_hosts.lookup(dev.host, dev.port)] == [fp]

    # a changed key is refused with both fingerprints, then replaced on request
    dev.regenerate_host_key()
    world.fleet.restart(dev)
    new = fingerprint(dev.host_public_key())
    assert main(["ssh", "trust", "node1", "--project", world.project_dir, "--yes"]) == 1
    err = capsys.readouterr().err
    assert "HOST KEY CHANGED" in err and fp in err and new in err
    assert main(["ssh", "trust", "node1", "--project", world.project_dir, "--yes", "--replace"]) == 0
    assert [e.fingerprint for e in world.known_hosts.lookup(dev.host, dev.port)] == [new]
    capsys.readouterr()

    # run on two devices through the CLI
    code = main(["ssh", "run", "--project", world.project_dir, "--json", "node1", "node2", "--", "echo", "hi there"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines().count("hi there") == 2
    payload = json.loads(out[out.index("[\n") :])
    assert payload[0]["kind"] == MANY and payload[0]["state"] == "completed"


def test_app_log_at_info_has_nixdecks_lines_not_asyncssh_chatter(worlds: Worlds, tmp_path: Path) -> None:
    import logging

    from nixdeck.ui.app import setup_logging

    world = worlds(["node1"], nodes=["node1"])
    logdir = tmp_path / "logs"
    logdir.mkdir()
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    setup_logging(logdir, verbose=False)
    try:
        async def scenario(engine: TaskEngine) -> TaskRecord:
            sub = SshCommandsSubmission(project_dir=world.project_dir, devices=["node1"], argv=["true"])
            return await engine.wait(await engine.submit(MANY, sub))

        assert world.run(scenario).state == TaskState.COMPLETED
    finally:
        for h in root.handlers[:]:
            if h not in before:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
        logging.getLogger("asyncssh").setLevel(logging.NOTSET)
    text = (logdir / "gui.log").read_text()
    assert " INFO nixdeck.core.tasks.engine: task " in text and "ended completed" in text
    assert " asyncssh" not in text, text[:2000]
