"""A start-up probe for benchmarks: report when a window has first painted, then quit.

With MONTAGE_AI_REPORT_FIRST_PAINT=1, `montage-ai-gui` prints one line with
time.monotonic() (CLOCK_MONOTONIC, shared by every process on Linux) once its
main window has painted and flushed, then closes: the launcher measures from
just before it started the process.
"""

from __future__ import annotations

import os
import sys
import time

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

REPORT_FIRST_PAINT_ENV = "MONTAGE_AI_REPORT_FIRST_PAINT"
FIRST_PAINT_PREFIX = "first_paint_monotonic_sec="


def first_paint_wanted() -> bool:
    return os.environ.get(REPORT_FIRST_PAINT_ENV) == "1"


class FirstPaintReporter(QObject):
    """Watches a window; after its first paint event, prints the time and closes it.

    The time is taken on the next turn of the event loop, after the paint events
    of the window's children and the flush to the screen that follow it.
    """

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self._painted = False
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self._painted:
            self._painted = True
            QTimer.singleShot(0, self._report)
        return False

    def _report(self) -> None:
        sys.stdout.write(f"{FIRST_PAINT_PREFIX}{time.monotonic():.6f}\n")
        sys.stdout.flush()
        self._window.close()
        QCoreApplication.quit()
