"""Input dialogs of the main window. All are window-modal and shown with `open()` (never `exec()`,
which would re-enter the asyncio loop); callers read the values in a slot on `accepted`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

NO_DEVICE = "(none)"
IMAGE_FORMATS = ("sd-card", "iso", "qcow", "raw")
DEPLOY_ACTIONS = ("switch", "boot", "test", "dry-activate")
DEVICE_DEFAULT = "(each device's setting)"


def wrapped_label(text: str = "") -> QLabel:
    """A word-wrapped label for a form field. It must take the field's whole width: at its own size
    hint QFormLayout gives it too little height and the lines are cut off (e.g. the deploy's devices)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


def _error_label() -> QLabel:
    label = QLabel()
    label.setStyleSheet("color: #b3261e;")
    label.setWordWrap(True)
    label.hide()
    return label


class _FormDialog(QDialog):
    """A form above OK/Cancel, with an inline error line that disables OK."""

    def __init__(self, title: str, ok_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.error = _error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.setText(ok_text)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(460)
        self._tab_order_done = False

    def showEvent(self, event: QShowEvent) -> None:
        if not self._tab_order_done:
            # the buttons were made before the subclass's fields, so Tab started on them and the dialog
            # opened with the focus on a button: reparenting moves them to the end of the focus chain
            self._tab_order_done = True
            layout = self.layout()
            layout.removeWidget(self.buttons)
            self.buttons.setParent(None)
            self.buttons.setParent(self)
            layout.addWidget(self.buttons)
        super().showEvent(event)

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def set_error(self, text: str | None) -> None:
        self.error.setText(text or "")
        self.error.setVisible(bool(text))
        self.ok_button.setEnabled(not text)


def _device_combo(devices: Sequence[str], current: str | None, allow_none: bool) -> QComboBox:
    combo = QComboBox()
    if allow_none:
        combo.addItem(NO_DEVICE, None)
    for d in devices:
        combo.addItem(d, d)
    if current is not None and current in devices:
        combo.setCurrentIndex(combo.findData(current))
    return combo


class RunCommandDialog(_FormDialog):
    """A command as a task: argv line (split with shlex, never run by a local shell), timeout, and where:
    locally (device tag, working directory) or on the selected devices over SSH."""

    def __init__(self, devices: Sequence[str] = (), device: str | None = None, cwd: str | None = None,
                 selected: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__("Run command", "Run", parent)
        self.selected = list(selected)
        self.command = QLineEdit()
        self.command.setPlaceholderText("e.g. nix flake metadata  (split like a shell, never run by one)")
        self.command.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.ssh = QCheckBox("Run on the selected devices over SSH")
        if self.selected:
            self.ssh.setToolTip("On " + ", ".join(self.selected))
            self.ssh.setText(f"Run on the selected devices over SSH ({_names(self.selected)})")
        else:
            self.ssh.setEnabled(False)
            self.ssh.setToolTip("Select devices in the table first")
        self.device = _device_combo(devices, device, allow_none=True)
        self.timeout = QSpinBox()
        self.timeout.setRange(0, 7 * 24 * 3600)
        self.timeout.setSuffix(" s")
        self.timeout.setSpecialValueText("default")
        self.cwd = QLineEdit(cwd or "")
        self.cwd.setPlaceholderText("working directory (default: the project)")
        self.form.addRow("&Command:", self.command)
        self.form.addRow("", self.ssh)
        self.form.addRow("&Device:", self.device)
        self.form.addRow("&Timeout:", self.timeout)
        self.form.addRow("Di&rectory:", self.cwd)
        self.command.textChanged.connect(self._validate)
        self.ssh.toggled.connect(self._on_ssh)
        self._on_ssh(False)
        self._validate()

    def _on_ssh(self, on: bool) -> None:
        for w in (self.device, self.cwd):
            self.form.setRowVisible(w, not on)
        self.adjustSize()

    def _validate(self) -> None:
        text = self.command.text()
        if not text.strip():
            self.set_error(None)
            self.ok_button.setEnabled(False)
            return
        try:
            shlex.split(text)
        except ValueError as e:
            self.set_error(f"cannot split the command: {e}")
            return
        self.set_error(None)

    def argv(self) -> list[str]:
        return shlex.split(self.command.text())

    def over_ssh(self) -> bool:
        return self.ssh.isChecked() and bool(self.selected)

    def device_name(self) -> str | None:
        data = self.device.currentData()
        return str(data) if data else None

    def timeout_seconds(self) -> float | None:
        return float(self.timeout.value()) or None

    def working_dir(self) -> str | None:
        return self.cwd.text().strip() or None


def _names(names: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" +{len(names) - most}" if len(names) > most else "")


class FlakeUpdateDialog(_FormDialog):
    """Which inputs to update (none named: all) and whether to commit flake.lock."""

    def __init__(self, project_dir: str, parent: QWidget | None = None) -> None:
        super().__init__("Update flake", "Update", parent)
        from nixdeck.core.ops.flake_update import root_inputs

        try:
            known = root_inputs((Path(project_dir) / "flake.lock").read_text())
        except OSError:
            known = None
        self.known = known or []
        self.names = QLineEdit()
        self.names.setPlaceholderText("input names, e.g. nixpkgs  (empty: all inputs)")
        hint = wrapped_label("Inputs of this flake: " + (", ".join(self.known) if self.known else "none locked yet"))
        hint.setEnabled(False)
        self.commit_box = QCheckBox("Commit flake.lock (git)")
        self.form.addRow("&Inputs:", self.names)
        self.form.addRow("", hint)
        self.form.addRow("", self.commit_box)
        self.names.textChanged.connect(self._validate)

    def _validate(self) -> None:
        unknown = [n for n in self.inputs() if self.known and n.split("/", 1)[0] not in self.known]
        self.set_error(f"the flake has no input {', '.join(unknown)}" if unknown else None)

    def inputs(self) -> list[str]:
        return [n for n in self.names.text().replace(",", " ").split() if n]

    def commit(self) -> bool:
        return self.commit_box.isChecked()


class ImageDialog(_FormDialog):
    """Which device and which image format (sd-card | iso | qcow | raw)."""

    def __init__(self, devices: Sequence[str], device: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Build image", "Build", parent)
        self.device = _device_combo(devices, device, allow_none=False)
        self.format = QComboBox()
        self.format.addItems(list(IMAGE_FORMATS))
        self.form.addRow("&Device:", self.device)
        self.form.addRow("&Format:", self.format)
        if not devices:
            self.set_error("the project has no devices")

    def device_name(self) -> str:
        return str(self.device.currentData() or "")

    def image_format(self) -> str:
        return self.format.currentText()


class DeployDialog(_FormDialog):
    """Confirmation of a deploy: devices, activation action, parallel limit, waves and failure budget.

    `values()` gives the fields of `DeployDevicesSubmission` (without project_dir).
    """

    def __init__(self, devices: Sequence[str], no_target: Sequence[str] = (), action: str | None = None,
                 limit: int = 10, parent: QWidget | None = None) -> None:
        super().__init__("Deploy", "Deploy", parent)
        self.devices = list(devices)
        self.no_target = list(no_target)
        self.action = QComboBox()
        self.action.addItem(DEVICE_DEFAULT, None)
        for a in DEPLOY_ACTIONS:
            self.action.addItem(a, a)
        if action is not None:
            self.action.setCurrentIndex(max(0, self.action.findData(action)))
        self.confirm_note = wrapped_label()
        self.limit = QSpinBox()
        self.limit.setRange(1, max(1, len(self.devices)))
        self.limit.setValue(min(max(1, limit), max(1, len(self.devices))))
        self.limit.setToolTip("How many devices deploy at the same time")
        self.waves = QLineEdit()
        self.waves.setPlaceholderText("e.g. 1,10%,100%  (empty: one wave)")
        self.waves.setToolTip("Cumulative device counts or percentages; a wave ends before the next starts")
        self.max_failures = QSpinBox()
        self.max_failures.setRange(-1, max(0, len(self.devices)))
        self.max_failures.setValue(-1)
        self.max_failures.setSpecialValueText("default")
        self.max_failures.setToolTip("Halt the rollout after more failed devices than this "
                                     "(default: 0 with waves, no limit without)")
        self.summary = wrapped_label()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        devices_label = wrapped_label(_names(self.devices, 8) or "none selected")
        devices_label.setToolTip(", ".join(self.devices))
        self.form.addRow("Devices:", devices_label)
        self.form.addRow("&Action:", self.action)
        self.form.addRow("", self.confirm_note)
        self.form.addRow("&Limit:", self.limit)
        self.form.addRow("&Waves:", self.waves)
        self.form.addRow("Max &failures:", self.max_failures)
        self.form.addRow("Rollout:", self.summary)
        self.limit.valueChanged.connect(self._update)
        self.waves.textChanged.connect(self._update)
        self.action.currentIndexChanged.connect(self._update)
        self._update()

    def action_value(self) -> str | None:
        data = self.action.currentData()
        return str(data) if data else None

    def wave_spec(self) -> list[str]:
        return [w.strip() for w in self.waves.text().split(",") if w.strip()]

    def _update(self) -> None:
        from nixdeck.core.ops.activation import has_confirm, no_confirm_reason
        from nixdeck.core.ops.deploy_fleet import parse_waves

        act = self.action_value()
        if act is None:
            self.confirm_note.setText("Each device's own action (inventory), confirmed and rolled back where it "
                                      "is switch or test.")
        elif has_confirm(act):
            self.confirm_note.setText(f"{act}: the device must answer after activation, else it is rolled back.")
        else:
            self.confirm_note.setText(no_confirm_reason(act).capitalize() + ".")
        error = None
        try:
            marks = parse_waves(self.wave_spec(), len(self.devices)) if self.devices else []
        except ValueError as e:
            marks, error = [], str(e)
        groups = [self.devices[a:b] for a, b in zip([0, *marks], marks, strict=False)]
        lines = [f"{i + 1}. {_names(g)}" for i, g in enumerate(groups[:6])]
        if len(groups) > 6:
            lines.append(f"… {len(groups) - 6} more")
        n = len(groups)
        self.summary.setText(f"{n} wave{'s' if n != 1 else ''}, at most {self.limit.value()} at a time\n"
                             + "\n".join(lines))
        if not self.devices:
            error = "select the devices to deploy"
        elif self.no_target:
            error = f"no target yet for {', '.join(self.no_target)}: set their host first"
        self.set_error(error)

    def values(self) -> dict[str, Any]:
        """The fields of DeployDevicesSubmission this dialog decides."""
        mf = self.max_failures.value()
        return {"devices": self.devices, "action": self.action_value(), "limit": self.limit.value(),
                "waves": self.wave_spec(), "max_failures": None if mf < 0 else mf}


class HostKeyDialog(QDialog):
    """Shows the key a host presents (fetched without trusting it); trusting it is the user's act."""

    def __init__(self, device: str, host: str, port: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Trust host key of {device}")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.replace = False
        self.who = f"<b>{device}</b> ({host}, port {port})"
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.info = QLabel(f"Fetching the host key of <b>{device}</b> ({host}, port {port})…")
        self.info.setWordWrap(True)
        self.fingerprint = QLineEdit()
        self.fingerprint.setReadOnly(True)
        self.fingerprint.setFont(mono)
        self.fingerprint.setMinimumWidth(440)
        self.warning = _error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.trust_button = self.buttons.addButton("Trust", QDialogButtonBox.ButtonRole.AcceptRole)
        self.trust_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # never smaller than its texts
        layout.addWidget(self.info)
        layout.addWidget(self.fingerprint)
        layout.addWidget(self.warning)
        layout.addWidget(self.buttons)

    def _fit(self) -> None:
        """The texts changed after the dialog was shown: grow it so no label is clipped."""
        layout = self.layout()
        if layout is not None:
            layout.invalidate()
            layout.activate()
        self.resize(self.width(), max(self.height(), self.sizeHint().height(),
                                      self.heightForWidth(self.width()) if self.hasHeightForWidth() else 0))

    def show_key(self, fingerprint: str, state: str, known: Sequence[str] = ()) -> None:
        """state: "unknown", "trusted" or "changed" (as `core.ssh.knownhosts.HostKeyState`)."""
        self.fingerprint.setText(fingerprint)
        if state == "trusted":
            self.info.setText(f"The host key of {self.who} is already trusted.")
            self.trust_button.setEnabled(False)
        elif state == "changed":
            self.info.setText(f"{self.who} presents a <b>different key</b> from the one NixDeck trusts.")
            self.warning.setText(
                "Known: " + ", ".join(known) + "\nReplace it only if you know the device was reinstalled."
            )
            self.warning.show()
            self.trust_button.setText("Replace key")
            self.replace = True
            self.trust_button.setEnabled(True)
        else:
            self.info.setText(f"The host key of {self.who} is not trusted yet. Compare its fingerprint with the "
                              "device's own (<tt>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</tt>) before "
                              "trusting it:")
            self.trust_button.setEnabled(True)
            self.trust_button.setDefault(True)
        self._fit()

    def show_error(self, text: str) -> None:
        self.info.setText("The host key could not be fetched.")
        self.warning.setText(text)
        self.warning.show()
        self.trust_button.setEnabled(False)
        self._fit()


class NewProjectDialog(_FormDialog):
    """A new project directory (empty or new) and its first devices."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("New project", "Create", parent)
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)  # Enter creates the project, it never opens the file dialog
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.devices = QLineEdit()
        self.devices.setPlaceholderText("device names, e.g. web1 web2 db1")
        label = QLabel("&Directory:")  # a row of a layout gets no buddy: the & showed as text
        label.setBuddy(self.path)
        self.form.addRow(label, row)
        self.form.addRow("De&vices:", self.devices)
        self.path.textChanged.connect(self._validate)
        self._validate()

    def _browse(self) -> None:
        dlg = QFileDialog(self, "Project directory")
        dlg.setFileMode(QFileDialog.FileMode.Directory)
        dlg.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dlg.fileSelected.connect(self.path.setText)
        dlg.open()

    def _validate(self) -> None:
        self.set_error(None)
        self.ok_button.setEnabled(bool(self.path.text().strip()))

    def project_path(self) -> str:
        return self.path.text().strip()

    def device_names(self) -> list[str]:
        return [n for n in self.devices.text().replace(",", " ").split() if n]


class TextDialog(QDialog):
    """A read-only text (e.g. an error with its traceback), non-modal."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.text = QPlainTextEdit(text)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(640, 360)
