"""A known_hosts file with garbage bytes: a clear error naming the file and line, on real sshd
devices, and the file is never rewritten (its bytes are kept); lines NixDeck does not touch keep
their bytes when it does write."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from nixdeck.cli import main
from nixdeck.core.ops.ssh_command import SshCommandSubmission
from nixdeck.core.ssh.knownhosts import KnownHosts, KnownHostsUnreadable
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_deploy_support import DeployWorld, fixture_worlds  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh]
Worlds = Callable[..., DeployWorld]
GARBAGE = b"\xff\xfe\x00 not a host line \x9c\x80\n"


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_garbage_known_hosts_is_named_and_kept(worlds: Worlds, capsys: pytest.CaptureFixture[str]) -> None:
    world = worlds(["node1"], nodes=["node1"])
    path = world.known_hosts.path
    good = path.read_bytes()
    assert good.count(b"\n") >= 1
    path.write_bytes(good + GARBAGE + b"# after\n")
    line = good.count(b"\n") + 1
    before = _digest(path)

    for argv in (["ssh", "trust", "node1", "--project", world.project_dir, "--yes"],
                 ["ssh", "trust", "node1", "--project", world.project_dir, "--yes", "--replace"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"known_hosts {path} line {line} is not text" in err, err
        assert _digest(path) == before, "a file NixDeck could not read is never rewritten"

    async def scenario(engine: TaskEngine) -> TaskRecord:
        sub = SshCommandSubmission(project_dir=world.project_dir, device="node1", argv=["true"])
        return await engine.wait(await engine.submit(TaskKind.SSH_COMMAND.value, sub))

    t = world.run(scenario)
    assert t.state == TaskState.FAILED
    assert t.error is not None and f"{path} line {line} is not text" in t.error and "internal error" not in t.error
    assert _digest(path) == before


def test_trust_keeps_the_bytes_of_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    new = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    algo, blob = other.export_public_key("openssh").decode().split()[:2]
    kept = (f"# a comment with tabs\t and CRLF\r\n[a.example]:2222 {algo} {blob}\r\n"
            "broken line that OpenSSH skips\nno-newline-at-end").encode()
    path.write_bytes(kept)
    hosts = KnownHosts(path)
    hosts.trust("b.example", 22, new)
    raw = path.read_bytes()
    assert raw.startswith(kept + b"\n") and raw.count(b"b.example ssh-ed25519 ") == 1
    assert [e.patterns for e in hosts.entries()] == ["[a.example]:2222", "b.example"]
    assert hosts.forget("b.example") == 1
    assert path.read_bytes() == kept + b"\n"
    path.write_bytes(kept + GARBAGE)
    with pytest.raises(KnownHostsUnreadable, match=r"line 4 is not text \(byte 0xff\)"):
        hosts.trust("c.example", 22, new)
    assert path.read_bytes() == kept + GARBAGE
