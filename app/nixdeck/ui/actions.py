"""The window's actions (toolbar, menus, shortcuts) and what each submits to the task engine.

Each device action builds its operation's own pydantic submission (`BuildDeviceSubmission`,
`DeployDevicesSubmission`, ...) from what the window knows (project directory, selected devices,
dialog values). The models validate; a refusal (ValidationError, or the engine's UserError) is shown
in the window, never raised. The operation modules are imported here only when an action runs, so
the window starts without the SSH stack (see `NixDeckApp.register_operations`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QStyle

from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.submission import Submission
from nixdeck.ui.deploy_diff import ClosureDiffPanel, attach_closure_diff
from nixdeck.ui.devices_model import DeviceRow
from nixdeck.ui.dialogs import (
    DeployDialog,
    FlakeUpdateDialog,
    HostKeyDialog,
    ImageDialog,
    NewProjectDialog,
    RunCommandDialog,
)
from nixdeck.ui.icons import terminal_icon
from nixdeck.ui.inventory_actions import InventoryActions

if TYPE_CHECKING:
    from nixdeck.ui.mainwindow import MainWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    shortcut: str
    tip: str
    icon: QStyle.StandardPixmap | str | None = None  # a str names an icon drawn by ui.icons
    toolbar: bool = True


DEVICE_ACTIONS = (
    ActionSpec("build", "&Build", "Ctrl+B", "Build the selected devices (or the whole project)",
               QStyle.StandardPixmap.SP_MediaPlay),
    ActionSpec("deploy", "&Deploy…", "Ctrl+D", "Deploy the selected devices", QStyle.StandardPixmap.SP_ArrowUp),
    ActionSpec("update_flake", "&Update flake…", "Ctrl+U", "Update the project's flake inputs (all or some)",
               QStyle.StandardPixmap.SP_BrowserReload),
    ActionSpec("build_image", "Build &image…", "Ctrl+I", "Build an installation image for a device",
               QStyle.StandardPixmap.SP_DriveHDIcon),
    ActionSpec("run_vm", "Run &VM", "Ctrl+M", "Run the selected devices as NixOS VMs (cancel the task to stop one)",
               QStyle.StandardPixmap.SP_ComputerIcon),
    ActionSpec("run_command", "&Run command…", "Ctrl+R",
               "Run a command as a tracked task, locally or on the selected devices over SSH", "terminal"),
    ActionSpec("probe_devices", "&Probe devices", "Ctrl+P",
               "Read what the selected devices (or all) run now: status, generation, drift",
               QStyle.StandardPixmap.SP_DriveNetIcon),
    ActionSpec("trust_host", "&Trust host key…", "Ctrl+K", "Fetch a device's host key and trust it",
               QStyle.StandardPixmap.SP_DialogApplyButton, toolbar=False),
)
INVENTORY_ACTIONS = (  # carried out by ui.inventory_actions
    ActionSpec("edit_device", "&Edit device…", "F2", "Edit the device's target, tags and deploy options",
               QStyle.StandardPixmap.SP_FileDialogDetailedView, toolbar=False),
    ActionSpec("add_device", "&Add device…", "Ctrl+Shift+A", "Add a device to the inventory (nixdeck.toml)",
               None, toolbar=False),
    ActionSpec("tag_devices", "Ta&g devices…", "Ctrl+T", "Add tags to the selected devices", None, toolbar=False),
    ActionSpec("untag_devices", "U&ntag devices…", "Ctrl+Shift+T", "Remove a tag from the selected devices",
               None, toolbar=False),
    ActionSpec("remove_device", "Remove from in&ventory…", "",
               "Remove the selected devices' nixdeck.toml entries (the flake is not touched)", None, toolbar=False),
)
PROJECT_ACTIONS = (
    ActionSpec("open_project", "&Open project…", "Ctrl+O", "Open a project (a flake directory)",
               QStyle.StandardPixmap.SP_DirOpenIcon),
    ActionSpec("new_project", "&New project…", "Ctrl+N", "Create a new project from the template",
               QStyle.StandardPixmap.SP_FileIcon, toolbar=False),
    ActionSpec("reload_project", "Re&load project", "F5", "Evaluate the flake again", None, toolbar=False),
    ActionSpec("project_settings", "Project &settings…", "Ctrl+,",
               "Defaults for every device, builders and signing", None, toolbar=False),
    ActionSpec("import_inventory", "&Import inventory…", "", "Replace nixdeck.toml with a JSON export", None,
               toolbar=False),
    ActionSpec("export_inventory", "&Export inventory…", "", "Save the inventory as JSON", None, toolbar=False),
    ActionSpec("commit_inventory", "&Commit inventory…", "",
               "Review and commit NixDeck's edits of nixdeck.toml (only that file)", None, toolbar=False),
    ActionSpec("quit", "&Quit", "Ctrl+Q", "Quit NixDeck", None, toolbar=False),
)


def refusal_text(e: ValidationError) -> str:
    """A pydantic refusal as one readable line per problem ("limit: Input should be ...")."""
    lines = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {msg}" if where else msg)
    return "\n".join(lines) or str(e)


class ActionController:
    """Creates the QActions of a MainWindow and carries them out.

    `dialog` is the dialog an action has open (tests drive it; it is `open()`ed, never exec'd).
    `submitted` holds the asyncio tasks of the latest submissions (each resolves to a task id or None).
    """

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.engine = window.engine
        self.actions: dict[str, QAction] = {}
        self.dialog: Any = None
        self.submitted: list[Any] = []
        self.diff_panel: ClosureDiffPanel | None = None  # the open deploy dialog's closure diffs
        self.inventory = InventoryActions(self)
        style = window.style()
        for spec in (*DEVICE_ACTIONS, *INVENTORY_ACTIONS, *PROJECT_ACTIONS):
            act = QAction(spec.text, window)
            act.setObjectName(f"action_{spec.name}")
            act.setShortcut(QKeySequence(spec.shortcut))
            act.setToolTip(f"{spec.tip} ({spec.shortcut})" if spec.shortcut else spec.tip)
            act.setStatusTip(spec.tip)
            if isinstance(spec.icon, str):
                act.setIcon(terminal_icon())
            elif spec.icon is not None:
                act.setIcon(style.standardIcon(spec.icon))
            act.triggered.connect(lambda _checked=False, n=spec.name: self.act(n))
            self.actions[spec.name] = act
        self._build_menus_and_toolbar()
        self.update_enabled()

    def _build_menus_and_toolbar(self) -> None:
        w = self.window
        bar = w.menuBar()
        project = bar.addMenu("&Project")
        for n in ("open_project", "new_project", "reload_project", None, "project_settings", "import_inventory",
                  "export_inventory", "commit_inventory", None, "quit"):
            if n is None:
                project.addSeparator()
            else:
                project.addAction(self.actions[n])
        devices = bar.addMenu("&Devices")
        for spec in DEVICE_ACTIONS:
            if spec.name == "trust_host":
                devices.addSeparator()
            devices.addAction(self.actions[spec.name])
        devices.addSeparator()
        for spec in INVENTORY_ACTIONS:
            if spec.name == "remove_device":
                devices.addSeparator()
            devices.addAction(self.actions[spec.name])
        view = bar.addMenu("&View")
        view.addAction(w.tasks_dock.toggleViewAction())
        w.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)  # right-click: inventory edits
        for spec in INVENTORY_ACTIONS:
            w.table.addAction(self.actions[spec.name])
        tb = w.addToolBar("Actions")
        tb.setObjectName("ActionsToolBar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.actions["open_project"])
        tb.addSeparator()
        for spec in DEVICE_ACTIONS:
            if spec.toolbar:
                tb.addAction(self.actions[spec.name])
        self.toolbar = tb

    # -- availability ---------------------------------------------------------------------------
    def update_enabled(self) -> None:
        has_project = self.window.project is not None
        for name in ("deploy", "probe_devices", "update_flake", "build_image", "run_vm", "trust_host", "build", "reload_project",
                     "add_device", "project_settings", "import_inventory", "export_inventory", "commit_inventory"):
            self.actions[name].setEnabled(has_project)
        selected = has_project and self.window.table.selectionModel().hasSelection()
        for name in ("edit_device", "tag_devices", "untag_devices", "remove_device"):
            self.actions[name].setEnabled(selected)

    # -- dispatch -------------------------------------------------------------------------------
    def act(self, name: str) -> None:
        handler: Callable[[], None] = getattr(self, f"do_{name}", None) or getattr(self.inventory, f"do_{name}")
        try:
            handler()
        except Exception as e:  # noqa: BLE001 - an action's bug shows in the window
            self.window.show_error(f"{name.replace('_', ' ').capitalize()} failed", str(e), exc=e)

    def _project_dir(self) -> str | None:
        p = self.window.project
        return str(p.path) if p is not None else None

    def _need_project(self, what: str) -> str | None:
        p = self._project_dir()
        if p is None:
            self.window.show_status(f"{what}: open a project first", 6000)
        return p

    def _targets(self, what: str) -> list[DeviceRow] | None:
        rows = self.window.selected_devices()
        if not rows:
            self.window.show_status(f"{what}: select one or more devices first", 6000)
            return None
        return rows

    def make(self, what: str, model: type[BaseModel], **fields: Any) -> Any:
        """`model(**fields)`, or None after showing why the model refused them."""
        try:
            return model(**fields)
        except ValidationError as e:
            self.window.show_error(f"{what}: invalid input", refusal_text(e))
            return None

    def submit(self, kind: str, what: str, sub: Submission | None, **opts: Any) -> None:
        """Submit a validated submission as a task (None: already refused, nothing to do)."""
        if sub is None:
            return
        self.window.ensure_operations()
        self.submitted = [t for t in self.submitted if not t.done()]
        self.submitted.append(self.window.spawn(self._submit(kind, what, sub, opts), what))

    async def _submit(self, kind: str, what: str, sub: Submission, opts: dict[str, Any]) -> int | None:
        opts.setdefault("project", self._project_dir())
        try:
            tid = await self.engine.submit(kind, sub, **opts)
        except (UserError, NixDeckError) as e:
            self.window.show_error(f"{what} was refused", str(e))
            return None
        self.window.show_status(f"{what}: task {tid} submitted", 5000)
        return tid

    # -- device actions -------------------------------------------------------------------------
    def do_build(self) -> None:
        """Selected devices: one Build Device task each. None selected: one Build Project of all."""
        from nixdeck.core.ops.nix_build import BuildDeviceSubmission, BuildProjectSubmission

        project = self._need_project("Build")
        if project is None:
            return
        rows = self.window.selected_devices()
        if not rows:
            names = [r.name for r in self.window.model.rows() if r.state != "orphaned"]
            sub = self.make("Build all", BuildProjectSubmission, project_dir=project)
            # the task lists every device, so each device's "last build" finds it
            self.submit(TaskKind.BUILD_PROJECT.value, "Build all", sub, devices=names)
            return
        for r in rows:
            sub = self.make(f"Build {r.name}", BuildDeviceSubmission, project_dir=project, device=r.name)
            self.submit(TaskKind.BUILD_DEVICE.value, f"Build {r.name}", sub)

    def do_deploy(self) -> None:
        from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission

        project = self._need_project("Deploy")
        rows = self._targets("Deploy") if project is not None else None
        if project is None or rows is None:
            return
        dlg = DeployDialog([r.name for r in rows], [r.name for r in rows if r.target is None], parent=self.window)
        self.window.ensure_operations()
        self.diff_panel = attach_closure_diff(dlg, dlg.form, self.engine, project, [r.name for r in rows])

        def accepted() -> None:
            sub = self.make("Deploy", DeployDevicesSubmission, project_dir=project, **dlg.values())
            self.submit(TaskKind.DEPLOY_DEVICES.value, "Deploy", sub)

        self._open(dlg, accepted)

    def do_probe_devices(self) -> None:
        """Probe the selected devices now (none selected: all with a target); silent, see ui.fleet_probe."""
        if self._need_project("Probe devices") is None:
            return
        names = [r.name for r in self.window.selected_devices() if r.target is not None]
        self.window.prober.probe(names or None)
        self.window.show_status(f"Probing {', '.join(names) if names else 'all devices'}…", 5000)

    def do_update_flake(self) -> None:
        from nixdeck.core.ops.flake_update import FlakeUpdateSubmission

        project = self._need_project("Update flake")
        if project is None:
            return
        dlg = FlakeUpdateDialog(project, parent=self.window)

        def accepted() -> None:
            sub = self.make("Update flake", FlakeUpdateSubmission, project_dir=project, inputs=dlg.inputs(),
                            commit=dlg.commit())
            self.submit(TaskKind.FLAKE_UPDATE.value, "Update flake", sub)

        self._open(dlg, accepted)

    def do_build_image(self) -> None:
        from nixdeck.core.ops.image import BuildImageSubmission

        project = self._need_project("Build image")
        if project is None:
            return
        rows = self.window.selected_devices()
        names = [r.name for r in self.window.model.rows() if r.state != "orphaned"]
        dlg = ImageDialog(names, rows[0].name if rows else None, parent=self.window)

        def accepted() -> None:
            what = f"Build {dlg.image_format()} image for {dlg.device_name()}"
            sub = self.make(what, BuildImageSubmission, project_dir=project, device=dlg.device_name(),
                            format=dlg.image_format())
            self.submit(TaskKind.BUILD_IMAGE.value, what, sub)

        self._open(dlg, accepted)

    def do_run_vm(self) -> None:
        from nixdeck.core.ops.vm import RunVmSubmission

        project = self._need_project("Run VM")
        rows = self._targets("Run VM") if project is not None else None
        if project is None or rows is None:
            return
        for r in rows:
            sub = self.make(f"Run VM of {r.name}", RunVmSubmission, project_dir=project, device=r.name)
            self.submit(TaskKind.RUN_VM.value, f"Run VM of {r.name}", sub)

    def do_run_command(self) -> None:
        rows = self.window.selected_devices()
        names = [r.name for r in self.window.model.rows()]
        dlg = RunCommandDialog(names, rows[0].name if len(rows) == 1 else None, self._project_dir(),
                               selected=[r.name for r in rows], parent=self.window)
        self._open(dlg, lambda: self._run_command(dlg))

    def _run_command(self, dlg: RunCommandDialog) -> None:
        from nixdeck.core.ops.run_command import RunCommandSubmission

        try:
            argv = dlg.argv()
        except ValueError as e:
            self.window.show_error("Run command: invalid input", f"cannot split the command: {e}")
            return
        what = "Run command"
        if not dlg.over_ssh():
            sub = self.make(what, RunCommandSubmission, argv=argv, device=dlg.device_name(),
                            cwd=dlg.working_dir() or self._project_dir())
            self.submit(TaskKind.RUN_COMMAND.value, what, sub, timeout=dlg.timeout_seconds())
            return
        from nixdeck.core.ops.ssh_command import SshCommandsSubmission, SshCommandSubmission

        project = self._need_project(what)
        devices = dlg.selected
        if project is None or not devices:
            return
        if len(devices) == 1:
            sub = self.make(what, SshCommandSubmission, project_dir=project, device=devices[0], argv=argv,
                            command_timeout=dlg.timeout_seconds())
            self.submit(TaskKind.SSH_COMMAND.value, what, sub)
        else:
            sub = self.make(what, SshCommandsSubmission, project_dir=project, devices=devices, argv=argv,
                            command_timeout=dlg.timeout_seconds())
            self.submit(TaskKind.SSH_COMMANDS.value, what, sub)

    def do_trust_host(self) -> None:
        rows = self._targets("Trust host key")
        if rows is None:
            return
        self.trust_row(rows[0])

    def trust_device(self, name: str) -> None:
        """Trust host key of a device by name (e.g. from a task that failed on its key)."""
        i = self.window.model.row_of(name)
        if i < 0:
            self.window.show_status(f"Trust host key: {name} is not a device of the open project", 6000)
            return
        self.trust_row(self.window.model.device(i))

    def trust_row(self, row: DeviceRow) -> None:
        if row.host is None:
            self.window.show_status(f"Trust host key: {row.name} has no target yet", 6000)
            return
        dlg = HostKeyDialog(row.name, row.host, row.port, parent=self.window)
        self._open(dlg, None)
        self.window.spawn(self._trust_flow(dlg, row), "Trust host key")

    async def _trust_flow(self, dlg: HostKeyDialog, row: DeviceRow) -> None:
        from nixdeck.core.ssh.errors import SshError
        from nixdeck.core.ssh.knownhosts import KnownHosts, fetch_host_key, fingerprint

        assert row.host is not None
        host, port = row.host, row.port
        try:
            key = await fetch_host_key(host, port)
        except SshError as e:
            dlg.show_error(str(e))
            return
        known = KnownHosts.in_data_dir(self.window.store.data_dir)
        check = known.state(host, port, key)
        dlg.show_key(fingerprint(key), check.state.value, [e.fingerprint for e in check.known])

        def trust() -> None:
            try:
                known.trust(host, port, key, replace=dlg.replace)
            except Exception as e:  # noqa: BLE001 - shown, never raised into Qt
                self.window.show_error("Trust host key failed", str(e))
                return
            verb = "Replaced" if dlg.replace else "Trusted"
            self.engine.record(
                f"{verb} host key of {row.name}", {"host": host, "port": port, "fingerprint": fingerprint(key)},
                kind=TaskKind.RECORD.value, silent=False, devices=[row.name], project=self._project_dir(),
            )
            self.window.show_status(f"{verb} the host key of {row.name} ({fingerprint(key)})", 8000)

        dlg.accepted.connect(trust)

    # -- project actions ------------------------------------------------------------------------
    def do_open_project(self) -> None:
        dlg = QFileDialog(self.window, "Open project (a flake directory)")
        dlg.setFileMode(QFileDialog.FileMode.Directory)
        dlg.setOption(QFileDialog.Option.ShowDirsOnly, True)
        if self.window.project is not None:
            dlg.setDirectory(str(self.window.project.path.parent))
        dlg.fileSelected.connect(lambda path: self.window.spawn(self.window.load_project(path), "Open project"))
        self._open(dlg, None)

    def do_new_project(self) -> None:
        dlg = NewProjectDialog(self.window)

        def accepted() -> None:
            self.window.spawn(self._new_project(dlg.project_path(), dlg.device_names()), "New project")

        self._open(dlg, accepted)

    async def _new_project(self, path: str, devices: Sequence[str]) -> None:
        from nixdeck.core.project.errors import ProjectError
        from nixdeck.core.project.project import Project

        self.window.show_status(f"Creating {path}…")
        try:
            project = await Project.new_async(path, list(devices))
        except (ProjectError, OSError) as e:
            self.window.show_error("Cannot create the project", str(e))
            return
        from nixdeck.core.project.history import created_change, record_change

        record_change(self.engine, created_change(project, devices), project.path, details={"devices": list(devices)})
        self.window.set_project(project)

    def do_reload_project(self) -> None:
        p = self.window.project
        if p is not None:
            self.window.spawn(self.window.load_project(p.path, record=False), "Reload project")

    def do_quit(self) -> None:
        self.window.quitRequested.emit()

    def _open(self, dlg: Any, accepted: Callable[[], None] | None) -> None:
        self.dialog = dlg
        if accepted is not None:
            dlg.accepted.connect(accepted)
        dlg.finished.connect(lambda _r: setattr(self, "dialog", None) if self.dialog is dlg else None)
        dlg.open()
