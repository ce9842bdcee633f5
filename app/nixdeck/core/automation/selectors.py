"""Device selectors: ``name``, ``@tag``, ``@all`` or a list of these, expanded against the inventory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nixdeck.core.tasks.errors import UserError


def expand(selector: Any, devices: Mapping[str, Sequence[str]], *, what: str = "devices") -> list[str]:
    """Device names (inventory order, no duplicates). ``devices`` maps each device to its tags.

    A name that is not in the project (e.g. a removed device) or a tag no device has is refused,
    naming it."""
    items = selector if isinstance(selector, list) else [selector]
    if not items:
        return []
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise UserError(f"{what}: {item!r} is not a device name, @tag or @all")
        item = item.strip()
        if item == "@all":
            out.extend(devices)
        elif item.startswith("@"):
            tag = item[1:]
            tagged = [d for d, tags in devices.items() if tag in tags]
            if not tagged:
                raise UserError(f"{what}: no device has the tag {tag!r}")
            out.extend(tagged)
        elif item in devices:
            out.append(item)
        else:
            raise UserError(f"{what}: device {item!r} is not in the project (was it removed?)")
    return list(dict.fromkeys(out))
