"""Cancelling a render by signal, up to the moment its files go into place.

SIGTERM (the app's Cancel) and SIGINT (Ctrl-C) raise CancelledError wherever the
engine is, and the temporary files are removed on the way out. Once the video and
its timelines are complete and being renamed into place, a cancel is too late: it
is ignored, so that a job never reports "cancelled" beside files that look
finished, nor leaves half of its exports behind.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from engine.errors import CancelledError

log = logging.getLogger(__name__)

_too_late = False
# Handlers set aside while a cancel is too late, to put back for the next job.
_ignored: dict[int, Callable[[int, FrameType | None], None]] = {}


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
    for signum in list(_ignored):
        signal.signal(signum, _ignored.pop(signum))


def too_late_to_cancel() -> None:
    """Every output is written: from here a cancel lets the job finish.

    The system itself ignores the signals from here: Python puts its own handlers
    back to the default as the interpreter exits, and a cancel arriving then would
    kill the finished engine.
    """
    global _too_late
    _too_late = True
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may change handlers; on_cancel_signal knows
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is on_cancel_signal:
            _ignored[signum] = on_cancel_signal
            signal.signal(signum, signal.SIG_IGN)
