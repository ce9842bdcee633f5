"""Export, import and small edits of a project's groups and automations.

The export is one JSON document of every group and automation exactly as the file holds them
(key order kept), stable byte for byte: export → import → export gives the same bytes. An import
validates everything before anything is written (one broken definition refuses the whole import)
and is written back with tomlkit, so the rest of ``nixdeck.toml`` and its comments are untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nixdeck.core.project import Project
from nixdeck.core.project.files import atomic_write
from nixdeck.core.project.inventory import Inventory
from nixdeck.core.project.project import Change

from . import catalog as catalog_mod
from .checks import MAX_DEPTH
from .errors import AutomationError
from .model import NAME_RE

FORMAT = "nixdeck-automations"
VERSION = 1


def export_text(inventory: Inventory) -> str:
    data = {"format": FORMAT, "version": VERSION, "groups": inventory.groups, "automations": inventory.automations}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def export(project: Project, dest: Path | str | None = None) -> str:
    """The JSON export (written atomically to ``dest`` when given)."""
    project.reload()
    text = export_text(project.inventory)
    if dest is not None:
        atomic_write(Path(dest), text.encode("utf-8"), backup=False)
    return text


def parse(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The groups and automations of an export; AutomationError for anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AutomationError(f"import: not valid JSON: {e.msg} (line {e.lineno})") from None
    except RecursionError:
        raise AutomationError(f"import: nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise AutomationError("import: the document is not a JSON object")
    if data.get("format") != FORMAT:
        raise AutomationError(f"import: format: {data.get('format')!r} is not a NixDeck automations export ({FORMAT})")
    if data.get("version") != VERSION:
        raise AutomationError(f"import: version: {data.get('version')!r} is not one this NixDeck reads ({VERSION})")
    unknown = sorted(set(data) - {"format", "version", "groups", "automations"})
    if unknown:
        raise AutomationError(f"import: {unknown[0]}: unknown key")
    groups, autos = data.get("groups", {}), data.get("automations", {})
    for what, value in (("groups", groups), ("automations", autos)):
        if not isinstance(value, dict):
            raise AutomationError(f"import: {what} is not an object")
        for name in value:
            if not NAME_RE.fullmatch(name):
                raise AutomationError(f"import: {what}.{name}: is not a name (a letter, then letters, digits, - or _)")
    return groups, autos


def check_all(groups: dict[str, Any], automations: dict[str, Any]) -> None:
    """Every definition valid, or AutomationError naming the first broken ones."""
    cat = catalog_mod.load(groups, automations)
    errors = [g.error for g in cat.groups.values() if g.error] + [a.error for a in cat.automations.values() if a.error]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise AutomationError(f"import refused, nothing written: {errors[0]}{more}")


def import_text(project: Project, text: str, *, replace: bool = False, source: str | None = None) -> Change:
    """Add (or with ``replace``, set) the groups and automations of an export."""
    groups, autos = parse(text)

    def fn(inv: Inventory) -> tuple[Inventory, Change]:
        new_groups = dict(groups) if replace else {**inv.groups, **groups}
        new_autos = dict(autos) if replace else {**inv.automations, **autos}
        check_all(new_groups, new_autos)
        new = inv.model_copy(update={"groups": new_groups, "automations": new_autos})
        what = f"{len(autos)} automation(s), {len(groups)} group(s)" + (f" from {source}" if source else "")
        summary = f"imported {what}" + (" (replacing all)" if replace else "")
        return new, Change("automations-imported", summary, changed=new != inv)

    return project.change_automations(fn)


def _edit(project: Project, section: str, name: str, key: str, value: bool, default: bool,
          summary: str) -> Change:
    def fn(inv: Inventory) -> tuple[Inventory, Change]:
        tables = dict(getattr(inv, section))
        if name not in tables:
            kind = "group" if section == "groups" else "automation"
            raise AutomationError(f"there is no {kind} {name!r} ({kind}s: {', '.join(sorted(tables)) or 'none'})")
        raw = tables[name]
        if not isinstance(raw, dict):
            raise AutomationError(f"{section}.{name} is not a table: fix it in nixdeck.toml first")
        new_raw = dict(raw)
        if key in raw or value != default:  # a line the user wrote is kept; the default needs none
            new_raw[key] = value
        tables[name] = new_raw
        new = inv.model_copy(update={section: tables})
        return new, Change("automation-changed", summary, changed=new_raw != raw)

    return project.change_automations(fn)


def set_enabled(project: Project, name: str, enabled: bool) -> Change:
    """``enabled = false`` on an automation (enabling removes the line again)."""
    return _edit(project, "automations", name, "enabled", enabled, True,
                 f"{'enabled' if enabled else 'disabled'} automation {name}")


def set_active(project: Project, name: str, active: bool) -> Change:
    """``active = false`` on a group freezes its members."""
    return _edit(project, "groups", name, "active", active, True,
                 f"{'activated' if active else 'froze'} group {name}")

