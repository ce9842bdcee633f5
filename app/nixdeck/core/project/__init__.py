"""The fleet project: a flake directory (devices = its nixosConfigurations) plus the NixDeck
inventory ``nixdeck.toml`` (targets, tags, deploy options). See project.py."""

from typing import Any

from .errors import (
    DemoAddressBusy,
    DemoError,
    FlakeError,
    InvalidValue,
    InventoryFileError,
    ProjectError,
    ToolError,
    UnknownDevice,
)
from .inventory import INVENTORY_FILE, DeviceEntry, EffectiveSettings, Inventory
from .project import Change, Device, DeviceState, Project, attr_path

_DEMO = ("demo_status", "prepare_demo", "prepare_demo_async", "start_demo", "stop_demo")


def __getattr__(name: str) -> Any:
    """The demo helpers load on first use: they pull in the SSH stack (asyncssh), which every
    `import nixdeck.core.project` would otherwise pay for at start-up."""
    if name in _DEMO:
        from . import demo

        return getattr(demo, name)
    raise AttributeError(name)

__all__ = [
    "INVENTORY_FILE",
    "Change",
    "DemoAddressBusy",
    "DemoError",
    "Device",
    "DeviceEntry",
    "DeviceState",
    "EffectiveSettings",
    "FlakeError",
    "InvalidValue",
    "InventoryFileError",
    "Inventory",
    "Project",
    "ProjectError",
    "ToolError",
    "UnknownDevice",
    "attr_path",
    "demo_status",
    "prepare_demo",
    "prepare_demo_async",
    "start_demo",
    "stop_demo",
]
