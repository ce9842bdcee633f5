"""Turning one raw definition into a model, with errors that name the automation, step and key.

``validate_automation`` checks what one definition says on its own and against the names it may
use (its params, its earlier steps, the automations and groups of the file); ``catalog`` adds the
checks across definitions (groups, dependency cycles, recursion).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from . import expr, refs
from .errors import AutomationError, located
from .model import OPS, PARAM_TYPES, Automation, Step
from .params import check_value

MAX_DEPTH = 16  # tables and lists inside a definition


def _step_label(raw: Mapping[str, Any], loc: tuple[Any, ...]) -> tuple[str | None, tuple[Any, ...]]:
    """The step a pydantic location points into (``steps.1`` / ``hooks.before.0``), and the rest."""
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = raw.get("steps")
        step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        return _label(step, loc[1]), loc[2:]
    if len(loc) >= 3 and loc[0] == "hooks" and isinstance(loc[2], int):
        return f"{loc[1]} hook #{loc[2] + 1}", loc[3:]
    return None, loc


def _label(step: Any, index: int) -> str:
    if isinstance(step, dict) and isinstance(step.get("name"), str):
        return f"{step['name']} (#{index + 1})"
    if isinstance(step, dict) and isinstance(step.get("op"), str):
        return f"#{index + 1} ({step['op']})"
    return f"#{index + 1}"


def _is_branch(part: Any) -> bool:
    """Pydantic adds union branch names to error locations: not keys of the user's data."""
    return isinstance(part, str) and (part[:1].isupper() or part.startswith(("literal[", "function-")))


_ON_FAILURE = 'is "abort", "continue", { retry = N, delay = "30s" } or { run = "AUTOMATION" }'


def describe(exc: ValidationError, raw: Mapping[str, Any], name: str, *, kind: str = "automation") -> AutomationError:
    """The first problem of a pydantic error, located and said plainly."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(err["loc"])
    step, rest = _step_label(raw, loc)
    keys = [str(p) for p in rest if not _is_branch(p)]
    key = ".".join(keys).replace("with_", "with") or None
    t, value = err["type"], err.get("input")
    if "on_failure" in keys:
        branch = [e for e in errors if any(p in ("RetryOnFailure", "RunOnFailure") for p in e["loc"])]
        wanted = "RetryOnFailure" if isinstance(value, dict) and "retry" in value else "RunOnFailure"
        mine = [e for e in branch if wanted in e["loc"]] if isinstance(value, dict) else []
        if isinstance(value, dict) and mine and ("retry" in value or "run" in value):
            e = mine[0]
            inner = [str(p) for p in e["loc"][e["loc"].index(wanted) + 1:]]
            return located(_message(e), name, step, ".".join(["on_failure", *inner]), kind=kind)
        return located(f"{value!r} {_ON_FAILURE}" if not isinstance(value, dict) else _ON_FAILURE,
                       name, step, "on_failure", kind=kind)
    if t == "literal_error" and keys and keys[-1] == "op":
        return located(f"unknown op {value!r} (known: {', '.join(OPS)})", name, step, key, kind=kind)
    if t == "literal_error" and keys and keys[-1] == "type" and "params" in keys:
        return located(f"unknown param type {value!r} (known: {', '.join(PARAM_TYPES)})", name, step, key, kind=kind)
    return located(_message(err), name, step, key, kind=kind)


def _message(err: Any) -> str:
    t, value = err["type"], err.get("input")
    if t == "extra_forbidden":
        return "unknown key"
    if t == "missing":
        return "missing"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    return f"{msg[:1].lower()}{msg[1:]} (got {value!r})"


def _shape(value: Any, name: str, *, kind: str) -> None:
    """Only data TOML and JSON both hold (no null, no dates), nested at most MAX_DEPTH deep."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        v, depth, at = stack.pop()
        if depth > MAX_DEPTH:
            raise located(f"nested more than {MAX_DEPTH} levels deep", name, key=at or None, kind=kind)
        if v is None:
            raise located("null is not a value here: leave the key out", name, key=at or None, kind=kind)
        if isinstance(v, dict):
            stack.extend((x, depth + 1, f"{at}.{k}" if at else str(k)) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, depth + 1, at) for x in v)
        elif isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63:
            raise located(f"{v} is outside TOML's 64-bit integers", name, key=at or None, kind=kind)
        elif isinstance(v, float) and not math.isfinite(v):
            raise located(f"{v} is not a finite number", name, key=at or None, kind=kind)
        elif not isinstance(v, str | int | float | bool):
            raise located(f"{type(v).__name__} values are not supported here: use a string", name,
                          key=at or None, kind=kind)


def model(cls: type[BaseModel], raw: Any, name: str, *, kind: str) -> Any:
    if not isinstance(raw, dict):
        raise located(f"is a table, not {type(raw).__name__}", name, kind=kind)
    _shape(raw, name, kind=kind)
    try:
        return cls.model_validate(raw, strict=True)
    except ValidationError as e:
        raise describe(e, raw, name, kind=kind) from None


def _check_step(a: Automation, name: str, step: Step, label: str, earlier: Collection[str],
                automations: Collection[str]) -> None:
    for ref in _refs(step.with_, name, label, "with"):
        _check_ref(ref, a, name, label, "with", earlier)
    if step.when is not None:
        try:
            expr.compile_when(step.when)
        except ValueError as e:
            raise located(str(e), name, label, "when") from None
        for s in sorted(expr.step_names(step.when) - set(earlier)):
            raise located(f"refers to step {s!r}, which is not an earlier step", name, label, "when")
        for p in sorted(expr.param_names(step.when) - set(a.params)):
            raise located(f"refers to parameter {p!r}, which is not declared", name, label, "when")
    if step.op != "automation" and not refs.refs_in(step.with_):
        _check_literal_args(step, name, label)
    targets = []
    if step.op == "automation" and isinstance(step.with_.get("name"), str) and "${" not in step.with_["name"]:
        targets.append(("with.name", step.with_["name"]))
    if not isinstance(step.on_failure, str) and hasattr(step.on_failure, "run"):
        targets.append(("on_failure.run", step.on_failure.run))
    for key, target in targets:
        if target not in automations:
            raise located(f"there is no automation {target!r}", name, label, key)


def _check_literal_args(step: Step, name: str, label: str) -> None:
    """Arguments without references are checked now, as the operation would check them (against
    any devices: which exist is known only when it runs)."""
    from nixdeck.core.tasks.errors import UserError

    from .stepops import child_for

    devices: dict[str, list[str]] = {"any-device": []}
    for key in ("devices", "device"):
        value = step.with_.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("@") and item != "@all":
                devices[f"tagged-{len(devices)}"] = [item[1:]]
            elif isinstance(item, str) and item and item != "@all":
                devices[item] = []
    try:
        child_for(step.op, step.with_, "/", devices)
    except UserError as e:
        raise located(str(e), name, label) from None


def _refs(value: Any, name: str, label: str | None, key: str) -> list[refs.Ref]:
    try:
        return refs.refs_in(value)
    except ValueError as e:
        raise located(str(e), name, label, key) from None


def _check_ref(ref: refs.Ref, a: Automation, name: str, label: str | None, key: str, earlier: Collection[str]) -> None:
    if ref[0] == "params" and ref[1] not in a.params:
        raise located(f"${{{'.'.join(ref)}}} refers to nothing: no parameter {ref[1]!r}", name, label, key)
    if ref[0] == "steps" and ref[1] not in earlier:
        raise located(f"${{{'.'.join(ref)}}} refers to nothing: no earlier step {ref[1]!r}", name, label, key)


def validate_automation(name: str, raw: Any, automations: Collection[str]) -> Automation:
    """The model of one (already merged) definition; AutomationError naming what is wrong."""
    a: Automation = model(Automation, raw, name, kind="automation")
    for pname, spec in a.params.items():
        if spec.default is not None:
            check_value(name, pname, spec, spec.default)
    names = [s.name for s in a.steps if s.name]
    for i, step in enumerate(a.steps):
        _check_step(a, name, step, step.label(i), [s.name for s in a.steps[:i] if s.name], automations)
    for hook in ("before", "after", "on_error"):
        earlier = [] if hook == "before" else names
        for i, step in enumerate(getattr(a.hooks, hook)):
            _check_step(a, name, step, f"{hook} hook #{i + 1}", earlier, automations)
    if a.cache is not None:
        for ref in _refs(a.cache.key, name, None, "cache.key"):
            if ref[0] == "steps":
                raise located("${steps…} cannot be a cache key: it is known only after the run", name, key="cache.key")
            _check_ref(ref, a, name, None, "cache.key", [])
    return a


def merged(name: str, raw: dict[str, Any], raws: Mapping[str, Any]) -> dict[str, Any]:
    """A definition with its ``extends`` chain applied (the template's keys, then its own; params
    are merged per parameter, so an extension can change only a default)."""
    chain = [name]
    data = dict(raw)
    while isinstance(data.get("extends"), str):
        base_name = data["extends"]
        base = raws.get(base_name)
        if base_name in chain:
            raise located(f"extends itself: {' → '.join([*chain, base_name])}", name, key="extends")
        if not isinstance(base, dict):
            raise located(f"there is no template {base_name!r}", name, key="extends")
        if base.get("template") is not True:
            raise located(f"{base_name!r} is not a template (template = true)", name, key="extends")
        chain.append(base_name)
        params = dict(base.get("params") or {}) if isinstance(base.get("params"), dict) else {}
        own = data.get("params")
        if isinstance(own, dict):
            for k, v in own.items():
                params[k] = {**params[k], **v} if isinstance(params.get(k), dict) and isinstance(v, dict) else v
        data = {**{k: v for k, v in base.items() if k != "template"}, **{k: v for k, v in data.items() if k != "extends"}}
        if params:
            data["params"] = params
        if "extends" in base:
            data["extends"] = base["extends"]
        else:
            data.pop("extends", None)
    return data
