"""The engine subprocess: one job file in, JSON-line events out, an exit code per
error class. SIGTERM cancels: temporary files go, nothing looks finished."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import psutil

from engine.cancel import install_cancel_handlers
from engine.errors import EngineError
from engine.protocol import (
    EXIT_CODES,
    ErrorCode,
    Event,
    JobSpec,
    make_failed,
    make_started,
)

log = logging.getLogger(__name__)

# From <linux/prctl.h>.
PR_SET_PDEATHSIG = 1

Emit = Callable[[Event], None]


def emit_line(event: Event) -> None:
    """Write one event as one line and flush, so the app sees it at once."""
    sys.stdout.write(event.to_line() + "\n")
    sys.stdout.flush()


def install_signal_handlers() -> None:
    # SIGTERM (the app's Cancel) and Ctrl-C at a terminal cancel the same way.
    install_cancel_handlers()
    if hasattr(signal, "SIGXFSZ"):
        # A file-size limit then fails the write with EFBIG, which we report.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def die_with_parent() -> None:
    """On Linux, have the kernel send SIGTERM when the app that started us dies.

    The engine then cancels as it would for the app's Cancel: temporary files go,
    and no orphan renders on for a window that is gone.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError) as error:
        log.warning("Could not tie the engine to its parent: %s", error)
        return
    if os.getppid() != parent:
        # The parent died before the kernel knew to tell us.
        os.kill(os.getpid(), signal.SIGTERM)


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("MONTAGE_AI_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(code: ErrorCode, message: str, emit: Emit = emit_line) -> int:
    emit(make_failed(code, message))
    return EXIT_CODES[code]


def main(argv: list[str]) -> int:
    configure_logging()
    install_signal_handlers()
    die_with_parent()
    if len(argv) != 1:
        return fail(ErrorCode.INVALID_JOB, "Usage: python -m engine JOB.json")
    job_path = Path(argv[0])
    try:
        spec = JobSpec.from_json(job_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        # ValueError covers JobSpecError and a file that is not UTF-8 text.
        return fail(ErrorCode.INVALID_JOB, f"{job_path}: {error}")
    emit_line(make_started(os.getpid(), str(job_path)))
    return run_spec(spec, emit_line)


OUT_OF_MEMORY_MESSAGE = (
    "The render ran out of memory. Close other programs, choose preview quality "
    "or a smaller output size, and try again."
)


def near_memory_limit(share: float = 0.9) -> bool:
    """Whether this process's address space is close to its limit (RLIMIT_AS)."""
    if sys.platform == "win32":
        return False  # no RLIMIT_AS on Windows
    import resource  # POSIX only

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return False
    return bool(psutil.Process().memory_info().vms >= share * soft)


def run_spec(spec: JobSpec, emit: Emit) -> int:
    """Run a job, turning every failure into a failed event and an exit status."""
    from engine.job import run_job

    try:
        run_job(spec, emit)
    except EngineError as error:
        log.error("Job failed (%s): %s", error.code.value, error.message)
        return fail(error.code, error.message, emit)
    except MemoryError:
        log.error("Job failed: out of memory")
        return fail(ErrorCode.OUT_OF_MEMORY, OUT_OF_MEMORY_MESSAGE, emit)
    except Exception as error:
        if near_memory_limit():
            # FFmpeg's libraries report a failed allocation as a generic error.
            log.error("Job failed near its memory limit:\n%s", traceback.format_exc())
            return fail(ErrorCode.OUT_OF_MEMORY, OUT_OF_MEMORY_MESSAGE, emit)
        log.error("Job failed with an internal error:\n%s", traceback.format_exc())
        return fail(
            ErrorCode.INTERNAL,
            f"Internal error ({type(error).__name__}: {error}). This is a bug in "
            "Montage AI; the log has the details.",
            emit,
        )
    return 0
