"""All groups and automations of a project, each validated on its own.

A broken definition never stops the project: it is listed with its error and refused when asked
to run, while the others list and run. Checks across definitions live here: a member's group must
exist, ``depends_on`` stays within the group, dependency cycles and automations that call
themselves (through ``automation`` steps, ``on_failure.run`` or hooks) are named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .checks import merged, model, validate_automation
from .errors import AutomationError
from .model import NAME_RE, Automation, Group


@dataclass(frozen=True)
class Entry:
    """One automation as listed: its raw table, its model (None when broken) and its error."""

    name: str
    raw: Any
    definition: Automation | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.definition is not None

    def summary(self, catalog: Catalog) -> dict[str, Any]:
        """The stable ``auto list --json`` object."""
        d = self.definition
        group = d.group if d else (self.raw.get("group") if isinstance(self.raw, dict) else None)
        return {
            "name": self.name,
            "ok": self.ok,
            "error": self.error,
            "description": d.description if d else "",
            "group": group,
            "enabled": d.enabled if d else None,
            "private": d.private if d else None,
            "template": d.template if d else None,
            "extends": self.raw.get("extends") if isinstance(self.raw, dict) else None,
            "depends_on": list(d.depends_on) if d else [],
            "params": {k: v.model_dump(exclude_defaults=True) for k, v in d.params.items()} if d else {},
            "steps": len(d.steps) if d else 0,
            "runnable": catalog.refusal(self.name) is None,
            "refusal": catalog.refusal(self.name),
        }


@dataclass(frozen=True)
class GroupEntry:
    name: str
    raw: Any
    definition: Group | None
    error: str | None
    members: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.definition is not None


@dataclass
class Catalog:
    automations: dict[str, Entry] = field(default_factory=dict)
    groups: dict[str, GroupEntry] = field(default_factory=dict)

    def entry(self, name: str) -> Entry:
        if name not in self.automations:
            known = ", ".join(sorted(self.automations)) or "none"
            raise AutomationError(f"there is no automation {name!r} (automations: {known})", automation=name)
        return self.automations[name]

    def group(self, name: str) -> GroupEntry:
        if name not in self.groups:
            known = ", ".join(sorted(self.groups)) or "none"
            raise AutomationError(f"there is no group {name!r} (groups: {known})")
        return self.groups[name]

    def refusal(self, name: str, *, direct: bool = True) -> str | None:
        """Why this automation cannot run now (None: it can)."""
        e = self.entry(name)
        if e.definition is None:
            return e.error
        d = e.definition
        if d.template:
            return f"automation {name} is a template: run an automation that extends it"
        if direct and d.private:
            return f"automation {name} is private: it runs only from another automation or its group"
        if not d.enabled:
            return f"automation {name} is disabled (nixdeck auto enable {name})"
        if d.group is not None:
            g = self.groups.get(d.group)
            if g is not None and g.definition is not None and not g.definition.active:
                return f"automation {name} is frozen: its group {d.group} is not active (active = false)"
        return None

    def runnable(self, name: str, *, direct: bool = True) -> Automation:
        why = self.refusal(name, direct=direct)
        if why is not None:
            raise AutomationError(why, automation=name)
        d = self.entry(name).definition
        assert d is not None
        return d

    def group_refusal(self, name: str) -> str | None:
        g = self.group(name)
        if g.definition is None:
            return g.error
        if not g.definition.active:
            return f"group {name} is not active (active = false): its members are frozen"
        broken = [m for m in g.members if not self.automations[m].ok]
        if broken:
            return f"group {name}: member {broken[0]} is broken: {self.automations[broken[0]].error}"
        if not g.members:
            return f"group {name} has no members (set group = \"{name}\" in an automation)"
        return None

    def levels(self, name: str) -> list[list[str]]:
        """A group's members in dependency order: each level needs only the levels before it."""
        g = self.group(name)
        deps = {m: [d for d in self._deps(m) if d in g.members] for m in g.members}
        done: list[str] = []
        out: list[list[str]] = []
        while len(done) < len(deps):
            level = [m for m in deps if m not in done and all(d in done for d in deps[m])]
            if not level:  # a cycle: validation marked its members broken
                break
            out.append(level)
            done.extend(level)
        return out

    def _deps(self, name: str) -> list[str]:
        d = self.automations[name].definition
        return list(d.depends_on) if d else []


def _cycle(start: str, edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle through ``start`` as a path ``[start, …, start]`` (iterative DFS)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, []):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _calls(a: Automation) -> list[str]:
    out: list[str] = []
    for step in [*a.steps, *a.hooks.before, *a.hooks.after, *a.hooks.on_error]:
        target = step.with_.get("name") if step.op == "automation" else None
        if isinstance(target, str) and "${" not in target:
            out.append(target)
        run = getattr(step.on_failure, "run", None)
        if isinstance(run, str):
            out.append(run)
    return out


def load(groups_raw: Mapping[str, Any], automations_raw: Mapping[str, Any]) -> Catalog:
    """Validate every group and automation; errors are kept per definition."""
    cat = Catalog()
    for name, raw in groups_raw.items():
        try:
            cat.groups[name] = GroupEntry(name, raw, model(Group, raw, name, kind="group"), None)
        except AutomationError as e:
            cat.groups[name] = GroupEntry(name, raw, None, str(e))
    defs: dict[str, Automation] = {}
    errors: dict[str, str] = {}
    for name, raw in automations_raw.items():
        if not NAME_RE.fullmatch(str(name)):
            errors[name] = f"automation {name}: is not an automation name (a letter, then letters, digits, - or _)"
            continue
        try:
            defs[name] = validate_automation(name, merged(name, raw, automations_raw) if isinstance(raw, dict) else raw,
                                             list(automations_raw))
        except AutomationError as e:
            errors[name] = str(e)
    for name, a in defs.items():
        if a.group is not None and a.group not in cat.groups:
            errors[name] = f"automation {name}: group: there is no group {a.group!r}"
        elif a.depends_on and a.group is None:
            errors[name] = f"automation {name}: depends_on: dependencies are within a group; set group first"
        else:
            for dep in a.depends_on:
                other, raw_dep = defs.get(dep), automations_raw.get(dep)
                dep_group = other.group if other else raw_dep.get("group") if isinstance(raw_dep, dict) else None
                if dep not in automations_raw:
                    errors.setdefault(name, f"automation {name}: depends_on: there is no automation {dep!r}")
                elif dep_group != a.group:
                    errors.setdefault(name, f"automation {name}: depends_on: {dep} is outside the group {a.group}")
    deps = {n: list(a.depends_on) for n, a in defs.items()}
    calls = {n: _calls(a) for n, a in defs.items()}
    for name in defs:
        cycle = _cycle(name, deps)
        if cycle is not None:
            errors.setdefault(name, f"automation {name}: depends_on: dependency cycle {' → '.join(cycle)}")
        loop = _cycle(name, calls)
        if loop is not None:
            errors.setdefault(name, f"automation {name}: calls itself: {' → '.join(loop)} (recursion is refused)")
    for name, raw in automations_raw.items():
        ok = name in defs and name not in errors
        cat.automations[name] = Entry(name, raw, defs[name] if ok else None, errors.get(name))
    for gname, g in list(cat.groups.items()):
        members = tuple(n for n, a in defs.items() if a.group == gname)
        members += tuple(n for n, raw in automations_raw.items()
                         if n not in defs and isinstance(raw, dict) and raw.get("group") == gname)
        cat.groups[gname] = GroupEntry(g.name, g.raw, g.definition, g.error, members)
    return cat


def from_inventory(inventory: Any) -> Catalog:
    """The catalog of an ``Inventory`` (its raw ``groups`` and ``automations`` tables)."""
    return load(inventory.groups, inventory.automations)
