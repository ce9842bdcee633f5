"""Atomic writes with a backup of the previous version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nixdeck.core.project.files import atomic_write, backup_path


def test_atomic_write_keeps_a_backup_and_the_mode(tmp_path: Path) -> None:
    tmp_path = tmp_path / "project"
    tmp_path.mkdir()
    f = tmp_path / "nixdeck.toml"
    atomic_write(f, b"one\n")
    assert f.read_bytes() == b"one\n" and not backup_path(f).exists()
    os.chmod(f, 0o600)
    atomic_write(f, b"two\n")
    assert f.read_bytes() == b"two\n"
    assert backup_path(f).read_bytes() == b"one\n"
    assert f.stat().st_mode & 0o777 == 0o600
    atomic_write(f, b"two\n")  # same content: the backup still holds the previous version
    assert backup_path(f).read_bytes() == b"one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nixdeck.toml", "nixdeck.toml.bak"]


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    tmp_path = tmp_path / "project"
    tmp_path.mkdir()
    f = tmp_path / "nixdeck.toml"
    f.write_bytes(b"old\n")
    with pytest.raises(TypeError):
        atomic_write(f, "not bytes")  # type: ignore[arg-type]
    assert f.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".bak")) == ["nixdeck.toml"]
