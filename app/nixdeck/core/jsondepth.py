"""Nesting depth of JSON text, measured without recursion, before a recursive parser sees it.

`json.loads` recurses once per `[`/`{`: a document nested a few thousand levels deep raises
RecursionError (or worse, in code that walks the result). Imports check the depth first and refuse
such a document with a line number.
"""

from __future__ import annotations

MAX_DEPTH = 64  # an inventory or automation export is a few levels deep


class JsonTooDeep(ValueError):
    """The document nests deeper than allowed; `line` is where the limit was crossed (1-based)."""

    def __init__(self, limit: int, line: int) -> None:
        super().__init__(f"the JSON nests deeper than {limit} levels (at line {line}): not an export of NixDeck")
        self.limit = limit
        self.line = line


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raise JsonTooDeep when brackets outside strings nest deeper than `limit`."""
    depth = 0
    in_string = escaped = False
    for i, c in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > limit:
                raise JsonTooDeep(limit, text.count("\n", 0, i) + 1)
        elif c in "]}":
            depth -= 1
