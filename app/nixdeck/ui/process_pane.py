"""ProcessPane: the Process tab of task details — what really ran, and how to run it again."""

from __future__ import annotations

import shlex
from typing import Any

from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.tasks.model import ProcessRecord
from nixdeck.ui.details_panes import _value_label, mono_font
from nixdeck.ui.formatting import fmt_size, fmt_time


def _remote_rows(form: QFormLayout, r: dict[str, Any]) -> None:
    """A remote command: the real connection, key, host key and the exact command string sent."""
    form.addRow("Ran on:", _value_label(f"{r.get('connection', '?')} over SSH ({r.get('via', 'asyncssh')})"))
    form.addRow("Key:", _value_label(r.get("identity_file") or "ssh-agent or default keys (~/.ssh/id_*)"))
    if r.get("host_key_fingerprint"):
        form.addRow("Host key:", _value_label(f"{r.get('host_key_type') or ''} {r['host_key_fingerprint']}".strip()))
    if r.get("known_hosts"):
        form.addRow("Known hosts:", _value_label(r["known_hosts"]))
    if r.get("summary"):
        form.addRow("What it does:", _value_label(r["summary"]))
    exact = QPlainTextEdit(r.get("command", ""))
    exact.setReadOnly(True)
    exact.setFont(mono_font())
    exact.setObjectName("remoteCommand")
    lines = min(6, max(1, r.get("command", "").count("\n") + 1 + len(r.get("command", "")) // 100))
    exact.setFixedHeight(exact.fontMetrics().lineSpacing() * lines + 12)
    form.addRow("Remote command:", exact)


class ProcessPane(QScrollArea):
    """Each process of the task: argv as a copyable shell line, cwd, added env, exit. A remote
    command shows its connection, host key and exact command, and copies as an OpenSSH line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._shown: list[dict[str, Any]] | None = None
        self.command_fields: list[QLineEdit] = []
        self.set_processes([])

    def set_processes(self, procs: list[ProcessRecord]) -> None:
        dumped = [p.model_dump() for p in procs]
        if dumped == self._shown:
            return
        self._shown = dumped
        inner = QWidget()
        lay = QVBoxLayout(inner)
        self.command_fields = []
        if not procs:
            lay.addWidget(QLabel("This task ran no local process."))
        for p in procs:
            where = " · ".join(x for x in (p.job, p.step) if x)
            box = QGroupBox(f"Process {p.id}" + (f" · {where}" if where else "")
                            + (f" · attempt {p.attempt}" if p.attempt > 1 else ""))
            form = QFormLayout(box)
            cmd = QLineEdit(shlex.join(p.argv))
            cmd.setReadOnly(True)
            cmd.setFont(mono_font())
            cmd.setCursorPosition(0)
            self.command_fields.append(cmd)
            copy = QPushButton("Copy")
            copy.setToolTip("Copy an OpenSSH command that runs it again, checked against NixDeck's known_hosts"
                            if p.remote else "Copy the command as a shell line")
            copy.clicked.connect(lambda _=False, c=cmd: QApplication.clipboard().setText(c.text()))
            row = QHBoxLayout()
            row.addWidget(cmd, 1)
            row.addWidget(copy)
            if p.remote:
                _remote_rows(form, p.remote)
                form.addRow("With OpenSSH:", row)
            else:
                form.addRow("Command:", row)
                form.addRow("Working dir:", _value_label(p.cwd or "(NixDeck's own)"))
            if p.env:
                env = _value_label("\n".join(f"{k}={v}" for k, v in sorted(p.env.items())))
                env.setFont(mono_font())
                form.addRow("Added env:", env)
            if p.ended is None and p.started is not None:
                ended = "running" + (f" (pid {p.pid})" if p.pid else "")
            elif p.signal:
                ended = f"killed by signal {p.signal}"
            else:
                ended = f"exit code {p.exit_code}" if p.exit_code is not None else "did not start"
            form.addRow("Outcome:", _value_label(ended))
            form.addRow("Started:", _value_label(fmt_time(p.started, full=True)))
            if p.ended:
                form.addRow("Ended:", _value_label(fmt_time(p.ended, full=True)))
            form.addRow("Output:", _value_label(f"stdout {fmt_size(p.stdout_size)}, stderr {fmt_size(p.stderr_size)}"
                                                if p.ended else "streaming"))
            lay.addWidget(box)
        lay.addStretch(1)
        self.setWidget(inner)
