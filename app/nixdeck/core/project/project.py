"""A NixDeck project: a flake directory plus its ``nixdeck.toml`` inventory.

The flake says which devices exist (``nixosConfigurations``); the inventory says how to reach and
deploy them. ``Project`` merges the two: a device in the flake without an inventory entry (or without
a host) has "no target yet"; an inventory entry whose configuration vanished is *orphaned* — reported,
never deleted unless the user removes it. Every change re-reads the file (so hand edits made in the
meantime are kept), validates, and writes atomically under a lock on the project directory; a broken
file is an error and is never overwritten. Mutations return a ``Change`` that callers record as a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import fcntl
import os
import shutil
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nixdeck.core.jsondepth import JsonTooDeep, check_depth

from . import gitrepo, inventory, validate
from .errors import InvalidValue, InventoryFileError, ProjectError, UnknownDevice
from .files import atomic_write, read_optional
from .flake import Discovery, FlakeDevice, discover
from .inventory import INVENTORY_FILE, DeviceEntry, EffectiveSettings, Inventory
from .resources import resource
from .tomledit import AUTOMATION_SECTIONS, INVENTORY_SECTIONS

T = TypeVar("T")
TEMPLATE = "new-project"
DEVICE_TEMPLATE = "device.nix.in"


class DeviceState(enum.StrEnum):
    OK = "ok"  # in the flake, evaluates
    EVAL_ERROR = "eval-error"  # in the flake, its configuration does not evaluate
    ORPHANED = "orphaned"  # in the inventory only: the configuration vanished from the flake
    NOT_EVALUATED = "not-evaluated"  # the flake was not evaluated (e.g. a new project, offline)


@dataclass(frozen=True)
class Device:
    """One device as NixDeck shows it: flake facts merged with inventory settings."""

    name: str
    state: DeviceState
    host_name: str | None  # networking.hostName as Nix evaluates it
    error: str | None
    entry: DeviceEntry | None  # the inventory entry, None when there is none
    settings: EffectiveSettings

    @property
    def has_target(self) -> bool:
        return self.settings.host is not None

    @property
    def target_label(self) -> str:
        s = self.settings
        if s.host is None:
            return "no target yet"
        if s.port == 22:
            return f"{s.user}@{s.host}"
        return f"{s.user}@[{s.host}]:{s.port}" if ":" in s.host else f"{s.user}@{s.host}:{s.port}"

    @property
    def tags(self) -> tuple[str, ...]:
        return self.settings.tags

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``nixdeck project devices --json`` (a stable shape: keys are only added).

        ``state`` is a DeviceState value; ``target`` is ``user@host[:port]`` or None when the device
        has no host yet (``has_target`` False); ``host``/``user``/``port``/``tags`` are the effective
        values; ``error`` is Nix's evaluation error (or why the entry is orphaned); ``settings`` holds
        every effective setting; ``in_inventory`` says whether ``nixdeck.toml`` has an entry.
        """
        s = self.settings
        return {
            "name": self.name,
            "state": str(self.state),
            "host_name": self.host_name,
            "target": self.target_label if self.has_target else None,
            "host": s.host,
            "user": s.user,
            "port": s.port,
            "tags": list(s.tags),
            "has_target": self.has_target,
            "error": self.error,
            "in_inventory": self.entry is not None,
            "settings": {**dataclasses.asdict(s), "tags": list(s.tags)},
        }


@dataclass(frozen=True)
class Change:
    """What a mutation did, for the task history (``silent`` ones are hidden by default)."""

    kind: str  # device-added, device-changed, device-removed, tags-changed, defaults-changed, ...
    summary: str
    devices: tuple[str, ...] = ()
    changed: bool = True  # False: nothing to do, nothing written
    silent: bool = False


def attr_path(device: str, output: str = "toplevel") -> str:
    """The real NixOS attribute path of a device output: toplevel, vm, sdImage, isoImage,
    ``images.<fmt>`` or ``formats.<fmt>``."""
    base = f"nixosConfigurations.{device}.config"
    return f"{base}.{output}" if output.startswith("formats.") else f"{base}.system.build.{output}"


def _sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called from a running event loop: use the *_async variant")


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on the project directory: two NixDeck processes never interleave writes."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class Project:
    """An opened project. Create with ``open``/``open_async`` or ``new``/``new_async``."""

    path: Path
    inventory: Inventory
    discovery: Discovery | None = None  # None: the flake was not evaluated
    devices: list[Device] = field(default_factory=list)  # in the flake (or, unevaluated, the inventory)
    orphans: list[Device] = field(default_factory=list)  # inventory entries without configuration

    # --- opening -------------------------------------------------------------------------------

    @property
    def inventory_path(self) -> Path:
        return self.path / INVENTORY_FILE

    @property
    def warnings(self) -> list[str]:
        return list(self.discovery.warnings) if self.discovery else []

    @classmethod
    async def open_async(cls, path: Path | str, *, discover_devices: bool = True, nix: str = "nix") -> Project:
        """Open a flake directory: read the inventory (errors if broken), evaluate the devices."""
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise ProjectError(f"path: {str(root)!r} is not a directory", field="path", value=str(root))
        if not (root / "flake.nix").is_file():
            raise ProjectError(f"path: {str(root)!r} is not a flake (no flake.nix)", field="path", value=str(root))
        project = cls(root, inventory.read_inventory(root / INVENTORY_FILE))
        if discover_devices:
            await project.refresh_async(nix=nix)
        else:
            project._merge()
        return project

    @classmethod
    def open(cls, path: Path | str, *, discover_devices: bool = True, nix: str = "nix") -> Project:
        return _sync(cls.open_async(path, discover_devices=discover_devices, nix=nix))

    async def refresh_async(self, *, nix: str = "nix") -> None:
        """Re-evaluate the flake's devices and re-read the inventory."""
        self.discovery = await discover(self.path, nix=nix)
        self.reload()

    def refresh(self, *, nix: str = "nix") -> None:
        _sync(self.refresh_async(nix=nix))

    def reload(self) -> None:
        """Re-read the inventory file (no Nix evaluation)."""
        self.inventory = inventory.read_inventory(self.inventory_path)
        self._merge()

    def _merge(self) -> None:
        inv = self.inventory
        entries = inv.devices
        if self.discovery is None:
            self.devices = [
                Device(n, DeviceState.NOT_EVALUATED, None, None, e, inventory.effective(e, inv.defaults, inv.tags))
                for n, e in entries.items()
            ]
            self.orphans = []
            return
        flake: dict[str, FlakeDevice] = {d.name: d for d in self.discovery.devices}
        self.devices = [
            Device(
                d.name,
                DeviceState.EVAL_ERROR if d.error else DeviceState.OK,
                d.host_name,
                d.error,
                entries.get(d.name),
                inventory.effective(entries.get(d.name), inv.defaults, inv.tags),
            )
            for d in self.discovery.devices
        ]
        self.orphans = [
            Device(
                n,
                DeviceState.ORPHANED,
                None,
                f"no nixosConfigurations.{n} in the flake any more",
                e,
                inventory.effective(e, inv.defaults, inv.tags),
            )
            for n, e in entries.items()
            if n not in flake
        ]

    def device(self, name: str) -> Device:
        for d in (*self.devices, *self.orphans):
            if d.name == name:
                return d
        raise UnknownDevice(f"device: no device named {name!r}", field="device", value=name)

    def _known(self, name: str) -> bool:
        return any(d.name == name for d in (*self.devices, *self.orphans))

    # --- changes ---------------------------------------------------------------------------------

    def _mutate(
        self, fn: Callable[[Inventory], tuple[Inventory, Change]], sections: tuple[str, ...] = INVENTORY_SECTIONS
    ) -> Change:
        """Re-read, change, and write back only ``sections`` (the user's layout and comments kept)."""
        with _dir_lock(self.path):
            current = inventory.read_inventory(self.inventory_path)  # broken file: error, nothing written
            new, change = fn(current)
            if change.changed:
                old = read_optional(self.inventory_path)
                old_text = old.decode("utf-8") if old is not None else None
                atomic_write(self.inventory_path, inventory.render_toml(old_text, new, sections).encode("utf-8"))
            self.inventory = new if change.changed else current
        self._merge()
        return change

    def change_automations(self, fn: Callable[[Inventory], tuple[Inventory, Change]]) -> Change:
        """An edit of ``[groups.*]`` / ``[automations.*]`` only (``core.automation`` validates first)."""
        return self._mutate(fn, AUTOMATION_SECTIONS)

    def _entry_for(self, inv: Inventory, name: str) -> DeviceEntry:
        """The entry of a known device (an empty one if it has none yet)."""
        if name in inv.devices:
            return inv.devices[name]
        if not self._known(name):
            raise UnknownDevice(f"device: no device named {name!r}", field="device", value=name)
        validate.device_name(name, "device")
        return DeviceEntry()

    @staticmethod
    def _with_device(inv: Inventory, name: str, entry: DeviceEntry) -> Inventory:
        devices = dict(inv.devices)
        devices[name] = entry
        return inv.model_copy(update={"devices": devices})

    def add_device(self, name: str, values: Mapping[str, object] | None = None) -> Change:
        """Add an inventory entry (the configuration may come later: it is orphaned until then)."""
        validate.device_name(name, "device")

        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            if name in inv.devices:
                raise InvalidValue(f"device: {name!r} is already in the inventory", field="device", value=name)
            entry = inventory.updated(DeviceEntry(), values or {}, f"devices.{name}.")
            return self._with_device(inv, name, entry), Change("device-added", f"added device {name}", (name,))

        return self._mutate(fn)

    def set_fields(self, name: str, values: Mapping[str, object]) -> Change:
        """Set device fields (strings are converted: ``{"port": "2222"}``); ``None`` unsets a field."""

        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            old = self._entry_for(inv, name)
            new = inventory.updated(old, values, f"devices.{name}.")
            keys = ", ".join(values)
            change = Change("device-changed", f"set {keys} of {name}", (name,), changed=new != old or name not in inv.devices)
            return self._with_device(inv, name, new), change

        return self._mutate(fn)

    def set_defaults(self, values: Mapping[str, object]) -> Change:
        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            new = inventory.updated(inv.defaults, values, "defaults.")
            change = Change("defaults-changed", f"set defaults {', '.join(values)}", changed=new != inv.defaults)
            return inv.model_copy(update={"defaults": new}), change

        return self._mutate(fn)

    def set_project_settings(self, values: Mapping[str, object]) -> Change:
        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            new = inventory.updated(inv.project, values, "project.")
            change = Change("project-changed", f"set project {', '.join(values)}", changed=new != inv.project)
            return inv.model_copy(update={"project": new}), change

        return self._mutate(fn)

    def _retag(self, names: Sequence[str], tag: str, add: bool) -> Change:
        validate.tag(tag, "tag")

        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            touched: list[str] = []
            for name in names:
                entry = self._entry_for(inv, name)
                tags = list(entry.tags)
                if add and tag not in tags:
                    tags.append(tag)
                elif not add and tag in tags:
                    tags.remove(tag)
                else:
                    continue
                inv = self._with_device(inv, name, entry.model_copy(update={"tags": tags}))
                touched.append(name)
            verb = "tagged" if add else "untagged"
            summary = f"{verb} {', '.join(touched) or 'nothing'} {'with' if add else 'from'} {tag}"
            return inv, Change("tags-changed", summary, tuple(touched), changed=bool(touched))

        return self._mutate(fn)

    def tag(self, names: Iterable[str], tag: str) -> Change:
        return self._retag(list(names), tag, True)

    def untag(self, names: Iterable[str], tag: str) -> Change:
        return self._retag(list(names), tag, False)

    def remove_device(self, name: str) -> Change:
        """Remove an inventory entry on the user's explicit request (the flake is not touched)."""

        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            if name not in inv.devices:
                raise UnknownDevice(f"device: {name!r} is not in the inventory", field="device", value=name)
            devices = {k: v for k, v in inv.devices.items() if k != name}
            return inv.model_copy(update={"devices": devices}), Change("device-removed", f"removed {name}", (name,))

        return self._mutate(fn)

    # --- import / export -------------------------------------------------------------------------

    def export_json(self, dest: Path | str | None = None) -> str:
        """The inventory as JSON (written atomically to ``dest`` when given)."""
        with _dir_lock(self.path):
            self.reload()
        text = inventory.to_json(self.inventory)
        if dest is not None:
            atomic_write(Path(dest), text.encode("utf-8"), backup=False)
        return text

    def import_json(self, source: Path | str) -> Change:
        """Replace the inventory with a JSON export (validated first; the old file goes to .bak)."""
        src = Path(source)
        try:
            text = src.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError(f"import: cannot read {src}: {exc}", field="import", value=str(src)) from None
        return self.import_json_text(text, source=src)

    def import_json_text(self, text: str, *, source: Path | None = None) -> Change:
        try:
            check_depth(text)  # json.loads would recurse into a deeply nested document
        except JsonTooDeep as exc:
            raise InventoryFileError(str(exc), line=exc.line, path=source) from None
        imported = inventory.from_json(text, source)

        def fn(inv: Inventory) -> tuple[Inventory, Change]:
            summary = f"imported the inventory ({len(imported.devices)} devices)" + (f" from {source}" if source else "")
            # groups and automations have their own export/import (nixdeck auto): kept as they are
            new = imported.model_copy(update={"groups": inv.groups, "automations": inv.automations})
            return new, Change("inventory-imported", summary, tuple(imported.devices), changed=new != inv)

        return self._mutate(fn)

    # --- new projects ----------------------------------------------------------------------------

    @classmethod
    async def new_async(
        cls, path: Path | str, devices: Sequence[str] = (), *, git: bool = True, template: str = TEMPLATE
    ) -> Project:
        """Create a project from ``resources/templates/<template>``: one module per device, git-initialised.

        The flake is not evaluated (its nixpkgs input needs the network): devices are ``not-evaluated``
        until ``refresh_async``."""
        root = Path(path).expanduser().resolve()
        for name in devices:
            validate.device_name(name, "devices")
        if len(set(devices)) != len(devices):
            raise InvalidValue("devices: a device name is given twice", field="devices", value=list(devices))
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ProjectError(f"path: {str(root)!r} exists and is not an empty directory", field="path", value=str(root))
        src = resource("templates", template)
        device_template = resource("templates", DEVICE_TEMPLATE).read_text(encoding="utf-8")
        created = not root.exists()
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copytree(src, root, dirs_exist_ok=True)
            for name in devices:
                (root / "devices" / f"{name}.nix").write_text(device_template.replace("@name@", name), encoding="utf-8")
            inv = inventory.read_inventory(root / INVENTORY_FILE)
            inv = inv.model_copy(update={"devices": {**inv.devices, **{n: DeviceEntry() for n in devices}}})
            template_text = (root / INVENTORY_FILE).read_text(encoding="utf-8")
            text = inventory.render_toml(template_text, inv)
            atomic_write(root / INVENTORY_FILE, text.encode("utf-8"), backup=False)
            if git:
                await gitrepo.init_and_commit(root, "New NixDeck project")
        except BaseException:
            if created:
                shutil.rmtree(root, ignore_errors=True)
            else:
                for child in root.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            raise
        return await cls.open_async(root, discover_devices=False)

    @classmethod
    def new(cls, path: Path | str, devices: Sequence[str] = (), *, git: bool = True) -> Project:
        return _sync(cls.new_async(path, devices, git=git))

    async def create_device_module_async(self, name: str) -> Path:
        """Write ``devices/<name>.nix`` from the template (NixDeck-layout projects) and git-add it."""
        validate.device_name(name, "device")
        target = self.path / "devices" / f"{name}.nix"
        if target.exists():
            raise InvalidValue(f"device: {target} already exists", field="device", value=name)
        target.parent.mkdir(exist_ok=True)
        text = resource("templates", DEVICE_TEMPLATE).read_text(encoding="utf-8").replace("@name@", name)
        atomic_write(target, text.encode("utf-8"), backup=False)
        if await gitrepo.is_work_tree(self.path):
            await gitrepo.add(self.path, str(target.relative_to(self.path)))
        return target
