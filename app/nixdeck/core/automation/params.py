"""Parameter values: checked against their declared type before anything runs.

Values come from the file (defaults, ``with.params`` of a composed run) or from the command line
(``--param inputs=nixpkgs,home-manager``, ``--param commit=false``), where they are text and are
converted by type first. A bad value is refused naming the parameter and what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from .errors import AutomationError, located
from .model import ParamSpec

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def accepts(spec: ParamSpec) -> str:
    """What a parameter accepts, in words."""
    if spec.type == "number":
        if spec.min is not None and spec.max is not None:
            return f"a number from {spec.min:g} to {spec.max:g}"
        if spec.min is not None:
            return f"a number of at least {spec.min:g}"
        if spec.max is not None:
            return f"a number of at most {spec.max:g}"
        return "a number"
    return {
        "string": "text",
        "bool": "true or false",
        "enum": "one of " + ", ".join(str(v) for v in spec.values or []),
        "list": "a list of names (on the command line: a,b,c)",
        "device": "the name of a device of the project",
        "tag": "a tag of the project's devices",
    }[spec.type]


def _from_text(spec: ParamSpec, text: str) -> Any:
    t = text.strip()
    if spec.type == "number":
        try:
            return int(t)
        except ValueError:
            return float(t)  # ValueError: refused below
    if spec.type == "bool":
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ValueError(t)
    if spec.type == "list":
        return [x.strip() for x in t.split(",") if x.strip()]
    if spec.type == "enum":
        for v in spec.values or []:
            if str(v).lower() == t.lower() or (isinstance(v, bool) and t.lower() in (_TRUE if v else _FALSE)):
                return v
        raise ValueError(t)
    return text


def _valid(spec: ParamSpec, value: Any, devices: Collection[str] | None, tags: Collection[str] | None) -> bool:
    if spec.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        return (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)
    if spec.type == "bool":
        return isinstance(value, bool)
    if spec.type == "enum":
        return any(type(v) is type(value) and v == value for v in spec.values or [])
    if spec.type == "list":
        return isinstance(value, list) and all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in value)
    if not isinstance(value, str):
        return False
    if spec.type == "device":
        return bool(value) and (devices is None or value in devices)
    if spec.type == "tag":
        return bool(value) and (tags is None or value in tags)
    return True


def check_value(automation: str, name: str, spec: ParamSpec, value: Any, *, text: bool = False,
                devices: Collection[str] | None = None, tags: Collection[str] | None = None) -> Any:
    """The value, converted (from text when ``text``) and checked; AutomationError otherwise."""
    shown = value
    if text and isinstance(value, str):
        try:
            value = _from_text(spec, value)
        except ValueError:
            raise located(f"{shown!r} is not {accepts(spec)}", automation, key=f"param {name}") from None
    if not _valid(spec, value, devices, tags):
        known = devices if spec.type == "device" else tags if spec.type == "tag" else None
        extra = f" (known: {', '.join(sorted(known)[:10])})" if known else ""
        raise located(f"{shown!r} is not {accepts(spec)}{extra}", automation, key=f"param {name}")
    return value


def resolve(automation: str, specs: Mapping[str, ParamSpec], given: Mapping[str, Any], *, text: bool = False,
            devices: Collection[str] | None = None, tags: Collection[str] | None = None) -> dict[str, Any]:
    """Every parameter's value for a run: given ones checked, the others their default."""
    for name in given:
        if name not in specs:
            have = ", ".join(specs) or "none"
            raise AutomationError(f"automation {automation}: no parameter {name!r} (its parameters: {have})",
                                  automation=automation, key=f"param {name}")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            out[name] = check_value(automation, name, spec, given[name], text=text, devices=devices, tags=tags)
        elif spec.required:
            raise located(f"missing: give --param {name}=VALUE ({accepts(spec)})", automation, key=f"param {name}")
        elif spec.default is not None:
            out[name] = check_value(automation, name, spec, spec.default, devices=devices, tags=tags)
        else:
            out[name] = [] if spec.type == "list" else None
    return out


def parse_cli(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x,y"]`` → ``{"a": "1", "b": "x,y"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AutomationError(f"--param takes KEY=VALUE, not {item!r}")
        out[key.strip()] = value
    return out
