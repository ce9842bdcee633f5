"""Events `NixLogParser.feed` returns, in the order the log produced them."""

from __future__ import annotations

from dataclasses import dataclass

from nixdeck.core.nix.messages import NixMessage
from nixdeck.core.nix.progress import Activity, Derivation


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """Nix printed a message (error, warning, notice, info or debug)."""

    message: NixMessage


@dataclass(frozen=True, slots=True)
class ActivityStarted:
    activity: Activity


@dataclass(frozen=True, slots=True)
class ActivityStopped:
    activity: Activity


@dataclass(frozen=True, slots=True)
class DerivationChanged:
    """A derivation started building or changed state (done, failed, cancelled, ...)."""

    derivation: Derivation
    state: str


@dataclass(frozen=True, slots=True)
class LogLine:
    """One build log line, whole. `drv_path` is None when the line belongs to no known build."""

    drv_path: str | None
    line: str
    post_build: bool = False


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    drv_path: str
    phase: str


@dataclass(frozen=True, slots=True)
class StderrLine:
    """A plain stderr line that is neither JSON nor a recognised Nix message (e.g. ssh errors)."""

    text: str


Event = MessageEvent | ActivityStarted | ActivityStopped | DerivationChanged | LogLine | PhaseChanged | StderrLine
