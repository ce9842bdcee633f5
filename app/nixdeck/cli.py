"""The headless front end: the same core, database and tasks as the window.

Subcommands live in `nixdeck.clicmds.<area>` modules, each with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from nixdeck import __version__
from nixdeck.core.errors import NixDeckError


def build_parser() -> argparse.ArgumentParser:
    import nixdeck.clicmds as pkg

    parser = argparse.ArgumentParser(prog="nixdeck", description="Build and deploy a fleet of NixOS devices.")
    parser.add_argument("--version", action="version", version=f"nixdeck {__version__}")
    parser.add_argument("--data-dir", help="history and logs (default: NIXDECK_DATA_DIR or the user data dir)")
    parser.add_argument("--author", help="record tasks as this author: your OS user (default), scheduler or automation")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name == "common":
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        reg = getattr(mod, "register", None)
        if reg is not None:
            reg(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.data_dir:
        os.environ["NIXDECK_DATA_DIR"] = args.data_dir
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except NixDeckError as e:
        print(f"nixdeck: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nixdeck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
