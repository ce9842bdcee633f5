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

from pydantic import ValidationError

from nixdeck import __version__
from nixdeck.core.errors import NixDeckError

# Which clicmds module registers each top-level command: only that module is imported for a run,
# so `nixdeck tasks list` does not pay for importing asyncssh. tests/test_cli_commands.py keeps
# this table in step with what the modules register.
COMMAND_MODULES = {
    "auto": "auto",
    "build": "nix",
    "demo": "demo",
    "deploy": "deploy",
    "flake": "nix",
    "gui": "gui",
    "image": "nix",
    "parse-log": "nixlog",
    "project": "project",
    "run": "run",
    "ssh": "ssh",
    "tasks": "tasks",
    "vm": "nix",
}


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="history and logs (default: NIXDECK_DATA_DIR or the user data dir)")
    parser.add_argument("--author", help="record tasks as this author: your OS user (default), scheduler or automation")
    parser.add_argument("-v", "--verbose", action="store_true")


def command_modules() -> list[str]:
    """Every clicmds module that may register commands."""
    import nixdeck.clicmds as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name != "common")


def build_parser(command: str | None = None, *, commands: bool = True) -> argparse.ArgumentParser:
    """The argument parser; with a known `command`, only the module that registers it is imported."""
    parser = argparse.ArgumentParser(prog="nixdeck", description="Build and deploy a fleet of NixOS devices.")
    parser.add_argument("--version", action="version", version=f"nixdeck {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else command_modules() if commands else []
    for name in names:
        mod = importlib.import_module(f"nixdeck.clicmds.{name}")
        reg = getattr(mod, "register", None)
        if reg is not None:
            reg(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False)
    _global_options(pre)
    _, rest = pre.parse_known_args(list(argv))
    return rest[0] if rest and not rest[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser(command, commands=command is not None or "--version" not in argv)
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
    except ValidationError as e:
        # a submission built from the command line refused a value (e.g. --limit 0): a usage error
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'input'}: {err['msg']}" for err in e.errors())
        print(f"nixdeck{' ' + command if command else ''}: {msgs}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nixdeck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
