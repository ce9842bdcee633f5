"""Reading what Nix prints on stdout: `nix build --json` results, `nix eval --json` values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from nixdeck.core.nix.errors import NixError


class NixOutputError(NixError):
    """Nix's stdout was not what the command promises."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    """One entry of `nix build --json`: the derivation and its outputs (name -> store path)."""

    drv_path: str | None
    outputs: dict[str, str]

    @property
    def out_path(self) -> str | None:
        """The `out` output, else the first one."""
        if "out" in self.outputs:
            return self.outputs["out"]
        return next(iter(self.outputs.values()), None)


def parse_json(stdout: bytes | str, what: str = "nix") -> Any:
    try:
        return orjson.loads(stdout)
    except orjson.JSONDecodeError as e:
        text = stdout if isinstance(stdout, str) else stdout.decode("utf-8", "replace")
        raise NixOutputError(f"{what} printed no valid JSON ({e}): {text[:200]!r}") from None


def parse_build_json(stdout: bytes | str) -> list[BuildResult]:
    """Parse `nix build --json` stdout (2.8 and 2.26; 2.26 adds start/stop times)."""
    data = parse_json(stdout, "nix build --json")
    if not isinstance(data, list):
        raise NixOutputError("nix build --json did not print a list")
    out: list[BuildResult] = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("outputs"), dict):
            raise NixOutputError(f"unexpected entry in nix build --json output: {item!r:.200}")
        outputs = {str(k): v for k, v in item["outputs"].items() if isinstance(v, str)}
        drv = item.get("drvPath")
        out.append(BuildResult(drv if isinstance(drv, str) else None, outputs))
    return out


def out_paths(stdout: bytes | str) -> list[str]:
    """The main out path of each built installable, in order."""
    paths = [r.out_path for r in parse_build_json(stdout)]
    return [p for p in paths if p]
