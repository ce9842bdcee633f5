"""Shared pytest fixtures: every test gets its own data dir and Nix caches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["NO_COLOR"] = "1"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Per-test XDG cache (Nix eval/fetch caches) and NixDeck data dir."""
    cache = tmp_path / "xdg-cache"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("NIXDECK_DATA_DIR", str(tmp_path / "nixdeck-data"))
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The NixDeck data dir of this test (the same as NIXDECK_DATA_DIR)."""
    d = tmp_path / "nixdeck-data"
    d.mkdir(exist_ok=True)
    return d
