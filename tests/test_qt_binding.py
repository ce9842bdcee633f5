"""Regression guard for the installed PySide6: void-returning calls must not leak references to None.

PySide6 6.12.0 on Python 3.11 drops a reference to None on every void call (`setObjectName`,
`Signal.emit`, ...) and the app aborts with "none_dealloc" after real use. Short tests pass there, so
this test makes a million calls and checks None's reference count holds.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

CALLS = 1_000_000
MARGIN = 1000


class _Emitter(QObject):
    fired = Signal()


def test_set_object_name_keeps_none_refcount() -> None:
    obj = QObject()
    set_name = obj.setObjectName
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        set_name("x")
    after = sys.getrefcount(None)
    assert after >= before - MARGIN, f"None lost {before - after} references in {CALLS} setObjectName calls"


def test_signal_emit_keeps_none_refcount() -> None:
    e = _Emitter()
    emit = e.fired.emit
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        emit()
    after = sys.getrefcount(None)
    assert after >= before - MARGIN, f"None lost {before - after} references in {CALLS} emit calls"
