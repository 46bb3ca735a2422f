"""The engine's exceptions: one root, narrow subclasses, each with a stable code."""

from __future__ import annotations

from engine.protocol import ErrorCode


class EngineError(Exception):
    """Root of every error the engine reports to the user.

    The message says what failed, the likely cause and what to do.
    """

    code = ErrorCode.INTERNAL

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class InvalidJobError(EngineError, ValueError):
    code = ErrorCode.INVALID_JOB


class MediaError(EngineError, ValueError):
    """One input file cannot be used; the job can go on without it."""

    code = ErrorCode.NO_USABLE_CLIPS


class NoUsableClipsError(EngineError):
    code = ErrorCode.NO_USABLE_CLIPS


class MusicError(EngineError, ValueError):
    code = ErrorCode.MUSIC_UNUSABLE


class OutputError(EngineError, OSError):
    code = ErrorCode.OUTPUT_UNWRITABLE


class DiskFullError(OutputError):
    code = ErrorCode.DISK_FULL


class RenderError(EngineError, RuntimeError):
    code = ErrorCode.RENDER_FAILED


class CancelledError(EngineError):
    code = ErrorCode.CANCELLED
