"""Resolving a step: its ``with`` arguments with every ``${…}`` replaced, its ``when`` decided.

Shared by the runner and the dry run: the dry run knows params and flake facts but no step
results, so anything that needs one is "at run time" (``Pending``).
"""

from __future__ import annotations

from typing import Any

from nixdeck.core.tasks.errors import UserError

from . import expr, refs
from .model import Automation, Step


class Pending(Exception):
    """A reference that only a run can resolve (a step's state or result)."""


def needs_flake(a: Automation) -> bool:
    """Whether the definition refers to ``${flake.…}`` anywhere (git is asked only then)."""
    values: list[Any] = [s.with_ for s in [*a.steps, *a.hooks.before, *a.hooks.after, *a.hooks.on_error]]
    if a.cache is not None:
        values.append(a.cache.key)
    return any(r[0] == "flake" for v in values for r in refs.refs_in(v))


class Resolver:
    """Resolves references for one run; ``steps`` fills in as steps end (None: a dry run)."""

    def __init__(self, params: dict[str, Any], flake: dict[str, str] | None,
                 steps: dict[str, dict[str, Any]] | None) -> None:
        self.params = params
        self.flake = flake
        self.steps = steps

    def value(self, ref: refs.Ref) -> Any:
        text = "${" + ".".join(ref) + "}"
        if ref[0] == "params":
            return self.params.get(ref[1])
        if ref[0] == "flake":
            if self.flake is None:
                raise Pending(text)
            return self.flake[ref[1]]
        if self.steps is None:
            raise Pending(text)
        view = self.steps.get(ref[1])
        if view is None:
            raise UserError(f"{text}: step {ref[1]} has not run")
        if ref[2] != "result":
            return view[ref[2]]
        value: Any = view["result"]
        for i, key in enumerate(ref[3:]):
            if not isinstance(value, dict) or key not in value:
                if view.get("skipped"):
                    return [] if key in ("failed", "ok", "targets") else None
                have = ", ".join(sorted(value)) if isinstance(value, dict) else type(value).__name__
                raise UserError(f"{text}: step {ref[1]}'s result has no {'.'.join(ref[3:i + 4])} (it has: {have})")
            value = value[key]
        return value

    def args(self, step: Step) -> dict[str, Any]:
        out = refs.substitute(step.with_, self.value)
        assert isinstance(out, dict)
        return out

    def when(self, step: Step) -> bool:
        """The step's condition (True without one). A condition over a skipped step that cannot be
        evaluated (e.g. it reads that step's result) is false, not an error."""
        if step.when is None:
            return True
        names = expr.step_names(step.when)
        if self.steps is None and names:
            raise Pending(step.when)
        steps = self.steps or {}
        try:
            return expr.evaluate(step.when, self.params, steps)
        except ValueError as e:
            if any(steps.get(n, {}).get("skipped") for n in names):
                return False
            raise UserError(f"when {step.when!r} {e}") from None
