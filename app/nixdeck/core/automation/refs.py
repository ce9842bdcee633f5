"""``${…}`` references in step arguments, substituted as typed values (never into a shell string).

``"${params.inputs}"`` alone is replaced by the value itself (a list stays a list, a bool a bool);
inside a longer string (``"build-${params.name}"``) the value is formatted as text. ``$${`` is a
literal ``${``. References: ``params.NAME``, ``steps.NAME.state`` / ``.changed`` / ``.result.KEY…``,
``flake.rev``, ``flake.lock_hash``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

REF = re.compile(r"(?<!\$)\$\{([^{}]*)\}")
_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
STEP_FIELDS = ("state", "changed", "result")
FLAKE_FIELDS = ("rev", "lock_hash")

Ref = tuple[str, ...]


def parse_ref(text: str) -> Ref:
    """``steps.build.result.devices`` → ``("steps", "build", "result", "devices")``; ValueError when
    the reference has no meaning."""
    parts = tuple(p.strip() for p in text.split("."))
    if not all(_PART.fullmatch(p) for p in parts):
        raise ValueError(f"${{{text}}} is not a reference (e.g. ${{params.x}}, ${{steps.NAME.state}}; "
                         "write $${…} for a literal ${…})")
    root = parts[0]
    if root == "params" and len(parts) == 2:
        return parts
    if root == "steps" and len(parts) >= 3 and parts[2] in STEP_FIELDS and (parts[2] == "result" or len(parts) == 3):
        return parts
    if root == "flake" and len(parts) == 2 and parts[1] in FLAKE_FIELDS:
        return parts
    raise ValueError(
        f"${{{text}}} refers to nothing (use params.NAME, steps.NAME.state|changed|result.KEY, "
        "flake.rev or flake.lock_hash; write $${…} for a literal ${…})"
    )


def strings(value: Any) -> Iterator[str]:
    """Every string inside a value (lists and tables walked without recursion)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            stack.extend(v.values())
            stack.extend(k for k in v if isinstance(k, str))
        elif isinstance(v, list):
            stack.extend(v)


def refs_in(value: Any) -> list[Ref]:
    """Every reference in a value; ValueError for one that refers to nothing."""
    return [parse_ref(m.group(1)) for s in strings(value) for m in REF.finditer(s)]


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(_text(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return "" if v is None else str(v)


def substitute(value: Any, resolve: Callable[[Ref], Any]) -> Any:
    """``value`` with every reference replaced by ``resolve(ref)`` (typed when it stands alone)."""
    if isinstance(value, str):
        whole = REF.fullmatch(value)
        if whole is not None:
            return resolve(parse_ref(whole.group(1)))
        out = REF.sub(lambda m: _text(resolve(parse_ref(m.group(1)))), value)
        return out.replace("$${", "${")
    if isinstance(value, list):
        return [substitute(v, resolve) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, resolve) for k, v in value.items()}
    return value
