"""`python -m nixdeck`: the window by default, the CLI when given a subcommand."""

from __future__ import annotations

import sys


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("gui", "--gui"):
        from nixdeck.ui.app import main as gui_main

        return gui_main(args[1:] if args else [])
    from nixdeck.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
