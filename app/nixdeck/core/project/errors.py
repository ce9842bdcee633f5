"""Errors of the project layer.

Every error names what is wrong so a user can fix it: ``field`` is the dotted inventory path
(``devices.web1.port``), ``value`` the offending value and ``line`` the 1-based line in the
inventory file when it is known.
"""

from __future__ import annotations

from pathlib import Path

from nixdeck.core.errors import NixDeckError


class ProjectError(NixDeckError):
    """Base class: a user-facing problem with a project, its inventory or its flake."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: object = None,
        line: int | None = None,
        path: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.line = line
        self.path = path

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        return where + self.message


class InvalidValue(ProjectError, ValueError):
    """A value fails validation (bad host, port, user, device name, tag...)."""


class InventoryFileError(ProjectError):
    """The inventory file cannot be read: not TOML/JSON, wrong types, unknown version."""


class UnknownDevice(ProjectError):
    """A device name that is neither in the flake nor in the inventory."""


class FlakeError(ProjectError):
    """The flake cannot be evaluated at all (or is not a flake)."""


class ToolError(ProjectError):
    """An external tool (git, nix) failed while setting up a project."""


class DemoError(ProjectError):
    """The demo's simulated devices cannot be started, checked or stopped."""


class DemoAddressBusy(DemoError):
    """Another fleet (or anything else) already uses one of the demo's loopback addresses."""
