"""The emit workaround keeps the reference counts of True and False steady."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
import sys

from PySide6.QtCore import QObject, Signal

from app.qt_compat import emit_signal


class CountingObject(QObject):
    counted = Signal(float, object)


def test_many_emits_leave_bool_reference_counts_alone(qtbot):
    sender = CountingObject()
    received = []
    sender.counted.connect(lambda *args: received.append(args))
    emits = 5000
    gc.collect()
    before = sys.getrefcount(True), sys.getrefcount(False)

    # More emits than True has references in a small process: unpatched, this
    # aborts the interpreter on PySide6 6.12.0 with Python 3.11.
    for number in range(emits):
        emit_signal(sender.counted, number / emits, None)
    gc.collect()

    after = sys.getrefcount(True), sys.getrefcount(False)
    # Other objects come and go holding a bool; a leak would be one per emit.
    assert abs(after[0] - before[0]) < 50
    assert abs(after[1] - before[1]) < 50
    assert len(received) == emits
