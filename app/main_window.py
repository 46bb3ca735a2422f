"""The main window: the job form on top, the render queue below, settings and help.

The form becomes a protocol.JobSpec in the JobStore; a RenderQueue runs the store's
jobs through engine subprocesses. Nothing here knows how the engine works.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QFont, QKeySequence
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.engine_process import EngineCommand
from app.export_menu import STATUS_MESSAGE_MS, ExportController
from app.job_file import JobFileActions
from app.job_form import JobFormWidget
from app.job_records import JobStatus, JobStoreError
from app.job_schema import data_dir, default_store_path
from app.job_store import JobStore
from app.job_text import ERROR_STYLE, NOTE_STYLE, describe_summary, format_eta
from app.queue_panel import DETAILS_MAX_HEIGHT, RenderQueuePanel
from app.render_queue import RenderQueue
from app.settings import (
    AppSettings,
    default_log_dir,
    load_settings,
    save_settings,
    settings_path,
)
from app.settings_dialog import SettingsDialog
from app.timeline_export import TimelineExports
from engine import protocol

__all__ = ["MainWindow", "describe_summary", "format_eta", "quit_question"]

log = logging.getLogger(__name__)

APP_NAME = "montage-ai"
ABOUT_TEXT = (
    "<p><b>Montage AI {version}</b></p>"
    "<p>Cuts your clips into a montage on the beat of a song, and exports the "
    "timeline for your editor.</p>"
    "<p>Licence: GPL-3.0-or-later.</p>"
)


def default_jobs_dir() -> Path:
    return data_dir() / "jobs"


def app_version() -> str:
    try:
        return importlib.metadata.version("montage-ai")
    except importlib.metadata.PackageNotFoundError:
        return "(development)"


def quit_question(running_count: int, parent: QWidget | None = None) -> QMessageBox:
    """The question before quitting with renders running: Quit or Keep rendering."""
    if running_count == 1:
        text = "1 render is running. Quit anyway?"
        detail = "It will be stopped and can be retried later."
    else:
        text = f"{running_count} renders are running. Quit anyway?"
        detail = "They will be stopped and can be retried later."
    question = QMessageBox(parent)
    question.setIcon(QMessageBox.Icon.Question)
    question.setWindowTitle("Quit Montage AI?")
    question.setText(text)
    question.setInformativeText(detail)
    question.addButton("Quit", QMessageBox.ButtonRole.DestructiveRole)
    keep = question.addButton("Keep rendering", QMessageBox.ButtonRole.RejectRole)
    question.setDefaultButton(keep)
    question.setEscapeButton(keep)
    return question


class MainWindow(QMainWindow):
    """Collects jobs into the render queue and shows how each one goes."""

    def __init__(
        self,
        engine_command: EngineCommand | None = None,
        jobs_dir: Path | None = None,
        output_dir: Path | None = None,
        store: JobStore | None = None,
        settings: AppSettings | None = None,
        settings_file: Path | None = None,
        export_command: EngineCommand | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Montage AI")
        self.setMinimumSize(880, 640)
        self.resize(1040, 780)
        self._settings_file = settings_file or settings_path()
        self.settings = settings or load_settings(self._settings_file)
        if output_dir is not None:
            self.settings = dataclasses.replace(
                self.settings, output_dir=str(output_dir)
            )
        self._owns_store = store is None
        self.store = store or JobStore(default_store_path())
        interrupted = self.store.recover_after_crash()
        self.queue = RenderQueue(
            self.store,
            jobs_dir or default_jobs_dir(),
            engine_command,
            self.settings.renders_at_once,
            self.settings.memory_limit_mb,
            self,
        )
        self.queue.director_key = self.settings.director_key
        self.exports = TimelineExports(self.queue, export_command, self)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.banner_label = QLabel()
        self.banner_label.setWordWrap(True)
        self.banner_label.setStyleSheet(NOTE_STYLE)
        layout.addWidget(self.banner_label)
        self.form = JobFormWidget(Path(self.settings.output_dir), central)
        self._select_quality(self.settings.default_quality)
        # The clip list takes the height the form leaves, and only the options
        # scroll. The splitter shares the height in proportion to stretch times
        # preferred height: at 1040x780 the options fit, folded, with the queue
        # four rows deep. The user drags it for more queue or more form.
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.form)
        splitter.addWidget(self._build_queue_box())
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 4)
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.splitter = splitter
        self._sizes_before_details: list[int] | None = None
        self.queue_panel.details_button.toggled.connect(self._make_room_for_details)
        self.setCentralWidget(central)
        self.export_controller = ExportController(
            self.exports, self.queue_panel.selected_record, self
        )
        self.queue_panel.set_export_menu(
            self.export_controller.make_menu(self.queue_panel)
        )
        self._build_menus()
        self.statusBar()

        # The banner counts the interrupted jobs until each is retried or removed.
        self._interrupted = set(interrupted)
        self.queue.job_changed.connect(self._recount_interrupted)
        self.queue.jobs_changed.connect(self._recount_interrupted)
        self._show_banner(len(interrupted))
        self.queue.start_waiting_jobs()

    # Building the window

    def _make_room_for_details(self, shown: bool) -> None:
        """Unfolded details take their height from the form, down to its minimum,
        rather than leave the queue a row; folded, the form gets it back."""
        if not shown:
            if self._sizes_before_details is not None:
                self.splitter.setSizes(self._sizes_before_details)
                self._sizes_before_details = None
            return
        top, bottom = self.splitter.sizes()
        spare = top - self.form.minimumSizeHint().height()
        give = max(0, min(DETAILS_MAX_HEIGHT, spare))
        if give:
            self._sizes_before_details = [top, bottom]
            self.splitter.setSizes([top - give, bottom + give])

    def _build_queue_box(self) -> QGroupBox:
        box = QGroupBox("Render queue")
        self.create_button = QPushButton("Create montage")
        self.create_button.setDefault(True)
        bold = QFont(self.create_button.font())
        bold.setBold(True)
        self.create_button.setFont(bold)
        self.create_button.clicked.connect(self.create_job)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.hide()
        self.queue_panel = RenderQueuePanel(self.queue, box)

        top = QHBoxLayout()
        top.addWidget(self.create_button)
        top.addWidget(self.error_label, 1)
        top.addStretch(0)
        layout = QVBoxLayout(box)
        layout.addLayout(top)
        layout.addWidget(self.queue_panel, 1)
        return box

    def show_status(self, message: str) -> None:
        """A passing note in the status bar; it clears itself."""
        self.statusBar().showMessage(message, STATUS_MESSAGE_MS)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.job_files = JobFileActions(
            self.form, self._show_error, self.show_status, self
        )
        file_menu.addActions(self.job_files.actions())
        file_menu.addSeparator()
        settings_action = QAction("&Settings…", self)
        settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        settings_action.triggered.connect(self.edit_settings)
        file_menu.addAction(settings_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        self.export_menu = self.export_controller.make_menu(self)
        self.menuBar().addMenu(self.export_menu)

        help_menu = self.menuBar().addMenu("&Help")
        log_action = QAction("Open &log folder", self)
        log_action.triggered.connect(self.open_log_folder)
        help_menu.addAction(log_action)
        about_action = QAction("&About Montage AI", self)
        about_action.triggered.connect(self.show_about)
        help_menu.addAction(about_action)

    def _recount_interrupted(self, job_id: int | None = None) -> None:
        """Progress of other jobs changes nothing here: look only at these."""
        if not self._interrupted or job_id not in (None, *self._interrupted):
            return
        still = {each for each in self._interrupted if self._is_interrupted(each)}
        if still != self._interrupted:
            self._interrupted = still
            self._show_banner(len(still))

    def _is_interrupted(self, job_id: int) -> bool:
        try:
            return self.store.get(job_id).status is JobStatus.INTERRUPTED
        except JobStoreError:
            return False  # removed

    def _show_banner(self, interrupted_count: int) -> None:
        lines = []
        if self.store.recovered_from is not None:
            lines.append(
                "The job list was damaged and could not be read; it was moved to "
                f"{self.store.recovered_from} and a new, empty list started."
            )
        if interrupted_count:
            renders = "render was" if interrupted_count == 1 else "renders were"
            lines.append(
                f"{interrupted_count} {renders} interrupted when Montage AI last "
                "stopped: select it in the queue and press Retry to run it again."
            )
        self.banner_label.setText("\n".join(lines))
        self.banner_label.setVisible(bool(lines))

    # Actions

    def create_job(self) -> int | None:
        """Queue the form's job; show what is wrong instead if it cannot."""
        self.error_label.hide()
        try:
            spec = dataclasses.replace(
                self.form.build_job_spec(),
                director_url=self.settings.director_url,
                director_model=self.settings.director_model,
            )
            problem = self.form.known_problem()
            if problem:
                raise protocol.JobSpecError(problem)
            output = Path(spec.output).expanduser()
            output.parent.mkdir(parents=True, exist_ok=True)
        except protocol.JobSpecError as error:
            self._show_error(str(error))
            return None
        except OSError as error:
            self._show_error(
                f"Could not create the output folder: {error}. Choose another "
                "place to save the montage."
            )
            return None

        spec = dataclasses.replace(spec, output=str(self._free_output(output)))
        try:
            job_id = self.queue.add(spec)
        except JobStoreError as error:
            self._show_error(str(error))
            return None
        self.queue_panel.select_job(job_id)
        if self.form.output_is_default():
            self.form.refresh_default_output()
        return job_id

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, settings: AppSettings) -> None:
        """Use and save new settings. The form's quality follows a changed default;
        a choice made in the form stays when other settings change."""
        previous, self.settings = self.settings, settings
        self.queue.set_limits(settings.renders_at_once, settings.memory_limit_mb)
        self.queue.director_key = settings.director_key
        self.form.set_output_dir(Path(settings.output_dir))
        if settings.default_quality != previous.default_quality:
            self._select_quality(settings.default_quality)
        try:
            save_settings(settings, self._settings_file)
        except OSError as error:
            self._show_error(
                f"Could not save the settings in {self._settings_file}: {error}. "
                "They apply until Montage AI closes."
            )

    def open_log_folder(self) -> None:
        folder = default_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def show_about(self) -> None:
        QMessageBox.about(
            self, "About Montage AI", ABOUT_TEXT.format(version=app_version())
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        running = self.queue.running_count()
        if running and not self.confirm_quit(running):
            event.ignore()
            return

        # No inspection or render process outlives the window.
        self.form.shutdown()
        self.exports.shutdown()
        self.queue.shutdown()
        if self._owns_store:
            self.store.close()
        super().closeEvent(event)

    def confirm_quit(self, running_count: int) -> bool:
        """Ask whether to stop the running renders and quit; True to quit."""
        question = quit_question(running_count, self)
        question.exec()
        clicked = question.clickedButton()
        quit_role = QMessageBox.ButtonRole.DestructiveRole
        return clicked is not None and question.buttonRole(clicked) == quit_role

    # Helpers

    def _free_output(self, output: Path) -> Path:
        """output, or output-2, -3… if a file or a queued job already has it."""
        taken = {
            str(Path(record.spec.output).expanduser())
            for record in self.store.list_jobs()
            if record.status in (JobStatus.WAITING, JobStatus.RUNNING)
        }
        candidate, number = output, 1
        while str(candidate) in taken or candidate.exists():
            number += 1
            candidate = output.with_name(f"{output.stem}-{number}{output.suffix}")
        return candidate

    def _select_quality(self, quality: str) -> None:
        combo = self.form.quality_combo
        combo.setCurrentIndex(max(0, combo.findData(quality)))

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
