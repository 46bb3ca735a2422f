"""Exports a finished job's timeline for an editor through `python -m engine.export`.

The window never opens the timeline itself: one short subprocess per export writes
the file beside the .otio and names it in a finished event, after a warning for
everything the format cannot express.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from app.engine_process import (
    REPORT_ADVICE,
    EngineCommand,
    ProcessOutputReader,
    default_engine_command,
)
from app.qt_compat import emit_signal
from app.render_queue import RenderQueue
from engine import protocol

log = logging.getLogger(__name__)

# An export reads one small timeline: a minute means the exporter hangs.
EXPORT_TIMEOUT_MS = 60_000
KILL_WAIT_MS = 2000


@dataclass(frozen=True)
class ExportOutcome:
    """How one export ended: the files written and the warnings, or why it failed."""

    job_id: int
    format: str
    # The .otio exported from.
    timeline: str
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    error_code: str = ""
    error_message: str = ""

    @property
    def path(self) -> str:
        """The file written in the asked format, or '' after a failure."""
        return self.outputs.get(self.format) or next(iter(self.outputs.values()), "")


class ExportProcess(ProcessOutputReader, QObject):
    """One run of the exporter; exactly one of export_finished or export_failed
    follows start(), once the process has exited."""

    log_prefix = "export"
    tool_name = "exporter"
    silent_exit_reason = "it exited without naming the file it wrote"
    # outputs {format: path}, warnings [message]
    export_finished = Signal(dict, list)
    # error code, message for the user
    export_failed = Signal(str, str)

    def __init__(
        self,
        command: EngineCommand,
        parent: QObject | None = None,
        timeout_ms: int = EXPORT_TIMEOUT_MS,
    ) -> None:
        super().__init__(parent)
        self._command = command
        self._process: QProcess | None = None
        self.timeline = ""
        self._reset_output()
        self._warnings: list[str] = []
        # The finished or failed event, held until the process has exited.
        self._outcome: tuple[str, Any, Any] | None = None
        self._timed_out = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(timeout_ms)
        self._timer.timeout.connect(self._stop_overdue)

    def start(self, otio_path: str, export_format: str) -> None:
        """Start the exporter on a timeline; RuntimeError if this one runs."""
        if self._process is not None:
            raise RuntimeError("This export is already running.")
        self.timeline = otio_path
        self._process = self._new_process([otio_path, "--format", export_format])
        log.info("Exporting %s as %s", otio_path, export_format)
        self._timer.start()
        self._process.start()

    def shutdown(self) -> None:
        """Stop the exporter and wait for it, for closing the app; no signal follows."""
        process = self._end_process()
        if process is not None:
            process.kill()
            process.waitForFinished(KILL_WAIT_MS)

    # Process plumbing

    def _end_process(self) -> QProcess | None:
        self._timer.stop()
        process, self._process = self._process, None
        if process is not None:
            process.blockSignals(True)
            process.deleteLater()
        return process

    def _stop_overdue(self) -> None:
        if self._process is not None:
            log.warning("The exporter ran past its time limit; killing it")
            self._timed_out = True
            self._process.kill()

    def _on_error(self, error: QProcess.ProcessError) -> None:
        # Only a failed start goes without a finished signal; the rest end there.
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return
        message = self._failed_start_message()
        self._end_process()
        self._fail(protocol.ErrorCode.INTERNAL, message)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_remaining_output()
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        log.info(
            "Exporter exited (%s %d)", "signal" if crashed else "status", exit_code
        )
        self._end_process()

        outcome, self._outcome = self._outcome, None
        if outcome is not None and outcome[0] == "finished":
            emit_signal(self.export_finished, dict(outcome[1]), list(self._warnings))
        elif outcome is not None:
            self._fail(outcome[1], outcome[2])
        elif self._timed_out:
            limit_sec = self._timer.interval() / 1000
            message = f"The export took longer than {limit_sec:g} s and was stopped."
            self._fail(protocol.ErrorCode.INTERNAL, f"{message} {REPORT_ADVICE}")
        else:
            self._fail(*self._explain_exit(exit_code, crashed))

    def _fail(self, code: str, message: str) -> None:
        log.error("Export failed (%s): %s", code, message)
        emit_signal(self.export_failed, str(code), message)

    # Events

    def _handle_line(self, line: str) -> None:
        event = self._parse_line(line)
        if event is None:
            return
        data = event.data
        kind = protocol.EventKind
        if self._outcome is not None:
            log.warning("Ignored a %s event after the outcome", event.kind.value)
        elif event.kind is kind.WARNING:
            log.warning("Export: %s", data["message"])
            self._warnings.append(str(data["message"]))
        elif event.kind is kind.FINISHED:
            outputs = {
                str(kind): path
                for kind, path in data["outputs"].items()
                if _is_path(path)
            }
            if outputs:
                self._outcome = ("finished", outputs, None)
            else:
                log.warning("The exporter finished without naming a file")
        elif event.kind is kind.FAILED:
            self._outcome = ("failed", data["code"], data["message"])


def _is_path(value: object) -> bool:
    return isinstance(value, str) and bool(value)


class TimelineExports(QObject):
    """Runs the exports asked for, one process per job and format, at once if asked.

    Each file written is recorded with the job's outputs (in the store, through
    the queue) before export_finished is sent.
    """

    export_started = Signal(int, str)
    export_finished = Signal(object)
    export_failed = Signal(object)

    def __init__(
        self,
        queue: RenderQueue,
        command: EngineCommand | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._queue = queue
        self._command = command or default_engine_command("export")
        self._running: dict[tuple[int, str], ExportProcess] = {}

    def is_running(self, job_id: int, export_format: str) -> bool:
        return (job_id, export_format) in self._running

    def running_count(self) -> int:
        return len(self._running)

    def start(self, job_id: int, otio_path: str, export_format: str) -> bool:
        """Export a job's timeline; False if that export is running already."""
        key = (job_id, export_format)
        if key in self._running:
            return False
        process = ExportProcess(self._command, self)
        self._running[key] = process
        process.export_finished.connect(
            lambda outputs, warnings: self._on_finished(key, outputs, warnings)
        )
        process.export_failed.connect(
            lambda code, message: self._on_failed(key, code, message)
        )
        emit_signal(self.export_started, job_id, export_format)
        process.start(otio_path, export_format)
        return True

    def shutdown(self) -> None:
        """Stop every export: for closing the window."""
        for process in self._running.values():
            process.shutdown()
            process.deleteLater()
        self._running.clear()

    def _on_finished(
        self, key: tuple[int, str], outputs: dict[str, str], warnings: list[str]
    ) -> None:
        process = self._end(key)
        if process is None:
            return
        job_id, export_format = key
        self._queue.add_outputs(job_id, outputs)
        outcome = ExportOutcome(
            job_id, export_format, process.timeline, outputs, tuple(warnings)
        )
        emit_signal(self.export_finished, outcome)

    def _on_failed(self, key: tuple[int, str], code: str, message: str) -> None:
        process = self._end(key)
        if process is None:
            return
        job_id, export_format = key
        outcome = ExportOutcome(
            job_id,
            export_format,
            process.timeline,
            error_code=code,
            error_message=message,
        )
        emit_signal(self.export_failed, outcome)

    def _end(self, key: tuple[int, str]) -> ExportProcess | None:
        process = self._running.pop(key, None)
        if process is not None:
            process.deleteLater()
        return process
