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
from typing import NoReturn

from pydantic import ValidationError

from nixdeck import __version__
from nixdeck.core.errors import NixDeckError
from nixdeck.core.tasks.model import SPECIAL_AUTHORS, current_author

# Which clicmds module registers each top-level command: only that module is imported for a run,
# so `nixdeck tasks list` does not pay for importing asyncssh. tests/test_cli_commands.py keeps
# this table in step with what the modules register.
COMMAND_MODULES = {
    "auto": "auto",
    "build": "nix",
    "demo": "demo",
    "deploy": "deploy",
    "diff": "fleet",
    "flake": "nix",
    "gui": "gui",
    "image": "nix",
    "parse-log": "nixlog",
    "project": "project",
    "run": "run",
    "ssh": "ssh",
    "status": "fleet",
    "tasks": "tasks",
    "vm": "nix",
}


class CliParser(argparse.ArgumentParser):
    """A usage error is one line (`nixdeck tasks prune: argument --keep: …`) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="history and logs (default: NIXDECK_DATA_DIR or the user data dir)")
    parser.add_argument("--author", help="record tasks as this author: your OS user (default), scheduler or automation")
    parser.add_argument("-v", "--verbose", action="store_true")


def command_modules() -> list[str]:
    """Every clicmds module that registers commands (helper modules, such as `common`, define no
    `register`)."""
    import nixdeck.clicmds as pkg

    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name != "common")
    return [n for n in names if hasattr(importlib.import_module(f"nixdeck.clicmds.{n}"), "register")]


def build_parser(command: str | None = None, *, commands: bool = True) -> argparse.ArgumentParser:
    """The argument parser; with a known `command`, only the module that registers it is imported."""
    parser = CliParser(prog="nixdeck", description="Build and deploy a fleet of NixOS devices.")
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
    allowed = (current_author(), *SPECIAL_AUTHORS)
    if args.author is not None and args.author not in allowed:
        print(f"nixdeck: --author must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {args.author[:40]!r}",
              file=sys.stderr)
        return 2
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
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'input'}: {err['msg'].removeprefix('Value error, ')}"
                         for err in e.errors())
        print(f"nixdeck{' ' + command if command else ''}: {msgs}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nixdeck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
