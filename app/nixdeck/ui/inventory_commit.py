"""Offer to commit NixDeck's own `nixdeck.toml` edits: a reviewed commit, diff and message shown.

After an inventory edit the window says the edit is not committed yet (builds would see a dirty
git tree) and offers Commit…; the dialog shows the diff and an editable message, and commits only
`nixdeck.toml` (core.project.inventory_commit). Project → Commit inventory… opens it any time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from nixdeck.core.project.inventory_commit import (
    InventoryDiff,
    commit_inventory,
    commit_message,
    inventory_diff,
    inventory_uncommitted,
)
from nixdeck.core.tasks.model import TaskKind
from nixdeck.ui.details_panes import mono_font

if TYPE_CHECKING:
    from nixdeck.ui.actions import ActionController


class InventoryCommitDialog(QDialog):
    """Review NixDeck's change of nixdeck.toml, edit the message, commit (only that file)."""

    def __init__(self, change: InventoryDiff, message: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Commit inventory")
        self.resize(720, 480)
        intro = QLabel(f"Commit NixDeck's edits of {change.path.name} (only this file; your other changes "
                       "stay uncommitted). Builds then see a clean git tree again.")
        intro.setWordWrap(True)
        self.message = QLineEdit(message.splitlines()[0])
        self.body = message.partition("\n\n")[2]
        self.diff = QPlainTextEdit(change.diff)
        self.diff.setReadOnly(True)
        self.diff.setFont(mono_font())
        self.diff.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QDialogButtonBox()
        self.commit_button = buttons.addButton("Commit", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton("Not now", QDialogButtonBox.ButtonRole.RejectRole)
        self.commit_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.message.textChanged.connect(lambda t: self.commit_button.setEnabled(bool(t.strip())))
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(QLabel("Commit message:"))
        lay.addWidget(self.message)
        lay.addWidget(QLabel("Change:"))
        lay.addWidget(self.diff, 1)
        lay.addWidget(buttons)

    def full_message(self) -> str:
        subject = self.message.text().strip()
        return f"{subject}\n\n{self.body}" if self.body else subject


class InventoryCommitter:
    """Collects the summaries of this session's inventory edits and offers their commit."""

    def __init__(self, commands: ActionController) -> None:
        self.commands = commands
        self.window = commands.window
        self.summaries: list[str] = []

    def edited(self, summary: str) -> None:
        """An inventory edit was saved: when git now sees nixdeck.toml changed, offer its commit."""
        self.summaries.append(summary)
        project = self.window.project
        if project is None or not inventory_uncommitted(project.path):
            return  # not in git (nothing dirty to warn about) or already committed
        self.window.show_banner(
            "nixdeck.toml changed",
            "NixDeck's edit is not committed yet, so builds see a dirty git tree. Commit it after a review?",
            action=("Commit…", self.offer),
        )

    def offer(self) -> None:
        project = self.window.project
        if project is None:
            self.window.show_status("Commit inventory: open a project first", 6000)
            return
        self.window.spawn(self._offer(project.path), "Commit inventory")

    async def _offer(self, path: object) -> None:
        from pathlib import Path

        root = Path(str(path))
        change = await inventory_diff(root)
        if change is None:
            self.summaries.clear()
            self.window.show_status("Commit inventory: nixdeck.toml has no uncommitted change (or is not in git)", 8000)
            return
        dlg = InventoryCommitDialog(change, commit_message(self.summaries), self.window)
        self.commands.dialog = dlg
        dlg.accepted.connect(lambda: self.window.spawn(self._commit(root, dlg.full_message()), "Commit inventory"))
        dlg.open()

    async def _commit(self, root: object, message: str) -> None:
        from pathlib import Path

        try:
            made = await commit_inventory(Path(str(root)), message)
        except Exception as e:  # noqa: BLE001 - e.g. git refused: shown, nothing lost
            self.window.show_error("Commit inventory failed", str(e), exc=e)
            return
        self.summaries.clear()
        if made:
            self.commands.engine.record(
                "Committed nixdeck.toml", {"message": message}, kind=TaskKind.RECORD.value, silent=False,
                project=str(root),
            )
        self.window.show_status("Committed nixdeck.toml: " + message.splitlines()[0] if made
                                else "nixdeck.toml had nothing to commit", 8000)
