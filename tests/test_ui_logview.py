"""Lazy log viewer: index in pieces, follow the tail, search."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from nixdeck.ui.logindex import LineIndex
from nixdeck.ui.logview import LogModel, LogView

pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints")


def _write(path: Path, first: int, last: int) -> None:
    with open(path, "a") as f:
        f.writelines(f"line {i} \x1b[31mred\x1b[0m\tend\n" for i in range(first, last))


def test_line_index_reads_back_and_searches(tmp_path: Path) -> None:
    p = tmp_path / "log"
    p.write_bytes(b"".join(b"row %d %s\n" % (i, b"x" * (i % 70)) for i in range(5000)) + b"half")
    ix = LineIndex(p)
    while ix.index_more(1000):
        pass
    assert ix.lines == 5000 and ix.line(4999).startswith(b"row 4999 ")
    assert all(ix.line_at(ix.line_start(n)) == n for n in range(0, 5000, 97))

    def last(gen):  # type: ignore[no-untyped-def]
        out = None
        for item in gen:
            out = item
        return out

    assert ix.line_at(last(ix.search("ROW 4321 ", 0, chunk=512))) == 4321
    assert ix.line_at(last(ix.search("row 7 ", ix.line_start(3000), chunk=512))) == 7  # wraps
    assert ix.line_at(last(ix.search("row 10 ", ix.line_start(20), backward=True, chunk=256))) == 10
    assert last(ix.search("absent", 0)) is None


def test_log_model_passes_modeltester(tmp_path: Path, qtbot: QtBot, qtmodeltester) -> None:
    p = tmp_path / "log"
    _write(p, 0, 50)
    model = LogModel(p)
    qtbot.waitUntil(lambda: model.rowCount() == 50)
    assert model.line_text(3) == "line 3 red      end"
    qtmodeltester.check(model)
    _write(p, 50, 60)
    model.poll()
    qtbot.waitUntil(lambda: model.rowCount() == 60)


def test_indexing_is_incremental(tmp_path: Path, qtbot: QtBot) -> None:
    p = tmp_path / "big"
    with open(p, "wb") as f:
        chunk = b"".join(b"%08d some build output of a derivation\n" % i for i in range(100_000))
        for _ in range(6):
            f.write(chunk)  # ~27 MB, 600k lines
    model = LogModel(p)
    model._tick()
    assert 0 < model.rowCount() < 600_000  # the first tick indexed only a part
    qtbot.waitUntil(lambda: model.rowCount() == 600_000, timeout=60_000)


def test_view_follows_tail_and_finds(tmp_path: Path, qtbot: QtBot) -> None:
    p = tmp_path / "log"
    _write(p, 0, 1000)
    view = LogView(p)
    qtbot.addWidget(view)
    view.resize(600, 300)
    view.show()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1000)
    sb = view.view.verticalScrollBar()
    qtbot.waitUntil(lambda: sb.value() == sb.maximum() > 0)
    _write(p, 1000, 1500)
    view.notify_output()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1500)
    qtbot.waitUntil(lambda: sb.value() == sb.maximum())
    assert view.is_following()
    sb.setValue(0)  # the user scrolls up: no more following
    assert not view.is_following()
    _write(p, 1500, 1600)
    view.notify_output()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1600)
    assert sb.value() == 0
    sb.setValue(sb.maximum())
    assert view.is_following()

    found: list[int] = []
    view.searchDone.connect(found.append)
    view.find_edit.setText("LINE 1234 ")
    view.find_next()
    qtbot.waitUntil(lambda: bool(found))
    assert found[-1] == 1234 and view.current_row() == 1234
    view.find_edit.setText("line 99 ")
    view.find_previous()
    qtbot.waitUntil(lambda: len(found) == 2)
    assert found[-1] == 99
    view.find_edit.setText("line 12")
    view.find_next()
    qtbot.waitUntil(lambda: len(found) == 3)
    assert found[-1] == 120  # the next "line 12…" below row 99
    view.find_edit.setText("no such text")
    view.find_next()
    qtbot.waitUntil(lambda: len(found) == 4)
    assert found[-1] == -1 and "not found" in view.status.text()
