"""`nixdeck run` and `nixdeck tasks …` as a user runs them: JSON shapes, messages, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from engine_helpers import cli_json, nixdeck

SUMMARY_KEYS = {"id", "kind", "title", "state", "author", "parent_id", "origin_id", "created", "started", "ended"}


def test_run_list_show_json(data_dir: Path) -> None:
    ok = nixdeck(data_dir, "run", "--", "sh", "-c", "echo hello; echo oops >&2")
    assert ok.returncode == 0, ok.stderr
    assert "hello" in ok.stdout and "oops" in ok.stderr
    assert "completed" in ok.stderr

    bad = nixdeck(data_dir, "run", "--json", "--", "sh", "-c", "exit 7")
    assert bad.returncode == 1
    [b] = json.loads(bad.stdout)
    assert b["state"] == "failed" and "exited with code 7" in b["error"]

    tasks = cli_json(nixdeck(data_dir, "tasks", "list", "--json"))
    assert [t["id"] for t in tasks] == [2, 1]
    for t in tasks:
        assert SUMMARY_KEYS <= set(t), t
        assert t["kind"] == "run_command" and t["parent_id"] is None and t["origin_id"] is None
        assert t["created"] and t["started"] and t["ended"]
    assert [t["state"] for t in tasks] == ["failed", "completed"]
    assert cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--state", "failed"))[0]["id"] == 2
    assert cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--text", "hello"))[0]["id"] == 1
    assert cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--kind", "build_device")) == []

    show = cli_json(nixdeck(data_dir, "tasks", "show", "1", "--json"))
    assert set(show) == {"task", "children", "reruns", "jobs", "processes", "messages"}
    assert show["task"]["id"] == 1 and show["task"]["result"] == {"exit_code": 0}
    assert show["task"]["submission"]["argv"] == ["sh", "-c", "echo hello; echo oops >&2"]
    [p] = show["processes"]
    assert p["argv"] == ["sh", "-c", "echo hello; echo oops >&2"] and p["exit_code"] == 0
    assert p["stdout_tail"] == ["hello"] and p["stderr_tail"] == ["oops"]
    assert show["jobs"][0]["steps"][0]["state"] == "completed"

    text = nixdeck(data_dir, "tasks", "show", "2")
    assert text.returncode == 1, "show exits non-zero for a task that did not complete"
    assert "exited with code 7" in text.stdout
    assert nixdeck(data_dir, "tasks", "show", "1").returncode == 0


def test_unknown_task_is_a_clear_message(data_dir: Path) -> None:
    for args in (["show", "999"], ["cancel", "999"], ["rerun", "999"]):
        res = nixdeck(data_dir, "tasks", *args)
        assert res.returncode == 1, (args, res.stderr)
        assert res.stderr.strip() == "nixdeck: no task with id 999"
        assert "Traceback" not in res.stderr


def test_missing_executable(data_dir: Path) -> None:
    res = nixdeck(data_dir, "run", "--json", "--env", "PATH=/nonexistent", "--", "nix", "--version")
    assert res.returncode == 1
    [t] = json.loads(res.stdout)
    assert t["state"] == "failed"
    assert t["error"].startswith("nix not found: install it with")
    res = nixdeck(data_dir, "run", "--json", "--", "/no/such/program-xyz")
    [t] = json.loads(res.stdout)
    assert t["state"] == "failed" and "/no/such/program-xyz not found" in t["error"]
    assert "Traceback" not in res.stderr


def test_bad_input_is_usage_error(data_dir: Path) -> None:
    res = nixdeck(data_dir, "run")
    assert res.returncode == 2 and "give a command" in res.stdout + res.stderr
    res = nixdeck(data_dir, "run", "--env", "NOEQUALS", "--", "true")
    assert res.returncode == 2
    res = nixdeck(data_dir, "run", "--secret-env", "SURELY_NOT_SET_XYZ", "--", "true")
    assert res.returncode == 2 and "not set" in res.stdout + res.stderr
    res = nixdeck(data_dir, "run", "--cwd", "/no/such/dir", "--json", "--", "true")
    assert res.returncode == 1 and "does not exist" in json.loads(res.stdout)[0]["error"]


def test_rerun_and_force_and_timeout(data_dir: Path) -> None:
    assert nixdeck(data_dir, "run", "--", "sh", "-c", "exit 3").returncode == 1
    res = nixdeck(data_dir, "tasks", "rerun", "1", "--json")
    assert res.returncode == 1
    [t] = json.loads(res.stdout)
    assert (t["id"], t["origin_id"], t["forced"], t["state"]) == (2, 1, False, "failed")
    res = nixdeck(data_dir, "tasks", "rerun", "2", "--force", "--json")
    [t] = json.loads(res.stdout)
    assert (t["origin_id"], t["forced"]) == (2, True)

    assert nixdeck(data_dir, "run", "--", "true").returncode == 0
    res = nixdeck(data_dir, "tasks", "rerun", str(t["id"] + 1), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)[0]["state"] == "completed"

    res = nixdeck(data_dir, "run", "--timeout", "0.5", "--json", "--", "sleep", "30")
    assert res.returncode == 1
    assert json.loads(res.stdout)[0]["state"] == "timed_out"

    res = nixdeck(data_dir, "tasks", "rerun", "1", "--failed-only")
    assert res.returncode == 1 and "no failed children" in res.stderr


def test_prune_and_silent(data_dir: Path) -> None:
    for i in range(3):
        assert nixdeck(data_dir, "run", "--", "sh", "-c", f"echo {i}").returncode == 0
    assert nixdeck(data_dir, "run", "--silent", "--", "true").returncode == 0
    assert [t["id"] for t in cli_json(nixdeck(data_dir, "tasks", "list", "--json"))] == [3, 2, 1]
    assert [t["id"] for t in cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--all"))] == [4, 3, 2, 1]
    assert (data_dir / "logs" / "1").exists()
    res = nixdeck(data_dir, "tasks", "prune", "--keep", "2")
    assert res.returncode == 0 and "pruned 2" in res.stdout
    assert [t["id"] for t in cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--all"))] == [4, 3]
    assert not (data_dir / "logs" / "1").exists()
    assert nixdeck(data_dir, "tasks", "prune").returncode == 2


BAD_VALUES = [
    ["tasks", "prune", "--keep", "-1"],
    ["tasks", "prune", "--older-than-days", "-1"],
    ["tasks", "prune", "--older-than-days", "nan"],
    ["tasks", "prune", "--older-than-days", "inf"],
    ["tasks", "prune", "--older-than-days", "1e21"],
    ["tasks", "prune", "--keep", "99999999999999999999"],
    ["tasks", "show", "99999999999999999999"],
    ["tasks", "log", "99999999999999999999"],
    ["tasks", "cancel", "99999999999999999999"],
    ["tasks", "rerun", "-5"],
    ["tasks", "show", "1", "--lines", "-3"],
    ["tasks", "cancel", "1", "--wait", "nan"],
    ["tasks", "list", "--limit", "99999999999999999999"],
    ["run", "--timeout", "nan", "--", "true"],
    ["run", "--timeout", "inf", "--", "true"],
    ["run", "--timeout", "1e21", "--", "true"],
    ["run", "--timeout", "-1", "--", "true"],
    ["run", "--retries", "99999999999999999999", "--", "true"],
    ["run", "--device", "a;rm -rf /", "--", "true"],
    ["run", "--device", "../../x", "--", "true"],
    ["run", "--device", "d" * 10_000, "--", "true"],
    ["--author", "mallory", "run", "--", "true"],
    ["--author", "", "tasks", "list"],
    ["deploy", "--limit", "0"],
    ["build", "--timeout", "inf", "web1"],
    ["ssh", "run", "--timeout", "nan", "web1", "--", "true"],
]


def test_bad_values_are_one_line_usage_errors(data_dir: Path) -> None:
    assert nixdeck(data_dir, "run", "--", "true").returncode == 0
    before = cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--all"))
    for argv in BAD_VALUES:
        res = nixdeck(data_dir, *argv)
        assert res.returncode == 2, (argv, res.stderr)
        assert "Traceback" not in res.stderr, argv
        assert len(res.stderr.strip().splitlines()) == 1, (argv, res.stderr)
        assert len(res.stderr) < 400, "a 10k-character value is not echoed back"
        assert res.stdout == "", argv
    assert cli_json(nixdeck(data_dir, "tasks", "list", "--json", "--all")) == before, "nothing ran, nothing was pruned"
    assert not (data_dir / "locks").exists() or list((data_dir / "locks").iterdir()) == []


def test_allowed_authors(data_dir: Path) -> None:
    import getpass

    for author in ("scheduler", "automation", getpass.getuser()):
        res = nixdeck(data_dir, "--author", author, "run", "--json", "--", "true")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)[0]["author"] == author
    assert nixdeck(data_dir, "run", "--device", "web_1-a", "--", "true").returncode == 0
