"""Asks the engine what upscaling a job would cost, before the job starts.

`python -m engine.inspect upscale ...` probes the clips, calibrates Real-ESRGAN
once per machine and prints one upscale_info event; the form shows its message.
One process at a time; a request made while one runs replaces the one waiting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, QTimer, Signal
from PySide6.QtWidgets import QLabel, QWidget

from app.engine_process import (
    EngineCommand,
    ProcessOutputReader,
    default_engine_command,
)
from app.qt_compat import emit_signal
from engine import protocol

log = logging.getLogger(__name__)

KILL_WAIT_MS = 2000
# Options that change while the user is choosing ask once they settle this long.
SETTLE_MS = 500
# A montage as long as the song, before the song is known: a typical song.
DEFAULT_DURATION_SEC = 180.0


@dataclass(frozen=True)
class EstimateRequest:
    mode: str
    aspect: str
    quality: str
    duration_sec: float
    fps: float
    clips: tuple[str, ...]


class UpscaleEstimator(ProcessOutputReader, QObject):
    """Runs the engine's upscale estimate; estimated carries the event's data
    (ok, message, frames, seconds, method) or, on failure, ok false and why."""

    log_prefix = "estimate"
    tool_name = "upscale estimate"
    estimated = Signal(dict)

    def __init__(
        self, command: EngineCommand | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._command = command or default_engine_command("inspect")
        self._process: QProcess | None = None
        self._waiting: list[str] | None = None
        self._answered = False
        self._reset_output()

    def estimate(self, request: EstimateRequest) -> None:
        """Estimate for these clips and options; replaces a request still waiting."""
        self._waiting = [
            "upscale",
            request.mode,
            request.aspect,
            request.quality,
            f"{request.duration_sec:g}",
            f"{request.fps:g}",
            *request.clips,
        ]
        self._start_next()

    def shutdown(self) -> None:
        """Drop the waiting request and kill the running process."""
        self._waiting = None
        process, self._process = self._process, None
        if process is not None:
            process.blockSignals(True)
            process.kill()
            process.waitForFinished(KILL_WAIT_MS)
            process.deleteLater()

    def _start_next(self) -> None:
        if self._process is not None or self._waiting is None:
            return
        arguments, self._waiting = self._waiting, None
        self._reset_output()
        self._answered = False
        self._process = self._new_process(arguments)
        self._process.start()

    def _handle_line(self, line: str) -> None:
        event = self._parse_line(line)
        if event is not None and event.kind is protocol.EventKind.UPSCALE_INFO:
            self._answered = True
            emit_signal(self.estimated, dict(event.data))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self._finish(self._failed_start_message())

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_remaining_output()
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._finish(
            "" if self._answered else self._explain_exit(exit_code, crashed)[1]
        )

    def _finish(self, failure: str) -> None:
        if self._process is not None:
            self._process.blockSignals(True)
            self._process.deleteLater()
        self._process = None
        if failure:
            log.warning("No upscale estimate: %s", failure)
            emit_signal(self.estimated, {"ok": False, "message": failure})
        self._start_next()


class UpscaleEstimateLabel(QLabel):
    """The upscale estimate under the Upscale choice, asked for once the options
    settle; empty while upscaling is off."""

    def __init__(
        self, command: EngineCommand | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        # Hidden while empty, so it leaves no gap under the Upscale choice.
        self.hide()
        self.estimator = UpscaleEstimator(command, self)
        self.estimator.estimated.connect(self._show)
        self._request: EstimateRequest | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._ask)

    def request(self, request: EstimateRequest) -> None:
        """Show the estimate for these options (cleared while upscaling is off)."""
        if request == self._request:
            return
        self._request = request
        if request.mode == "off" or not request.clips:
            self._timer.stop()
            self._say("" if request.mode == "off" else "Add clips for an estimate.")
            return
        self._say("Estimating the upscaling time…")
        self._timer.start()

    def shutdown(self) -> None:
        self._timer.stop()
        self.estimator.shutdown()

    def _ask(self) -> None:
        if self._request is not None:
            self.estimator.estimate(self._request)

    def _show(self, data: dict) -> None:
        if self._request is None or self._request.mode == "off":
            return
        text = str(data.get("message", ""))
        self._say(text if data.get("ok") else f"No estimate: {text}")

    def _say(self, text: str) -> None:
        self.setText(text)
        self.setVisible(bool(text))
