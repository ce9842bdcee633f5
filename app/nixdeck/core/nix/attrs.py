"""Attribute paths of a NixOS fleet flake (the real NixOS ones) and flake installables.

`nixosConfigurations.<device>.config.system.build.toplevel` is the system; `.vm` the QEMU VM
script; images are `system.build.sdImage`/`isoImage` (classic modules), `system.build.images.<fmt>`
(NixOS 25.05+ image modules) or `formats.<fmt>` (nixos-generators). Image format names NixDeck
offers: sd-card, iso, qcow, raw.
"""

from __future__ import annotations

import re

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")

IMAGE_FORMATS = ("sd-card", "iso", "qcow", "raw")

#: Per format, the attribute paths below `config` that may hold it, in order of preference.
_IMAGE_OUTPUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sd-card": (
        ("system", "build", "images", "sd-card"),
        ("system", "build", "sdImage"),
        ("formats", "sd-card"),
        ("formats", "sd-aarch64"),
        ("formats", "sd-x86_64"),
    ),
    "iso": (
        ("system", "build", "images", "iso"),
        ("system", "build", "isoImage"),
        ("formats", "iso"),
    ),
    "qcow": (
        ("system", "build", "images", "qcow2"),
        ("system", "build", "images", "qcow"),
        ("formats", "qcow"),
        ("formats", "qcow-efi"),
    ),
    "raw": (
        ("system", "build", "images", "raw"),
        ("formats", "raw"),
        ("formats", "raw-efi"),
    ),
}


def quote_attr(name: str) -> str:
    """One attribute name as written in an attribute path (quoted unless a plain identifier)."""
    if _IDENT_RE.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attr_path(*parts: str) -> str:
    return ".".join(quote_attr(p) for p in parts)


def device_attr(device: str, *below: str) -> str:
    """`nixosConfigurations.<device>[.below...]`."""
    return attr_path("nixosConfigurations", device, *below)


def toplevel_attr(device: str) -> str:
    return device_attr(device, "config", "system", "build", "toplevel")


def vm_attr(device: str) -> str:
    return device_attr(device, "config", "system", "build", "vm")


def hostname_attr(device: str) -> str:
    return device_attr(device, "config", "networking", "hostName")


def image_attr_candidates(device: str, fmt: str) -> list[str]:
    """Attribute paths that may build image `fmt` for `device`, most preferred first.

    Raises ValueError for an unknown format. Pick the first one the flake has (e.g. by evaluating
    `builtins.attrNames` of `config.system.build`, `...images` and `config.formats`).
    """
    try:
        outputs = _IMAGE_OUTPUTS[fmt]
    except KeyError:
        raise ValueError(f"unknown image format {fmt!r}; choose one of {', '.join(IMAGE_FORMATS)}") from None
    return [device_attr(device, "config", *o) for o in outputs]


def image_attr(device: str, fmt: str, available: dict[str, set[str]] | None = None) -> str:
    """The image attribute to build.

    `available` maps `system.build`, `system.build.images` and `formats` to the attribute names
    present there; without it the first candidate is returned.
    """
    cands = _IMAGE_OUTPUTS.get(fmt)
    if cands is None:
        raise ValueError(f"unknown image format {fmt!r}; choose one of {', '.join(IMAGE_FORMATS)}")
    if available is None:
        return device_attr(device, "config", *cands[0])
    for c in cands:
        parent, name = ".".join(c[:-1]), c[-1]
        if name in available.get(parent, set()):
            return device_attr(device, "config", *c)
    raise ValueError(f"device {device!r} has no {fmt} image output (tried {', '.join('.'.join(c) for c in cands)})")


def installable(flake_ref: str, attr: str) -> str:
    """`<flake>#<attr>`; the flake ref is a path or URL (`.`, `path:/x`, `git+file:///x`)."""
    return f"{flake_ref}#{attr}"
