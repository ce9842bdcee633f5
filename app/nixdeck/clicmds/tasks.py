"""`nixdeck tasks list|show|cancel|rerun|prune`: the task history from the command line."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from nixdeck.clicmds.common import (
    EXIT_FAILED,
    EXIT_OK,
    count,
    days,
    exit_code_for,
    fmt_duration,
    make_engine,
    open_store,
    print_json,
    run_tasks_live,
    seconds,
    task_id,
)
from nixdeck.core.tasks.context import tail_lines
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskState, project_key
from nixdeck.core.tasks.procs import is_alive
from nixdeck.core.tasks.store import TaskStore
from nixdeck.core.termtext import neutralise, neutralise_bytes

MAX_HELD = 1 << 20  # bytes of an unfinished line held back by `tasks log` (escapes are not cut)


def register(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list, inspect, cancel, re-run and prune tasks")
    tsub = p.add_subparsers(dest="tasks_cmd", required=True)

    ls = tsub.add_parser("list", help="list tasks, newest first")
    ls.add_argument("--state", action="append", choices=[s.value for s in TaskState])
    ls.add_argument("--kind", action="append")
    ls.add_argument("--device")
    ls.add_argument("--text")
    ls.add_argument("--project", help="only the tasks of this project (a flake directory)")
    ls.add_argument("--limit", type=count(1, 10**7), default=50)
    ls.add_argument("--all", action="store_true", help="include children and silent tasks")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    sh = tsub.add_parser("show", help="everything the details view shows")
    sh.add_argument("id", type=task_id)
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--lines", type=count(0, 10**6), default=20, help="output lines per stream (default 20)")
    sh.set_defaults(func=cmd_show)

    lg = tsub.add_parser("log", help="a task's full output (stdout and stderr of its processes), optionally followed")
    lg.add_argument("id", type=task_id)
    lg.add_argument("--stream", choices=["stdout", "stderr", "both"], default="both")
    lg.add_argument("--follow", "-f", action="store_true",
                    help="keep printing until the task ends; the exit code then says whether it completed")
    lg.add_argument("--raw", action="store_true",
                    help="the bytes as recorded (terminal control sequences are otherwise shown as text)")
    lg.set_defaults(func=cmd_log)

    ca = tsub.add_parser("cancel", help="cancel a task and its children")
    ca.add_argument("id", type=task_id)
    ca.add_argument("--wait", type=seconds, default=60.0, metavar="S",
                    help="seconds to wait for the task to end (default 60)")
    ca.set_defaults(func=cmd_cancel)

    rr = tsub.add_parser("rerun", help="a new task from a task's submission, linked to it")
    rr.add_argument("id", type=task_id)
    rr.add_argument("--force", action="store_true", help="user errors become warnings")
    rr.add_argument("--failed-only", action="store_true", help="only the failed children of a parent")
    rr.add_argument("--json", action="store_true")
    rr.set_defaults(func=cmd_rerun)

    pr = tsub.add_parser("prune", help="delete old finished tasks and their logs")
    pr.add_argument("--older-than-days", type=days)
    pr.add_argument("--keep", type=count(0, 2**62), help="keep this many newest top-level tasks")
    pr.set_defaults(func=cmd_prune)


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    tasks = store.list_tasks(
        states=args.state, kinds=args.kind, device=args.device, text=args.text,
        top_level=not args.all and not args.device, include_silent=args.all, limit=args.limit,
        project=project_key(args.project) if args.project else None,
    )
    if args.json:
        print_json([t.summary_json() for t in tasks])
        return EXIT_OK
    for t in tasks:
        dev = neutralise(",".join(t.devices) or "-")
        print(f"{t.id:>6}  {t.state.label:<24} {t.kind:<16} {dev:<16} {t.author:<10} "
              f"{t.created:%Y-%m-%d %H:%M:%S}  {fmt_duration(t.duration):>8}  {neutralise(t.title)}")
    return EXIT_OK


def details(store: TaskStore, task_id: int, lines: int = 20) -> dict[str, Any]:
    """Everything about one task, as the details view and `tasks show --json` give it."""
    t = store.get(task_id)
    procs = []
    for p in store.processes(task_id):
        d = p.model_dump(mode="json")
        d["shell"] = shlex.join(p.argv)
        d["stdout_tail"] = tail_lines(p.stdout_path, lines) if p.stdout_path else []
        d["stderr_tail"] = tail_lines(p.stderr_path, lines) if p.stderr_path else []
        procs.append(d)
    return {
        "task": t.summary_json() | {
            "project": t.project, "timeout": t.timeout, "warnings": t.warnings, "result": t.result,
            "attempt": t.attempt, "max_attempts": t.max_attempts, "submission": t.submission,
        },
        "children": [c.summary_json() for c in store.children(task_id)],
        "reruns": [r.summary_json() for r in store.reruns(task_id)],
        "jobs": [{"name": j.name, "state": j.state.value, "steps": [s.model_dump(mode="json") for s in j.steps]}
                 for j in store.jobs(task_id)],
        "processes": procs,
        "messages": [m.model_dump(mode="json", exclude={"task_id"}) for m in store.messages(task_id)],
    }


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    d = details(store, args.id, args.lines)
    if args.json:
        print_json(d)
        return EXIT_OK
    t = d["task"]

    def w(text: str) -> None:  # what devices and commands printed must not drive the terminal
        sys.stdout.write(neutralise(text))
    w(f"Task {t['id']}: {t['title']}\n")
    for k in ("kind", "state", "phase", "author", "devices", "parent_id", "origin_id", "forced", "created", "started",
              "ended", "duration", "timeout", "attempt", "error"):
        v = t[k]
        if k == "duration":
            v = fmt_duration(v)
        if v not in (None, [], False, ""):
            w(f"  {k:<10} {v}\n")
    if t["warnings"]:
        w("Warnings:\n" + "".join(f"  - {x}\n" for x in t["warnings"]))
    if t["result"]:
        w("Result:\n")
        for k, v in t["result"].items():
            w(f"  {k}: {v}\n")
    w("Submission:\n")
    for k, v in t["submission"].items():
        w(f"  {k}: {v}\n")
    if d["children"]:
        w("Children:\n" + "".join(f"  {c['id']:>6} {c['state']:<24} {c['title']}\n" for c in d["children"]))
    if d["reruns"]:
        w("Re-runs:\n" + "".join(f"  {c['id']:>6} {c['state']:<24} {c['title']}\n" for c in d["reruns"]))
    for j in d["jobs"]:
        w(f"Job {j['name']} [{j['state']}]\n")
        for s in j["steps"]:
            w(f"  {s['index'] + 1}. {s['name']} [{s['state']}] {s['detail']}\n")
    for level in ("error", "warning", "notice", "info"):
        ms = [m for m in d["messages"] if m["level"] == level]
        if ms:
            w(f"{level.capitalize()}s:\n")
            for m in ms:
                loc = f" at {m['file']}:{m['line']}:{m['column'] or 0}" if m["file"] else ""
                w(f"  - {m['message']}{loc}\n")
    for p in d["processes"]:
        w(f"Process {p['id']}: {p['shell']}\n  cwd {p['cwd'] or '-'}  exit {p['exit_code']}"
          f"{'  signal ' + str(p['signal']) if p['signal'] else ''}\n")
        if p["env"]:
            w("  env " + " ".join(f"{k}={v}" for k, v in p["env"].items()) + "\n")
        if p.get("remote"):  # what really ran over asyncssh; the line above reproduces it with OpenSSH
            r = p["remote"]
            w(f"  ran on {r.get('connection')} ({r.get('via')}), key {r.get('identity_file') or 'agent/default'}, "
              f"host key {r.get('host_key_type') or ''} {r.get('host_key_fingerprint') or '?'}\n"
              f"  remote command {r.get('command')}\n")
        for stream in ("stdout", "stderr"):
            if p[f"{stream}_tail"]:
                w(f"  {stream} ({p[f'{stream}_size']} bytes, {p[f'{stream}_path']}):\n")
                w("".join(f"    {ln}\n" for ln in p[f"{stream}_tail"]))
    return EXIT_OK if t["state"] in ("completed", "completed_with_warnings") or t["ended"] is None else EXIT_FAILED


def cmd_log(args: argparse.Namespace) -> int:
    """Print every process's output of a task in order; with --follow, also what is appended later.

    Control sequences (OSC 52 clipboard writes, title changes…) are shown as text unless --raw;
    with --follow the exit code is the task's: non-zero unless it completed."""
    import time

    store = open_store(args)
    store.get(args.id)  # unknown id: a clear error
    streams = ["stdout", "stderr"] if args.stream == "both" else [args.stream]
    offsets: dict[str, int] = {}
    partial: dict[str, bytes] = {}
    out = sys.stdout.buffer

    def emit(key: str, data: bytes, *, final: bool = False) -> None:
        if args.raw:
            out.write(data)
            return
        data = partial.pop(key, b"") + data
        cut = len(data) if final else data.rfind(b"\n") + 1
        if not final and cut == 0 and len(data) > MAX_HELD:
            cut = len(data)  # a huge line without newline: shown in pieces
        if cut:
            out.write(neutralise_bytes(data[:cut]))
        if data[cut:]:
            partial[key] = data[cut:]

    def pump() -> None:
        for p in store.processes(args.id):
            for stream in streams:
                path = getattr(p, f"{stream}_path")
                if not path:
                    continue
                key = f"{p.id}:{stream}"
                try:
                    with open(path, "rb") as f:
                        f.seek(offsets.get(key, 0))
                        while chunk := f.read(1 << 20):
                            if key not in offsets and args.stream == "both":
                                head = neutralise(shlex.join(p.argv)[:120])
                                out.write(f"==> process {p.id} {stream}: {head}\n".encode())
                            offsets[key] = offsets.get(key, 0) + len(chunk)
                            emit(key, chunk)
                except FileNotFoundError:
                    continue
        out.flush()

    pump()
    while args.follow:
        t = store.get(args.id)
        if t.state.terminal:
            break
        if not is_alive(t.owner_pid, t.owner_start):
            store.recover()  # its NixDeck is gone (killed, crashed): nothing will append any more
            break
        time.sleep(0.25)
        pump()
    pump()
    for key in list(partial):
        emit(key, b"", final=True)
    out.flush()
    if args.follow:
        return exit_code_for(store.get(args.id))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    import asyncio

    async def go() -> int:
        store = open_store(args)
        engine = make_engine(store, args)
        done = await engine.cancel(args.id)
        t = store.get(args.id)
        if not done:
            print(f"task {args.id} had already ended ({t.state.label})")
            return EXIT_OK
        try:
            t = await asyncio.wait_for(engine.wait(args.id), timeout=args.wait)
        except TimeoutError:
            t = store.get(args.id)
            owner = f" (pid {t.owner_pid})" if t.owner_pid else ""
            print(f"nixdeck: asked to cancel task {args.id}, but it is still {t.state.label} after {args.wait:g} s: "
                  f"the NixDeck running it{owner} has not acted yet (is it stopped?)", file=sys.stderr)
            return EXIT_FAILED
        print(f"task {args.id}: {t.state.label}")
        return EXIT_OK

    return asyncio.run(go())


def cmd_rerun(args: argparse.Namespace) -> int:
    async def submit(engine: TaskEngine) -> list[int]:
        return [await engine.rerun(args.id, force=args.force, failed_only=args.failed_only)]

    import asyncio

    return asyncio.run(run_tasks_live(args, submit))


def cmd_prune(args: argparse.Namespace) -> int:
    if args.older_than_days is None and args.keep is None:
        print("nixdeck tasks prune: give --older-than-days and/or --keep", file=sys.stderr)
        return 2
    store = open_store(args)
    n = store.prune(older_than_days=args.older_than_days, keep=args.keep)
    print(f"pruned {n} task(s)")
    return EXIT_OK
