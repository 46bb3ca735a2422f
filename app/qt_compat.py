"""Workarounds for defects in the Qt bindings; every Python-side emit goes through here.

NOTE: PySide6 6.12.0 returns `True` from `SignalInstance.emit()` without taking a
reference, so on Python 3.11 (where bools are not immortal) each emit from Python
drops one reference to `True`; after a few hundred progress events the interpreter
aborts with "bool_dealloc: deallocating True or False". 6.11.3 is not affected.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import QObject, Signal, SignalInstance

log = logging.getLogger(__name__)


class _EmitProbe(QObject):
    probed = Signal()


def _emit_drops_a_reference() -> bool:
    """Measure, once, whether emit() gives back a bool it holds no reference to."""
    if sys.version_info >= (3, 12):
        return False  # bools are immortal: a lost reference does no harm
    probe = _EmitProbe()
    before = sys.getrefcount(True), sys.getrefcount(False)
    probe.probed.emit()
    after = sys.getrefcount(True), sys.getrefcount(False)
    probe.deleteLater()
    dropped = False
    for value, count_before, count_after in zip(
        (True, False), before, after, strict=True
    ):
        if count_after < count_before:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(value))
            dropped = True
    if dropped:
        log.info("PySide6 %s loses a reference on emit(); compensating", PYSIDE_VERSION)
    return dropped


EMIT_DROPS_A_REFERENCE = _emit_drops_a_reference()


def emit_signal(signal: SignalInstance, *args: Any) -> None:
    """signal.emit(*args), giving back the reference a faulty binding takes."""
    # The stubs say None; at run time emit() returns a bool.
    result = signal.emit(*args)  # type: ignore[func-returns-value]
    if EMIT_DROPS_A_REFERENCE and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
