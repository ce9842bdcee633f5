"""Terminal control sequences in what commands and devices print (OSC 52 clipboard writes, OSC 0
window titles, C1 controls) are shown as text by `tasks show`, `tasks log`, the live CLI and the
window's log view, never sent to the terminal; `tasks log --raw` gives the recorded bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

from pytestqt.qtbot import QtBot

from engine_helpers import PY, cli_env, db_rows, nixdeck, nixdeck_bg, wait_for
from nixdeck.core.termtext import neutralise

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
OSC0 = "\x1b]0;owned\x1b\\"
CSI_C1 = "\x9b2J"
RED = "\x1b[31mred\x1b[0m"
PRINTER = (
    "import sys\n"
    f"print({OSC52 + 'clip' + OSC0!r}); print({RED!r}); print({CSI_C1 + 'c1'!r}, file=sys.stderr)\n"
)
CONTROLS = ("\x1b]", "\x07", "\x9b", "\x1b\\")


def _clean(text: str) -> None:
    for c in CONTROLS:
        assert c not in text, (c, text)


def test_neutralise() -> None:
    assert neutralise(OSC52 + "x") == "^[]52;c;cm0gLXJmIH4=^Gx"
    assert neutralise(RED) == "^[[31mred^[[0m" and neutralise(RED, keep_sgr=True) == RED
    assert neutralise("a\tb\r\nc\rd\x00\x7f" + CSI_C1) == "a\tb\nc^Md^@^?\\x9b2J"


def test_cli_shows_escapes_as_text(data_dir: Path) -> None:
    run = nixdeck(data_dir, "run", "--", PY, "-c", PRINTER, "title" + OSC0)
    assert run.returncode == 0, run.stderr
    _clean(run.stdout + run.stderr)
    assert "^[]52;c;cm0gLXJmIH4=^Gclip^[]0;owned^[\\" in run.stdout and RED in run.stdout
    show = nixdeck(data_dir, "tasks", "show", "1")
    assert show.returncode == 0
    _clean(show.stdout)
    assert "\x1b" not in show.stdout and "^[]52;" in show.stdout and "title^[]0;owned" in show.stdout
    listed = nixdeck(data_dir, "tasks", "list")
    _clean(listed.stdout)
    assert "\x1b" not in listed.stdout
    log = nixdeck(data_dir, "tasks", "log", "1")
    _clean(log.stdout)
    assert RED in log.stdout and "\\x9b2Jc1" in log.stdout
    raw = subprocess.run([PY, "-m", "nixdeck", "tasks", "log", "1", "--raw", "--stream", "stdout"],
                         env=cli_env(data_dir), capture_output=True, timeout=60)
    assert raw.stdout == (OSC52 + "clip" + OSC0 + "\n" + RED + "\n").encode()


def test_ui_log_view_shows_escapes_as_text(tmp_path: Path, qtbot: QtBot) -> None:
    from nixdeck.ui.logview import LogView

    log = tmp_path / "1.stdout"
    log.write_text(f"before {OSC52}after\n{OSC0}title line\n{RED} and {CSI_C1}\n")
    view = LogView(log)
    qtbot.addWidget(view)
    view.resize(700, 160)
    qtbot.waitUntil(lambda: view.model.rowCount() == 3)
    lines = [view.model.line_text(i) for i in range(3)]
    for text in lines:
        _clean(text)
        assert "\x1b" not in text
    assert lines[0] == "before ^[]52;c;cm0gLXJmIH4=^Gafter"
    assert lines[2] == "red and \\x9b2J"
    view.grab().save(str(tmp_path / "logview-escapes.png"))  # looked at when this was written


def test_log_follow_exits_non_zero_when_the_task_is_interrupted(data_dir: Path) -> None:
    marker = f"nixdeck-follow-{uuid.uuid4().hex}"
    with nixdeck_bg(data_dir, "run", "--", "sh", "-c", "echo started; sleep 300; :", marker) as runner:
        wait_for(lambda: db_rows(data_dir, "SELECT id FROM tasks WHERE state = 'running'"), "the task to run")
        follow = subprocess.Popen([PY, "-m", "nixdeck", "tasks", "log", "1", "--follow"], env=cli_env(data_dir),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: db_rows(data_dir, "SELECT id FROM processes WHERE stdout_size >= 0 AND pid IS NOT NULL"),
                     "the process to start")
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait()
            out, err = follow.communicate(timeout=120)
        finally:
            if follow.poll() is None:
                follow.kill()
    assert follow.returncode == 1, (out, err)
    assert "started" in out
    assert [tuple(r) for r in db_rows(data_dir, "SELECT state FROM tasks")] == [("interrupted",)]
