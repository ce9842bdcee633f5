"""The CLI's table of commands matches what the clicmds modules register."""

from __future__ import annotations

import argparse
import importlib

from nixdeck.cli import COMMAND_MODULES, build_parser, command_modules, main


def _registered(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"nixdeck.clicmds.{module}").register(sub)
    return set(sub.choices)


def test_command_table_matches_modules() -> None:
    seen: dict[str, str] = {}
    for module in command_modules():
        for cmd in _registered(module):
            seen[cmd] = module
    assert seen == COMMAND_MODULES


def test_full_parser_lists_every_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_MODULES)


def test_version_and_help(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert "nixdeck" in capsys.readouterr().out
    assert main([]) == 2
    assert "deploy" in capsys.readouterr().out
