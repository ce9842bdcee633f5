"""Automation definitions: every validation error names the automation, the step and the key; a
broken definition sits beside working ones; random definitions never raise anything but a
validation error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixdeck.core.automation import catalog
from nixdeck.core.automation.durations import parse_duration
from nixdeck.core.automation.errors import AutomationError
from nixdeck.core.automation.model import ParamSpec
from nixdeck.core.automation.params import check_value, resolve
from nixdeck.core.project import Project

B = {"op": "build_project"}


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"steps": [{"op": "bild"}]}, "automation x: step #1 (bild): op: unknown op 'bild' (known: build,"),
        ({"steps": [{"name": "b", "op": "build", "with": {"devcies": "@all"}}]},
         "automation x: step b (#1): with.devcies: unknown key for op build"),
        ({"steppes": [], "steps": [B]}, "automation x: steppes: unknown key"),
        ({"steps": [{**B, "colour": 1}]}, "automation x: step #1 (build_project): colour: unknown key"),
        ({"timeout": "5x", "steps": [B]}, "automation x: timeout: '5x' is not a duration"),
        ({"cache": {"key": "k", "ttl": "soon"}, "steps": [B]}, "automation x: cache.ttl: 'soon' is not a duration"),
        ({"steps": [{**B, "on_failure": {"retry": 1, "delay": "1y"}}]},
         "automation x: step #1 (build_project): on_failure.delay: '1y' is not a duration"),
        ({"params": {"p": {"type": "float"}}, "steps": [B]},
         "automation x: params.p.type: unknown param type 'float' (known: string, number, bool, enum, list,"),
        ({"params": {"p": {"type": "enum"}}, "steps": [B]}, "automation x: params.p: an enum parameter needs values"),
        ({"steps": [{"name": "a", "op": "flake_update", "with": {"inputs": "${params.nope}"}}]},
         "automation x: step a (#1): with: ${params.nope} refers to nothing: no parameter 'nope'"),
        ({"steps": [{"op": "build", "with": {"devices": "${steps.later.state}"}}, {"name": "later", **B}]},
         "automation x: step #1 (build): with: ${steps.later.state} refers to nothing: no earlier step 'later'"),
        ({"steps": [{"op": "build", "with": {"devices": "${nothing}"}}]}, "${nothing} refers to nothing"),
        ({"steps": [{**B, "when": "steps.a == &&"}]},
         "automation x: step #1 (build_project): when: does not parse at column"),
        ({"steps": [{**B, "when": "steps.ghost.changed"}]}, "when: refers to step 'ghost', which is not an earlier"),
        ({"steps": [{**B, "on_failure": "explode"}]}, 'on_failure: \'explode\' is "abort", "continue"'),
        ({"steps": [{**B, "on_failure": {"run": "nowhere"}}]}, "on_failure.run: there is no automation 'nowhere'"),
        ({"extends": "plain", "steps": [B]}, "automation x: extends: 'plain' is not a template"),
        ({"extends": "ghost"}, "automation x: extends: there is no template 'ghost'"),
        ({"group": "nope", "steps": [B]}, "automation x: group: there is no group 'nope'"),
        ({"group": "g", "depends_on": ["plain"], "steps": [B]}, "automation x: depends_on: plain is outside the group g"),
        ({"steps": []}, "automation x: steps: an automation needs at least one step"),
        ({"steps": [{"op": "ssh_command", "with": {"devices": "@all", "command": "echo ${params.x}"}}]},
         "never put into a shell string"),
        ({"steps": [{"op": "automation", "with": {"name": "x"}}]}, "automation x: calls itself: x → x"),
        ({"params": {"n": {"type": "number", "max": 3, "default": 5}}, "steps": [B]},
         "automation x: param n: 5 is not a number of at most 3"),
        ({"alerts": {"on": "failed"}, "steps": [B]}, "automation x: alerts: alerts is a list of tables"),
        ({"schedule": "nightly", "steps": [B]}, "automation x: schedule:"),
    ],
)
def test_validation_errors_name_automation_step_and_key(definition: dict[str, Any], expected: str) -> None:
    cat = catalog.load({"g": {}}, {"x": definition, "plain": {"steps": [B]}})
    entry = cat.automations["x"]
    assert not entry.ok
    assert entry.error is not None and expected in entry.error, entry.error
    assert cat.automations["plain"].ok  # the broken one never spoils the others
    with pytest.raises(AutomationError, match="automation x"):
        cat.runnable("x")


def test_dependency_cycles_are_named() -> None:
    cat = catalog.load({"g": {}}, {
        "a": {"group": "g", "depends_on": ["c"], "steps": [B]},
        "b": {"group": "g", "depends_on": ["a"], "steps": [B]},
        "c": {"group": "g", "depends_on": ["b"], "steps": [B]},
        "d": {"group": "g", "steps": [B]},
    })
    assert cat.automations["a"].error == "automation a: depends_on: dependency cycle a → c → b → a"
    assert cat.automations["d"].ok
    assert "member" in (cat.group_refusal("g") or "")


def test_templates_extends_private_and_groups() -> None:
    cat = catalog.load({"night": {"active": True}, "frozen": {"active": False}}, {
        "tpl": {"template": True, "params": {"d": {"type": "string", "default": "@all"}},
                "steps": [{"op": "build", "with": {"devices": "${params.d}"}}]},
        "web": {"extends": "tpl", "params": {"d": {"default": "@web"}}, "description": "web only"},
        "hidden": {"private": True, "steps": [B]},
        "off": {"enabled": False, "steps": [B]},
        "cold": {"group": "frozen", "steps": [B]},
        "first": {"group": "night", "steps": [B]},
        "second": {"group": "night", "depends_on": ["first"], "steps": [B]},
        "side": {"group": "night", "steps": [B]},
    })
    web = cat.runnable("web")
    assert web.params["d"].default == "@web" and web.params["d"].type == "string" and web.description == "web only"
    assert "is a template" in (cat.refusal("tpl") or "")
    assert "is private" in (cat.refusal("hidden") or "") and cat.refusal("hidden", direct=False) is None
    assert "is disabled" in (cat.refusal("off") or "")
    assert "frozen: its group frozen is not active" in (cat.refusal("cold") or "")
    assert cat.levels("night") == [["first", "side"], ["second"]]
    assert "not active" in (cat.group_refusal("frozen") or "")


def test_params_each_type_and_bad_values() -> None:
    specs = {
        "s": ParamSpec(type="string", default="x"), "n": ParamSpec(type="number", min=1, max=10, default=2),
        "b": ParamSpec(type="bool", default=True), "e": ParamSpec(type="enum", values=["a", "b"], default="a"),
        "l": ParamSpec(type="list", default=[]), "d": ParamSpec(type="device"), "t": ParamSpec(type="tag"),
    }
    got = resolve("x", specs, {"n": "7", "b": "false", "e": "B", "l": "nixpkgs, home-manager", "d": "web1", "t": "web"},
                  text=True, devices=["web1"], tags=["web"])
    assert got == {"s": "x", "n": 7, "b": False, "e": "b", "l": ["nixpkgs", "home-manager"], "d": "web1", "t": "web"}
    for key, value, accepts in [("n", "11", "a number from 1 to 10"), ("n", "many", "a number from 1 to 10"),
                                ("b", "maybe", "true or false"), ("e", "c", "one of a, b"),
                                ("d", "ghost", "the name of a device"), ("t", "nope", "a tag")]:
        with pytest.raises(AutomationError) as exc:
            resolve("x", specs, {key: value}, text=True, devices=["web1"], tags=["web"])
        assert f"automation x: param {key}: {value!r} is not {accepts}" in str(exc.value)
    with pytest.raises(AutomationError, match="no parameter 'zzz'"):
        resolve("x", specs, {"zzz": "1"}, text=True)
    with pytest.raises(AutomationError, match="param r: missing"):
        resolve("x", {"r": ParamSpec(type="string", required=True)}, {})
    assert check_value("x", "n", specs["n"], 3.5) == 3.5


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h30m", 5400), ("2d", 172800),
                                               (90, 90), ("500ms", 0.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_broken_definition_never_stops_the_project_from_opening(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "flake.nix").write_text("{}\n")
    (root / "nixdeck.toml").write_text(
        'version = 1\n[devices.web1]\nhost = "h"\n'
        '[automations.good]\nsteps = [ { op = "build", with = { devices = "@all" } } ]\n'
        '[automations.bad]\nsteps = [ { op = "explode" } ]\n'
        '[automations.worse]\nsteps = "not a list"\n'
        '[automations.scalar]\n'
        '[groups.g]\nactive = "yes"\n'
    )
    project = Project.open(root, discover_devices=False)
    cat = catalog.from_inventory(project.inventory)
    assert cat.automations["good"].ok
    assert {n for n, e in cat.automations.items() if not e.ok} == {"bad", "worse", "scalar"}
    assert "group g: active:" in (cat.groups["g"].error or "")
    listing = [e.summary(cat) for e in cat.automations.values()]
    assert [s["ok"] for s in listing] == [True, False, False, False]


# -- fuzz ------------------------------------------------------------------------------------------
KEYS = ["description", "group", "enabled", "timeout", "retries", "params", "steps", "hooks", "cache", "private",
        "template", "extends", "depends_on", "schedule", "alerts", "name", "op", "with", "when", "on_failure",
        "type", "default", "min", "max", "values", "required", "before", "after", "on_error", "retry", "delay",
        "run", "key", "ttl", "devices", "argv", "command", "inputs", "commit", "active"]
WORDS = ["build", "deploy", "flake_update", "automation", "a", "b", "g", "@all", "@web", "${params.a}",
         "${steps.a.state}", "${steps.a.result.x}", "${flake.rev}", "${", "1h", "0s", "steps.a.changed",
         "params.a == 1", "((", "number", "enum", "list", "abort", "continue", "", "web1"]
scalars = st.one_of(st.sampled_from(WORDS), st.integers(-5, 1 << 70), st.floats(allow_nan=True),
                    st.booleans(), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5), max_leaves=30)
definitions = st.dictionaries(st.sampled_from(["a", "b", "c", "tpl"]),
                              st.dictionaries(st.sampled_from(KEYS), values, max_size=8) | values, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions, st.dictionaries(st.sampled_from(["g", "h"]), values, max_size=2))
def test_random_definitions_only_ever_give_validation_errors(autos: dict[str, Any], groups: dict[str, Any]) -> None:
    cat = catalog.load(groups, autos)
    for name, entry in cat.automations.items():
        assert entry.ok or (entry.error and f"automation {name}" in entry.error)
        entry.summary(cat)
        try:
            cat.runnable(name)
        except AutomationError:
            pass
    for name in cat.groups:
        cat.group_refusal(name)
        cat.levels(name)


def test_the_readme_example_is_valid() -> None:
    import re
    import tomllib

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Automations"):]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    data = tomllib.loads(example.group(1))
    cat = catalog.load(data["groups"], data["automations"])
    assert all(e.ok for e in cat.automations.values()), [e.error for e in cat.automations.values()]
    assert cat.levels("nightly") == [["update-and-build"], ["canary"]]


@pytest.mark.parametrize(("step", "expected"), [
    ({"op": "deploy", "with": {"devices": "@web", "action": "reboot"}}, "with: action: Input should be 'switch'"),
    ({"op": "image", "with": {"devices": "web1", "format": "floppy"}}, "with: format: Input should be 'sd-card'"),
    ({"op": "deploy", "with": {"devices": ["web1", "@db"], "waves": "1,x"}}, "wave 'x' is not a count or a percentage"),
    ({"op": "ssh_command", "with": {"devices": "@all", "argv": ["true"], "limit": 0}}, "limit: Input should be greater"),
])
def test_literal_arguments_are_checked_when_the_file_is_read(step: dict[str, Any], expected: str) -> None:
    cat = catalog.load({}, {"x": {"steps": [step]}})
    assert cat.automations["x"].error is not None and expected in cat.automations["x"].error
    assert cat.automations["x"].error.startswith(f"automation x: step #1 ({step['op']}): ")
