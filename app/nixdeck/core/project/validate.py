"""Validation of the values a user puts into the inventory.

Device names must be usable both as a Nix attribute name without quoting and as a hostname label
(RFC 1123), because the default ``networking.hostName`` is the device name: so a letter first, then
letters, digits and ``-``, not ending with ``-``, at most 63 characters (no ``_``: invalid in host
names). Tags follow the same rule (they name ``tags/<tag>.nix`` module lists). Hosts are DNS names or
IPv4/IPv6 literals (no brackets), users POSIX portable user names; nothing may start with ``-`` so a
value can never be taken for an option of ssh or nix.
"""

from __future__ import annotations

import ipaddress
import re

from .errors import InvalidValue

NAME_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
NIX_ATTR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SCOPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
PORT_MIN, PORT_MAX = 1, 65535
CONFIRM_TIMEOUT_MAX = 3600


def device_name(value: str, field: str = "name") -> str:
    """A device name: Nix attribute and RFC 1123 host label."""
    if not NAME_RE.fullmatch(value):
        raise InvalidValue(
            f"{field}: {value!r} is not a valid device name (a letter, then letters, digits or '-', "
            "not ending with '-', at most 63 characters)",
            field=field,
            value=value,
        )
    return value


def tag(value: str, field: str = "tags") -> str:
    """A tag: same rule as device names."""
    if not NAME_RE.fullmatch(value):
        raise InvalidValue(
            f"{field}: {value!r} is not a valid tag (a letter, then letters, digits or '-', "
            "at most 63 characters)",
            field=field,
            value=value,
        )
    return value


def tags(values: list[str], field: str = "tags") -> list[str]:
    """A list of distinct tags."""
    seen: set[str] = set()
    for v in values:
        tag(v, field)
        if v in seen:
            raise InvalidValue(f"{field}: tag {v!r} is listed twice", field=field, value=v)
        seen.add(v)
    return values


def host(value: str, field: str = "host") -> str:
    """A DNS name (RFC 1123, labels of 1–63 characters, at most 253) or an IPv4/IPv6 literal."""
    if value.startswith("[") and value.endswith("]"):
        raise InvalidValue(
            f"{field}: {value!r}: write IPv6 addresses without brackets", field=field, value=value
        )
    if ":" in value:
        addr, _, scope = value.partition("%")
        if "%" in value and not _SCOPE_RE.fullmatch(scope):
            # Python accepts any zone text; it ends up in store URIs and ssh_config files
            raise InvalidValue(
                f"{field}: {value!r}: the IPv6 zone after '%' must be an interface name or number",
                field=field,
                value=value,
            )
        try:
            ipaddress.IPv6Address(addr if not scope else value)
        except ValueError:
            raise InvalidValue(
                f"{field}: {value!r} is not a valid IPv6 address or host name (put the port in 'port')",
                field=field,
                value=value,
            ) from None
        return value
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise InvalidValue(f"{field}: {value!r} is not a valid host name or address", field=field, value=value)
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            raise InvalidValue(f"{field}: {value!r} is not a valid IPv4 address", field=field, value=value) from None
    elif labels[-1].isdigit():
        raise InvalidValue(
            f"{field}: {value!r} is not a valid host name (the last label is all digits)", field=field, value=value
        )
    return value


def user(value: str, field: str = "user") -> str:
    """A POSIX portable user name (letters, digits, '.', '_', '-'; not starting with '-' or '.')."""
    if not USER_RE.fullmatch(value):
        raise InvalidValue(
            f"{field}: {value!r} is not a valid user name (letters, digits, '.', '_', '-', "
            "starting with a letter or '_', at most 32 characters)",
            field=field,
            value=value,
        )
    return value


def port(value: int, field: str = "port") -> int:
    """A TCP port, 1–65535."""
    if isinstance(value, bool) or not PORT_MIN <= value <= PORT_MAX:
        raise InvalidValue(f"{field}: {value!r} is not a valid port (1–65535)", field=field, value=value)
    return value


def confirm_timeout(value: int, field: str = "confirm_timeout") -> int:
    """Seconds to wait for a device to answer after a switch: 1–3600."""
    if isinstance(value, bool) or not 1 <= value <= CONFIRM_TIMEOUT_MAX:
        raise InvalidValue(
            f"{field}: {value!r} is not a valid timeout (1–{CONFIRM_TIMEOUT_MAX} seconds)", field=field, value=value
        )
    return value


def max_jobs(value: int | str, field: str = "max_jobs") -> int | str:
    """Nix max-jobs: a count ≥ 0 or "auto"."""
    if isinstance(value, str):
        if value != "auto":
            raise InvalidValue(f"{field}: {value!r} must be a number or \"auto\"", field=field, value=value)
    elif isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{field}: {value!r} must be a number ≥ 0 or \"auto\"", field=field, value=value)
    return value


def one_line(value: str, field: str) -> str:
    """Free text kept on one line (paths, the Nix builders string): no NUL, CR or LF."""
    if any(c in value for c in "\x00\r\n"):
        raise InvalidValue(f"{field}: {value!r} must be a single line", field=field, value=value)
    return value


def path_value(value: str, field: str) -> str:
    """A file path (identity file, signing key): one line, not empty, not starting with '-'."""
    one_line(value, field)
    if not value or value.startswith("-"):
        raise InvalidValue(f"{field}: {value!r} is not a usable file path", field=field, value=value)
    return value
