"""The main window: the job form in, one render at a time out, with progress.

The form becomes a protocol.JobSpec and an EngineProcess runs it; nothing here
knows how the engine works.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices, QFont
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.engine_process import EngineCommand, EngineProcess
from app.job_form import JobFormWidget, timestamp
from engine import protocol

log = logging.getLogger(__name__)

APP_NAME = "montage-ai"
LOG_LINES = 2000
STDERR_LINES_SHOWN = 30
PROGRESS_STEPS = 1000


def default_jobs_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "jobs"


def format_eta(eta_sec: float | None) -> str:
    """'about 40 s left', 'about 3 min left', or '' when unknown."""
    if eta_sec is None:
        return ""
    if eta_sec < 60:
        return f"about {max(1, round(eta_sec))} s left"
    return f"about {round(eta_sec / 60)} min left"


def describe_summary(summary: dict[str, Any]) -> str:
    """One sentence from the finished event's summary; tolerant of missing fields.

    '21 shots from 9 of 9 clips, 10.0 s at 150 BPM (style dynamic, seed 7).'
    """
    shots = f"{summary['shots']} shots" if "shots" in summary else ""
    if "sources_used" in summary and "sources" in summary:
        shots += f" from {summary['sources_used']} of {summary['sources']} clips"
    length = ""
    if isinstance(summary.get("duration_sec"), (int, float)):
        length = f"{summary['duration_sec']:.1f} s"
    if isinstance(summary.get("tempo_bpm"), (int, float)):
        length += f" at {summary['tempo_bpm']:.0f} BPM"
    text = (
        ", ".join(part.strip() for part in (shots, length) if part) or "Render complete"
    )
    extras = [f"{key} {summary[key]}" for key in ("style", "seed") if key in summary]
    return f"{text} ({', '.join(extras)})." if extras else f"{text}."


class MainWindow(QMainWindow):
    """Collects a job, runs it through an EngineProcess and shows how it goes."""

    def __init__(
        self,
        engine_command: EngineCommand | None = None,
        jobs_dir: Path | None = None,
        output_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Montage AI")
        self.setMinimumSize(880, 640)
        self.resize(980, 720)
        self._jobs_dir = jobs_dir or default_jobs_dir()
        self._outputs: dict[str, str] = {}
        self.engine = EngineProcess(engine_command, self)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.form = JobFormWidget(output_dir, central)
        layout.addWidget(self.form, 3)
        layout.addWidget(self._build_run_box(), 2)
        self.setCentralWidget(central)

        self._connect_engine()
        self._set_running(False)
        self._clear_result()

    # Building the window

    def _build_run_box(self) -> QGroupBox:
        box = QGroupBox("Render")
        self.create_button = QPushButton("Create montage")
        self.create_button.setDefault(True)
        bold = QFont(self.create_button.font())
        bold.setBold(True)
        self.create_button.setFont(bold)
        self.create_button.clicked.connect(self.start_render)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_render)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.stage_label = QLabel("Ready")
        self.eta_label = QLabel()
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self._open_video)
        self.show_folder_button = QPushButton("Show in folder")
        self.show_folder_button.clicked.connect(self._show_folder)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(
            "QLabel { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0;"
            " border-radius: 4px; padding: 6px; }"
        )
        self.error_label.hide()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setPlaceholderText("Stages, warnings and results appear here.")

        controls = QHBoxLayout()
        controls.addWidget(self.create_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress_bar, 1)
        controls.addWidget(self.open_button)
        controls.addWidget(self.show_folder_button)
        status = QHBoxLayout()
        status.addWidget(self.stage_label, 1)
        status.addWidget(self.eta_label)

        layout = QVBoxLayout(box)
        layout.addLayout(controls)
        layout.addLayout(status)
        layout.addWidget(self.error_label)
        layout.addWidget(self.log_view, 1)
        return box

    def _connect_engine(self) -> None:
        self.engine.started.connect(self._on_started)
        self.engine.stage_changed.connect(self._on_stage_changed)
        self.engine.progress_changed.connect(self._on_progress_changed)
        self.engine.warning_raised.connect(self._on_warning_raised)
        self.engine.render_finished.connect(self._on_render_finished)
        self.engine.render_failed.connect(self._on_render_failed)

    # Actions

    def start_render(self) -> bool:
        """Start a render from the form; show what is wrong instead if it cannot."""
        if self.engine.is_running():
            return False
        self._clear_result()
        try:
            spec = self.form.build_job_spec()
            Path(spec.output).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except protocol.JobSpecError as error:
            self._show_error(str(error))
            return False
        except OSError as error:
            self._show_error(
                f"Could not create the output folder: {error}. Choose another "
                "place to save the montage."
            )
            return False

        # Running first: on some platforms a failed start reports at once.
        self._set_running(True)
        self.stage_label.setText("Starting the engine…")
        self._append_log(f"Creating {spec.output}")
        job_dir = self._jobs_dir / f"{timestamp()}-{uuid.uuid4().hex[:6]}"
        try:
            self.engine.start(spec, job_dir)
        except OSError as error:
            self._set_running(False)
            self.stage_label.setText("Ready")
            self._show_error(
                f"Could not write the job file in {job_dir}: {error}. Check that "
                "there is free disk space, then try again."
            )
            return False
        return True

    def cancel_render(self) -> None:
        if self.engine.is_running():
            self.stage_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
            self.engine.cancel()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.engine.shutdown()
        super().closeEvent(event)

    # Engine signals

    def _on_started(self) -> None:
        self.stage_label.setText("Started")

    def _on_stage_changed(self, stage: str, message: str) -> None:
        self.stage_label.setText(message)
        self._append_log(message)

    def _on_progress_changed(self, overall: float, eta_sec: object) -> None:
        self.progress_bar.setValue(round(overall * PROGRESS_STEPS))
        self.eta_label.setText(
            format_eta(eta_sec if isinstance(eta_sec, float) else None)
        )

    def _on_warning_raised(self, message: str, path: str) -> None:
        shown_path = f" [{path}]" if path and path not in message else ""
        self._append_log(f"Warning: {message}{shown_path}")

    def _on_render_finished(self, outputs: dict, summary: dict) -> None:
        self._set_running(False)
        self._outputs = {str(key): str(value) for key, value in outputs.items()}
        self.progress_bar.setValue(PROGRESS_STEPS)
        self.stage_label.setText(f"Done: {Path(self._outputs.get('video', '')).name}")
        self._append_log(f"Done. {describe_summary(summary)}")
        for kind, path in sorted(self._outputs.items(), key=_video_first):
            self._append_log(f"  {kind}: {path}")
        self.open_button.setVisible("video" in self._outputs)
        self.show_folder_button.setVisible(bool(self._outputs))
        if self.form.output_is_default():
            self.form.refresh_default_output()

    def _on_render_failed(self, code: str, message: str) -> None:
        self._set_running(False)
        self.eta_label.clear()
        if code == protocol.ErrorCode.CANCELLED:
            self.progress_bar.setValue(0)
            self.stage_label.setText("Cancelled")
            self._append_log("Cancelled.")
            return
        self.stage_label.setText("Failed")
        self._show_error(message)
        self._append_log(f"Failed ({code}): {message}")
        tail = self.engine.stderr_tail().splitlines()[-STDERR_LINES_SHOWN:]
        if code == protocol.ErrorCode.INTERNAL and tail:
            self._append_log("Engine log, last lines:\n" + "\n".join(tail))

    # Helpers

    def _set_running(self, running: bool) -> None:
        self.create_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress_bar.setValue(0)
            self.eta_label.clear()

    def _clear_result(self) -> None:
        self._outputs = {}
        self.error_label.hide()
        self.open_button.hide()
        self.show_folder_button.hide()

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    def _append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def _open_video(self) -> None:
        if "video" in self._outputs:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self._outputs["video"]))

    def _show_folder(self) -> None:
        path = self._outputs.get("video") or next(iter(self._outputs.values()), "")
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


def _video_first(output: tuple[str, str]) -> tuple[bool, str]:
    return output[0] != "video", output[0]
