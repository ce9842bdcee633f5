"""One module per task kind. Each module lists its operations in a module-level `OPERATIONS`."""

from __future__ import annotations

import importlib
import pkgutil

from nixdeck.core.tasks.operation import Operation


def all_operations() -> list[Operation]:
    """Every operation of every module in this package (modules are found, not listed by hand)."""
    ops: list[Operation] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        ops.extend(getattr(mod, "OPERATIONS", []))
    return ops
