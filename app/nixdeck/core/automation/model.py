"""The shape of groups and automations in ``nixdeck.toml`` (DESIGN §7 is the contract for key names).

The models check shapes and values that need no context (types, durations, op names, the keys of
each op's ``with``); ``catalog`` checks what needs the whole file (references, groups, cycles,
templates). ``schedule`` and ``alerts`` are kept as they are for the scheduler and alerts: only
their shape (a table, a list of tables) is checked here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import parse_duration
from .refs import REF

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
ParamType = Literal["string", "number", "bool", "enum", "list", "device", "tag"]
PARAM_TYPES = ("string", "number", "bool", "enum", "list", "device", "tag")

#: Each op's ``with`` keys (True: required). The names are the operations' CLI option names.
OP_ARGS: dict[str, dict[str, bool]] = {
    "build": {"devices": True, "timeout": False},
    "build_project": {"timeout": False},
    "deploy": {"devices": True, "action": False, "waves": False, "limit": False, "max_failures": False,
               "force": False, "timeout": False},
    "flake_update": {"inputs": False, "commit": False, "timeout": False},
    "image": {"devices": True, "format": True, "timeout": False},
    "ssh_command": {"devices": True, "argv": False, "command": False, "limit": False, "timeout": False},
    "run_command": {"argv": True, "cwd": False, "env": False, "device": False, "timeout": False},
    "automation": {"name": True, "params": False},
}
OPS = tuple(OP_ARGS)
Op = Literal["build", "build_project", "deploy", "flake_update", "image", "ssh_command", "run_command", "automation"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _name(v: str, what: str) -> str:
    if not NAME_RE.fullmatch(v):
        raise ValueError(f"{v!r} is not a {what} name (a letter, then letters, digits, - or _)")
    return v


def _duration(v: object) -> object:
    parse_duration(v)
    return v


Scalar = str | int | float | bool


class ParamSpec(_Model):
    """A typed parameter: ``{ type = "number", min = 1, max = 10, default = 3 }``."""

    type: ParamType
    default: Any = None
    required: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: list[Scalar] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if (self.min is not None or self.max is not None) and self.type != "number":
            raise ValueError(f"min and max are for number parameters, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}")
        if self.type == "enum" and not self.values:
            raise ValueError("an enum parameter needs values = [...]")
        if self.values is not None and self.type != "enum":
            raise ValueError(f"values are for enum parameters, not {self.type}")
        return self


class RetryOnFailure(_Model):
    """``on_failure = { retry = 2, delay = "30s" }``: run the step again, up to N more times."""

    retry: int = Field(ge=1, le=100)
    delay: str | int | float = 0

    @field_validator("delay")
    @classmethod
    def _delay(cls, v: str | int | float) -> str | int | float:
        return v if v == 0 else _duration(v)  # type: ignore[return-value]


class RunOnFailure(_Model):
    """``on_failure = { run = "other" }``: run another automation, then stop."""

    run: str

    @field_validator("run")
    @classmethod
    def _run(cls, v: str) -> str:
        return _name(v, "automation")


OnFailure = Literal["abort", "continue"] | RetryOnFailure | RunOnFailure


class Step(_Model):
    """One step: an operation with its arguments, an optional condition and a failure policy."""

    name: str | None = None
    op: Op
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    when: str | None = None
    on_failure: OnFailure = "abort"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else _name(v, "step")

    @field_validator("when")
    @classmethod
    def _when(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("when is empty")
        if v is not None and len(v) > 2000:
            raise ValueError("when is longer than 2000 characters")
        return v

    @model_validator(mode="after")
    def _args(self) -> Step:
        known = OP_ARGS[self.op]
        for key in self.with_:
            if key not in known:
                raise ValueError(f"with.{key}: unknown key for op {self.op} (known: {', '.join(known) or 'none'})")
        for key, required in known.items():
            if required and key not in self.with_:
                raise ValueError(f"with.{key}: missing (op {self.op} needs it)")
        if self.op == "ssh_command" and ("argv" in self.with_) == ("command" in self.with_):
            raise ValueError("with: ssh_command takes argv or command (one of them)")
        command = self.with_.get("command")
        if isinstance(command, str) and REF.search(command):
            raise ValueError("with.command: values are never put into a shell string; pass them in argv")
        if "timeout" in self.with_ and not (isinstance(self.with_["timeout"], str) and "${" in self.with_["timeout"]):
            try:
                parse_duration(self.with_["timeout"])
            except ValueError as e:
                raise ValueError(f"with.timeout: {e}") from None
        return self

    def label(self, index: int) -> str:
        """How messages name the step: its name, else ``#N (op)``."""
        return f"{self.name} (#{index + 1})" if self.name else f"#{index + 1} ({self.op})"


class Hooks(_Model):
    """Steps around the run: ``before`` it, ``after`` a success, ``on_error`` once after a failure."""

    before: list[Step] = Field(default_factory=list)
    after: list[Step] = Field(default_factory=list)
    on_error: list[Step] = Field(default_factory=list)


class Cache(_Model):
    """``cache = { key = "${flake.rev}", ttl = "12h" }``: skip a run whose key already succeeded."""

    key: str = Field(min_length=1)
    ttl: str | int | float = "24h"

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: str | int | float) -> str | int | float:
        return _duration(v)  # type: ignore[return-value]


def _tables(v: object, what: str) -> object:
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ValueError(f"{what} is a list of tables")
    return v


class Automation(_Model):
    """``[automations.NAME]``."""

    description: str = ""
    group: str | None = None
    enabled: bool = True
    timeout: str | int | float | None = None
    retries: int = Field(default=0, ge=0, le=10)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    hooks: Hooks = Hooks()
    cache: Cache | None = None
    private: bool = False
    template: bool = False
    extends: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    schedule: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: object) -> object:
        return None if v is None else _duration(v)

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in v:
            _name(name, "parameter")
        return v

    @field_validator("depends_on")
    @classmethod
    def _deps(cls, v: list[str]) -> list[str]:
        for name in v:
            _name(name, "automation")
        if len(set(v)) != len(v):
            raise ValueError("a dependency is named twice")
        return v

    @field_validator("alerts", mode="before")
    @classmethod
    def _alerts(cls, v: object) -> object:
        return _tables(v, "alerts")

    @model_validator(mode="after")
    def _steps(self) -> Automation:
        names = [s.name for s in self.steps if s.name]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"steps: the step name {dup[0]} is used twice")
        if not self.steps and not self.template:
            raise ValueError("steps: an automation needs at least one step")
        return self


class Group(_Model):
    """``[groups.NAME]``: members share a lifecycle; ``active = false`` freezes them."""

    description: str = ""
    active: bool = True
    schedule: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("alerts", mode="before")
    @classmethod
    def _alerts(cls, v: object) -> object:
        return _tables(v, "alerts")
