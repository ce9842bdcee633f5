"""The window's inventory actions: edit/add/tag/untag/remove devices, project settings, import/export.

Each change goes through `core.project.Project` (which validates, writes ``nixdeck.toml`` atomically
and returns a `Change`), is recorded with `history.record_change` exactly as the CLI records it
(`clicmds/project.py`: same kinds, same details), and then the device table re-reads the inventory
(`Project.reload()`, no evaluation). Validation errors are shown in the dialog that caused them and
nothing is written; dialogs are `open()`ed, never `exec()`ed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from nixdeck.core.project.errors import ProjectError
from nixdeck.ui.inventory_commit import InventoryCommitter
from nixdeck.ui.inventory_dialogs import DeviceDialog, ProjectSettingsDialog, TagDialog, describe_device

if TYPE_CHECKING:
    from nixdeck.core.project.project import Change, Project
    from nixdeck.ui.actions import ActionController

log = logging.getLogger(__name__)
JSON_FILTERS = ("Inventory export (*.json)", "All files (*)")


def from_template(project: Project) -> bool:
    """Whether the project has NixDeck's template layout (one ``devices/<name>.nix`` per device)."""
    try:
        flake = (project.path / "flake.nix").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return (project.path / "devices").is_dir() and "./devices" in flake and "nixdeck.toml" in flake


class InventoryActions:
    """Carries out the inventory actions of an ActionController (its `act` dispatches `do_*` here)."""

    def __init__(self, commands: ActionController) -> None:
        self.commands = commands
        self.window = commands.window
        self.module_task: asyncio.Task[Path | None] | None = None  # writing devices/<name>.nix (tests await it)
        self.committer = InventoryCommitter(commands)

    def do_commit_inventory(self) -> None:
        self.committer.offer()

    # -- shared ---------------------------------------------------------------------------------
    def _project(self, what: str) -> Project | None:
        p = self.window.project
        if p is None:
            self.window.show_status(f"{what}: open a project first", 6000)
        return p

    def _open(self, dlg: Any, accepted: Callable[[], None] | None = None) -> None:
        self.commands._open(dlg, accepted)

    def known_tags(self, project: Project) -> list[str]:
        return sorted({t for d in (*project.devices, *project.orphans) for t in d.tags})

    def record(self, project: Project, change: Change, details: Mapping[str, Any] | None = None) -> int | None:
        """Record a change in the history (as the CLI does), then show the re-read inventory."""
        from nixdeck.core.project.history import record_change, record_title

        tid: int | None = None
        try:
            tid = record_change(self.window.engine, change, project.path, details=details)
        except Exception as e:  # noqa: BLE001 - the file is written; a failed record must not hide that
            self.window.show_error("The change was saved but not recorded", str(e), exc=e)
        self.window.reload_inventory()
        if change.changed:
            self.window.show_status(record_title(change) + (f" (task {tid})" if tid is not None else ""), 8000)
            self.committer.edited(change.summary)
        else:
            self.window.show_status(f"Nothing to change: {change.summary}", 6000)
        return tid

    def _selected_names(self) -> list[str]:
        return [r.name for r in self.window.selected_devices()]

    def _current_name(self) -> str | None:
        """The device under the table's cursor when it is selected, else the first selected one."""
        w = self.window
        idx = w.table.currentIndex()
        names = self._selected_names()
        if idx.isValid():
            name = w.proxy.mapToSource(idx).siblingAtColumn(0).data()
            if name in names:
                return str(name)
        return names[0] if names else None

    # -- devices --------------------------------------------------------------------------------
    def do_edit_device(self, name: str | None = None) -> None:
        project = self._project("Edit device")
        if project is None:
            return
        name = name or self._current_name()
        if name is None:
            self.window.show_status("Edit device: select a device first", 6000)
            return
        d = project.device(name)
        text = describe_device(d.name, str(d.state.value), d.host_name, d.entry is not None, d.error)
        dlg = DeviceDialog(name, d.entry, project.inventory.defaults, self.known_tags(project), text,
                           parent=self.window)

        def apply() -> None:
            changes = dlg.changes()
            if not changes:
                self.window.show_status(f"Edit device: nothing changed for {name}", 5000)
                return
            change = project.set_fields(name, changes)  # ProjectError: shown in the dialog, nothing written
            self.record(project, change, {"values": changes})

        dlg.apply = apply
        self._open(dlg)

    def do_add_device(self) -> None:
        project = self._project("Add device")
        if project is None:
            return
        dlg = DeviceDialog("", None, project.inventory.defaults, self.known_tags(project), adding=True,
                           can_create_module=from_template(project), parent=self.window)

        def apply() -> None:
            name, values, module = dlg.device_name(), dlg.values(), dlg.create_module()
            if module and (project.path / "devices" / f"{name}.nix").exists():
                raise ProjectError(f"device: devices/{name}.nix already exists (untick the template option)",
                                   field="device", value=name)
            change = project.add_device(name, values)
            details: dict[str, Any] = {"values": values}
            if module:
                details["module"] = f"devices/{name}.nix"
            self.record(project, change, details)
            if module:
                self.module_task = self.window.spawn(self._create_module(project, name), "Create the device module")

        dlg.apply = apply
        self._open(dlg)

    async def _create_module(self, project: Project, name: str) -> Path | None:
        try:
            path = await project.create_device_module_async(name)
        except (ProjectError, OSError) as e:
            self.window.show_error(f"Cannot create devices/{name}.nix", str(e))
            return None
        self.window.show_status(f"Wrote {path.relative_to(project.path)}; reload the project (F5) to evaluate it",
                                10000)
        return path

    def do_remove_device(self) -> None:
        project = self._project("Remove from inventory")
        if project is None:
            return
        selected = self._selected_names()
        names = [n for n in selected if n in project.inventory.devices]
        if not names:
            self.window.show_status("Remove from inventory: select devices that have an entry in nixdeck.toml"
                                    if not selected else f"{', '.join(selected)}: no entry in nixdeck.toml", 6000)
            return
        in_flake = [n for n in names if project.device(n).state.value != "orphaned"]
        listed = ", ".join(names)
        text = (f"Remove the nixdeck.toml entr{'ies' if len(names) > 1 else 'y'} of {listed}? Target, tags and "
                "deploy options are forgotten (the previous file is kept as nixdeck.toml.bak).\n\n"
                "The flake's configuration is not touched.")
        if in_flake:
            text += (f"\n\n{', '.join(in_flake)} still {'have' if len(in_flake) > 1 else 'has'} a configuration in "
                     "the flake: it stays in the table with \"no target yet\".")
        box = QMessageBox(QMessageBox.Icon.Warning if in_flake else QMessageBox.Icon.Question,
                          "Remove from inventory", text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self.window)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        yes = box.button(QMessageBox.StandardButton.Yes)
        yes.setText("Remove anyway" if in_flake else "Remove")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        # a QMessageBox finishes with the button's value, not Accepted: act on the button itself
        box.buttonClicked.connect(lambda b: self.remove(project, names) if b is yes else None)
        self._open(box)

    def remove(self, project: Project, names: Sequence[str]) -> None:
        for name in names:
            try:
                change = project.remove_device(name)
            except ProjectError as e:
                self.window.show_error(f"Cannot remove {name}", str(e))
                self.window.reload_inventory()
                return
            self.record(project, change)

    def _tag_dialog(self, untag: bool) -> None:
        what = "Untag devices" if untag else "Tag devices"
        project = self._project(what)
        if project is None:
            return
        names = self._selected_names()
        if not names:
            self.window.show_status(f"{what}: select one or more devices first", 6000)
            return
        if untag:
            tags = sorted({t for n in names for t in project.device(n).tags})
        else:
            tags = self.known_tags(project)
        dlg = TagDialog(names, tags, untag=untag, parent=self.window)

        def apply() -> None:
            from nixdeck.core.project import validate

            chosen = dlg.tags()
            for t in chosen:
                validate.tag(t, "tag")  # all tags checked before the first is written
            for t in chosen:
                change = project.untag(names, t) if untag else project.tag(names, t)
                self.record(project, change, {"tag": t})

        dlg.apply = apply
        self._open(dlg)

    def do_tag_devices(self) -> None:
        self._tag_dialog(untag=False)

    def do_untag_devices(self) -> None:
        self._tag_dialog(untag=True)

    # -- project --------------------------------------------------------------------------------
    def do_project_settings(self) -> None:
        project = self._project("Project settings")
        if project is None:
            return
        inv = project.inventory
        dlg = ProjectSettingsDialog(inv.defaults, inv.project, parent=self.window)

        def apply() -> None:
            from nixdeck.core.project import inventory

            defaults, settings = dlg.defaults_changes(), dlg.project_changes()
            # both validated before either is written
            inventory.updated(project.inventory.defaults, defaults, "defaults.")
            inventory.updated(project.inventory.project, settings, "project.")
            if defaults:
                self.record(project, project.set_defaults(defaults), {"values": defaults})
            if settings:
                self.record(project, project.set_project_settings(settings), {"values": settings})
            if not defaults and not settings:
                self.window.show_status("Project settings: nothing changed", 5000)

        dlg.apply = apply
        self._open(dlg)

    def do_import_inventory(self) -> None:
        project = self._project("Import inventory")
        if project is None:
            return
        dlg = QFileDialog(self.window, "Import inventory (replaces nixdeck.toml)")
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # its file-system model runs a thread
        dlg.setFileMode(QFileDialog.FileMode.ExistingFile)
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dlg.setNameFilters(list(JSON_FILTERS))
        dlg.setDirectory(str(project.path))
        dlg.fileSelected.connect(lambda path: self.import_from(path))
        self._open(dlg)

    def import_from(self, path: str | Path) -> int | None:
        project = self._project("Import inventory")
        if project is None:
            return None
        source = Path(path).resolve()
        try:
            change = project.import_json(source)
        except (ProjectError, OSError) as e:
            self.window.show_error("Cannot import the inventory", f"Nothing was changed.\n\n{e}")
            return None
        return self.record(project, change, {"source": str(source)})

    def do_export_inventory(self) -> None:
        project = self._project("Export inventory")
        if project is None:
            return
        dlg = QFileDialog(self.window, "Export inventory as JSON")
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # its file-system model runs a thread
        dlg.setFileMode(QFileDialog.FileMode.AnyFile)
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setNameFilters(list(JSON_FILTERS))
        dlg.setDefaultSuffix("json")
        dlg.setDirectory(str(project.path.parent))
        dlg.selectFile(f"{project.path.name}-inventory.json")
        dlg.fileSelected.connect(lambda path: self.export_to(path))
        self._open(dlg)

    def export_to(self, path: str | Path) -> bool:
        project = self._project("Export inventory")
        if project is None:
            return False
        try:
            project.export_json(path)
        except (ProjectError, OSError) as e:
            self.window.show_error("Cannot export the inventory", str(e))
            return False
        self.window.show_status(f"Exported the inventory to {path}", 8000)
        return True
