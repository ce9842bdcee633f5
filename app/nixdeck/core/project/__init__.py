"""The fleet project: a flake directory (devices = its nixosConfigurations) plus the NixDeck
inventory ``nixdeck.toml`` (targets, tags, deploy options). See project.py."""

from .demo import demo_status, prepare_demo, prepare_demo_async, start_demo, stop_demo
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
