"""The fleet project: a flake directory (devices = its nixosConfigurations) plus the NixDeck
inventory ``nixdeck.toml`` (targets, tags, deploy options). See project.py."""

from .demo import prepare_demo, prepare_demo_async
from .errors import (
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
    "prepare_demo",
    "prepare_demo_async",
]
