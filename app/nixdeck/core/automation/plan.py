"""Dry run: the resolved plan of a run (params, targets expanded, each step's operation and
arguments, ``when`` decided now or "at run time", hooks, retries, the cache decision), as data for
``--json`` and as text. It runs nothing and records nothing."""

from __future__ import annotations

import json
from typing import Any

from nixdeck.core.tasks.errors import UserError

from . import refs
from .cache import find_hit, flake_facts
from .durations import format_seconds, parse_duration
from .errors import AutomationError
from .model import Automation, Step
from .resolve import Pending, Resolver, needs_flake
from .start import Prepared, inventory_devices
from .stepops import child_for

AT_RUN_TIME = "at run time"


def _policy(step: Step) -> Any:
    p = step.on_failure
    return p if isinstance(p, str) else p.model_dump()


def _step(step: Step, index: int, label: str, r: Resolver, prepared: Prepared) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index + 1, "name": step.name, "label": label, "op": step.op,
                           "on_failure": _policy(step)}
    try:
        out["when"] = None if step.when is None else {"expr": step.when, "decision": r.when(step)}
    except Pending:
        out["when"] = {"expr": step.when, "decision": AT_RUN_TIME}
    except UserError as e:
        out["when"] = {"expr": step.when, "decision": "error", "error": str(e)}
    try:
        args = r.args(step)
    except Pending:
        out["with"] = step.with_
        out["child"] = AT_RUN_TIME
        return out
    except UserError as e:
        out["with"], out["error"] = step.with_, str(e)
        return out
    out["with"] = args
    if step.op == "automation":
        out["child"] = {"kind": "automation", "automation": args.get("name"), "params": args.get("params", {})}
        return out
    try:
        out["child"] = child_for(step.op, args, prepared.submission.project_dir,
                                 inventory_devices(prepared.project)).describe()
    except (UserError, AutomationError) as e:
        out["error"] = str(e)
    return out


async def automation_plan(prepared: Prepared, name: str, params: dict[str, Any], store: Any = None) -> dict[str, Any]:
    entry = prepared.catalog.entry(name)
    a = entry.definition
    assert a is not None
    flake = await flake_facts(prepared.project.path) if needs_flake(a) else None
    r = Resolver(params, flake, None)
    out: dict[str, Any] = {
        "automation": name, "description": a.description, "group": a.group, "params": params,
        "timeout": parse_duration(a.timeout) if a.timeout is not None else None, "retries": a.retries,
        "cache": _cache(a, r, prepared, name, store),
        "steps": [_step(s, i, s.label(i), r, prepared) for i, s in enumerate(a.steps)],
        "hooks": {h: [_step(s, i, f"{h} hook #{i + 1}", r, prepared) for i, s in enumerate(getattr(a.hooks, h))]
                  for h in ("before", "after", "on_error")},
        "schedule": a.schedule, "alerts": a.alerts,
    }
    return out


def _cache(a: Automation, r: Resolver, prepared: Prepared, name: str, store: Any) -> dict[str, Any] | None:
    if a.cache is None:
        return None
    key = str(refs.substitute(a.cache.key, r.value))
    ttl = parse_duration(a.cache.ttl)
    hit = find_hit(store, str(prepared.project.path), name, key, ttl) if store is not None else None
    decision = f"skip: same key as run #{hit}" if hit is not None else "run: no successful run with this key"
    return {"key": key, "ttl": ttl, "decision": decision, "hit": hit}


async def plan(prepared: Prepared, store: Any = None) -> dict[str, Any]:
    """The whole plan of a prepared run (a group: each member's, in dependency order)."""
    sub = prepared.submission
    if sub.automation is not None:
        return {"dry_run": True, **await automation_plan(prepared, sub.automation, sub.params, store)}
    cat = prepared.catalog
    group = cat.group(sub.group or "")
    members: dict[str, Any] = {}
    for level in cat.levels(group.name):
        for m in level:
            why = cat.refusal(m, direct=False)
            if why is not None:
                members[m] = {"automation": m, "skipped": why}
                continue
            members[m] = await automation_plan(prepared, m, _defaults(prepared, m), store)
    return {"dry_run": True, "group": group.name, "levels": cat.levels(group.name), "members": members}


def _defaults(prepared: Prepared, name: str) -> dict[str, Any]:
    from .start import check_params

    return check_params(prepared.catalog, prepared.project, name, {}, text=False)


# -- text ---------------------------------------------------------------------------------------
def _v(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _step_lines(s: dict[str, Any], indent: str) -> list[str]:
    child = s.get("child")
    if isinstance(child, dict) and child.get("kind") == "automation":
        what = f"runs automation {child.get('automation')} with {_v(child.get('params', {}))}"
    elif isinstance(child, dict):
        targets = child.get("targets") or []
        what = f"{child['kind']}" + (f" on {', '.join(targets)}" if targets else "")
    elif child == AT_RUN_TIME:
        what = "arguments known at run time"
    else:
        what = "cannot run"
    op = "" if f"({s['op']})" in s["label"] else f" {s['op']}"
    lines = [f"{indent}{s['label']}{op} → {what}"]
    for k, v in (s.get("with") or {}).items():
        lines.append(f"{indent}    {k} = {_v(v)}")
    if s.get("when"):
        w = s["when"]
        decided = w["decision"] if isinstance(w["decision"], str) else ("true: runs" if w["decision"] else "false: skipped")
        lines.append(f"{indent}    when {w['expr']!r}: {decided}")
    if s.get("on_failure") != "abort":
        lines.append(f"{indent}    on_failure = {_v(s['on_failure'])}")
    if s.get("error"):
        lines.append(f"{indent}    error: {s['error']}")
    return lines


def _automation_text(p: dict[str, Any], indent: str = "") -> list[str]:
    if "skipped" in p:
        return [f"{indent}automation {p['automation']}: skipped ({p['skipped']})"]
    head = f"{indent}automation {p['automation']}" + (f": {p['description']}" if p.get("description") else "")
    lines = [head]
    if p["params"]:
        lines.append(f"{indent}  params: " + ", ".join(f"{k} = {_v(v)}" for k, v in p["params"].items()))
    facts = [f"timeout {format_seconds(p['timeout'])}" if p.get("timeout") else "no timeout",
             f"retries {p['retries']}"]
    lines.append(f"{indent}  " + " · ".join(facts))
    if p.get("cache"):
        c = p["cache"]
        lines.append(f"{indent}  cache key {c['key']!r} (ttl {format_seconds(c['ttl'])}): {c['decision']}")
    for hook in ("before",):
        for s in p["hooks"][hook]:
            lines += _step_lines(s, indent + "  ")
    for s in p["steps"]:
        lines += _step_lines(s, indent + "  ")
    for hook in ("after", "on_error"):
        for s in p["hooks"][hook]:
            lines += _step_lines(s, indent + "  ")
    return lines


def as_text(p: dict[str, Any]) -> str:
    """The plan as a person reads it; the last line says nothing ran."""
    if "group" in p and "members" in p:
        lines = [f"group {p['group']}: " + " → ".join("[" + ", ".join(level) + "]" for level in p["levels"])]
        for m in p["members"].values():
            lines += _automation_text(m, "  ")
    else:
        lines = _automation_text(p)
    lines.append("dry run: nothing was run or recorded")
    return "\n".join(lines) + "\n"
