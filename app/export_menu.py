"""The Export menus of the selected job, one entry per timeline format named by the
editors that open it, and the message that says what each export wrote.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMenu, QWidget

from app.export_dialog import ExportResultDialog
from app.job_records import JobRecord, JobStatus
from app.timeline_export import ExportOutcome, TimelineExports
from engine import protocol

log = logging.getLogger(__name__)

STATUS_MESSAGE_MS = 20_000
NO_JOB_TIP = "Select a finished montage in the render queue to export its timeline."
UNFINISHED_TIP = (
    "Only a finished montage has a timeline to export: wait for this one to "
    "finish, or select another."
)
NO_TIMELINE_TIP = (
    "This montage has no timeline (.otio) beside its video: render it again to "
    "export one."
)
MISSING_TIMELINE_TIP = (
    "The timeline {path} is gone (moved or deleted): put it back, or render the "
    "montage again."
)
EXPORTING_TIP = "Exporting this timeline now…"


def action_text(export_format: str) -> str:
    """A menu entry: the format and the editors that open it."""
    label = protocol.EXPORT_LABELS[export_format]
    if export_format == "otio":
        return f"{label}: show the .otio in its folder"
    return label


def action_tip(export_format: str, otio_path: str) -> str:
    """What an available entry does, with the file it writes or shows."""
    timeline = Path(otio_path)
    if export_format == "otio":
        return (
            f"{timeline.name} was saved with the video: open its folder and copy "
            "its path."
        )
    name = timeline.stem + protocol.EXPORT_SUFFIXES[export_format]
    return f"Write {name} beside the timeline, in {timeline.parent}."


def unavailable_reason(record: JobRecord | None) -> str:
    """Why the job's timeline cannot be exported, or '' if it can."""
    if record is None:
        return NO_JOB_TIP
    if record.status is not JobStatus.FINISHED:
        return UNFINISHED_TIP
    otio_path = record.outputs.get("otio")
    if not otio_path:
        return NO_TIMELINE_TIP
    if not os.path.isfile(otio_path):
        return MISSING_TIMELINE_TIP.format(path=otio_path)
    return ""


def show_in_folder(path: str) -> None:
    """Open the folder that holds path in the system's file manager."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


class ExportMenu(QMenu):
    """One entry per format for the selected job; disabled, saying why, when the
    job has no timeline to export or that export is running."""

    def __init__(
        self, controller: ExportController, parent: QWidget | None = None
    ) -> None:
        super().__init__("&Export", parent)
        self._controller = controller
        self.setToolTipsVisible(True)
        self.format_actions: dict[str, QAction] = {}
        for export_format in protocol.EXPORT_FORMATS:
            action = self.addAction(action_text(export_format))
            action.triggered.connect(
                lambda _checked=False, name=export_format: controller.export(name)
            )
            self.format_actions[export_format] = action
            if export_format == "otio":
                self.addSeparator()
        self.aboutToShow.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Enable the entries the selected job allows; the others say why not."""
        record = self._controller.selected_record()
        reason = unavailable_reason(record)
        for export_format, action in self.format_actions.items():
            running = record is not None and self._controller.exports.is_running(
                record.id, export_format
            )
            if reason:
                tip = reason
            elif running:
                tip = EXPORTING_TIP
            else:
                assert record is not None
                tip = action_tip(export_format, record.outputs["otio"])
            action.setEnabled(not reason and not running)
            action.setToolTip(tip)
            action.setStatusTip(tip)


class ExportController(QObject):
    """Carries out the Export menus' entries for the selected job and reports how
    each export went, in the status bar and a message that does not block."""

    def __init__(
        self,
        exports: TimelineExports,
        selected_record: Callable[[], JobRecord | None],
        window: QMainWindow,
    ) -> None:
        super().__init__(window)
        self.exports = exports
        self.selected_record = selected_record
        self.menus: list[ExportMenu] = []
        # The message shown last; it deletes itself when closed.
        self.last_dialog: ExportResultDialog | None = None
        self._window = window
        exports.export_started.connect(self.refresh_menus)
        exports.export_finished.connect(self._show_finished)
        exports.export_failed.connect(self._show_failed)

    def make_menu(self, parent: QWidget) -> ExportMenu:
        menu = ExportMenu(self, parent)
        self.menus.append(menu)
        return menu

    def refresh_menus(self, *_: object) -> None:
        for menu in self.menus:
            menu.refresh()

    def export(self, export_format: str) -> None:
        """Export the selected job's timeline, or show the .otio itself."""
        record = self.selected_record()
        if record is None or unavailable_reason(record):
            self.refresh_menus()
            return
        otio_path = record.outputs["otio"]
        if export_format == "otio":
            self._show_timeline(otio_path)
        else:
            self.exports.start(record.id, otio_path, export_format)

    def _show_timeline(self, otio_path: str) -> None:
        QGuiApplication.clipboard().setText(otio_path)
        show_in_folder(otio_path)
        timeline = Path(otio_path)
        self._show_status(
            f"{timeline.name} is in {timeline.parent}; its path is copied to the "
            "clipboard."
        )

    def _show_finished(self, outcome: ExportOutcome) -> None:
        self.refresh_menus()
        written = Path(outcome.path)
        count = len(outcome.warnings)
        warned = f", with {count} warning{'s' if count != 1 else ''}" if count else ""
        self._show_status(f"Exported {written.name} to {written.parent}{warned}.")
        self._show_dialog(ExportResultDialog(outcome, self._window))

    def _show_failed(self, outcome: ExportOutcome) -> None:
        self.refresh_menus()
        label = protocol.EXPORT_LABELS[outcome.format]
        self._show_status(f"Could not export the timeline as {label}.")
        self._show_dialog(ExportResultDialog(outcome, self._window))

    def _show_dialog(self, dialog: ExportResultDialog) -> None:
        # Looked up when clicked, so a test can stand in for the file manager.
        dialog.folder_requested.connect(lambda path: show_in_folder(path))
        dialog.show()
        self.last_dialog = dialog

    def _show_status(self, message: str) -> None:
        log.info("%s", message)
        self._window.statusBar().showMessage(message, STATUS_MESSAGE_MS)
