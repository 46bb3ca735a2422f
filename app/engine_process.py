"""Runs one engine job as a subprocess and turns its JSON-line events into signals.

The engine is another process, so a crash, a hang or garbage on its stdout never
takes the window down; cancel asks first (SIGTERM) and kills after a grace period.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import shlex
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app import memory
from app.qt_compat import emit_signal
from engine import protocol

log = logging.getLogger(__name__)

# Set in the environment of a frozen app's own executable to make it run the engine.
ENGINE_ENV = "MONTAGE_AI_ENGINE"
# A command line that replaces the engine (a stand-in for tests, a development
# build); the job file's path is appended to it.
ENGINE_COMMAND_ENV = "MONTAGE_AI_ENGINE_COMMAND"
JOB_FILE_NAME = "job.json"
STDERR_TAIL_LINES = 200
KILL_AFTER_MS = 2000
REPORT_ADVICE = "Try again; if it happens again, please report it with the log file."
# Renders and inspections are background work: below the window's priority, the
# GUI thread gets a core first when both want one, and the tools take the rest.
BACKGROUND_NICENESS = 10


@dataclass(frozen=True)
class EngineCommand:
    """The program that runs a job; the job file's path is appended to `arguments`."""

    program: str
    arguments: list[str] = field(default_factory=list)
    # Kept out of reprs: it may carry the AI director's key.
    environment: dict[str, str] = field(default_factory=dict, repr=False)


def default_engine_command(tool: str = "") -> EngineCommand:
    """`python -m engine`, or the frozen executable itself told to act as the engine.

    A tool ("inspect") runs `python -m engine.TOOL`, or the frozen executable with
    the tool's name as its first argument. For renders, $MONTAGE_AI_ENGINE_COMMAND,
    split as a shell would, takes precedence.
    """
    override = shlex.split(os.environ.get(ENGINE_COMMAND_ENV, ""))
    if override and not tool:
        return EngineCommand(override[0], override[1:])
    if getattr(sys, "frozen", False):
        # packaging/montage_ai_entry.py sees ENGINE_ENV and runs engine.runner (or
        # the tool its first argument names) instead of the window.
        return EngineCommand(sys.executable, [tool] if tool else [], {ENGINE_ENV: "1"})
    return EngineCommand(sys.executable, ["-m", f"engine.{tool}" if tool else "engine"])


def with_director_key(command: EngineCommand | None, key: str) -> EngineCommand:
    """The engine command with the AI director's API key in its environment: the
    key reaches the engine there only, never in the job file or a log."""
    command = command or default_engine_command()
    if not key:
        return command
    environment = {**command.environment, protocol.DIRECTOR_KEY_ENV: key}
    return dataclasses.replace(command, environment=environment)


class LineBuffer:
    """Splits a byte stream into complete lines, keeping a partial last line."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        *complete, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        return [_decode(line) for line in complete]

    def flush(self) -> list[str]:
        """Whatever is left when the stream ends, as a last line."""
        rest, self._pending = bytes(self._pending), bytearray()
        return [_decode(rest)] if rest.strip() else []


def _decode(line: bytes | bytearray) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def command_process(
    parent: QObject, command: EngineCommand, arguments: list[str]
) -> QProcess:
    """A QProcess, not yet started, that runs command with extra arguments."""
    process = QProcess(parent)
    process.setProgram(command.program)
    process.setArguments([*command.arguments, *arguments])
    environment = QProcessEnvironment.systemEnvironment()
    for name, value in command.environment.items():
        environment.insert(name, value)
    process.setProcessEnvironment(environment)
    return process


def lower_priority(pid: int) -> None:
    """Run a child process (and the children it starts later) at background priority.

    A refusal only costs smoothness, so it is logged, never raised.
    """
    try:
        process = psutil.Process(pid)
        if sys.platform == "win32":
            process.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
        else:
            process.nice(max(process.nice(), BACKGROUND_NICENESS))
    except psutil.NoSuchProcess:
        return  # it has already ended
    except (psutil.Error, OSError) as error:
        log.warning("Could not lower the priority of process %d: %s", pid, error)


class ProcessOutputReader:
    """Reads a QProcess's stdout as lines for _handle_line and keeps a stderr tail.

    Mixed into the QObjects that run engine tools; they set _command, _process,
    log_prefix and tool_name, and handle lines, errors and the end of the process.
    """

    log_prefix = "engine"
    # The program in the user's words, in messages: "The engine stopped…".
    tool_name = "engine"
    # Why an exit with status 0 but without the tool's outcome event is a failure.
    silent_exit_reason = "it exited without finishing the render"
    _command: EngineCommand
    _process: QProcess | None
    _stdout: LineBuffer
    _stderr: LineBuffer
    _stderr_tail: collections.deque[str]

    def _reset_output(self) -> None:
        self._stdout = LineBuffer()
        self._stderr = LineBuffer()
        self._stderr_tail = collections.deque(maxlen=STDERR_TAIL_LINES)

    def _new_process(self, arguments: list[str]) -> QProcess:
        """A process for this tool's command and arguments, wired to our handlers."""
        assert isinstance(self, QObject)
        process = command_process(self, self._command, arguments)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        process.started.connect(lambda: lower_priority(process.processId()))
        return process

    def _handle_line(self, line: str) -> None:
        raise NotImplementedError

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        raise NotImplementedError

    def _on_error(self, error: QProcess.ProcessError) -> None:
        raise NotImplementedError

    def _read_stdout(self) -> None:
        if self._process is not None:
            data = bytes(self._process.readAllStandardOutput().data())
            for line in self._stdout.feed(data):
                self._handle_line(line)

    def _read_stderr(self) -> None:
        if self._process is not None:
            data = bytes(self._process.readAllStandardError().data())
            self._keep_stderr(self._stderr.feed(data))

    def _keep_stderr(self, lines: list[str]) -> None:
        for line in lines:
            log.info("%s| %s", self.log_prefix, line)
            self._stderr_tail.append(line)

    def _read_remaining_output(self) -> None:
        """Read what an ended process left in its pipes, a partial last line too."""
        self._read_stdout()
        self._read_stderr()
        for line in self._stdout.flush():
            self._handle_line(line)
        self._keep_stderr(self._stderr.flush())

    def _last_log_line(self) -> str:
        """The last non-blank line the process wrote to stderr, or ''."""
        return next((line.strip() for line in reversed(self._stderr_tail) if line), "")

    def _parse_line(self, line: str) -> protocol.Event | None:
        """The event on a line of stdout; None (logged) for a line that is not one."""
        if not line.strip():
            return None
        try:
            return protocol.parse_event(line)
        except protocol.ProtocolError as error:
            log.warning(
                "Skipped a line from the %s that is not an event: %s",
                self.tool_name,
                error,
            )
            return None

    def _explain_exit(self, exit_code: int, crashed: bool) -> tuple[str, str]:
        """An error code and a sentence for an exit that sent no outcome event."""
        code = protocol.ErrorCode.INTERNAL
        if crashed:
            reason = f"killed by signal {exit_code}{_signal_name(exit_code)}"
        elif exit_code == 0:
            reason = self.silent_exit_reason
        else:
            reason = f"exit status {exit_code}"
            code = protocol.error_code_for_exit(exit_code) or code
        message = f"The {self.tool_name} stopped unexpectedly ({reason})."
        last_line = self._last_log_line()
        if last_line:
            message += f' Its last log line was "{last_line}".'
        return code, f"{message} {self._exit_advice(exit_code, crashed)}"

    def _exit_advice(self, exit_code: int, crashed: bool) -> str:
        return REPORT_ADVICE

    def _failed_start_message(self) -> str:
        reason = self._process.errorString() if self._process is not None else ""
        return (
            f"The {self.tool_name} could not be started ({self._command.program}: "
            f"{reason}). Reinstall Montage AI."
        )


class EngineProcess(ProcessOutputReader, QObject):
    """One engine subprocess at a time, reported through past-tense signals.

    Exactly one of render_finished or render_failed follows every start(), once
    the process has exited; the engine's own finished or failed event is held
    until then.
    """

    started = Signal()
    stage_changed = Signal(str, str)
    # overall fraction 0..1, and seconds left in the current stage or None
    progress_changed = Signal(float, object)
    warning_raised = Signal(str, str)
    render_finished = Signal(dict, dict)
    render_failed = Signal(str, str)

    def __init__(
        self,
        command: EngineCommand | None = None,
        parent: QObject | None = None,
        kill_after_ms: int = KILL_AFTER_MS,
    ) -> None:
        super().__init__(parent)
        self._command = command or default_engine_command()
        self._process: QProcess | None = None
        self._reset_output()
        # The finished or failed event, held until the process has exited.
        self._outcome: tuple[str, Any, Any] | None = None
        self._cancelling = False
        # The kernel's count of out-of-memory kills when the engine started.
        self._oom_kills_at_start: int | None = None
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.setInterval(kill_after_ms)
        self._kill_timer.timeout.connect(self._kill_if_running)

    # Public API

    def is_running(self) -> bool:
        return self._process is not None

    def process_id(self) -> int | None:
        """The engine's operating-system process id while it runs."""
        return self._process.processId() if self._process is not None else None

    def stderr_tail(self) -> str:
        """The engine's last log lines (stderr), for showing next to an error."""
        return "\n".join(self._stderr_tail)

    def start(self, spec: protocol.JobSpec, job_dir: Path) -> Path:
        """Write the job file into job_dir and start the engine on it.

        Returns the job file's path. Raises RuntimeError if a render is running
        and OSError if the job file cannot be written.
        """
        if self._process is not None:
            raise RuntimeError("A render is already running; cancel it first.")
        job_dir.mkdir(parents=True, exist_ok=True)
        job_path = job_dir / JOB_FILE_NAME
        job_path.write_text(spec.to_json(), encoding="utf-8")

        self._reset()
        self._process = self._make_process(job_path)
        log.info("Starting the engine on %s", job_path)
        self._oom_kills_at_start = memory.oom_kills()
        self._process.start()
        return job_path

    def cancel(self) -> None:
        """Ask the engine to stop (SIGTERM); kill it if it is still there later."""
        if self._process is None or self._cancelling:
            return
        log.info("Cancelling the render")
        self._cancelling = True
        self._process.terminate()
        self._kill_timer.start()

    def shutdown(self, timeout_ms: int = KILL_AFTER_MS) -> None:
        """Cancel and wait for the engine to exit: for closing the app."""
        process = self._process
        if process is None:
            return
        self.cancel()
        if not process.waitForFinished(timeout_ms):
            process.kill()
            process.waitForFinished(1000)

    # Process plumbing

    def _reset(self) -> None:
        self._reset_output()
        self._outcome = None
        self._cancelling = False

    def _make_process(self, job_path: Path) -> QProcess:
        return self._new_process([str(job_path)])

    def _on_error(self, error: QProcess.ProcessError) -> None:
        # Only a failed start goes without a finished signal; the rest end there.
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return
        message = self._failed_start_message()
        self._end_process()
        self._send_failed(protocol.ErrorCode.INTERNAL, message)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_remaining_output()
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        log.info("Engine exited (%s %d)", "signal" if crashed else "status", exit_code)
        self._end_process()

        # The outcome is sent only now, so a handler may start the next render.
        outcome, self._outcome = self._outcome, None
        if outcome is not None and outcome[0] == "finished":
            if exit_code != 0 or crashed:
                log.warning("The engine finished the render, then exited %d", exit_code)
            self._send_finished(*outcome[1:])
        elif outcome is not None:
            self._send_failed(*outcome[1:])
        elif self._cancelling:
            self._send_failed(protocol.ErrorCode.CANCELLED, "Cancelled")
        else:
            self._send_failed(*self._explain_exit(exit_code, crashed))

    def _end_process(self) -> None:
        self._kill_timer.stop()
        if self._process is not None:
            # A finished process has nothing more to say; keep it from the next.
            self._process.blockSignals(True)
            self._process.deleteLater()
        self._process = None

    def _kill_if_running(self) -> None:
        if self._process is not None:
            log.warning("The engine ignored the request to stop; killing it")
            self._process.kill()

    def _exit_advice(self, exit_code: int, crashed: bool) -> str:
        # Windows has no SIGKILL; 9 is what Linux's out-of-memory killer sends.
        if not crashed or exit_code != getattr(signal, "SIGKILL", 9):
            return REPORT_ADVICE
        kills_now = memory.oom_kills()
        if kills_now is None or self._oom_kills_at_start is None:
            return (
                "The system may have run out of memory, or another program stopped "
                "it: close other programs or choose preview quality, and try again."
            )
        if kills_now > self._oom_kills_at_start:
            return (
                "The system ran out of memory and its out-of-memory killer stopped "
                "the render: close other programs or choose preview quality, and "
                "try again."
            )
        return (
            "Something outside Montage AI stopped it: the kernel recorded no "
            "out-of-memory kill, so a user or another program ended it, perhaps a "
            "memory monitor such as systemd-oomd or earlyoom. If memory ran low, "
            "close other programs or choose preview quality; then try again."
        )

    # Events

    def _handle_line(self, line: str) -> None:
        event = self._parse_line(line)
        if event is not None:
            self._dispatch(event)

    def _dispatch(self, event: protocol.Event) -> None:
        data = event.data
        kind = protocol.EventKind
        if self._outcome is not None:
            log.warning("Ignored a %s event after the outcome", event.kind.value)
        elif event.kind is kind.STARTED:
            emit_signal(self.started)
        elif event.kind is kind.STAGE:
            emit_signal(self.stage_changed, data["stage"], data["message"])
        elif event.kind is kind.PROGRESS:
            emit_signal(self.progress_changed, _overall(data), _eta_sec(data))
        elif event.kind is kind.WARNING:
            emit_signal(
                self.warning_raised, data["message"], str(data.get("path") or "")
            )
        elif event.kind is kind.FINISHED:
            self._outcome = ("finished", data["outputs"], data.get("summary") or {})
        elif event.kind is kind.FAILED and self._cancelling:
            log.info("The engine confirmed the cancel: %s", data["message"])
        elif event.kind is kind.FAILED:
            self._outcome = ("failed", data["code"], data["message"])

    def _send_finished(self, outputs: dict, summary: dict) -> None:
        log.info("Render finished: %s", outputs.get("video", outputs))
        emit_signal(self.render_finished, dict(outputs), dict(summary))

    def _send_failed(self, code: str, message: str) -> None:
        if code == protocol.ErrorCode.CANCELLED:
            log.info("Render cancelled")
        else:
            log.error("Render failed (%s): %s", code, message)
        emit_signal(self.render_failed, str(code), message)


def _overall(data: dict) -> float:
    """The whole job's fraction; estimated from the stage if the engine omits it."""
    overall = data.get("overall")
    if isinstance(overall, (int, float)) and not isinstance(overall, bool):
        return min(1.0, max(0.0, float(overall)))
    stage = data["stage"]
    if stage not in protocol.STAGES:
        return 0.0
    return (protocol.STAGES.index(stage) + data["fraction"]) / len(protocol.STAGES)


def _eta_sec(data: dict) -> float | None:
    eta_sec = data.get("eta_sec")
    if isinstance(eta_sec, (int, float)) and not isinstance(eta_sec, bool):
        return float(eta_sec)
    return None


def _signal_name(number: int) -> str:
    try:
        return f", {signal.Signals(number).name}"
    except ValueError:
        return ""
