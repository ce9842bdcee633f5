"""Secrets (SecretStr, secret_field, --secret-env) never reach the database file, its WAL or the log files,
even when the command prints them, quotes them in an error, or prints them inside a huge line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from engine_helpers import cli_env, nixdeck, run_engine, script
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.errors import TaskFailed
from nixdeck.core.tasks.events import Event, OutputAppended, TaskChanged
from nixdeck.core.tasks.model import TaskState
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import REDACTED, Submission, redact, secret_field, secret_values

TOKEN = "tok-7f3a9c1e55d2"
PASSWORD = "pw-Qx81zzTT04"
NESTED = "nest-ee19ab77c3"
ALL = [TOKEN, PASSWORD, NESTED]

ECHO = script(
    """
for name in ('A', 'B', 'C'):
    v = os.environ[name]
    print(f"{name}={v}", flush=True)
    print(f"err {name}={v}", file=sys.stderr, flush=True)
# one 3 MiB line without a newline: the runner passes it on in pieces, never splitting a secret
sys.stdout.write((os.environ['A'] + 'x') * (3 * 1024 * 1024 // (len(os.environ['A']) + 1)))
sys.stdout.flush()
"""
)


class SecretSub(Submission):
    token: SecretStr
    password: str = secret_field()
    nested: dict[str, SecretStr] = Field(default_factory=dict)
    plain: str = "visible"


class SecretOp(Operation):
    kind = "test_secret"
    submission_type = SecretSub

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, SecretSub)
        env = {"A": sub.token.get_secret_value(), "B": sub.password, "C": sub.nested["k"].get_secret_value()}
        async with ctx.step("echo"):
            # the token is also in argv: a careless operation must not leak it either
            await ctx.run_process([sys.executable, "-c", ECHO, sub.token.get_secret_value()], env=env)
        ctx.warn(f"warning that quotes {sub.password}")
        raise TaskFailed(f"login with {sub.token.get_secret_value()} refused")


def _leaks(data_dir: Path, secrets: list[str]) -> list[str]:
    hits = []
    for p in sorted(data_dir.rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            hits += [f"{s} in {p.name}" for s in secrets if s.encode() in raw]
    return hits


def test_redact_and_secret_values() -> None:
    sub = SecretSub(token=SecretStr(TOKEN), password=PASSWORD, nested={"k": SecretStr(NESTED)})
    assert redact(sub) == {"token": REDACTED, "password": REDACTED, "nested": {"k": REDACTED}, "plain": "visible"}
    assert sorted(secret_values(sub)) == sorted(ALL)


def test_secrets_never_stored(data_dir: Path) -> None:
    texts: list[str] = []

    async def scenario(engine: TaskEngine) -> None:
        engine.register(SecretOp())

        def on(ev: Event) -> None:
            if isinstance(ev, OutputAppended):
                texts.append(ev.text)
            elif isinstance(ev, TaskChanged):
                texts.append(f"{ev.task.error} {ev.task.warnings}")

        engine.subscribe(on)
        sub = SecretSub(token=SecretStr(TOKEN), password=PASSWORD, nested={"k": SecretStr(NESTED)})
        t = await engine.wait(await engine.submit("test_secret", sub))
        assert t.state == TaskState.FAILED
        assert t.error == "login with *** refused"
        assert t.warnings == ["warning that quotes ***"]
        [p] = engine.store.processes(t.id)
        assert p.argv[-1] == "***"
        assert p.stdout_size > 700_000  # sizes count the redacted bytes
        out = Path(p.stdout_path or "").read_bytes()
        assert b"A=***\nB=***\nC=***\n" in out
        assert out.count(b"***x") > 180_000
        # keep the WAL: read the bytes while the store is still open
        assert _leaks(data_dir, ALL) == []
        await asyncio.sleep(0)

    run_engine(data_dir, scenario)
    assert _leaks(data_dir, ALL) == []
    joined = "".join(texts)
    assert "A=***" in joined and not any(s in joined for s in ALL)


def test_cli_secret_env_never_stored(data_dir: Path) -> None:
    secret = "cli-s3cr3t-9d8e7f"
    api = "api-0a1b2c3d4e"
    env = cli_env(data_dir, MYSEC=secret)
    res = nixdeck(
        data_dir, "run", "--secret-env", "MYSEC", "--env", f"API_TOKEN={api}", "--env", "PLAIN=ok", "--",
        "sh", "-c", 'echo "out $MYSEC"; echo "err $MYSEC" >&2; test "$API_TOKEN" = "$1"', "sh", api, env=env,
    )
    assert res.returncode == 0, res.stderr
    assert secret not in res.stdout + res.stderr
    assert "out ***" in res.stdout and "err ***" in res.stderr
    hits = _leaks(data_dir, [secret])
    assert hits == []
    # API_TOKEN is not declared secret: it is redacted by its name in the stored env and submission
    show = nixdeck(data_dir, "tasks", "show", "1", "--json", env=env)
    assert api not in show.stdout
    d = json.loads(show.stdout)
    assert d["task"]["submission"]["env"] == {"API_TOKEN": REDACTED, "PLAIN": "ok"}
    assert d["task"]["submission"]["secret_env"] == {"MYSEC": REDACTED}
    assert d["processes"][0]["env"] == {"API_TOKEN": REDACTED, "MYSEC": REDACTED, "PLAIN": "ok"}
    rerun = nixdeck(data_dir, "tasks", "rerun", "1", env=env)
    assert rerun.returncode == 1 and "secrets" in rerun.stderr
    assert os.environ.get("MYSEC") is None


def test_cli_secrets_never_leave_through_a_side_door(tmp_path: Path, data_dir: Path) -> None:
    """A --secret-env value and a redacted --env API_TOKEN value placed in argv, cwd, another env
    value, a program path (error and step detail) and the output: never in the data dir's bytes
    (DB, WAL, logs) nor on the screen of any command."""
    import sqlite3

    secret = "sd-Zq81Kk4402x"
    api = "api-77hh2jQ9"
    env = cli_env(data_dir, MYSEC=secret)
    cwd = tmp_path / f"cwd-{secret}"
    cwd.mkdir()
    data_dir.mkdir(exist_ok=True)
    assert nixdeck(data_dir, "tasks", "list", env=env).returncode == 0
    holder = sqlite3.connect(data_dir / "history.sqlite3")  # keeps the WAL file in place while we look
    holder.execute("SELECT count(*) FROM tasks").fetchone()
    screens = []
    ok = nixdeck(
        data_dir, "run", "--secret-env", "MYSEC", "--env", f"API_TOKEN={api}", "--env", f"OTHER=pre-{secret}-post",
        "--cwd", str(cwd), "--",
        "sh", "-c", 'echo "args $1 $2"; echo "env $API_TOKEN $MYSEC $OTHER"; echo "pwd $(pwd)" >&2', "sh", secret, api,
        env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "args *** ***" in ok.stdout and "env *** *** pre-***-post" in ok.stdout
    assert "[task 1] Run sh -c" in ok.stderr and "***" in ok.stderr
    bad = nixdeck(data_dir, "run", "--secret-env", "MYSEC", "--json", "--", f"/nonexistent/{secret}/prog", env=env)
    assert bad.returncode == 1
    [t] = json.loads(bad.stdout)
    assert t["error"] == "/nonexistent/***/prog not found: check that it is installed and on PATH", t["error"]
    screens += [ok.stdout, ok.stderr, bad.stdout, bad.stderr]
    for args in (["tasks", "show", "1"], ["tasks", "show", "1", "--json"], ["tasks", "show", "2"],
                 ["tasks", "show", "2", "--json"], ["tasks", "log", "1"], ["tasks", "list", "--all"]):
        shown = nixdeck(data_dir, *args, env=env)
        screens += [shown.stdout, shown.stderr]
    d = json.loads(nixdeck(data_dir, "tasks", "show", "1", "--json", env=env).stdout)
    assert d["task"]["submission"]["argv"] == ["sh", "-c", d["task"]["submission"]["argv"][2], "sh", "***", "***"]
    assert d["task"]["submission"]["cwd"].endswith("cwd-***")
    assert d["task"]["submission"]["env"]["OTHER"] == "pre-***-post"
    assert d["processes"][0]["cwd"].endswith("cwd-***") and d["processes"][0]["env"]["OTHER"] == REDACTED
    d2 = json.loads(nixdeck(data_dir, "tasks", "show", "2", "--json", env=env).stdout)
    assert "/nonexistent/***/prog" in d2["task"]["title"] and "***" in d2["jobs"][0]["steps"][0]["detail"]
    for screen in screens:
        assert secret not in screen and api not in screen
    wal = data_dir / "history.sqlite3-wal"
    assert wal.exists() and wal.stat().st_size > 0, "the WAL was kept for the check"
    assert _leaks(data_dir, [secret, api]) == []
    holder.close()


def test_values_under_secret_names_are_known_secrets() -> None:
    from nixdeck.core.ops.run_command import RunCommandSubmission

    sub = RunCommandSubmission(argv=["true"], env={"API_TOKEN": "tok-1", "GIT_AUTHOR_NAME": "Alice", "DB_AUTH": "a-2"},
                               secret_env={"S": SecretStr("s-3")})
    assert secret_values(sub) == ["tok-1", "a-2", "s-3"]  # longest first
    assert redact(sub)["env"] == {"API_TOKEN": REDACTED, "GIT_AUTHOR_NAME": "Alice", "DB_AUTH": REDACTED}


class BuggySub(Submission):
    token: SecretStr


class BuggyOp(Operation):
    kind = "test_buggy_secret"
    submission_type = BuggySub

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, BuggySub)
        raise RuntimeError(f"a bug that quotes {sub.token.get_secret_value()}")


def test_a_bugs_traceback_is_logged_without_secrets(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(engine: TaskEngine) -> None:
        engine.register(BuggyOp())
        t = await engine.wait(await engine.submit("test_buggy_secret", BuggySub(token=SecretStr(TOKEN))))
        assert t.state == TaskState.FAILED and t.error is not None and TOKEN not in t.error

    with caplog.at_level("ERROR"):
        run_engine(data_dir, scenario)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Traceback" in logged and "a bug that quotes ***" in logged and TOKEN not in logged
    assert all(r.exc_info is None for r in caplog.records)
