"""Health checks: commands run on the device after activation, before the confirm, that decide
whether the new system stays (DESIGN §8). A failing check rolls the device back when rollback is
on, and the deploy fails with "health check NAME failed: …; rolled back to generation N".

In the inventory, per device, in ``[defaults]`` or per tag (``[tags.<tag>]``)::

    health_checks = [{ name = "web", command = ["curl", "-fsS", "http://127.0.0.1/health"],
                       timeout = "10s", retries = 3, interval = "2s" }]

All that apply run, in that order: defaults, then each of the device's tags, then the device's own
(a later check of the same name replaces an earlier one). ``retries`` are extra attempts after the
first, ``interval`` the pause between them, ``timeout`` the bound of one attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from nixdeck.core.automation.durations import parse_duration


class HealthCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    command: list[str] = Field(min_length=1)
    timeout: str | int | float = "10s"
    retries: int = Field(default=0, ge=0, le=100)
    interval: str | int | float = "2s"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{v!r}: a health check name is letters, digits, '-', '_' and '.'")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        if not v[0] or any("\n" in a or "\0" in a for a in v):
            raise ValueError("the command is an argv list: a non-empty program, no newlines")
        return v

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the keys the user wrote: a rewrite of the file keeps what it said."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in ("name", "command") or k in self.model_fields_set}

    @field_validator("timeout", "interval")
    @classmethod
    def _duration(cls, v: str | float) -> str | float:
        parse_duration(v)  # raises ValueError saying what is accepted
        return v

    @property
    def timeout_s(self) -> float:
        return parse_duration(self.timeout)

    @property
    def interval_s(self) -> float:
        return parse_duration(self.interval)


def merge_checks(*lists: Iterable[HealthCheck] | None) -> tuple[HealthCheck, ...]:
    """The checks that apply, in order; a later check of the same name replaces an earlier one."""
    by_name: dict[str, HealthCheck] = {}
    for checks in lists:
        for check in checks or ():
            by_name.pop(check.name, None)
            by_name[check.name] = check
    return tuple(by_name.values())
