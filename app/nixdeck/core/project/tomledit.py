"""Style-preserving writes of ``nixdeck.toml``: NixDeck's edits keep what the user wrote.

The file is the user's (reviewed in git, commented by hand), so NixDeck never re-renders it: an
edit parses the current text with tomlkit, changes only the keys whose values differ from the new
inventory, and leaves comments, key order, blank lines and every table NixDeck does not own
(``[groups.*]``, ``[automations.*]`` unless an automation edit asks for them) exactly as they were.
The result is checked by reading it back with ``tomllib``: if it does not say exactly what NixDeck
meant (a layout tomlkit cannot edit in place), the file is written fresh instead, so the data is
always right (the previous version stays in ``nixdeck.toml.bak``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Item, Table, Whitespace

#: The inventory sections a device/defaults/project edit owns.
INVENTORY_SECTIONS = ("version", "project", "defaults", "devices", "tags")
#: The sections an automation edit owns.
AUTOMATION_SECTIONS = ("groups", "automations")

Tableish = Container | Table


def _plain(value: Any) -> Any:
    """A tomlkit value as plain Python data (``unwrap`` keeps no formatting)."""
    return value.unwrap() if isinstance(value, Item | Container) else value


def _is_table(item: Any) -> bool:
    return isinstance(item, Table) and not isinstance(item, AoT)


def _inline(value: Any) -> Any:
    """Values below a device or automation table: inline tables, arrays of them one per line."""
    if isinstance(value, Mapping):
        t = tomlkit.inline_table()
        for k, v in value.items():
            t.append(k, _inline(v))
        return t
    if isinstance(value, list | tuple):
        arr = tomlkit.array()
        for v in value:
            arr.append(_inline(v))
        if any(isinstance(v, Mapping) for v in value):
            arr.multiline(True)
        return arr
    return tomlkit.item(value)


def _new_table(value: Mapping[str, Any], depth: int) -> Table:
    """A table; its mapping values are tables too while ``depth`` lasts, then inline."""
    table = tomlkit.table(is_super_table=depth > 0 and bool(value) and all(isinstance(v, Mapping) for v in value.values()))
    for k, v in value.items():
        table.add(k, _child(v, depth))
    return table


def _child(value: Any, depth: int) -> Any:
    if depth > 0 and isinstance(value, Mapping):
        return _new_table(value, depth - 1)
    return _inline(value)


def _delete(table: Tableish, key: str) -> None:
    """Delete a key; the comment lines at the end of a deleted table (they introduce what follows
    it, e.g. ``# Automations below``) move to the table before it."""
    old = table[key]
    tail: list[Any] = []
    if _is_table(old):
        body = old.value.body
        while body and body[-1][0] is None:
            tail.insert(0, body.pop()[1])
    keys = list(table)
    at = keys.index(key)
    del table[key]
    if not tail or not any(isinstance(item, Comment) for item in tail):
        return
    before = keys[at - 1] if at > 0 else None
    after = keys[at + 1] if at + 1 < len(keys) else None
    if before is not None and _is_table(table[before]):
        body = table[before].value.body
        if body and body[-1][0] is None and isinstance(body[-1][1], Whitespace) and isinstance(tail[0], Whitespace):
            tail = tail[1:]
        body.extend((None, item) for item in tail)
    elif after is not None and _is_table(table[after]):  # the first table went: its tail goes before the next header
        nxt = table[after]
        nxt.trivia.indent = "".join(item.as_string() for item in tail).lstrip("\n") + nxt.trivia.indent


def _sync(table: Tableish, new: Mapping[str, Any], depth: int) -> None:
    """Make ``table`` hold exactly ``new``: unchanged keys keep their text, changed ones are
    replaced (their trailing comment kept), missing ones deleted, new ones appended. Values that
    are tables in the file are edited in place while ``depth`` lasts."""
    for key in [k for k in table if k not in new]:
        _delete(table, key)
    for key, value in new.items():
        if key in table:
            old = table[key]
            if _plain(old) == value:
                continue
            if depth > 0 and _is_table(old) and isinstance(value, Mapping):
                _sync(old, value, depth - 1)
                continue
            table[key] = _child(value, depth)
        else:
            table.add(key, _child(value, depth))
    if depth > 0 and list(table) != list(new):
        _reorder(table, list(new))


def _reorder(table: Tableish, order: list[str]) -> None:
    """Put the keys in ``order`` (an import says the order): from the first key out of place on,
    each is taken out and appended again with its text (tables carry their comments along)."""
    current = list(table)
    first = next(i for i, (a, b) in enumerate(zip(current, order, strict=True)) if a != b)
    for key in order[first:]:
        item = table[key]
        del table[key]
        table.add(key, item)


def render(old_text: str | None, new: Mapping[str, Any], sections: Iterable[str], fresh: Callable[[], str]) -> str:
    """``old_text`` edited so that ``sections`` hold what ``new`` says (other sections untouched).

    ``new`` maps a section to its data (a missing or empty section is removed, except that an
    existing empty table is kept). ``fresh()`` gives the text to use when there is no usable old text.
    """
    if not old_text or not old_text.strip():
        return fresh()
    try:
        doc = tomlkit.parse(old_text)
    except Exception:  # noqa: BLE001 - tomlkit raises many kinds; the caller validated with tomllib
        return fresh()
    for section in sections:
        value = new.get(section)
        if section == "version":
            if value is not None and doc.get("version") != value:
                doc["version"] = value
            continue
        if not value:
            if section in doc and _is_table(doc[section]):
                _sync(doc[section], {}, 1)  # the header stays where the user put it, for later values
            elif section in doc:
                del doc[section]
            continue
        if section in doc and _is_table(doc[section]):
            _sync(doc[section], value, 1)
        else:
            if section in doc:
                del doc[section]
            _insert_section(doc, section, _new_table(value, 1))
    text = tomlkit.dumps(doc)
    text = _space_new_headers(old_text, text)
    return text if text.endswith("\n") else text + "\n"


SECTION_ORDER = ("version", "project", "defaults", "devices", "groups", "automations")


def _insert_section(doc: Container, section: str, table: Table) -> None:
    """A new section goes before the first section that comes after it in the usual order
    (project, defaults, devices, groups, automations), else at the end."""
    later = SECTION_ORDER[SECTION_ORDER.index(section) + 1:] if section in SECTION_ORDER else ()
    keys = [k.key if k is not None else None for k, _ in doc.body]
    for i, key in enumerate(keys):
        if key in later and _is_table(doc.body[i][1]):
            doc._insert_at(i, section, table)
            return
    doc.add(section, table)


_HEADER_LINE = re.compile(r"^[ \t]*\[[^\n]*$", re.M)


def _space_new_headers(old_text: str, text: str) -> str:
    """Table headers NixDeck added get the file's own spacing: a blank line before them when the
    file separates its tables so (the usual), none in a compact file."""
    old_headers = {m.group(0).strip() for m in _HEADER_LINE.finditer(old_text)}
    sep = "\n\n" if re.search(r"\n[ \t]*\n[ \t]*\[", old_text) or not old_headers else "\n"
    out: list[str] = []
    pos = 0
    after_new = False
    for m in _HEADER_LINE.finditer(text):
        new = m.group(0).strip() not in old_headers
        if (new or after_new) and m.start() > 0:
            out.append(text[pos : m.start()].rstrip("\n") + sep)
            pos = m.start()
        after_new = new
    out.append(text[pos:])
    return "".join(out)


def same_data(text: str, new: Mapping[str, Any], sections: Iterable[str]) -> bool:
    """Whether ``text`` reads back (with the standard tomllib) as ``new`` in ``sections``."""
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return False
    return all((data.get(s) or None) == (new.get(s) or None) for s in sections)


def nesting_depth(data: Any, limit: int) -> tuple[int, str]:
    """How deep tables and arrays nest (counted without recursion, stopping past ``limit``), and
    the dotted path of the deepest one seen."""
    deepest, where = 0, ""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, at = stack.pop()
        if depth > deepest:
            deepest, where = depth, at
        if depth > limit:
            break
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{at}.{k}" if at else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{at}[{i}]") for i, v in enumerate(value))
    return deepest, where
