"""Nix argv builders, version detection, attribute paths, build outputs, lock diffs and error helpers.

The builders are checked by running them with the real Nix on tiny flakes (no nixpkgs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nixdeck.core.nix import attrs
from nixdeck.core.nix.commands import (
    BuildSettings,
    NixCommand,
    NixCommands,
    merge_env,
    set_profile_argv,
    sshopts_env,
    store_uri,
    switch_argv,
)
from nixdeck.core.nix.errors import StorePathMapper, missing_attribute, untracked_files
from nixdeck.core.nix.lockdiff import diff_locks
from nixdeck.core.nix.outputs import NixOutputError, out_paths, parse_build_json, parse_json
from nixdeck.core.nix.parselog import LogSummary
from nixdeck.core.nix.parser import NixLogParser
from nixdeck.core.nix.version import (
    NixMissing,
    NixTooOld,
    NixVersion,
    detect_nix,
    detect_nix_async,
    parse_version,
)
from nixdeck.core.tasks.errors import TaskFailed
from nixlog_helpers import SAMPLES

V28 = NixVersion(2, 8, 0)
V226 = NixVersion(2, 26, 3)


def _fake_nix(tmp_path: Path, output: str, rc: int = 0) -> Path:
    d = tmp_path / "fakebin"
    d.mkdir(exist_ok=True)
    f = d / "nix"
    f.write_text(f"#!{sys.executable}\nimport sys\nprint({output!r})\nsys.exit({rc})\n")
    f.chmod(0o755)
    return d


def test_detect_real_nix() -> None:
    path, v = detect_nix()
    assert os.path.isabs(path) and v >= NixVersion(2, 8)


def test_detect_real_nix_async() -> None:
    import asyncio

    _, v = asyncio.run(detect_nix_async())
    assert v.major == 2


def test_nix_missing_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(NixMissing, match="apt-get install nix-bin") as e:
        detect_nix({"PATH": str(tmp_path)})
    assert isinstance(e.value, TaskFailed)


def test_nix_too_old(tmp_path: Path) -> None:
    d = _fake_nix(tmp_path, "nix (Nix) 2.3.16")
    with pytest.raises(NixTooOld, match=r"2\.3\.16 is too old.*apt-get install nix-bin"):
        detect_nix({"PATH": str(d)})


def test_nix_broken(tmp_path: Path) -> None:
    d = _fake_nix(tmp_path, "segfault", rc=139)
    with pytest.raises(NixMissing, match="failed"):
        detect_nix({"PATH": str(d)})


def test_parse_version_variants() -> None:
    assert parse_version("nix (Nix) 2.26.3\n") == V226
    assert parse_version("nix (Lix, like Nix) 2.91.1") == NixVersion(2, 91, 1)
    assert parse_version("nix (Nix) 2.19").has_flake_update_inputs
    assert not V28.has_flake_update_inputs
    with pytest.raises(NixMissing):
        parse_version("")


def test_build_argv() -> None:
    s = BuildSettings(builders="ssh-ng://b1 x86_64-linux - 4", builders_use_substitutes=True, max_jobs=0)
    cmd = NixCommands(V28, "/usr/bin/nix", s).build([".#a", ".#b"])
    assert cmd.argv == ["/usr/bin/nix", "build", "--json", "--no-link", "--builders", "ssh-ng://b1 x86_64-linux - 4",
                        "--option", "builders-use-substitutes", "true", "--max-jobs", "0", "--show-trace", ".#a", ".#b",
                        "--log-format", "internal-json", "-v"]
    assert cmd.env["NO_COLOR"] == "1" and "nix-command flakes" in cmd.env["NIX_CONFIG"]
    with pytest.raises(ValueError):
        NixCommands(V28).build([])
    with pytest.raises(ValueError):
        NixCommands(V28).build(["--impure"])
    with pytest.raises(ValueError):
        BuildSettings(max_jobs="lots").argv()


def test_flake_update_argv_by_version() -> None:
    assert NixCommands(V28).flake_update("/f", ["a", "b"]).argv[:7] == [
        "nix", "flake", "lock", "--update-input", "a", "--update-input", "b"]
    assert NixCommands(V226).flake_update("/f", ["a"]).argv[:4] == ["nix", "flake", "update", "a"]
    assert NixCommands(V28).flake_update("/f").argv[:3] == ["nix", "flake", "update"]
    assert NixCommands(V28).flake_update("/f").cwd == "/f"


def test_copy_argv_and_store_uri() -> None:
    uri = store_uri("127.0.0.3")
    cmd = NixCommands(V28).copy_to(uri, ["/nix/store/x"], no_check_sigs=True, substitute_on_destination=True,
                                   ssh_options=["-F", "/tmp/cfg"])
    assert cmd.argv[:7] == ["nix", "copy", "--to", "ssh-ng://root@127.0.0.3", "--no-check-sigs",
                            "--substitute-on-destination", "/nix/store/x"]
    assert cmd.env["NIX_SSHOPTS"] == "-F /tmp/cfg"
    assert store_uri("h", None, "ssh") == "ssh://h"
    for bad in ("", "a b", "-oProxyCommand=x", "u@h"):
        with pytest.raises(ValueError):
            store_uri(bad)
    with pytest.raises(ValueError):
        sshopts_env(["-F", "/tmp/with space"])


def test_device_side_argv() -> None:
    assert set_profile_argv("/nix/store/abc-sys") == ["nix-env", "-p", "/nix/var/nix/profiles/system",
                                                      "--set", "/nix/store/abc-sys"]
    assert switch_argv("/nix/store/abc-sys/", "boot") == ["/nix/store/abc-sys/bin/switch-to-configuration", "boot"]
    with pytest.raises(ValueError):
        switch_argv("/nix/store/abc", "reboot; rm -rf /")


def test_merge_env_appends_nix_config() -> None:
    env = merge_env({"NIX_CONFIG": "a = 1", "X": "y"}, NixCommand(["nix"], {"NIX_CONFIG": "b = 2", "NO_COLOR": "1"}).env)
    assert env == {"NIX_CONFIG": "a = 1\nb = 2", "X": "y", "NO_COLOR": "1"}


def test_attribute_paths() -> None:
    assert attrs.toplevel_attr("dev1") == "nixosConfigurations.dev1.config.system.build.toplevel"
    assert attrs.vm_attr("dev1").endswith("config.system.build.vm")
    assert attrs.device_attr("my.host", "config") == 'nixosConfigurations."my.host".config'
    assert attrs.image_attr("d", "sd-card") == "nixosConfigurations.d.config.system.build.images.sd-card"
    assert attrs.image_attr("d", "sd-card", {"system.build": {"sdImage", "toplevel"}}) == \
        "nixosConfigurations.d.config.system.build.sdImage"
    assert attrs.image_attr("d", "iso", {"system.build": {"isoImage"}}).endswith("build.isoImage")
    assert attrs.image_attr("d", "qcow", {"formats": {"qcow"}}) == "nixosConfigurations.d.config.formats.qcow"
    assert attrs.image_attr("d", "raw", {"system.build.images": {"raw"}}).endswith("images.raw")
    assert len(attrs.image_attr_candidates("d", "iso")) == 3
    with pytest.raises(ValueError, match="unknown image format"):
        attrs.image_attr("d", "vhd")
    with pytest.raises(ValueError, match="no iso image"):
        attrs.image_attr("d", "iso", {"system.build": {"toplevel"}})
    assert attrs.installable("path:/x", "a.b") == "path:/x#a.b"


@pytest.mark.parametrize("version", ["nix-2.8", "nix-2.26"])
def test_out_paths_from_samples(version: str) -> None:
    stdout = (SAMPLES / version / "build-ok.internal-json.stdout").read_bytes()
    assert out_paths(stdout) == ["/nix/store/9v6ai4fa92b1gm6rp6162qx9a71swsz7-nixos-system-dev1-1"]
    (r,) = parse_build_json(stdout)
    assert r.drv_path and r.drv_path.endswith("nixos-system-dev1-1.drv")


def test_bad_build_json() -> None:
    for bad in (b"", b"not json", b"{}", b"[1]"):
        with pytest.raises(NixOutputError):
            parse_build_json(bad)
    assert parse_json(b'{"a": 1}') == {"a": 1}


def _lock(rev: str, lm: int, extra: dict[str, object] | None = None) -> str:
    import json

    nodes: dict[str, object] = {
        "root": {"inputs": {"fakepkgs": "fakepkgs", **({"extra": "extra"} if extra else {})}},
        "fakepkgs": {"locked": {"type": "git", "url": "file:///srv/fakepkgs", "rev": rev, "lastModified": lm,
                                "narHash": "sha256-" + rev}, "original": {}},
    }
    if extra:
        nodes["extra"] = extra
    return json.dumps({"nodes": nodes, "root": "root", "version": 7})


def test_lockdiff() -> None:
    old = _lock("a01e7f8758a5", 1795305448)
    new = _lock("2220e3546353", 1795391848, {"locked": {"type": "path", "path": "/srv/extras", "lastModified": 1,
                                                        "narHash": "sha256-x"}})
    changes = {c.name: c for c in diff_locks(old, new)}
    up = changes["fakepkgs"]
    assert up.change == "updated" and up.old and up.new
    assert (up.old.rev, up.new.rev, up.old.date, up.new.date) == ("a01e7f8758a5", "2220e3546353", "2026-11-21", "2026-11-22")
    assert "\u2192" in up.describe()
    assert changes["extra"].change == "added"
    assert diff_locks(old, old) == []
    assert [c.change for c in diff_locks(None, old)] == ["added"]
    with pytest.raises(NixOutputError):
        diff_locks("{", old)


def test_store_path_mapping(tmp_path: Path) -> None:
    (tmp_path / "flake.nix").write_text("{}")
    src = "/nix/store/" + "a" * 32 + "-source"
    other = "/nix/store/" + "b" * 32 + "-source"
    m = StorePathMapper(tmp_path, src)
    assert m.map_path(src + "/flake.nix") == str(tmp_path / "flake.nix")
    assert m.map_path(other + "/flake.nix") == other + "/flake.nix"
    assert m.map_text(f"at {src}/flake.nix:3:4:") == f"at {tmp_path}/flake.nix:3:4:"
    guess = StorePathMapper(tmp_path)
    assert guess.map_path(other + "/flake.nix") == str(tmp_path / "flake.nix")
    assert guess.map_path(other + "/lib.nix") == other + "/lib.nix"


def test_missing_attribute_with_requested_path() -> None:
    m = missing_attribute("error: attribute 'sdImage' missing", attrs.image_attr("dev2", "sd-card"))
    assert m is not None and m.device == "dev2" and m.attribute == "config.system.build.images.sd-card"
    assert "device 'dev2'" in m.describe()
    assert missing_attribute("error: something else") is None


# ----------------------------------------------------------------- real nix


def _run(cmd: NixCommand, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd.argv, env=cmd.env_for(os.environ), cwd=cmd.cwd or cwd, capture_output=True,
                          timeout=120, check=False)


def _flake(dir: Path, name: str, extra_import: str = "") -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    imp = f"builtins.seq (import ./{extra_import}) " if extra_import else ""
    (dir / "flake.nix").write_text(f"""{{
  outputs = {{ self }}: {{
    nixosConfigurations.d1 = {{
      _type = "configuration";
      config.networking.hostName = "d1";
      config.system.build.toplevel = {imp}builtins.derivation {{
        name = "{name}"; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
        args = [ "-c" "echo hello from {name}; echo second line; mkdir $out" ];
      }};
    }};
  }};
}}
""")
    return dir


@pytest.mark.nix
def test_real_build_eval_and_parse(tmp_path: Path) -> None:
    _, version = detect_nix()
    name = f"nixdeck-cmdtest-{uuid.uuid4().hex[:8]}"
    flake = _flake(tmp_path / "fleet", name)
    nc = NixCommands(version, settings=BuildSettings(builders="", builders_use_substitutes=True, max_jobs=1))
    ref = f"path:{flake}"
    res = _run(nc.build([attrs.installable(ref, attrs.toplevel_attr("d1"))]))
    p = NixLogParser()
    p.feed(res.stderr)
    p.close()
    assert res.returncode == 0, LogSummary.from_parser(p).render_text()
    (out,) = out_paths(res.stdout)
    assert out.endswith(name) and os.path.isdir(out)
    (drv,) = p.derivations.values()
    assert drv.state == "done" and drv.host is None
    assert drv.last_lines() == [f"hello from {name}", "second line"]
    assert p.progress_snapshot().builds.done == 1
    ev = _run(nc.eval_json(attrs.installable(ref, attrs.hostname_attr("d1"))))
    assert ev.returncode == 0 and parse_json(ev.stdout) == "d1"
    up = _run(nc.flake_update(str(flake)))
    assert up.returncode == 0, up.stderr
    meta = _run(nc.flake_metadata(ref))
    assert parse_json(meta.stdout)["path"].startswith("/nix/store/")


@pytest.mark.nix
def test_real_missing_attribute(tmp_path: Path) -> None:
    _, version = detect_nix()
    flake = _flake(tmp_path / "fleet", "unused")
    res = _run(NixCommands(version).build([attrs.installable(f"path:{flake}", attrs.toplevel_attr("nosuch"))]))
    assert res.returncode != 0
    p = NixLogParser()
    p.feed(res.stderr)
    p.close()
    s = LogSummary.from_parser(p)
    m = s.missing_attribute
    assert m is not None and (m.device, m.attribute) == ("nosuch", "config.system.build.toplevel")


@pytest.mark.nix
def test_real_untracked_file_in_git_flake(tmp_path: Path) -> None:
    _, version = detect_nix()
    flake = _flake(tmp_path / "fleet", "untracked", extra_import="extra.nix")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(flake)], check=True)
    subprocess.run([*git, "add", "flake.nix"], cwd=flake, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=flake, check=True)
    (flake / "extra.nix").write_text("1\n")
    res = _run(NixCommands(version).build([attrs.installable(f"git+file://{flake}", attrs.toplevel_attr("d1"))]))
    assert res.returncode != 0
    p = NixLogParser()
    p.feed(res.stderr)
    p.close()
    s = LogSummary.from_parser(p, source_root=flake)
    assert s.untracked_files == ["extra.nix"]
    assert untracked_files(list(p.messages["error"]), flake) == ["extra.nix"]
    assert "git add extra.nix" in s.render_text()
