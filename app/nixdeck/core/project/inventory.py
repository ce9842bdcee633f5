"""The NixDeck inventory: what Nix does not hold about a fleet (targets, tags, deploy options).

Format: ``nixdeck.toml`` at the root of the flake. TOML because users edit it by hand and review it
in git (one ``[devices.<name>]`` table per device gives small, readable diffs), comments are allowed,
Python reads it with the standard ``tomllib`` and Nix with ``builtins.fromTOML`` — the project
template maps tags to module lists from it. A new file is written by the small deterministic writer
below; every later edit goes through ``tomledit`` (tomlkit), which changes only what changed, so the
user's comments, order and blank lines survive. The previous version is kept as ``nixdeck.toml.bak``.
``[groups.*]`` and ``[automations.*]`` are kept here as raw tables: ``core.automation`` validates
them one by one, so a broken automation never stops the project from opening. Nesting deeper than
``MAX_DEPTH`` is refused with a clear error (never a RecursionError).

Loading is strict (``port = "22"`` is an error, not a silent conversion); values set through the API
or the CLI are converted leniently first (``"2222"`` → 2222, ``"yes"`` → true). ``version`` is the
schema version; older files are migrated on load and written back in the current version on the
next change, newer ones are refused.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, field_validator
from pydantic import ValidationError as PydanticValidationError

from nixdeck.core.fleet.health import HealthCheck, merge_checks

from . import tomledit, validate
from .errors import InvalidValue, InventoryFileError, ProjectError
from .migrations import migrate
from .tomledit import nesting_depth
from .tomlpos import locate_line

INVENTORY_FILE = "nixdeck.toml"
JSON_FORMAT = "nixdeck-inventory"
MAX_DEPTH = 24  # tables and arrays inside each other; far beyond any real inventory

Action = Literal["switch", "boot", "test", "dry-activate"]
BuildOn = Literal["local", "target"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeploySettings(_Model):
    """Connection and deploy options; ``None`` means "inherit" (from defaults, then built-ins)."""

    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    action: Action | None = None
    confirm: bool | None = None
    rollback: bool | None = None
    confirm_timeout: int | None = None
    build_on: BuildOn | None = None
    substitute_on_destination: bool | None = None
    reboot: bool | None = None  # with action boot: reboot after activation, wait for the new system
    health_checks: list[HealthCheck] | None = None  # see core.fleet.health

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        return None if v is None else validate.user(v)

    @field_validator("port")
    @classmethod
    def _port(cls, v: int | None) -> int | None:
        return None if v is None else validate.port(v)

    @field_validator("identity_file")
    @classmethod
    def _identity(cls, v: str | None) -> str | None:
        return None if v is None else validate.path_value(v, "identity_file")

    @field_validator("confirm_timeout")
    @classmethod
    def _timeout(cls, v: int | None) -> int | None:
        return None if v is None else validate.confirm_timeout(v)


class Defaults(DeploySettings):
    """Project-wide defaults under ``[defaults]``."""


class DeviceEntry(DeploySettings):
    """One ``[devices.<name>]`` table."""

    host: str | None = None
    tags: list[str] = []

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return None if v is None else validate.host(v)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return validate.tags(v)


class ProjectSettings(_Model):
    """``[project]``: how Nix builds and copies for this project."""

    builders: str | None = None
    builders_use_substitutes: bool | None = None
    max_jobs: int | Literal["auto"] | None = None
    no_check_sigs: bool | None = None
    signing_key: str | None = None

    @field_validator("builders")
    @classmethod
    def _builders(cls, v: str | None) -> str | None:
        return None if v is None else validate.one_line(v, "builders")

    @field_validator("max_jobs")
    @classmethod
    def _max_jobs(cls, v: int | str | None) -> int | str | None:
        return None if v is None else validate.max_jobs(v)

    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, v: str | None) -> str | None:
        return None if v is None else validate.path_value(v, "signing_key")


class TagSettings(_Model):
    """``[tags.<tag>]``: what every device with the tag gets (health checks, for now)."""

    health_checks: list[HealthCheck] = []


class Inventory(_Model):
    """The whole file."""

    version: Literal[1] = 1
    project: ProjectSettings = ProjectSettings()
    defaults: Defaults = Defaults()
    devices: dict[str, DeviceEntry] = {}
    tags: dict[str, TagSettings] = {}
    groups: dict[str, Any] = {}  # validated by core.automation, one by one
    automations: dict[str, Any] = {}

    @field_validator("devices")
    @classmethod
    def _names(cls, v: dict[str, DeviceEntry]) -> dict[str, DeviceEntry]:
        for name in v:
            validate.device_name(name, f"devices.{name}")
        return v


BUILTIN_DEFAULTS: dict[str, Any] = {
    "user": "root",
    "port": 22,
    "identity_file": None,
    "action": "switch",
    "confirm": True,
    "rollback": True,
    "confirm_timeout": 30,
    "build_on": "local",
    "substitute_on_destination": False,
    "reboot": False,
}
DEVICE_FIELDS = tuple(DeviceEntry.model_fields)
DEFAULT_FIELDS = tuple(Defaults.model_fields)
PROJECT_FIELDS = tuple(ProjectSettings.model_fields)


@dataclass(frozen=True)
class EffectiveSettings:
    """A device's settings after overlaying: device values, then ``[defaults]``, then built-ins."""

    host: str | None
    user: str
    port: int
    identity_file: str | None
    tags: tuple[str, ...]
    action: Action
    confirm: bool
    rollback: bool
    confirm_timeout: int
    build_on: BuildOn
    substitute_on_destination: bool
    reboot: bool = False
    health_checks: tuple[HealthCheck, ...] = ()

    @property
    def target(self) -> str | None:
        """``user@host`` (the port is separate: Nix 2.8 ignores ports in store URIs)."""
        return None if self.host is None else f"{self.user}@{self.host}"


def effective(
    entry: DeviceEntry | None, defaults: Defaults, tags: Mapping[str, TagSettings] | None = None
) -> EffectiveSettings:
    """Overlay a device entry on the project defaults and the built-in defaults (health checks
    add up: defaults, the device's tags, the device's own)."""
    values: dict[str, Any] = {}
    for name, builtin in BUILTIN_DEFAULTS.items():
        mine = getattr(entry, name) if entry is not None else None
        inherited = getattr(defaults, name)
        values[name] = mine if mine is not None else inherited if inherited is not None else builtin
    device_tags = tuple(entry.tags) if entry is not None else ()
    checks = merge_checks(defaults.health_checks, *((tags or {}).get(t, TagSettings()).health_checks
                                                   for t in device_tags), entry.health_checks if entry else None)
    return EffectiveSettings(
        host=entry.host if entry is not None else None, tags=device_tags, health_checks=checks, **values
    )


# --- reading ---------------------------------------------------------------------------------


def _pydantic_error(exc: PydanticValidationError, text: str | None, path: Path | None) -> InvalidValue:
    """The first pydantic error as an InvalidValue naming the field, the value and the line."""
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    # Keep only the path into our data (pydantic adds union/literal branch names to the loc).
    loc = tuple(p for p in loc if not p.startswith(("literal[", "int", "str", "function-")))
    field = ".".join(loc)
    cause = err.get("ctx", {}).get("error")
    line = locate_line(text, loc) if text is not None else None
    if isinstance(cause, InvalidValue):
        if cause.field and cause.field.startswith(field + "."):
            field = cause.field  # e.g. a device name: more precise than the loc ("devices")
            line = locate_line(text, tuple(field.split("."))) if text is not None else line
        msg = f"{field}: {cause.message.split(': ', 1)[-1]}"
        return InvalidValue(msg, field=field, value=cause.value, line=line, path=path)
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        msg = f"{field}: unknown setting"
    elif err["type"] == "missing":
        msg = f"{field}: missing"
    else:
        msg = f"{field}: {err['msg'].lower()} (got {value!r})"
    return InvalidValue(msg, field=field, value=value, line=line, path=path)


def check_depth(data: Any, path: Path | None = None) -> None:
    depth, where = nesting_depth(data, MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise InventoryFileError(
            f"{where.split('[')[0] or 'the inventory'}: nested more than {MAX_DEPTH} levels deep", path=path,
            field=where.split("[")[0] or None,
        )


def inventory_from_data(data: Any, *, text: str | None = None, path: Path | None = None) -> Inventory:
    """Validate raw data (already parsed), migrating older versions."""
    if not isinstance(data, dict):
        raise InventoryFileError("the inventory must be a table/object", path=path)
    check_depth(data, path)
    data = migrate(data)
    try:
        return Inventory.model_validate(data, strict=True)
    except PydanticValidationError as exc:
        raise _pydantic_error(exc, text, path) from None


def parse_toml(text: str, path: Path | None = None) -> Inventory:
    """Parse and validate the TOML text of an inventory file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m[1]) if m else None
        raise InventoryFileError(f"not valid TOML: {exc}", line=line, path=path) from None
    except RecursionError:
        raise InventoryFileError(f"not usable: nested more than {MAX_DEPTH} levels deep", path=path) from None
    return inventory_from_data(data, text=text, path=path)


def read_inventory(path: Path) -> Inventory:
    """Read an inventory file; a missing file is an empty inventory, a broken one an error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Inventory()
    except OSError as exc:
        raise InventoryFileError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InventoryFileError("not UTF-8 text", line=line, path=path) from None
    return parse_toml(text, path)


# --- writing ---------------------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(s: str) -> str:
    out = []
    for c in s:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if _BARE_KEY_RE.fullmatch(k) else _toml_string(k)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (a health check)
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


_FIRST = ("host", "user", "port", "identity_file", "tags")


def _set_fields(model: BaseModel) -> dict[str, Any]:
    """Fields that are set (not None, not an empty list), connection fields first."""
    data = model.model_dump()
    order = [f for f in _FIRST if f in data] + [f for f in data if f not in _FIRST]
    return {f: data[f] for f in order if data[f] is not None and data[f] != []}


def _table_lines(model: BaseModel) -> list[str]:
    return [f"{_toml_key(name)} = {_toml_value(value)}" for name, value in _set_fields(model).items()]


HEADER = (
    "# NixDeck inventory: what the flake does not say about each device (target, tags, deploy options).\n"
    "# Edit by hand or with NixDeck; devices themselves are the flake's nixosConfigurations.\n"
)


def dump_toml(inv: Inventory) -> str:
    """Deterministic TOML text of an inventory (field order as declared, devices in dict order)."""
    parts = [HEADER, f"version = {inv.version}\n"]
    for title, model in (("project", inv.project), ("defaults", inv.defaults)):
        lines = _table_lines(model)
        if lines:
            parts.append(f"\n[{title}]\n" + "".join(line + "\n" for line in lines))
    for name, entry in inv.devices.items():
        lines = _table_lines(entry)
        parts.append(f"\n[devices.{_toml_key(name)}]\n" + "".join(line + "\n" for line in lines))
    text = "".join(parts)
    if inv.groups or inv.automations or inv.tags:  # written by tomlkit: nested tables the flat writer does not do
        flat = text
        text = tomledit.render(flat, sections_data(inv), (*tomledit.AUTOMATION_SECTIONS, "tags"), lambda: flat)
    return text


def sections_data(inv: Inventory) -> dict[str, Any]:
    """The inventory as the plain data the file holds (unset fields left out)."""
    return {
        "version": inv.version,
        "project": _set_fields(inv.project),
        "defaults": _set_fields(inv.defaults),
        "devices": {name: _set_fields(entry) for name, entry in inv.devices.items()},
        "tags": {name: _set_fields(t) for name, t in inv.tags.items()},
        "groups": inv.groups,
        "automations": inv.automations,
    }


def render_toml(old_text: str | None, inv: Inventory, sections: tuple[str, ...] = tomledit.INVENTORY_SECTIONS) -> str:
    """The file text for ``inv``: ``old_text`` edited in place (comments, order and blank lines kept;
    only ``sections`` touched), or a fresh file when there is none or an in-place edit cannot say
    exactly ``inv``."""
    used_fresh = False

    def fresh() -> str:
        nonlocal used_fresh
        used_fresh = True
        return dump_toml(inv)

    text = tomledit.render(old_text, sections_data(inv), sections, fresh)
    if not used_fresh:
        try:
            back: Inventory | None = parse_toml(text)
        except ProjectError:
            back = None
        if back != inv:
            return dump_toml(inv)
    return text


# --- JSON export / import --------------------------------------------------------------------


def to_json(inv: Inventory) -> str:
    """JSON export: the same data as the TOML file, unset fields left out; stable byte for byte."""
    data = {
        "format": JSON_FORMAT,
        "version": inv.version,
        "project": _set_fields(inv.project),
        "defaults": _set_fields(inv.defaults),
        "devices": {name: _set_fields(entry) for name, entry in inv.devices.items()},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def from_json(text: str, path: Path | None = None) -> Inventory:
    """Parse a JSON export (any schema version this NixDeck can migrate)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryFileError(f"not valid JSON: {exc.msg}", line=exc.lineno, path=path) from None
    except RecursionError:
        raise InventoryFileError(f"not usable: nested more than {MAX_DEPTH} levels deep", path=path) from None
    if isinstance(data, dict):
        fmt = data.pop("format", JSON_FORMAT)
        if fmt != JSON_FORMAT:
            raise InventoryFileError(
                f"format: {fmt!r} is not a NixDeck inventory export", field="format", value=fmt, path=path
            )
    return inventory_from_data(data, path=path)


# --- lenient updates (API and CLI input) -----------------------------------------------------

_LENIENT: dict[str, TypeAdapter[Any]] = {}


def coerce(model: type[BaseModel], field: str, value: object, prefix: str) -> object:
    """Convert a user-given value (often a CLI string) to the field's type, or raise InvalidValue."""
    if field not in model.model_fields:
        known = ", ".join(model.model_fields)
        raise InvalidValue(f"{prefix}{field}: unknown setting (known: {known})", field=prefix + field, value=value)
    if value is None:
        return None
    if field == "tags" and isinstance(value, str):
        value = [t.strip() for t in value.split(",") if t.strip()]
    key = f"{model.__name__}.{field}"
    if key not in _LENIENT:
        annotation: Any = model.model_fields[field].annotation
        _LENIENT[key] = TypeAdapter(annotation)
    if field == "max_jobs" and isinstance(value, str) and value.isdigit():
        value = int(value)
    try:
        return _LENIENT[key].validate_python(value)
    except PydanticValidationError as exc:
        raise InvalidValue(
            f"{prefix}{field}: {exc.errors()[0]['msg'].lower()} (got {value!r})", field=prefix + field, value=value
        ) from None


def updated(model: BaseModel, values: Mapping[str, object], prefix: str) -> Any:
    """A copy of ``model`` with ``values`` set (``None`` unsets), fully validated."""
    data = model.model_dump()
    for field, value in values.items():
        data[field] = coerce(type(model), field, value, prefix)
    try:
        return type(model).model_validate(data, strict=True)
    except PydanticValidationError as exc:
        err = _pydantic_error(exc, None, None)
        field = prefix + err.field if err.field else prefix
        raise InvalidValue(f"{prefix}{err.message}", field=field, value=err.value) from None
