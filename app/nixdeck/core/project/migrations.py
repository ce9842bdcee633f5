"""Migrations of the inventory schema: older files are brought to the current version on load."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import InventoryFileError

SCHEMA_VERSION = 1

_TARGET_RE = re.compile(r"(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]+\]|[^:]+|[^\[\]]+?)(?::(?P<port>\d+))?")


def _split_target(target: str) -> dict[str, Any]:
    """Split a v0 ``user@host:port`` target (IPv6 as ``[addr]:port`` or a bare address)."""
    if target.count(":") > 1 and not target.startswith("[") and "@" not in target:
        return {"host": target}
    m = _TARGET_RE.fullmatch(target)
    if m is None:
        raise InventoryFileError(f"target: {target!r} is not user@host:port", field="target", value=target)
    out: dict[str, Any] = {"host": m["host"].strip("[]")}
    if m["user"]:
        out["user"] = m["user"]
    if m["port"]:
        out["port"] = int(m["port"])
    return out


def _migrate_v0(data: dict[str, Any]) -> dict[str, Any]:
    """v0 (early previews, no ``version`` key): ``target = "user@host:port"`` and a nested
    ``[devices.<name>.deploy]`` table. v1 splits the target and flattens the deploy options."""
    devices: dict[str, Any] = {}
    for name, entry in dict(data.get("devices", {})).items():
        if not isinstance(entry, dict):
            devices[name] = entry
            continue
        new = {k: v for k, v in entry.items() if k not in ("target", "deploy")}
        target = entry.get("target")
        if isinstance(target, str):
            new = {**_split_target(target), **new}
        deploy = entry.get("deploy")
        if isinstance(deploy, dict):
            new.update(deploy)
        devices[name] = new
    return {**data, "version": 1, "devices": devices}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_v0}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring raw data (from TOML or JSON) to the current schema version."""
    version = data.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InventoryFileError(f"version: {version!r} is not a schema version", field="version", value=version)
    if version > SCHEMA_VERSION:
        raise InventoryFileError(
            f"version: {version} is newer than this NixDeck understands ({SCHEMA_VERSION}); upgrade NixDeck",
            field="version",
            value=version,
        )
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["version"]
    return data


