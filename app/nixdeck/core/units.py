"""Sizes as people read them (binary units), one spelling for the CLI, the window and the records."""

from __future__ import annotations


def format_size(n: int) -> str:
    """``1536`` → ``1.5 KiB``; bytes below 1 KiB as ``N B``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
