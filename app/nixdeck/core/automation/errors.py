"""Errors of automations: each names the automation (or group), the step and the key."""

from __future__ import annotations

from nixdeck.core.errors import NixDeckError


class AutomationError(NixDeckError):
    """A definition, a parameter value or a run request that cannot be used, said so a person can fix it."""

    def __init__(self, message: str, *, automation: str | None = None, step: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.automation = automation
        self.step = step
        self.key = key


def where(automation: str | None, step: str | None = None, key: str | None = None, *, kind: str = "automation") -> str:
    """``automation check: step build (#2): with.devices`` — the prefix of every message."""
    parts = [f"{kind} {automation}"] if automation else []
    if step:
        parts.append(f"step {step}")
    if key:
        parts.append(key)
    return ": ".join(parts)


def located(message: str, automation: str | None, step: str | None = None, key: str | None = None,
            *, kind: str = "automation") -> AutomationError:
    prefix = where(automation, step, key, kind=kind)
    return AutomationError(f"{prefix}: {message}" if prefix else message, automation=automation, step=step, key=key)
