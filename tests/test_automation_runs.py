"""Automation runs through the real engine: steps as child tasks of the operations' own kinds,
typed substitution, when, on_failure, hooks, timeout, retries, composition, cache, templates,
private ones, groups (order, parallelism, dependency cascade)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import pytest

import engine_helpers
from automation_helpers import make_project, q, run, script
from engine_helpers import db_rows, nixdeck_bg, wait_for
from nixdeck.core.automation import start
from nixdeck.core.automation.errors import AutomationError
from nixdeck.core.ops import all_operations
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.events import TaskChanged
from nixdeck.core.tasks.model import TaskKind, TaskState
from nixdeck.core.tasks.store import TaskStore

OK = q(["true"])
FAIL = q(["false"])
ARGS_TO = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


def test_typed_params_when_and_results(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "args.json"
    project = make_project(tmp_path, f"""
[automations.typed]
params.inputs = {{ type = "list", default = [] }}
params.n = {{ type = "number", min = 1, max = 5, default = 2 }}
params.commit = {{ type = "bool", default = true }}
params.mode = {{ type = "enum", values = ["fast", "slow"], default = "fast" }}
params.who = {{ type = "device", default = "web1" }}
params.tag = {{ type = "tag", default = "db" }}
steps = [
  {{ name = "first", op = "run_command", with = {{ argv = {script(ARGS_TO, str(out))[:-1]}, "${{params.inputs}}", "n=${{params.n}}", "${{params.commit}}", "${{params.mode}}", "${{params.who}}", "@${{params.tag}}"] }} }},
  {{ name = "yes", op = "run_command", with = {{ argv = {OK} }}, when = "steps.first.state == 'completed' && params.n > 3 && params.commit == false" }},
  {{ name = "no", op = "run_command", with = {{ argv = {OK} }}, when = "params.mode == 'slow'" }},
  {{ name = "code", op = "run_command", with = {{ argv = ["echo", "${{steps.first.result.exit_code}}"] }}, when = "steps.no.changed" }},
]
""")
    parent, kids, _ = run(data_dir, project, "typed", params={"inputs": "nixpkgs,home-manager", "n": "4", "commit": "no"})
    assert parent.state == TaskState.COMPLETED, parent.error
    assert json.loads(out.read_text()) == ["nixpkgs", "home-manager", "n=4", "false", "fast", "web1", "@db"]
    assert [k.kind for k in kids] == [TaskKind.RUN_COMMAND.value] * 4
    assert [k.state for k in kids] == [TaskState.COMPLETED, TaskState.COMPLETED, TaskState.SKIPPED, TaskState.SKIPPED]
    assert kids[2].error == "when \"params.mode == 'slow'\" is false"
    # a when over a skipped step is false, not an error
    assert kids[3].state == TaskState.SKIPPED
    assert parent.result["params"] == {"inputs": ["nixpkgs", "home-manager"], "n": 4, "commit": False, "mode": "fast",
                                       "who": "web1", "tag": "db"}


@pytest.mark.parametrize(("given", "message"), [
    ({"n": "9"}, "automation typed: param n: '9' is not a number from 1 to 5"),
    ({"who": "ghost"}, "automation typed: param who: 'ghost' is not the name of a device of the project"),
    ({"nope": "1"}, "automation typed: no parameter 'nope'"),
])
def test_bad_params_are_refused_before_anything_runs(tmp_path: Path, data_dir: Path, given: dict[str, str],
                                                     message: str) -> None:
    project = make_project(tmp_path, f"""
[automations.typed]
params = {{ n = {{ type = "number", min = 1, max = 5, default = 2 }}, who = {{ type = "device", default = "web1" }} }}
steps = [ {{ op = "run_command", with = {{ argv = {OK} }} }} ]
""")
    with pytest.raises(AutomationError) as exc:
        asyncio.run(start.prepare(project, automation="typed", params=given))
    assert message in str(exc.value)


def test_on_failure_abort_continue_retry_and_run(tmp_path: Path, data_dir: Path) -> None:
    flag = tmp_path / "count"
    flaky = script("import os, sys; p = sys.argv[1]; n = int(open(p).read()) if os.path.exists(p) else 0; "
                   "open(p, 'w').write(str(n + 1)); sys.exit(0 if n >= 2 else 1)", str(flag))
    project = make_project(tmp_path, f"""
[automations.abort]
steps = [ {{ op = "run_command", with = {{ argv = {FAIL} }} }}, {{ name = "after", op = "run_command", with = {{ argv = {OK} }} }} ]

[automations.cont]
steps = [ {{ op = "run_command", with = {{ argv = {FAIL} }}, on_failure = "continue" }}, {{ op = "run_command", with = {{ argv = {OK} }} }} ]

[automations.retry]
steps = [ {{ name = "flaky", op = "run_command", with = {{ argv = {flaky} }}, on_failure = {{ retry = 3, delay = "50ms" }} }} ]

[automations.rescue]
steps = [ {{ name = "boom", op = "run_command", with = {{ argv = {FAIL} }}, on_failure = {{ run = "cleanup" }} }}, {{ op = "run_command", with = {{ argv = {OK} }} }} ]

[automations.cleanup]
private = true
steps = [ {{ op = "run_command", with = {{ argv = {OK} }} }} ]
""")
    parent, kids, _ = run(data_dir, project, "abort")
    assert parent.state == TaskState.FAILED and parent.error.startswith("step #1 (run_command) failed: false exited")
    assert [k.state for k in kids] == [TaskState.FAILED, TaskState.SKIPPED]
    assert kids[1].error.startswith("not run: step #1 (run_command) failed")

    parent, kids, _ = run(data_dir, project, "cont")
    assert parent.state == TaskState.COMPLETED_WITH_WARNINGS, parent.error
    assert [k.state for k in kids] == [TaskState.FAILED, TaskState.COMPLETED]
    assert "on_failure = continue" in parent.warnings[0]

    parent, kids, _ = run(data_dir, project, "retry")
    assert parent.state == TaskState.COMPLETED, parent.error  # the failed attempts do not fail the run
    assert [k.state for k in kids] == [TaskState.FAILED, TaskState.FAILED, TaskState.COMPLETED]
    assert parent.result["superseded"] == [kids[0].id, kids[1].id]

    parent, kids, grand = run(data_dir, project, "rescue")
    assert parent.state == TaskState.FAILED
    assert [(k.kind, k.state) for k in kids] == [
        ("run_command", TaskState.FAILED), ("automation", TaskState.COMPLETED), ("run_command", TaskState.SKIPPED)]
    rescue = kids[1]
    assert rescue.author == "automation" and rescue.origin_id == parent.id and rescue.title == "Automation cleanup"
    assert [g.state for g in grand[rescue.id]] == [TaskState.COMPLETED]


def test_hooks_before_after_and_on_error_once(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "hooks.log"
    note = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
    hooks = (f'hooks = {{ before = [ {{ op = "run_command", with = {{ argv = {script(note, str(log), "before")} }} }} ], '
             f'after = [ {{ op = "run_command", with = {{ argv = {script(note, str(log), "after")} }} }} ], '
             f'on_error = [ {{ op = "run_command", with = {{ argv = {script(note, str(log), "on_error")} }} }} ] }}')
    project = make_project(tmp_path, f"""
[automations.good]
steps = [ {{ op = "run_command", with = {{ argv = {script(note, str(log), "step")} }} }} ]
{hooks}

[automations.bad]
steps = [ {{ op = "run_command", with = {{ argv = {FAIL} }}, on_failure = "abort" }}, {{ op = "run_command", with = {{ argv = {FAIL} }} }} ]
{hooks}
""")
    parent, kids, _ = run(data_dir, project, "good")
    assert parent.state == TaskState.COMPLETED
    assert log.read_text().split() == ["before", "step", "after"]
    log.unlink()
    parent, kids, _ = run(data_dir, project, "bad")
    assert parent.state == TaskState.FAILED
    assert log.read_text().split() == ["before", "on_error"]  # no after; on_error once
    assert [k.state for k in kids] == [TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED, TaskState.SKIPPED,
                                       TaskState.COMPLETED]


def test_timeout_and_retries_with_backoff(tmp_path: Path, data_dir: Path) -> None:
    flag = tmp_path / "attempts"
    second_time = script("import os, sys; p = sys.argv[1]; n = int(open(p).read()) if os.path.exists(p) else 0; "
                         "open(p, 'w').write(str(n + 1)); sys.exit(0 if n >= 1 else 1)", str(flag))
    project = make_project(tmp_path, f"""
[automations.slow]
timeout = "1s"
steps = [ {{ op = "run_command", with = {{ argv = ["sleep", "60"] }} }} ]

[automations.again]
retries = 1
steps = [ {{ op = "run_command", with = {{ argv = {second_time} }} }} ]
""")
    parent, kids, _ = run(data_dir, project, "slow")
    assert parent.state == TaskState.TIMED_OUT and parent.error == "timed out after 1 s"
    assert kids[0].state == TaskState.CANCELED

    async def scenario(engine: TaskEngine) -> tuple[object, list[object], list[TaskState]]:
        seen: list[TaskState] = []
        engine.subscribe(lambda ev: seen.append(ev.task.state) if isinstance(ev, TaskChanged) and ev.task.kind == "automation" else None)
        tid = await start.submit(engine, await start.prepare(project, automation="again"))
        return await engine.wait(tid), engine.store.children(tid), seen

    parent, kids, seen = engine_helpers.run_engine(data_dir, scenario, ops=all_operations())
    assert parent.state == TaskState.COMPLETED and parent.attempt == 2, parent.error
    assert TaskState.BACKED_OFF in seen
    assert sorted(k.state for k in kids) == sorted([TaskState.FAILED, TaskState.COMPLETED])


def test_composition_recursion_templates_and_private(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out.json"
    project = make_project(tmp_path, f"""
[automations.outer]
params = {{ target = {{ type = "string", default = "inner" }} }}
steps = [ {{ name = "call", op = "automation", with = {{ name = "${{params.target}}", params = {{ word = "hello" }} }} }} ]

[automations.inner]
private = true
params = {{ word = {{ type = "string", required = true }} }}
steps = [ {{ op = "run_command", with = {{ argv = {script(ARGS_TO, str(out))[:-1]}, "${{params.word}}"] }} }} ]

[automations.tpl]
template = true
params = {{ word = {{ type = "string", default = "template" }} }}
steps = [ {{ op = "run_command", with = {{ argv = {script(ARGS_TO, str(out))[:-1]}, "${{params.word}}"] }} }} ]

[automations.child]
extends = "tpl"
params = {{ word = {{ default = "extended" }} }}
""")
    parent, kids, grand = run(data_dir, project, "outer")
    assert parent.state == TaskState.COMPLETED, parent.error
    (call,) = kids
    assert (call.kind, call.author, call.origin_id) == ("automation", "automation", parent.id)
    assert out.read_text() == '["hello"]'
    # recursion through a parameter is refused at run time, naming the chain
    parent, kids, _ = run(data_dir, project, "outer", params={"target": "outer"})
    assert parent.state == TaskState.FAILED and "recursion refused: outer → outer" in parent.error
    for name, refusal in (("inner", "is private"), ("tpl", "is a template")):
        with pytest.raises(AutomationError, match=refusal):
            asyncio.run(start.prepare(project, automation=name))
    parent, _, _ = run(data_dir, project, "child")
    assert parent.state == TaskState.COMPLETED and out.read_text() == '["extended"]'


def test_cache_skips_a_run_with_the_same_key(tmp_path: Path, data_dir: Path) -> None:
    count = tmp_path / "count"
    project = make_project(tmp_path, f"""
[automations.cached]
params = {{ v = {{ type = "string", default = "a" }} }}
cache = {{ key = "${{flake.rev}}-${{params.v}}", ttl = "1h" }}
steps = [ {{ name = "s", op = "run_command", with = {{ argv = {script("import sys; open(sys.argv[1], 'a').write('x')", str(count))} }} }} ]
""")
    first, _, _ = run(data_dir, project, "cached")
    assert first.state == TaskState.COMPLETED and first.result["cache_key"] == "none-a"
    second, kids, _ = run(data_dir, project, "cached")
    assert second.state == TaskState.COMPLETED and second.result["cache_hit"] == first.id
    assert [(k.state, k.error) for k in kids] == [(TaskState.SKIPPED, f"same key as run #{first.id}")]
    assert kids[0].phase == f"skipped: same key as run #{first.id}"
    third, _, _ = run(data_dir, project, "cached", params={"v": "b"})  # another key: runs
    assert "cache_hit" not in third.result
    assert count.read_text() == "xx"


def test_group_order_parallelism_and_dependency_cascade(tmp_path: Path, data_dir: Path) -> None:
    sleep = q(["sleep", "1"])
    project = make_project(tmp_path, f"""
[groups.night]
description = "nightly"

[automations.a]
group = "night"
steps = [ {{ op = "run_command", with = {{ argv = {sleep} }} }} ]

[automations.b]
group = "night"
steps = [ {{ op = "run_command", with = {{ argv = {sleep} }} }} ]

[automations.c]
group = "night"
depends_on = ["a", "b"]
steps = [ {{ op = "run_command", with = {{ argv = {FAIL} }} }} ]

[automations.d]
group = "night"
depends_on = ["c"]
steps = [ {{ op = "run_command", with = {{ argv = {OK} }} }} ]

[automations.e]
group = "night"
depends_on = ["a"]
steps = [ {{ op = "run_command", with = {{ argv = {OK} }} }} ]
""")
    parent, kids, _ = run(data_dir, project, group="night")
    by = {k.title.removeprefix("Automation "): k for k in kids}
    assert parent.state == TaskState.FAILED and parent.title == "Group night"
    assert {n: k.state for n, k in by.items()} == {"a": TaskState.COMPLETED, "b": TaskState.COMPLETED,
                                                   "c": TaskState.FAILED, "d": TaskState.CANCELED,
                                                   "e": TaskState.COMPLETED}
    assert by["d"].error == "dependency c failed"
    a, b, c, e = by["a"], by["b"], by["c"], by["e"]
    assert a.started and b.started and a.ended and b.ended and c.started and e.started
    assert a.started < b.ended and b.started < a.ended  # independent members ran at the same time
    assert c.started >= max(a.ended, b.ended) and e.started >= a.ended  # dependents waited
    assert parent.result["order"] == ["a", "b", "c", "e", "d"]


def test_removed_device_fails_naming_it(tmp_path: Path, data_dir: Path) -> None:
    project = make_project(tmp_path, """
[automations.ping]
steps = [ { op = "run_command", with = { argv = ["true"], device = "gone" } } ]
""")
    parent, kids, _ = run(data_dir, project, "ping")
    assert parent.state == TaskState.FAILED
    assert "device 'gone' is not in the project (was it removed?)" in (kids[0].error or "")


def test_a_broken_definition_beside_working_ones_runs_them(tmp_path: Path, data_dir: Path) -> None:
    project = make_project(tmp_path, f"""
[automations.broken]
steps = [ {{ op = "teleport" }} ]

[automations.fine]
steps = [ {{ op = "run_command", with = {{ argv = {OK} }} }} ]
""")
    parent, _, _ = run(data_dir, project, "fine")
    assert parent.state == TaskState.COMPLETED
    with pytest.raises(AutomationError, match="unknown op 'teleport'"):
        asyncio.run(start.prepare(project, automation="broken"))


def test_a_killed_run_becomes_interrupted_with_its_children(tmp_path: Path, data_dir: Path) -> None:
    marker = f"nixdeck-auto-{uuid.uuid4().hex}"
    project = make_project(tmp_path, f"""
[automations.long]
steps = [ {{ op = "run_command", with = {{ argv = {q(["sh", "-c", "sleep 300; :", marker])} }} }},
          {{ op = "run_command", with = {{ argv = {OK} }} }} ]
""")
    with nixdeck_bg(data_dir, "auto", "--project", str(project), "run", "long") as proc:
        wait_for(lambda: db_rows(data_dir, "SELECT 1 FROM processes WHERE pid IS NOT NULL AND argv LIKE ?",
                                 (f"%{marker}%",)), "the step to run")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = TaskStore(data_dir)
    try:
        (parent,) = store.list_tasks(kinds=["automation"])
        assert parent.state == TaskState.INTERRUPTED
        assert [k.state for k in store.children(parent.id)] == [TaskState.INTERRUPTED]
    finally:
        store.close()
