"""Describes clips and songs for the window through `python -m engine.inspect`.

The window never decodes media: a short subprocess does, one at a time, and each
JSON line it prints becomes a signal. Files added while one runs go together in
the next.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

from app.engine_process import (
    EngineCommand,
    ProcessOutputReader,
    default_engine_command,
)
from app.qt_compat import emit_signal
from engine import protocol

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20
# Windows limits a whole command line to 32767 characters; stay well below.
MAX_ARGUMENT_CHARS = 16000
KILL_WAIT_MS = 2000


@dataclass
class _Request:
    """One inspect process: what it was asked about and what it has answered."""

    kind: protocol.EventKind
    paths: list[str]
    described: set[str] = field(default_factory=set)
    started_sec: float = field(default_factory=time.monotonic)


class MediaInspector(ProcessOutputReader, QObject):
    """Runs `engine.inspect` for clips and songs, one process at a time.

    Every file asked about gets clip_described (or music_described) or, if the
    process ends without describing it, inspection_failed. A folder is expanded by
    the inspector: its videos arrive as clip_described events of their own, and
    clips_inspected names the paths of a batch once its process has ended.
    """

    log_prefix = "inspect"
    tool_name = "inspector"
    clip_described = Signal(dict)
    music_described = Signal(dict)
    inspection_failed = Signal(str, str)
    clips_inspected = Signal(list)

    def __init__(
        self, command: EngineCommand | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._command = command or default_engine_command("inspect")
        self._process: QProcess | None = None
        self._request: _Request | None = None
        self._queued_clips: list[str] = []
        self._queued_music: str | None = None
        self._reset_output()

    # Public API

    def describe_clips(self, paths: Iterable[str | Path]) -> None:
        """Queue files and folders; they are described in one process when free."""
        queued = set(self._queued_clips)
        for path in paths:
            text = os.path.abspath(path)
            if text not in queued:
                queued.add(text)
                self._queued_clips.append(text)
        self._start_next()

    def describe_music(self, path: str | Path) -> None:
        """Queue a song; a song queued earlier and not started yet is dropped."""
        self._queued_music = os.path.abspath(path)
        self._start_next()

    def is_busy(self) -> bool:
        """True while a process runs or requests wait for one."""
        return self._process is not None or bool(
            self._queued_clips or self._queued_music
        )

    def shutdown(self) -> None:
        """Forget the queue and kill the running process: for closing the window."""
        self._queued_clips.clear()
        self._queued_music = None
        process, self._process = self._process, None
        self._request = None
        if process is None:
            return
        process.blockSignals(True)
        process.kill()
        process.waitForFinished(KILL_WAIT_MS)
        process.deleteLater()
        log.info("Stopped the media inspector")

    # Process plumbing

    def _start_next(self) -> None:
        if self._process is not None:
            return
        request = self._take_request()
        if request is None:
            return
        self._request = request
        self._reset_output()
        self._process = self._make_process(request)
        log.info("Inspecting %d %s path(s)", len(request.paths), _noun(request))
        self._process.start()

    def _take_request(self) -> _Request | None:
        """Clips first (they take a fraction of a second), then the latest song."""
        if self._queued_clips:
            batch: list[str] = []
            length = 0
            while self._queued_clips and (
                not batch or length + len(self._queued_clips[0]) < MAX_ARGUMENT_CHARS
            ):
                batch.append(self._queued_clips.pop(0))
                length += len(batch[-1]) + 1
            return _Request(protocol.EventKind.CLIP_INFO, batch)
        if self._queued_music is not None:
            song, self._queued_music = self._queued_music, None
            return _Request(protocol.EventKind.MUSIC_INFO, [song])
        return None

    def _make_process(self, request: _Request) -> QProcess:
        mode = "clips" if request.kind is protocol.EventKind.CLIP_INFO else "music"
        return self._new_process([mode, *request.paths])

    def _on_error(self, error: QProcess.ProcessError) -> None:
        # Only a failed start goes without a finished signal; the rest end there.
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return
        reason = self._process.errorString()
        self._end(
            f"the media inspector could not be started ({reason}). "
            "Reinstall Montage AI."
        )

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_remaining_output()
        if exit_status == QProcess.ExitStatus.CrashExit:
            reason = f"the media inspector was killed (signal {exit_code})"
        elif exit_code != 0:
            reason = f"the media inspector stopped with exit status {exit_code}"
        else:
            reason = ""
        self._end(reason)

    def _end(self, failure: str) -> None:
        """Report what the process left undescribed, then start the next one."""
        request, self._request = self._request, None
        if self._process is not None:
            self._process.blockSignals(True)
            self._process.deleteLater()
        self._process = None
        if request is not None:
            self._report_end(request, failure)
        self._start_next()

    def _report_end(self, request: _Request, failure: str) -> None:
        elapsed_sec = time.monotonic() - request.started_sec
        log.info("Inspected %s path(s) in %.1f s", _noun(request), elapsed_sec)
        # A folder holds no event of its own: after a clean exit it had no videos.
        missing = [
            path
            for path in request.paths
            if path not in request.described and (failure or not os.path.isdir(path))
        ]
        message = self._explain(failure or "it ended without describing the file")
        for path in missing:
            log.warning("Could not inspect %s: %s", path, message)
            emit_signal(self.inspection_failed, path, message)
        if request.kind is protocol.EventKind.CLIP_INFO:
            emit_signal(self.clips_inspected, list(request.paths))

    def _explain(self, reason: str) -> str:
        message = f"Could not read this file: {reason}."
        last_line = self._last_log_line()
        if last_line:
            message += f' Its last log line was "{last_line}".'
        return message + " Check that the file plays, then add it again."

    # Events

    def _handle_line(self, line: str) -> None:
        event = self._parse_line(line)
        if event is None or self._request is None:
            return
        if event.kind is not self._request.kind:
            log.warning("Ignored an unexpected %s event", event.kind.value)
            return

        data = dict(event.data)
        data["path"] = os.path.abspath(data["path"])
        self._request.described.add(data["path"])
        if event.kind is protocol.EventKind.CLIP_INFO:
            emit_signal(self.clip_described, data)
        else:
            emit_signal(self.music_described, data)


def _noun(request: _Request) -> str:
    return "clip" if request.kind is protocol.EventKind.CLIP_INFO else "song"
