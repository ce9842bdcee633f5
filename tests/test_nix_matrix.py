"""The Nix matrix itself: each `nix` test really runs its version, roots are made atomically."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nix_matrix import NIXROOT_SH, NixUnderTest
from nixdeck.core.ops.nixrun import find_nix_cached
from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.session import connect
from ssh_fixtures import StartFleet, fixture_known_hosts, fixture_sim_fleet  # noqa: F401  (fixtures)


@pytest.mark.nix
def test_the_nix_under_test_is_the_one_nixdeck_finds(nix_under_test: NixUnderTest | None,
                                                     request: pytest.FixtureRequest) -> None:
    assert nix_under_test is not None
    assert f"[{nix_under_test.label}" in request.node.name  # the id names the version
    _, version = asyncio.run(find_nix_cached())
    assert str(version) == nix_under_test.version.split("pre")[0]
    if nix_under_test.root is not None:
        # the root's store is what this process sees at /nix (NixDeck reads images/VM scripts there)
        assert os.path.samefile("/nix", nix_under_test.root / "nix")
        out = subprocess.run(["nix", "eval", "--raw", "--expr", "builtins.storeDir"], capture_output=True,
                             text=True, check=True)
        assert out.stdout == "/nix/store"


@pytest.mark.nix
@pytest.mark.ssh
def test_devices_keep_the_system_nix_whatever_the_controller_runs(
    nix_under_test: NixUnderTest | None, sim_fleet: StartFleet, known_hosts: KnownHosts
) -> None:
    # the mixed fleet: a 2.34 controller copies to and deploys on devices running the system Nix
    fleet = sim_fleet(1)
    fleet.trust_all(known_hosts)
    system = subprocess.run(["/usr/bin/nix", "--version"], capture_output=True, text=True, check=True).stdout

    async def device_nix() -> str:
        async with await connect(fleet.target(fleet.devices[0]), known_hosts) as session:
            res = await session.run_capture(["nix", "--version"], timeout=60)
            assert res.exit_status == 0
            return "".join(res.stdout)

    assert asyncio.run(device_nix()).strip() == system.strip()


def test_tests_not_marked_nix_keep_the_system_nix() -> None:
    assert "nix-matrix" not in os.environ["PATH"].split(":", 1)[0]
    assert "nix-matrix" not in (shutil.which("nix") or "")


FAKE_DEBOOTSTRAP = """#!{python}
import os, sys
target = sys.argv[-2]
os.makedirs(os.path.join(target, "usr/bin"), exist_ok=True)
if os.environ.get("FAKE_DEBOOTSTRAP_FAIL"):
    sys.exit("E: simulated network failure")
"""


def test_an_interrupted_root_creation_is_redone(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "debootstrap"
    fake.write_text(FAKE_DEBOOTSTRAP.format(python=sys.executable))
    fake.chmod(0o755)
    cache = tmp_path / "roots"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", NIXDECK_NIX_ROOTS=str(cache),
               NIXDECK_DEBIAN_MIRROR="http://127.0.0.1:9/debian", NIXDECK_NIXROOT_CHECK="echo 'nix (Nix) 9.9'")

    def ensure(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(NIXROOT_SH), "ensure", "testsuite"], capture_output=True, text=True,
                              env={**env, **extra}, check=False)

    failed = ensure(FAKE_DEBOOTSTRAP_FAIL="1")
    assert failed.returncode == 1 and "debootstrap testsuite failed" in failed.stderr
    assert not (cache / "testsuite").exists() and not list(cache.glob("testsuite.tmp.*"))
    (cache / "testsuite.tmp.99999").mkdir()  # left by a creation that was killed
    made = ensure()
    assert made.returncode == 0, made.stderr
    root = Path(made.stdout.strip())
    assert root == cache / "testsuite" and (root / ".complete").is_file()
    assert (root / ".nix-version").read_text().strip() == "nix (Nix) 9.9"
    assert (root / "etc/nix/nix.conf").read_text().startswith("experimental-features = nix-command flakes")
    assert not list(cache.glob("testsuite.tmp.*"))
    stamp = (root / ".complete").stat().st_mtime_ns
    assert ensure(FAKE_DEBOOTSTRAP_FAIL="1").returncode == 0  # reused: debootstrap not run again
    assert (root / ".complete").stat().st_mtime_ns == stamp
