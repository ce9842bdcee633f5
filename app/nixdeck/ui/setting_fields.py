"""Form fields for inventory settings that may be inherited (device → project defaults → built-ins).

A `SettingField` edits one setting's *own* value (None: not set here, the inherited value applies),
shows where the effective value comes from next to the widget, and a per-field error line. The
project layer validates; these widgets only collect what the user typed (strings are converted
leniently there, as for the CLI) and say whether it differs from what the file holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

ERROR_STYLE = "color: #b3261e;"
HINT_STYLE = "color: palette(placeholder-text);"
SET_HERE = "set here"


class ErrorLabel(QLabel):
    """An error line that keeps its place once shown: clearing it (the user types a fix) never moves
    the fields below, so a click or keystroke lands where the user aimed."""

    def setVisible(self, visible: bool) -> None:  # noqa: N802 - Qt's name
        if visible:
            policy = self.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            self.setSizePolicy(policy)
        super().setVisible(visible)

    def set_error(self, text: str | None) -> None:
        """Show `text`; None hides the line but keeps its last text, so its place stays the same."""
        if text:
            self.setText(text)
        self.setVisible(bool(text))


def error_label() -> ErrorLabel:
    label = ErrorLabel()
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def fmt_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def split_tags(text: str) -> list[str]:
    """Comma-separated tags as the inventory's lenient conversion splits them."""
    return [t.strip() for t in text.split(",") if t.strip()]


class SettingField(QWidget):
    """One setting: the editor, a hint with the effective value's source, and an error line.

    `inherited` is the value that applies when this field is empty, `source` where it comes from
    ("project defaults", "built-in default", ...); None: nothing is inherited (e.g. the host).

    Signals:
        edited(): the user changed the value.
    """

    edited = Signal()

    def __init__(self, name: str, own: object, inherited: object, source: str | None,
                 empty_text: str = "not set", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.own = own
        self.inherited = inherited
        self.source = source
        self.empty_text = empty_text
        self.empty_hint = ""  # the hint of an empty field that inherits nothing
        self.hint = QLabel()
        self.hint.setStyleSheet(HINT_STYLE)
        self.hint.setObjectName(f"hint_{name}")
        self.error = error_label()
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        outer.addLayout(self.row)
        outer.addWidget(self.error)
        self.edited.connect(self._on_edited)

    def finish(self, editor: QWidget, *extra: QWidget) -> None:
        self.setFocusProxy(editor)  # the form label's buddy and setFocus() reach the editor
        self.row.addWidget(editor, 1)
        for w in extra:
            self.row.addWidget(w)
        self.row.addWidget(self.hint)
        self.hint.setMinimumWidth(self.hint.fontMetrics().horizontalAdvance("inherited (project defaults)") + 8)
        self.update_hint()

    # -- values ---------------------------------------------------------------------------------
    def value(self) -> object:
        """The own value in the editor (None: not set here)."""
        raise NotImplementedError

    def set_value(self, value: object) -> None:
        raise NotImplementedError

    def changed(self) -> bool:
        return self.value() != self.own

    def effective_text(self) -> str:
        v = self.value()
        if v is not None:
            return fmt_value(v)
        return fmt_value(self.inherited) if self.inherited is not None else self.empty_text

    def update_hint(self) -> None:
        if self.value() is not None:
            self.hint.setText(SET_HERE)
            self.hint.setToolTip("This value is written for this entry; clear it to inherit")
        elif self.source is None:
            self.hint.setText(self.empty_hint)
            self.hint.setToolTip("")
        else:
            self.hint.setText(f"inherited ({self.source})")
            self.hint.setToolTip(f"Effective value: {self.effective_text()} (from {self.source})")

    def set_error(self, text: str | None) -> None:
        self.error.set_error(text)

    def _on_edited(self) -> None:
        self.set_error(None)
        self.update_hint()


class TextField(SettingField):
    """Free text (host, user, port, paths, numbers); empty means "not set here"."""

    def __init__(self, name: str, own: object, inherited: object = None, source: str | None = None,
                 empty_text: str = "not set", placeholder: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(name, own, inherited, source, empty_text, parent)
        self.edit = QLineEdit(fmt_value(own) if own is not None else "")
        self.edit.setObjectName(f"field_{name}")
        self.edit.setClearButtonEnabled(True)
        if placeholder is not None:
            self.edit.setPlaceholderText(placeholder)
        elif inherited is not None:
            self.edit.setPlaceholderText(fmt_value(inherited))
        else:
            self.edit.setPlaceholderText(empty_text)
        self.edit.textChanged.connect(lambda _t: self.edited.emit())
        self.finish(self.edit)

    def value(self) -> object:
        text = self.edit.text().strip()
        return text or None

    def set_value(self, value: object) -> None:
        self.edit.setText("" if value is None else fmt_value(value))

    def changed(self) -> bool:
        own = None if self.own is None else fmt_value(self.own)
        return self.value() != own


class PathField(TextField):
    """A file path with a Browse… button (a non-blocking file dialog)."""

    def __init__(self, name: str, own: object, inherited: object = None, source: str | None = None,
                 empty_text: str = "not set", title: str = "Choose a file", start_dir: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(name, own, inherited, source, empty_text, parent=parent)
        self.title, self.start_dir = title, start_dir
        self.browse = QPushButton("Browse…")
        self.browse.setAutoDefault(False)  # Enter in the dialog is OK, never this file dialog
        self.browse.setObjectName(f"browse_{name}")
        self.browse.clicked.connect(self.open_picker)
        self.row.insertWidget(1, self.browse)
        self.picker: QFileDialog | None = None

    def open_picker(self) -> QFileDialog:
        dlg = QFileDialog(self, self.title)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # its file-system model runs a thread
        dlg.setFileMode(QFileDialog.FileMode.ExistingFile)
        current = self.edit.text().strip()
        dlg.setDirectory(current.rsplit("/", 1)[0] if "/" in current else self.start_dir)
        dlg.fileSelected.connect(self.edit.setText)
        dlg.finished.connect(lambda _r: setattr(self, "picker", None))
        self.picker = dlg
        dlg.open()
        return dlg


class ChoiceField(SettingField):
    """A fixed set of values (an enum or yes/no); the first item inherits."""

    def __init__(self, name: str, own: object, choices: Sequence[tuple[str, object]], inherited: object = None,
                 source: str | None = None, empty_text: str = "not set", parent: QWidget | None = None) -> None:
        super().__init__(name, own, inherited, source, empty_text, parent)
        self.combo = QComboBox()
        self.combo.setObjectName(f"field_{name}")
        label = fmt_value(inherited) if inherited is not None else empty_text
        self.combo.addItem(f"Inherit: {label}" if source is not None else empty_text, None)
        for text, value in choices:
            self.combo.addItem(text, value)
        self.set_value(own)
        self.combo.currentIndexChanged.connect(lambda _i: self.edited.emit())
        self.finish(self.combo)

    def value(self) -> object:
        return self.combo.currentData()

    def set_value(self, value: object) -> None:
        for i in range(self.combo.count()):
            data = self.combo.itemData(i)
            if data == value and type(data) is type(value):
                self.combo.setCurrentIndex(i)
                return
        self.combo.setCurrentIndex(0)


def bool_field(name: str, own: object, inherited: object = None, source: str | None = None,
               empty_text: str = "not set") -> ChoiceField:
    return ChoiceField(name, own, (("yes", True), ("no", False)), inherited, source, empty_text)


class TagCompleter(QCompleter):
    """Completes the tag after the last comma of a comma-separated list."""

    def __init__(self, tags: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(QStringListModel(list(tags), self))  # owned by the completer, not by Python
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)

    def splitPath(self, path: str) -> list[str]:
        return [path.split(",")[-1].strip()]

    def pathFromIndex(self, index: object) -> str:
        done = ""
        widget = self.widget()
        if isinstance(widget, QLineEdit):
            text = widget.text()
            if "," in text:
                done = text[: text.rfind(",") + 1] + " "
        return done + str(super().pathFromIndex(index))  # type: ignore[arg-type]


class TagsField(SettingField):
    """Comma-separated tags with the project's known tags offered (completion and one-click add)."""

    def __init__(self, own: Sequence[str], known: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__("tags", list(own), None, None, "no tags", parent)
        self.known = sorted(known)
        self.edit = QLineEdit(", ".join(own))
        self.edit.setObjectName("field_tags")
        self.edit.setClearButtonEnabled(True)
        self.edit.setPlaceholderText("e.g. web, prod")
        self.edit.setCompleter(TagCompleter(self.known, self.edit))
        self.edit.textChanged.connect(lambda _t: self.edited.emit())
        self.finish(self.edit)

    def value(self) -> object:
        return split_tags(self.edit.text())

    def set_value(self, value: object) -> None:
        self.edit.setText(fmt_value(value) if value else "")

    def add_tag(self, tag: str) -> None:
        tags = split_tags(self.edit.text())
        if tag not in tags:
            self.edit.setText(", ".join([*tags, tag]))

    def update_hint(self) -> None:
        self.hint.setText("")


def known_tags_row(field: TagsField, most: int = 12) -> QWidget | None:
    """A line of the project's known tags; clicking one adds it to the field."""
    if not field.known:
        return None
    label = QLabel("Known: " + " ".join(f'<a href="{t}">{t}</a>' for t in field.known[:most])
                   + (" …" if len(field.known) > most else ""))
    label.setObjectName("knownTags")
    label.setStyleSheet(HINT_STYLE)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
    label.linkActivated.connect(field.add_tag)
    return label
