"""Cancelling a render by signal, up to the moment its files go into place.

SIGTERM (the app's Cancel) and SIGINT (Ctrl-C) raise CancelledError wherever the
engine is, and the temporary files are removed on the way out. Once the video and
its timelines are complete and being renamed into place, a cancel is too late: it
is logged and ignored, so that a job never reports "cancelled" beside files that
look finished, nor leaves half of its exports behind.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from engine.errors import CancelledError

log = logging.getLogger(__name__)

_too_late = False


def on_cancel_signal(signum: int, frame: FrameType | None) -> None:
    if _too_late:
        log.info(
            "Cancel ignored (signal %d): the render is complete and its files are "
            "being put in place.",
            signum,
        )
        return
    raise CancelledError("The render was cancelled.")


def install_cancel_handlers() -> None:
    signal.signal(signal.SIGTERM, on_cancel_signal)
    signal.signal(signal.SIGINT, on_cancel_signal)


def allow_cancel() -> None:
    """A new job starts: a cancel stops it again."""
    global _too_late
    _too_late = False


def too_late_to_cancel() -> None:
    """Every output is written: from here a cancel lets the job finish."""
    global _too_late
    _too_late = True
