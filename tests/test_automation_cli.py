"""`nixdeck auto …`: list/show, run with params, dry run (runs and records nothing), enable/disable,
export/import (validated first; export → import → export is byte-identical)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automation_helpers import make_project, q
from nixdeck.core.automation import transfer
from nixdeck.core.automation.errors import AutomationError
from nixdeck.core.project import Project
from nixdeck.core.tasks.store import TaskStore
from test_demo import processes_mentioning


def nixdeck(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nixdeck", "--data-dir", str(data_dir), *argv],
                          capture_output=True, text=True, timeout=120, env=os.environ)


def task_count(data_dir: Path) -> int:
    store = TaskStore(data_dir)
    try:
        return store.count_tasks()
    finally:
        store.close()


AUTOS = """
# hand-written: this comment stays
[groups.night]
description = "nightly"

[automations.hello]
description = "say hello"
params = { who = { type = "string", default = "world" }, times = { type = "number", min = 1, max = 3, default = 1 } }
steps = [ { name = "say", op = "run_command", with = { argv = ["echo", "hello", "${params.who}"] } } ]

[automations.hidden]
private = true
steps = [ { op = "run_command", with = { argv = ["true"] } } ]

[automations.member]
group = "night"  # a member
steps = [ { op = "run_command", with = { argv = ["true"] } } ]

[automations.broken]
steps = [ { op = "warp" } ]
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, AUTOS)


def test_list_and_show(project: Path, data_dir: Path) -> None:
    res = nixdeck(data_dir, "auto", "--project", str(project), "list")
    assert res.returncode == 0, res.stderr
    assert "hello" in res.stdout and "hidden" not in res.stdout
    assert "broken" in res.stdout and "BROKEN" in res.stdout and "unknown op 'warp'" in res.stdout
    res = nixdeck(data_dir, "auto", "--project", str(project), "list", "--all", "--json")
    listed = {a["name"]: a for a in json.loads(res.stdout)["automations"]}
    assert set(listed) == {"hello", "hidden", "member", "broken"}
    assert listed["hello"]["params"]["times"] == {"type": "number", "default": 1, "min": 1.0, "max": 3.0}
    assert listed["broken"]["ok"] is False and listed["hidden"]["private"] is True
    assert json.loads(res.stdout)["groups"]["night"]["members"] == ["member"]
    res = nixdeck(data_dir, "auto", "--project", str(project), "show", "hello")
    assert res.returncode == 0 and "param times: a number from 1 to 3, default 1" in res.stdout
    res = nixdeck(data_dir, "auto", "--project", str(project), "show", "--group", "night", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["order"] == [["member"]]
    res = nixdeck(data_dir, "auto", "--project", str(project), "show", "ghost")
    assert res.returncode == 1 and "there is no automation 'ghost'" in res.stderr


def test_run_params_and_exit_codes(project: Path, data_dir: Path) -> None:
    res = nixdeck(data_dir, "auto", "--project", str(project), "run", "hello", "--param", "who=nixdeck", "--json")
    assert res.returncode == 0, res.stderr
    (record,) = json.loads(res.stdout)
    assert record["state"] == "completed" and record["kind"] == "automation"
    assert record["result"]["params"] == {"who": "nixdeck", "times": 1}
    before = task_count(data_dir)
    res = nixdeck(data_dir, "auto", "--project", str(project), "run", "hello", "--param", "times=7")
    assert res.returncode == 2
    assert res.stderr.strip() == "nixdeck auto run: automation hello: param times: '7' is not a number from 1 to 3"
    assert task_count(data_dir) == before  # refused before anything ran
    for argv, message in ((["broken"], "unknown op 'warp'"), (["hidden"], "is private"),
                          (["hello", "--param", "oops"], "--param takes KEY=VALUE"), ([], "name an automation")):
        res = nixdeck(data_dir, "auto", "--project", str(project), "run", *argv)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_dry_run_runs_and_records_nothing(tmp_path: Path, data_dir: Path) -> None:
    marker = f"dry-run-{uuid.uuid4().hex}"
    project = make_project(tmp_path, f"""
[automations.plan]
params = {{ n = {{ type = "number", default = 2 }} }}
steps = [
  {{ name = "first", op = "run_command", with = {{ argv = {q(["sleep", "300", marker])} }} }},
  {{ name = "second", op = "build", with = {{ devices = "@web" }}, when = "params.n > 1" }},
  {{ name = "third", op = "build", with = {{ devices = "${{steps.first.result.failed}}" }}, when = "steps.first.state == 'failed'" }},
]
""")
    res = nixdeck(data_dir, "auto", "--project", str(project), "run", "plan", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    first, second, third = plan["steps"]
    assert first["child"]["kind"] == "run_command" and first["child"]["submission"]["argv"][-1] == marker
    assert second["when"]["decision"] is True and second["child"]["kind"] == "build_device"
    assert second["child"]["targets"] == ["web1"]
    assert third["when"]["decision"] == "at run time" and third["child"] == "at run time"
    text = nixdeck(data_dir, "auto", "--project", str(project), "run", "plan", "--dry-run").stdout
    assert "when 'params.n > 1': true: runs" in text and text.endswith("dry run: nothing was run or recorded\n")
    assert processes_mentioning(marker) == []
    assert task_count(data_dir) == 0


def test_enable_disable_and_group_freeze(project: Path, data_dir: Path) -> None:
    p = ["auto", "--project", str(project)]
    res = nixdeck(data_dir, *p, "run", "--group", "night", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["levels"] == [["member"]] and plan["members"]["member"]["steps"][0]["child"]["kind"] == "run_command"
    assert "group night: [member]" in nixdeck(data_dir, *p, "run", "--group", "night", "--dry-run").stdout
    assert task_count(data_dir) == 0
    assert nixdeck(data_dir, *p, "disable", "hello").returncode == 0
    res = nixdeck(data_dir, *p, "run", "hello")
    assert res.returncode == 2 and "is disabled (nixdeck auto enable hello)" in res.stderr
    assert nixdeck(data_dir, *p, "enable", "hello").returncode == 0
    assert nixdeck(data_dir, *p, "disable", "--group", "night").returncode == 0
    res = nixdeck(data_dir, *p, "run", "member")
    assert res.returncode == 2 and "frozen: its group night is not active" in res.stderr
    res = nixdeck(data_dir, *p, "run", "--group", "night")
    assert res.returncode == 2 and "group night is not active" in res.stderr
    text = (project / "nixdeck.toml").read_text()
    assert "# hand-written: this comment stays" in text and 'group = "night"  # a member' in text


def test_export_import_export_is_byte_identical(project: Path, data_dir: Path, tmp_path: Path) -> None:
    p = ["auto", "--project", str(project)]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert nixdeck(data_dir, *p, "export", str(first)).returncode == 0
    fresh = make_project(tmp_path, "", name="fresh")
    q2 = ["auto", "--project", str(fresh)]
    # the export holds a broken definition: the whole import is refused, nothing written
    before = (fresh / "nixdeck.toml").read_bytes()
    res = nixdeck(data_dir, *q2, "import", str(first))
    assert res.returncode == 1 and "import refused, nothing written: automation broken" in res.stderr
    assert (fresh / "nixdeck.toml").read_bytes() == before
    data = json.loads(first.read_text())
    del data["automations"]["broken"]
    first.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    assert nixdeck(data_dir, *q2, "import", str(first)).returncode == 0
    assert nixdeck(data_dir, *q2, "export", str(second)).returncode == 0
    assert second.read_bytes() == first.read_bytes()
    assert nixdeck(data_dir, *q2, "import", str(second)).stdout.startswith("nothing to change")


# -- hypothesis round trip -------------------------------------------------------------------------
names = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
params = st.dictionaries(names, st.one_of(
    st.builds(lambda d: {"type": "string", "default": d}, text),
    st.builds(lambda lo, n: {"type": "number", "min": lo, "max": lo + 10, "default": lo + n},
              st.integers(-100, 100), st.integers(0, 10)),
    st.builds(lambda b: {"type": "bool", "default": b}, st.booleans()),
    st.builds(lambda vs: {"type": "enum", "values": vs, "default": vs[0]}, st.lists(names, min_size=1, max_size=3)),
    st.builds(lambda xs, desc: {"type": "list", "default": xs, "description": desc}, st.lists(text, max_size=3), text),
), max_size=3)
steps = st.lists(st.one_of(
    st.builds(lambda prog, args: {"op": "run_command", "with": {"argv": [prog, *args]}}, names,
              st.lists(text, max_size=2)),
    st.builds(lambda d, f: {"op": "build", "with": {"devices": d}, "on_failure": f},
              st.sampled_from(["@all", "web1", ["web1", "@db"]]), st.sampled_from(["abort", "continue"])),
    st.builds(lambda n, w: {"name": n, "op": "flake_update", "with": {"inputs": ["nixpkgs"], "commit": w}},
              names, st.booleans()),
), min_size=1, max_size=3)
automations = st.dictionaries(names, st.builds(
    lambda desc, p, s, t, r: {"description": desc, "params": p, "steps": s, "timeout": t, "retries": r},
    text, params, steps, st.sampled_from(["30s", "1h", 90, 1.5]), st.integers(0, 3)), max_size=4)


def _dedupe_step_names(autos: dict[str, Any]) -> dict[str, Any]:
    for a in autos.values():
        seen: set[str] = set()
        for s in a["steps"]:
            if "name" in s and s["name"] in seen:
                del s["name"]
            elif "name" in s:
                seen.add(s["name"])
    return autos


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(automations.map(_dedupe_step_names), st.dictionaries(names, st.builds(
    lambda d, a: {"description": d, "active": a}, text, st.booleans()), max_size=2))
def test_round_trip_of_random_definitions(tmp_path: Path, autos: dict[str, Any], groups: dict[str, Any]) -> None:
    root = tmp_path / f"rt-{uuid.uuid4().hex}"
    root.mkdir()
    (root / "flake.nix").write_text("{}\n")
    (root / "nixdeck.toml").write_text("# mine\nversion = 1\n\n[devices.web1]\nhost = \"h\"  # keep\n")
    project = Project.open(root, discover_devices=False)
    doc = json.dumps({"format": transfer.FORMAT, "version": transfer.VERSION, "groups": groups,
                      "automations": autos}, indent=2, ensure_ascii=False) + "\n"
    try:
        transfer.import_text(project, doc, replace=True)
    except AutomationError as e:
        raise AssertionError(f"a valid export was refused: {e}") from None
    exported = transfer.export(project)
    assert exported == doc
    transfer.import_text(project, exported)
    assert transfer.export(project) == exported
    assert (root / "nixdeck.toml").read_text().startswith("# mine\nversion = 1\n\n[devices.web1]\nhost = \"h\"  # keep\n")
