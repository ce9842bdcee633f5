"""`nixdeck parse-log FILE|- [--json]`: summarise a saved Nix stderr log (internal-json or plain)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import IO, Any

from nixdeck.core.nix.parselog import summarize

CHUNK = 256 * 1024


def register(subparsers: Any) -> None:
    """Add `parse-log` to an argparse subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "parse-log",
        help="summarise a saved Nix stderr log",
        description="Read Nix stderr (--log-format internal-json or plain) and print what the task "
        "details show: errors with location and trace, warnings, build and copy progress, and each "
        "derivation with its state, builder host and last log lines.",
    )
    p.add_argument("file", metavar="FILE", help="log file, or - for standard input")
    p.add_argument("--json", action="store_true", help="print the stable JSON summary (schema 1)")
    p.add_argument("--lines", type=int, default=20, metavar="N",
                   help="last build log lines per derivation (default 20, 0 for all kept lines)")
    p.add_argument("--source-root", metavar="DIR",
                   help="flake directory: map /nix/store/...-source paths back into it")
    p.set_defaults(func=run)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while True:
        b = stream.read(CHUNK)
        if not b:
            return
        yield b


def run(args: argparse.Namespace) -> int:
    """Handler: 0 on success, 2 if the file cannot be read."""
    last: int | None = args.lines if args.lines > 0 else None
    try:
        if args.file == "-":
            summary = summarize(_chunks(sys.stdin.buffer), last_lines=last, source_root=args.source_root)
        else:
            with open(args.file, "rb") as f:
                summary = summarize(_chunks(f), last_lines=last, source_root=args.source_root)
    except OSError as e:
        print(f"nixdeck parse-log: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    if args.json:
        summary.write_json(sys.stdout.buffer)  # derivations streamed: memory stays bounded
        sys.stdout.flush()
    else:
        sys.stdout.write(summary.render_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (tests, `python -m nixdeck.clicmds.nixlog`)."""
    parser = argparse.ArgumentParser(prog="nixdeck")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
