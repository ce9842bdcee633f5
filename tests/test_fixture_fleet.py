"""The fake NixOS fleet fixture behaves like real NixOS configurations, with real Nix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from fleet_fixtures import ALL_DEVICES, GOOD_DEVICES, attr, copy_fleet, nix

pytestmark = pytest.mark.nix

OUTPUTS = ("toplevel", "vm", "sdImage", "isoImage", "images.qcow2", "images.raw", "images.iso",
           "images.sd-card", "formats.qcow", "formats.raw", "formats.iso", "formats.sd-aarch64")
IMAGE_FILES = {
    "sdImage": "sd-image/nixos-{h}.img",
    "isoImage": "iso/nixos-{h}.iso",
    "images.qcow2": "nixos.qcow2",
    "images.raw": "nixos.img",
    "formats.qcow": "nixos.qcow2",
}


def build(flake: Path, *installables: str) -> list[str]:
    """Build all at once, then return the out paths in the order given (`--json` does not keep it)."""
    res = nix("build", "--no-link", *installables, cwd=flake)
    assert res.returncode == 0, res.stderr
    outs = []
    for installable in installables:
        res = nix("build", "--json", "--no-link", installable, cwd=flake)
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout)[0]["outputs"]["out"])
    return outs


def test_devices_are_listed(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path)
    res = nix("eval", "--json", f"{flake}#nixosConfigurations", "--apply", "builtins.attrNames")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == list(ALL_DEVICES)
    assert {"web1", "web2", "db1", "fail-build", "bad-syntax", "bad-undef", "bad-type", "bad-throw",
            "warn-trace", "big-log", "slow-build", "units-fail"} == set(ALL_DEVICES)


def test_good_devices_build_every_output(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path)
    installables = [attr(flake, d) for d in (*GOOD_DEVICES, "units-fail")]
    installables += [attr(flake, "web2", o) for o in OUTPUTS[1:]]
    outs = dict(zip(installables, build(flake, *installables), strict=True))
    for d in (*GOOD_DEVICES, "units-fail"):
        top = Path(outs[attr(flake, d)])
        stc = top / "bin" / "switch-to-configuration"
        assert stc.is_file() and os.access(stc, os.X_OK)
        host = "web2-prod" if d == "web2" else d
        assert (top / "etc" / "hostname").read_text().strip() == host
        closure = nix("path-info", "--recursive", str(top)).stdout.split()
        assert len(closure) >= 4 and str(top) in closure
        for suffix in (f"-etc-{host}", f"-nixos-system-{host}-sw", "-nixdeck-sim-base-1.0"):
            assert any(p.endswith(suffix) for p in closure), suffix
    vm = Path(outs[attr(flake, "web2", "vm")])
    assert os.access(vm / "bin" / "run-web2-prod-vm", os.X_OK)
    for output, file in IMAGE_FILES.items():
        out = outs[attr(flake, "web2", output)]
        image = Path(out) / file.format(h="web2-prod")
        assert image.is_file() and image.stat().st_size > 64 * 1024
        # An image holds the system: its closure includes the toplevel.
        closure = nix("path-info", "--recursive", out).stdout.split()
        assert outs[attr(flake, "web2")] in closure


def test_switch_to_configuration(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False)
    web1, units_fail = map(Path, build(flake, attr(flake, "web1"), attr(flake, "units-fail")))
    root = tmp_path / "device-root"
    env = {**os.environ, "NIXDECK_SIM_ROOT": str(root)}

    def switch(top: Path, action: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(top / "bin" / "switch-to-configuration"), action], env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    state = root / "var" / "lib" / "nixdeck-sim"
    assert switch(web1, "dry-activate").returncode == 0
    assert not (root / "run" / "current-system").exists()
    assert switch(web1, "boot").returncode == 0
    assert (state / "boot-system").resolve() == web1 and not (root / "run" / "current-system").exists()
    res = switch(web1, "switch")
    assert res.returncode == 0, res.stderr
    assert "activating the configuration" in res.stdout
    assert (root / "run" / "current-system").resolve() == web1
    assert (state / "last-switch").read_text().strip() == str(web1)
    assert (state / "activations").read_text().splitlines() == [f"dry-activate {web1}", f"boot {web1}", f"switch {web1}"]

    res = switch(web1, "test", NIXDECK_SIM_FAIL_UNITS="foo.service bar.service")
    assert res.returncode == 4
    assert "the following units failed: foo.service, bar.service" in res.stderr

    res = switch(units_fail, "switch")
    assert res.returncode == 4
    assert "nginx.service, sensor-reader.service" in res.stderr
    assert (root / "run" / "current-system").resolve() == units_fail

    res = switch(web1, "reboot")
    assert res.returncode == 1 and "Usage:" in res.stderr


def test_vm_runs_until_sigterm_and_leaves_nothing(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False)
    (vm,) = build(flake, attr(flake, "db1", "vm"))
    script = Path(vm) / "bin" / "run-db1-vm"
    proc = subprocess.Popen([str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(5)]
    assert lines[0].startswith("Booting db1") and "db1: uptime 2s" in lines[4]
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    assert "powering off" in rest
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the whole process group is gone (no sleep left behind)

    res = subprocess.run([str(script)], env={**os.environ, "NIXDECK_SIM_VM_SECONDS": "1"},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "powered off" in res.stdout


@pytest.mark.parametrize(
    ("device", "expected", "show_trace"),
    [
        # Nix 2.29+ words it "Cannot build '…drv'. Reason: 1 dependency failed" (NixDeck normalises it)
        ("fail-build", ["failed with exit code 1", "simulated compiler error",
                        "1 dependencies of derivation|1 dependency failed"], False),
        ("bad-syntax", ["syntax error, unexpected", "devices/bad-syntax.nix:5:"], False),
        ("bad-undef", ["undefined variable 'hostNmae'", "devices/bad-undef.nix:5:"], False),
        ("bad-type", ["cannot coerce an integer to a string", "devices/bad-type.nix:6:", "while evaluating",
                      "lib.nix"], True),
        ("bad-throw", ["bad-throw: simulated evaluation failure"], False),
    ],
)
def test_failing_devices_fail_the_expected_way(tmp_path: Path, device: str, expected: list[str],
                                               show_trace: bool) -> None:
    flake = copy_fleet(tmp_path, git=device == "bad-syntax")
    args = ["build", "--no-link", attr(flake, device)] + (["--show-trace"] if show_trace else [])
    res = nix(*args, cwd=flake)
    assert res.returncode == 1
    assert "error:" in res.stderr
    for text in expected:
        assert any(alt in res.stderr for alt in text.split("|")), text


def test_warn_trace_builds_with_a_trace_warning(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path)
    res = nix("build", "--no-link", "--no-eval-cache", attr(flake, "warn-trace"), cwd=flake)
    assert res.returncode == 0, res.stderr
    assert "trace: warning: the option 'services.legacy.enable' is deprecated" in res.stderr


def test_big_log_and_slow_build_evaluate(tmp_path: Path) -> None:
    flake = copy_fleet(tmp_path, git=False)
    for device in ("big-log", "slow-build"):
        res = nix("eval", "--raw", attr(flake, device) + ".drvPath")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("/nix/store/") and res.stdout.endswith(f"nixos-system-{device}-25.05.20250101.nixdeck.drv")
        sw = nix("show-derivation", "-r", res.stdout).stdout
        assert ("seq 1 200000" if device == "big-log" else "sleep 1") in sw


def test_salt_makes_fresh_store_paths(tmp_path: Path) -> None:
    def drv(flake: Path) -> str:
        return nix("eval", "--raw", attr(flake, "web1") + ".drvPath").stdout

    a = copy_fleet(tmp_path, git=False, name="a", salt="one")
    b = copy_fleet(tmp_path, git=False, name="b", salt="two")
    c = copy_fleet(tmp_path, git=False, name="c", salt="one")
    assert drv(a) != drv(b)
    assert drv(a) == drv(c)
