"""``when`` conditions: Google's Common Expression Language through cel-python (``celpy``).

CEL is made for exactly this (conditions in configuration, safe to evaluate: no side effects, no
loops, no access to the host), and cel-python is a well-kept pure-Python implementation (no
native code of its own). Python's ``eval`` is never used. Conditions see ``params`` and the earlier
``steps`` (``steps.NAME.state``, ``.changed``, ``.result``, ``.skipped``); a step name with a
hyphen is written ``steps["my-step"]``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

_STEP_DOT = re.compile(r"\bsteps\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_STEP_INDEX = re.compile(r"""\bsteps\s*\[\s*["']([^"']+)["']\s*\]""")
_PARAM_DOT = re.compile(r"\bparams\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_PARAM_INDEX = re.compile(r"""\bparams\s*\[\s*["']([^"']+)["']\s*\]""")
ROOTS = ("params", "steps")
MAX_NESTING = 50


@lru_cache(maxsize=1)
def _env() -> celpy.Environment:
    return celpy.Environment()


@lru_cache(maxsize=512)
def compile_when(text: str) -> Any:
    """The compiled program of a condition; ValueError naming what does not parse."""
    depth = 0
    for c in text:
        depth += c in "([{"
        depth -= c in ")]}"
        if depth > MAX_NESTING:
            raise ValueError(f"does not parse: nested more than {MAX_NESTING} brackets deep")
    try:
        ast = _env().compile(text)
        return _env().program(ast)
    except RecursionError:
        raise ValueError("does not parse: nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - celpy raises its own parse errors (and lark's)
        column = getattr(e, "column", None)
        at = f" at column {column}" if isinstance(column, int) else ""
        raise ValueError(f"does not parse{at}: {text!r}") from None


def step_names(text: str) -> set[str]:
    """Names of the steps a condition refers to (``steps.NAME`` and ``steps["NAME"]``)."""
    return set(_STEP_DOT.findall(text)) | set(_STEP_INDEX.findall(text))


def param_names(text: str) -> set[str]:
    return set(_PARAM_DOT.findall(text)) | set(_PARAM_INDEX.findall(text))


def _plain(value: Any) -> Any:
    """Data CEL can hold (None becomes an empty string: CEL maps have no null keys to test)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def evaluate(text: str, params: dict[str, Any], steps: dict[str, Any]) -> bool:
    """The condition's truth; ValueError when it cannot be evaluated or is not true/false."""
    program = compile_when(text)
    activation = {"params": json_to_cel(_plain(params)), "steps": json_to_cel(_plain(steps))}
    try:
        result = program.evaluate(activation)
    except RecursionError:
        raise ValueError("cannot be evaluated: nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - CELEvalError and friends
        args = getattr(e, "args", ())
        raise ValueError(f"cannot be evaluated: {args[0] if args else e}") from None
    if isinstance(result, Exception):
        raise ValueError(f"cannot be evaluated: {result.args[0] if result.args else result}")
    if not isinstance(result, celtypes.BoolType):
        raise ValueError(f"is not true or false (it gave {result!r})")
    return bool(result)
