"""Pytest fixtures for the SSH layer: simulated devices on loopback and NixDeck's known_hosts.

Import the fixtures into a test module:
``from ssh_fixtures import fixture_known_hosts, fixture_sim_fleet  # noqa: F401``
(they register as ``known_hosts`` and ``sim_fleet``).
Tests take octets 100-199 of 127.0.0.0/24 (the demo uses 11-14); every address is claimed
with a lock file, so test processes running at the same time never share a device.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from nixdeck.core.ssh.knownhosts import KnownHosts
from nixdeck.core.ssh.simdevice import AddressBusy, SimFleet

FIRST_OCTET = 100
LAST_OCTET = 199

StartFleet = Callable[..., SimFleet]


def start_fleet(base_dir: Path, devices: int | Sequence[str], *, isolated: bool | None = None) -> SimFleet:
    """Start a fleet on the first free run of octets in the test range."""
    count = devices if isinstance(devices, int) else len(devices)
    span = LAST_OCTET - FIRST_OCTET + 2 - count
    offset = os.getpid() % span  # spread parallel test processes over the range
    for i in range(span):
        first = FIRST_OCTET + (offset + i) % span
        fleet = SimFleet(base_dir, devices, first_octet=first, isolated=isolated)
        try:
            fleet.start()
        except AddressBusy:
            continue
        return fleet
    raise RuntimeError(f"no {count} free loopback addresses in 127.0.0.{FIRST_OCTET}-{LAST_OCTET}")


@pytest.fixture(name="sim_fleet")
def fixture_sim_fleet(tmp_path: Path) -> Iterator[StartFleet]:
    """Factory: ``sim_fleet(2)`` or ``sim_fleet(["web", "db"])`` starts devices; all stop at teardown
    (and teardown fails if anything the devices ran survived)."""
    fleets: list[SimFleet] = []

    def start(devices: int | Sequence[str] = 1, *, isolated: bool | None = None) -> SimFleet:
        fleet = start_fleet(tmp_path / f"fleet{len(fleets)}", devices, isolated=isolated)
        fleets.append(fleet)
        return fleet

    yield start
    for fleet in fleets:
        fleet.stop()


@pytest.fixture(name="known_hosts")
def fixture_known_hosts(data_dir: Path) -> KnownHosts:
    """NixDeck's (empty) known_hosts in this test's data dir."""
    hosts = KnownHosts.in_data_dir(data_dir)
    hosts.ensure_exists()
    return hosts
