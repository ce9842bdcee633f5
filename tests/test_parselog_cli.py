"""`nixdeck parse-log FILE|- [--json]` as a real subprocess, on saved Nix logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nixlog_helpers import SAMPLES, all_samples

MESSAGE_KEYS = {"message", "file", "line", "column", "trace"}


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "nixdeck", "parse-log", *args], input=stdin,
                          capture_output=True, timeout=60, check=False)


def test_text_output_build_fail() -> None:
    r = _cli(str(SAMPLES / "nix-2.8/build-fail.internal-json.stderr"))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "error: builder for '/nix/store/0ryg0hx9bxrwx8wdwh3aksnvssa0qv63-nixos-system-broken-1.drv'" in out
    assert "failed     nixos-system-broken-1" in out
    assert "> error: simulated builder failure for broken" in out


def test_json_is_stable_and_complete() -> None:
    r = _cli(str(SAMPLES / "nix-2.8/eval-type.show-trace.internal-json.stderr"), "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    for key in ("errors", "warnings", "notices", "infos", "builds", "copies", "derivations"):
        assert key in j
    assert set(j["builds"]) >= {"done", "expected", "running", "failed"}
    assert set(j["copies"]["paths"]) >= {"done", "expected"} and set(j["copies"]["bytes"]) >= {"done", "expected"}
    (err,) = j["errors"]
    assert set(err) >= MESSAGE_KEYS
    assert (err["line"], err["column"]) == (21, 37)
    assert err["trace"][0]["line"] == 20


def test_json_derivation_host_and_lines_from_stdin() -> None:
    drv = "/nix/store/" + "d" * 32 + "-remote-1.drv"
    log = "\n".join([
        '@nix {"action":"start","id":7,"level":3,"type":105,"text":"b","fields":["' + drv + '","ssh-ng://builder2",1,1]}',
        *[f'@nix {{"action":"result","id":7,"type":101,"fields":["line {i}"]}}' for i in range(30)],
        '@nix {"action":"stop","id":7}',
    ]).encode()
    j = json.loads(_cli("-", "--json", "--lines", "3", stdin=log).stdout)
    (d,) = j["derivations"]
    assert d["host"] == "ssh-ng://builder2" and d["state"] == "done"
    assert d["last_log_lines"] == ["line 27", "line 28", "line 29"] and d["log_lines"] == 30


def test_plain_log_and_git_add_hint() -> None:
    r = _cli(str(SAMPLES / "nix-2.8/eval-untracked-file.plain.stderr"))
    out = r.stdout.decode()
    assert "git add newfile.nix" in out and "Git tree '/srv/fleet-lab/fleet' is dirty" in out


def test_source_root_maps_store_paths(tmp_path: Path) -> None:
    (tmp_path / "flake.nix").write_text("{}")
    r = _cli(str(SAMPLES / "nix-2.26/eval-undef.internal-json.stderr"), "--json", "--source-root", str(tmp_path))
    (err,) = json.loads(r.stdout)["errors"]
    assert err["file"] == str(tmp_path / "flake.nix")


def test_missing_file() -> None:
    r = _cli("/nonexistent/log")
    assert r.returncode == 2 and b"cannot read" in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize("name", all_samples()[::4])
def test_every_kind_of_sample(name: str) -> None:
    r = _cli(str(SAMPLES / f"{name}.stderr"), "--json")
    assert r.returncode == 0 and b"Traceback" not in r.stderr
    json.loads(r.stdout)
