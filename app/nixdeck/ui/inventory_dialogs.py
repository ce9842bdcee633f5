"""Dialogs that edit the fleet inventory (``nixdeck.toml``): a device, tags of several devices, the
project's defaults and settings.

Like every dialog of the window they are window-modal and shown with `open()`. They hold no project
logic: OK calls the `apply` callback the caller set, which makes the change through the project
layer; a `ProjectError` it raises (nothing was written then) is shown next to its field and the
dialog stays open, so the user can fix the value.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.project.errors import ProjectError
from nixdeck.core.project.inventory import BUILTIN_DEFAULTS, Defaults, DeviceEntry, ProjectSettings
from nixdeck.ui.dialogs import wrapped_label
from nixdeck.ui.setting_fields import (
    HINT_STYLE,
    ChoiceField,
    PathField,
    SettingField,
    TagCompleter,
    TagsField,
    TextField,
    bool_field,
    error_label,
    known_tags_row,
    split_tags,
)

DEPLOY_ACTIONS = ("switch", "boot", "test", "dry-activate")
BUILD_ON = (("on this machine (local)", "local"), ("on the device (target)", "target"))
PROJECT_DEFAULTS = "project defaults"
BUILT_IN = "built-in default"
NIX_OWN = "Nix's own setting"
SSH_KEYS = "ssh's default keys"
FORM_MIN_WIDTH = 300
SIGNATURES_NOTE = (
    "Devices refuse copied store paths that no trusted key signed. <b>Signing key</b> (the safe choice): "
    "NixDeck signs what it copies and the devices trust its public key. <b>No signature check</b> lets a "
    "device take whatever the deploying user sends — only as safe as the SSH login."
)


def _form(parent: QWidget | None) -> QFormLayout:
    form = QFormLayout(parent)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return form


def with_error(widget: QWidget, error: QLabel) -> QWidget:
    """A field with its (usually hidden) error line below it, as one form row."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    lay.addWidget(widget)
    lay.addWidget(error)
    box.setFocusProxy(widget)
    return box


def hint_label(text: str) -> QLabel:
    """A grey explanatory paragraph spanning its group's width."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(HINT_STYLE)
    return label


def _inherited(defaults: Defaults | None, name: str) -> tuple[object, str]:
    """What a device field inherits and from where (project defaults, else the built-in default)."""
    value = getattr(defaults, name) if defaults is not None else None
    if value is not None:
        return value, PROJECT_DEFAULTS
    return BUILTIN_DEFAULTS[name], BUILT_IN


def deploy_fields(own: DeviceEntry | Defaults | None, defaults: Defaults | None) -> list[tuple[str, SettingField]]:
    """Rows of the deploy options (device: inherit from the defaults; defaults: from the built-ins)."""

    def inh(name: str) -> tuple[object, str]:
        return _inherited(defaults, name)

    def mine(name: str) -> object:
        return getattr(own, name) if own is not None else None

    return [
        ("&Action:", ChoiceField("action", mine("action"), [(a, a) for a in DEPLOY_ACTIONS], *inh("action"))),
        ("Co&nfirm:", bool_field("confirm", mine("confirm"), *inh("confirm"))),
        ("&Rollback:", bool_field("rollback", mine("rollback"), *inh("rollback"))),
        ("Confirm &timeout (s):", TextField("confirm_timeout", mine("confirm_timeout"), *inh("confirm_timeout"))),
        ("&Build:", ChoiceField("build_on", mine("build_on"), BUILD_ON, *inh("build_on"))),
        ("Substitute on &destination:", bool_field("substitute_on_destination", mine("substitute_on_destination"),
                                                   *inh("substitute_on_destination"))),
    ]


def connection_fields(own: DeviceEntry | Defaults | None, defaults: Defaults | None,
                      with_host: bool) -> list[tuple[str, SettingField]]:
    def mine(name: str) -> object:
        return getattr(own, name) if own is not None else None

    rows: list[tuple[str, SettingField]] = []
    if with_host:
        host = TextField("host", mine("host"), empty_text="no target yet", placeholder="DNS name or IP address")
        host.empty_hint = "no target yet"
        host.update_hint()
        rows.append(("&Host:", host))
    rows.append(("&User:", TextField("user", mine("user"), *_inherited(defaults, "user"))))
    rows.append(("&Port:", TextField("port", mine("port"), *_inherited(defaults, "port"))))
    identity, source = _inherited(defaults, "identity_file")
    rows.append(("&Identity file:", PathField("identity_file", mine("identity_file"), identity, source,
                                              empty_text=SSH_KEYS, title="SSH identity file", start_dir=os.path.expanduser("~/.ssh"))))
    return rows


class InventoryDialog(QDialog):
    """Group boxes of setting fields above OK/Cancel; OK runs `apply` and closes only if it succeeds."""

    def __init__(self, title: str, ok_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.apply: Callable[[], None] | None = None
        self.fields: dict[str, SettingField] = {}
        self.labels: list[QLabel] = []
        self.layout_ = QVBoxLayout(self)
        self.error = error_label()
        self.error.setObjectName("dialogError")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.setText(ok_text)
        self.ok_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.setMinimumWidth(600)

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def add_group(self, title: str | None, rows: Sequence[tuple[str, QWidget]], note: str | None = None) -> QFormLayout:
        """A group box of form rows and an optional note below them (title None: a plain form)."""
        box: QWidget = QGroupBox(title) if title is not None else QWidget()
        outer = QVBoxLayout(box)
        form = _form(None)
        outer.addLayout(form)
        if title is None:
            outer.setContentsMargins(0, 0, 0, 0)
        if note is not None:
            outer.addWidget(hint_label(note))
        for text, widget in rows:
            label = QLabel(text)
            label.setBuddy(widget)
            self.labels.append(label)
            form.addRow(label, widget)
            if isinstance(widget, SettingField):
                self.fields[widget.name] = widget
                widget.setMinimumWidth(FORM_MIN_WIDTH)
                widget.edited.connect(lambda: self.set_error(None))
        self.layout_.addWidget(box)
        return form

    def finish_layout(self) -> None:
        width = max((label.sizeHint().width() for label in self.labels), default=0)
        for label in self.labels:  # the forms of all groups line up
            label.setMinimumWidth(width)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.layout_.addWidget(self.error)
        self.layout_.addWidget(self.buttons)

    def changes(self, names: Sequence[str] | None = None) -> dict[str, object]:
        """The fields the user changed (None: unset, so the inherited value applies)."""
        return {n: f.value() for n, f in self.fields.items() if (names is None or n in names) and f.changed()}

    def set_error(self, text: str | None) -> None:
        self.error.set_error(text)

    def show_project_error(self, e: ProjectError) -> None:
        """The error next to its field (by the last part of e.field, e.g. devices.web1.port) and below."""
        name = (e.field or "").rsplit(".", 1)[-1]
        field = self.fields.get(name)
        if field is not None:
            field.set_error(e.message.split(": ", 1)[-1])
            field.setFocus()
        self.set_error(f"Nothing was saved: {e}")

    def accept(self) -> None:
        if self.apply is not None:
            try:
                self.apply()
            except ProjectError as e:
                self.show_project_error(e)
                return
            except OSError as e:
                self.set_error(f"Nothing was saved: {e}")
                return
        super().accept()


class DeviceDialog(InventoryDialog):
    """Edit (or, with `adding`, create) a device's inventory entry.

    Empty fields inherit (the hint says from where); OK writes only the fields the user changed,
    as `changes()` ({field: value-or-None}); `values()` are the non-empty ones of a new entry.
    """

    def __init__(self, name: str, entry: DeviceEntry | None, defaults: Defaults | None, known_tags: Sequence[str],
                 description: str = "", *, adding: bool = False, can_create_module: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__("Add device" if adding else f"Edit device {name}", "Add" if adding else "Save", parent)
        self.adding = adding
        self.name_edit: QLineEdit | None = None
        self.module_box: QCheckBox | None = None
        if adding:
            self.name_edit = QLineEdit(name)
            self.name_edit.setObjectName("field_name")
            self.name_edit.setPlaceholderText("e.g. web3 (a letter, then letters, digits or '-')")
            self.name_edit.textChanged.connect(self._update_name)
            self.name_error = error_label()
            self.module_box = QCheckBox("Also create devices/<name>.nix from the template")
            self.module_box.setChecked(can_create_module)
            self.module_box.setEnabled(can_create_module)
            if not can_create_module:
                self.module_box.setToolTip("Only for projects made from NixDeck's template (devices/<name>.nix)")
            self.add_group("Device", [("&Name:", with_error(self.name_edit, self.name_error)), ("", self.module_box)],
                           note="Adds an entry to nixdeck.toml. The configuration itself is the flake's "
                                "nixosConfigurations entry of that name; until the flake has one, the entry "
                                "shows as orphaned.")
        elif description:
            header = QLabel(description)
            header.setWordWrap(True)
            header.setObjectName("deviceHeader")
            self.layout_.addWidget(header)
        self.add_group("Connection", connection_fields(entry, defaults, with_host=True))
        tags = TagsField(entry.tags if entry is not None else [], known_tags)
        tag_rows: list[tuple[str, QWidget]] = [("Ta&gs:", tags)]
        known = known_tags_row(tags)
        if known is not None:
            tag_rows.append(("", known))
        self.add_group("Tags", tag_rows)
        self.add_group("Deploy", deploy_fields(entry, defaults))
        self.finish_layout()
        if adding:
            self._update_name()

    def device_name(self) -> str:
        return self.name_edit.text().strip() if self.name_edit is not None else ""

    def create_module(self) -> bool:
        return self.module_box is not None and self.module_box.isEnabled() and self.module_box.isChecked()

    def _update_name(self) -> None:
        name = self.device_name()
        self.name_error.hide()
        self.ok_button.setEnabled(bool(name))
        if self.module_box is not None:
            self.module_box.setText(f"Also create devices/{name or '<name>'}.nix from the template")

    def values(self) -> dict[str, object]:
        """A new entry's values: every field that is set."""
        return {n: v for n, f in self.fields.items() if (v := f.value()) not in (None, [])}

    def show_project_error(self, e: ProjectError) -> None:
        if self.adding and (e.field or "") in ("device", "name"):
            self.name_error.setText(e.message.split(": ", 1)[-1])
            self.name_error.show()
            self.set_error(f"Nothing was saved: {e}")
            return
        super().show_project_error(e)


class TagDialog(InventoryDialog):
    """Add tags to several devices, or remove one tag from them (`untag`)."""

    def __init__(self, devices: Sequence[str], tags: Sequence[str], *, untag: bool = False,
                 parent: QWidget | None = None) -> None:
        n = len(devices)
        title = f"{'Untag' if untag else 'Tag'} {n} device{'s' if n != 1 else ''}"
        super().__init__(title, "Untag" if untag else "Tag", parent)
        self.devices, self.untag = list(devices), untag
        names = wrapped_label(", ".join(self.devices) or "none selected")
        self.tag_edit: QLineEdit | None = None
        self.tag_combo: QComboBox | None = None
        self.tag_error = error_label()
        rows: list[tuple[str, QWidget]] = [("Devices:", names)]
        if untag:
            self.tag_combo = QComboBox()
            self.tag_combo.setObjectName("field_tag")
            self.tag_combo.addItems(list(tags))
            self.tag_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            rows.append(("&Tag to remove:", with_error(self.tag_combo, self.tag_error)))
            if not tags:
                self.set_error("the selected devices have no tags")
        else:
            self.tag_edit = QLineEdit()
            self.tag_edit.setObjectName("field_tag")
            self.tag_edit.setPlaceholderText("e.g. web, prod (comma-separated)")
            self.tag_edit.setCompleter(TagCompleter(tags, self.tag_edit))
            self.tag_edit.textChanged.connect(self._on_tags_edited)
            rows.append(("&Tags to add:", with_error(self.tag_edit, self.tag_error)))
            known = wrapped_label("Known: " + (", ".join(tags) if tags else "none yet"))
            known.setStyleSheet(HINT_STYLE)
            rows.append(("", known))
        self.add_group(None, rows)
        self.finish_layout()
        self.setMinimumWidth(440)
        self._update_ok()

    def _on_tags_edited(self) -> None:
        self.tag_error.hide()
        self.set_error(None)
        self._update_ok()

    def _update_ok(self) -> None:
        self.ok_button.setEnabled(bool(self.devices) and bool(self.tags()))

    def tags(self) -> list[str]:
        if self.tag_combo is not None:
            return [self.tag_combo.currentText()] if self.tag_combo.currentText() else []
        return split_tags(self.tag_edit.text()) if self.tag_edit is not None else []

    def show_project_error(self, e: ProjectError) -> None:
        self.tag_error.setText(e.message.split(": ", 1)[-1])
        self.tag_error.show()
        self.set_error(f"Nothing was saved: {e}")


class ProjectSettingsDialog(InventoryDialog):
    """The project's ``[defaults]`` (inherited by every device) and ``[project]`` (builds and copies)."""

    def __init__(self, defaults: Defaults, settings: ProjectSettings, parent: QWidget | None = None) -> None:
        super().__init__("Project settings", "Save", parent)
        self.default_names = tuple(Defaults.model_fields)
        self.add_group("Defaults for every device", [*connection_fields(defaults, None, with_host=False),
                                                     *deploy_fields(defaults, None)])
        self.project_names = tuple(ProjectSettings.model_fields)
        s = settings
        builders = TextField("builders", s.builders, empty_text=NIX_OWN, placeholder="empty: Nix's own setting")
        builders.edit.setToolTip("Nix's builders string, e.g. ssh-ng://root@builder x86_64-linux - 4 1")
        self.add_group("Nix builds and copies", [
            ("B&uilders:", builders),
            ("Builders use &substitutes:", bool_field("builders_use_substitutes", s.builders_use_substitutes,
                                                      empty_text=NIX_OWN)),
            ("&Max jobs:", TextField("max_jobs", s.max_jobs, empty_text=NIX_OWN,
                                     placeholder="a number or auto  (empty: Nix's own)")),
            ("Si&gning key:", PathField("signing_key", s.signing_key, empty_text="none",
                                        title="Secret key for nix store sign")),
            ("No signature chec&k:", bool_field("no_check_sigs", s.no_check_sigs, empty_text="no (not set)")),
        ], note=SIGNATURES_NOTE)
        self.finish_layout()
        self.setMinimumWidth(620)

    def defaults_changes(self) -> dict[str, object]:
        return self.changes(self.default_names)

    def project_changes(self) -> dict[str, object]:
        return self.changes(self.project_names)


def describe_device(name: str, state: str, host_name: str | None, in_inventory: bool, error: str | None) -> str:
    """The header line of the device dialog."""
    states: Mapping[str, str] = {"ok": "evaluates", "eval-error": "does not evaluate",
                                 "orphaned": "orphaned: not in the flake any more", "not-evaluated": "not evaluated"}
    parts = [f"<b>{html.escape(name)}</b>", states.get(state, state)]
    if host_name:
        parts.append(f"hostName {html.escape(host_name)}")
    parts.append("entry in nixdeck.toml" if in_inventory else "no entry in nixdeck.toml yet")
    text = " · ".join(parts)
    if error and state != "orphaned":
        first = error.strip().splitlines()[0][:160] if error.strip() else error
        text += f"<br><span style='color:#b3261e'>{html.escape(first)}</span>"
    return text
