"""Helpers for the Nix parser tests: reading the saved samples in tests/data/nixlogs."""

from __future__ import annotations

from pathlib import Path

from nixdeck.core.nix.parselog import LogSummary, summarize
from nixdeck.core.nix.parser import NixLogParser

SAMPLES = Path(__file__).parent / "data" / "nixlogs"


def sample(name: str) -> bytes:
    """`nix-2.8/build-ok.internal-json` -> its stderr bytes."""
    return (SAMPLES / f"{name}.stderr").read_bytes()


def all_samples() -> list[str]:
    return sorted(str(p.relative_to(SAMPLES))[: -len(".stderr")] for p in SAMPLES.glob("*/*.stderr"))


def parse(data: bytes, chunk: int | None = None, **kw: object) -> NixLogParser:
    p = NixLogParser(**kw)  # type: ignore[arg-type]
    if chunk is None:
        p.feed(data)
    else:
        for i in range(0, len(data), chunk):
            p.feed(data[i : i + chunk])
    p.close()
    return p


def summary(name: str, **kw: object) -> LogSummary:
    return summarize([sample(name)], **kw)  # type: ignore[arg-type]
