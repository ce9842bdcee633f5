"""`nixdeck gui [--project DIR]`: open the window on the same history as the CLI."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("gui", help="open the NixDeck window")
    p.add_argument("--project", help="open this project (a flake directory); default: the last one")
    p.set_defaults(func=cmd_gui)


def cmd_gui(args: argparse.Namespace) -> int:
    from nixdeck.ui.app import main as gui_main  # Qt is loaded only when the window is wanted

    argv: list[str] = []
    if args.project:
        argv += ["--project", args.project]
    if getattr(args, "data_dir", None):
        argv += ["--data-dir", args.data_dir]
    if getattr(args, "verbose", False):
        argv.append("--verbose")
    return gui_main(argv)
