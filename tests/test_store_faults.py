"""Damaged storage is an error message, never a traceback or a stuck task: real pages of a real
history corrupted, and a real full disk (a small tmpfs in its own mount namespace)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine_helpers import APP_DIR, PY, nixdeck
from nixdeck import cli
from nixdeck.core.tasks.errors import StoreError
from nixdeck.core.tasks.model import MessageRecord, ProcessRecord, StepRecord, TaskRecord, TaskState
from nixdeck.core.tasks.store import DB_NAME, TaskStore

PAGE = 4096


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _history(data_dir: Path, n: int = 150) -> int:
    """A real history of n finished tasks with steps, processes and messages; returns its page count."""
    store = TaskStore(data_dir)
    for i in range(n):
        t = store.insert_task(TaskRecord(kind="run_command", title=f"Run task {i} " + "x" * 60,
                                         state=TaskState.COMPLETED, devices=[f"dev{i % 7}"],
                                         submission={"argv": ["echo", str(i)]}, result={"exit_code": 0}))
        store.save_step(t.id, StepRecord(job="command", index=0, name="run", state=TaskState.COMPLETED))
        store.insert_process(ProcessRecord(task_id=t.id, argv=["echo", str(i)], env={"A": "b"}))
        store.add_messages(t.id, [MessageRecord(level="info", message=f"message {i} " + "y" * 40)])
    store.close()  # the last close checkpoints the WAL into the file
    pages = (data_dir / DB_NAME).stat().st_size // PAGE
    assert pages > 20
    return pages


COMMANDS = (
    ["tasks", "list", "--all", "--json"],
    ["tasks", "list", "--device", "dev3"],
    ["tasks", "show", "7"],
    ["tasks", "show", "120", "--json"],
    ["tasks", "log", "40"],
    ["run", "--", "true"],
    ["tasks", "prune", "--keep", "100"],
)


def _check_command(data_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    db = data_dir / DB_NAME
    before, inode = _digest(db), db.stat().st_ino
    rc = cli.main(["--data-dir", str(data_dir), *argv])  # anything but a clean exit code raises here
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert db.exists() and db.stat().st_ino == inode, "the file is never replaced"
    if rc != 0:
        lines = err.strip().splitlines()
        if argv[0] != "run":
            assert len(lines) == 1, (argv, err)
        else:  # a task that started before the damage was hit: its progress lines, then the reason
            lines = [ln for ln in lines if str(db) in ln] or lines
        assert str(db) in lines[-1] and "move it away" in lines[-1], (argv, err)
        if argv[0] == "tasks" and argv[1] in ("list", "show", "log"):
            assert _digest(db) == before, "a file NixDeck could not read is kept as it was"


@pytest.mark.parametrize("style", ["garbage-page", "flipped-bytes"])
def test_page_corruption_is_a_message_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], style: str
) -> None:
    pristine = tmp_path / "pristine"
    pages = _history(pristine)
    rnd = random.Random(f"nixdeck-{style}")
    failures = 0
    for page in rnd.sample(range(2, pages + 1), min(16, pages - 1)):
        trial = tmp_path / f"trial-{page}"
        shutil.copytree(pristine, trial)
        db = trial / DB_NAME
        raw = bytearray(db.read_bytes())
        start = (page - 1) * PAGE
        if style == "garbage-page":
            raw[start + 8 : start + PAGE] = rnd.randbytes(PAGE - 8)
        else:
            for _ in range(24):
                raw[start + rnd.randrange(PAGE)] ^= 1 << rnd.randrange(8)
        db.write_bytes(bytes(raw))
        for argv in COMMANDS:
            _check_command(trial, argv, capsys)
        try:
            TaskStore(trial).list_tasks()
        except StoreError:
            failures += 1
    assert failures, "some corruption was noticed (else this test would test nothing)"


def test_damaged_history_on_screen(tmp_path: Path) -> None:
    """The real CLI: one line naming the file, exit 1, the file kept byte for byte."""
    data_dir = tmp_path / "data"
    pages = _history(data_dir, 60)
    db = data_dir / DB_NAME
    raw = bytearray(db.read_bytes())
    for page in range(2, pages + 1):
        raw[(page - 1) * PAGE + 8 : page * PAGE] = b"\xa5" * (PAGE - 8)
    db.write_bytes(bytes(raw))
    before = _digest(db)
    for argv in (["tasks", "list"], ["run", "--", "true"], ["tasks", "show", "3"]):
        res = nixdeck(data_dir, *argv)
        assert res.returncode == 1, res
        assert "Traceback" not in res.stderr
        [line] = res.stderr.strip().splitlines()
        assert line.startswith(f"nixdeck: the task history {db}") and "move it away" in line, line
    assert _digest(db) == before


def test_a_row_that_no_longer_decodes_is_a_damaged_record(data_dir: Path) -> None:
    store = TaskStore(data_dir)
    tid = store.insert_task(TaskRecord(kind="record", title="t", state=TaskState.COMPLETED)).id
    store.close()
    conn = sqlite3.connect(data_dir / DB_NAME)
    conn.execute("UPDATE tasks SET state = 'half-eaten', result = '{\"x' WHERE id = ?", (tid,))
    conn.commit()
    conn.close()
    store = TaskStore(data_dir)
    with pytest.raises(StoreError, match=r"is damaged \(damaged record in tasks \(id 1\)"):
        store.get(tid)
    store.close()


# -- a full disk ----------------------------------------------------------------------------------
FULL_DISK = r"""
import json, os, sqlite3, subprocess, sys, tempfile
mnt = tempfile.mkdtemp(prefix="nixdeck-tmpfs-")
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], check=True)
data = os.path.join(mnt, "data")
env = dict(os.environ, NIXDECK_DATA_DIR=data, PYTHONPATH=sys.argv[1])
# a command that prints far more than the disk holds, then would sleep for ever
writer = "import sys, time\nfor i in range(200000):\n    sys.stdout.write('%06d ' % i + 'z' * 90 + '\\n')\nsys.stdout.flush()\ntime.sleep(600)"
res = subprocess.run([sys.executable, "-m", "nixdeck", "run", "--json", "--", sys.executable, "-c", writer],
                     env=env, capture_output=True, text=True, timeout=300)
conn = sqlite3.connect(os.path.join(data, "history.sqlite3"))
rows = conn.execute("SELECT id, state, error FROM tasks").fetchall()
procs = conn.execute("SELECT pid, ended FROM processes").fetchall()
steps = conn.execute("SELECT state FROM steps").fetchall()
conn.close()
alive = []
for pid, _ in procs:
    try:
        st = open(f"/proc/{pid}/stat").read()
        alive += [pid] if st[st.rfind(")") + 2] != "Z" else []
    except OSError:
        pass
print(json.dumps({"rc": res.returncode, "stdout": res.stdout[-3000:], "stderr": res.stderr[-3000:],
                  "tasks": rows, "procs": procs, "steps": steps, "alive": alive}))
"""


def test_full_disk_fails_the_task_at_once(tmp_path: Path) -> None:
    assert shutil.which("unshare"), "util-linux unshare is needed (we run as root in a mount namespace)"
    res = subprocess.run(["unshare", "-m", "--propagation", "private", PY, "-c", FULL_DISK, APP_DIR],
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["rc"] == 1, got
    assert "Traceback" not in got["stderr"], got["stderr"]
    [(tid, state, error)] = got["tasks"]
    assert state == "failed", got
    assert error.startswith("disk full writing ") and "/logs/1/" in error, error
    assert [s for (s,) in got["steps"]] == ["failed"]
    assert all(ended for _, ended in got["procs"]), "every process is recorded as ended"
    assert got["alive"] == [], "the writer was stopped, not left blocked on its pipe"
    [shown] = json.loads(got["stdout"][got["stdout"].index("[") :])
    assert shown["state"] == "failed" and shown["error"].startswith("disk full writing ")
    assert sys.platform.startswith("linux")


FULL_BEFORE = r"""
import json, os, subprocess, sys, tempfile
mnt = tempfile.mkdtemp(prefix="nixdeck-tmpfs-")
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
data = os.path.join(mnt, "data")
env = dict(os.environ, NIXDECK_DATA_DIR=data, PYTHONPATH=sys.argv[1])
def nixdeck(*args):
    r = subprocess.run([sys.executable, "-m", "nixdeck", *args], env=env, capture_output=True, text=True, timeout=120)
    return [r.returncode, r.stdout, r.stderr]
out = {"first": nixdeck("run", "--", "true")}
os.unlink(os.path.join(data, "history.sqlite3.reserve"))  # a reserve given back earlier
fd = os.open(os.path.join(mnt, "ballast"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"\0" * 1024)
except OSError:
    os.close(fd)
out["run"] = nixdeck("run", "--", "true")
out["list"] = nixdeck("tasks", "list")
os.unlink(os.path.join(mnt, "ballast"))
out["after"] = nixdeck("tasks", "list", "--json")
print(json.dumps(out))
"""


def test_disk_already_full_is_named_not_called_damage(tmp_path: Path) -> None:
    res = subprocess.run(["unshare", "-m", "--propagation", "private", PY, "-c", FULL_BEFORE, APP_DIR],
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["first"][0] == 0, got
    for key in ("run", "list"):
        rc, _, err = got[key]
        assert rc == 1 and "Traceback" not in err, got
        [line] = err.strip().splitlines()
        assert line.startswith("nixdeck: disk full writing ") and "damaged" not in line, line
    rc, out, _ = got["after"]
    assert rc == 0 and [t["state"] for t in json.loads(out)] == ["completed"], "the history was kept"
