"""The message after a timeline export: the file written, its folder and every
warning in full, or why the export failed. It never blocks the window.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.job_text import ERROR_STYLE, NOTE_STYLE
from app.timeline_export import ExportOutcome
from engine import protocol

# The EDL exporter writes its long reel names beside it, under this suffix.
REELS_SUFFIX = ".reels.csv"


def written_text(outcome: ExportOutcome) -> str:
    """Where the file went, and any file written with it."""
    written = Path(outcome.path)
    lines = [f"In {written.parent}"]
    others = [
        Path(path).name for path in outcome.outputs.values() if path != outcome.path
    ]
    reels = written.with_name(written.stem + REELS_SUFFIX)
    if outcome.format == "edl" and reels.is_file():
        others.append(f"{reels.name} (the full name of each reel)")
    if others:
        lines.append(f"Also written: {', '.join(others)}")
    return "\n".join(lines)


def warnings_text(warnings: tuple[str, ...]) -> str:
    return "\n\n".join(f"• {warning}" for warning in warnings)


class ExportResultDialog(QDialog):
    """Says what one export wrote, or why it failed; shown without blocking."""

    folder_requested = Signal(str)

    def __init__(self, outcome: ExportOutcome, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.outcome = outcome
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setMinimumWidth(520)
        self.heading_label = QLabel()
        bold = QFont(self.heading_label.font())
        bold.setBold(True)
        self.heading_label.setFont(bold)
        self.heading_label.setWordWrap(True)
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.warnings_label = QLabel()
        self.warnings_view = QPlainTextEdit()
        self.warnings_view.setReadOnly(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.close)

        layout = QVBoxLayout(self)
        for widget in (self.heading_label, self.detail_label, self.warnings_label):
            layout.addWidget(widget)
        layout.addWidget(self.warnings_view, 1)
        layout.addWidget(self.buttons)
        if outcome.error_message:
            self._show_failure()
        else:
            self._show_written()

    def _show_written(self) -> None:
        outcome = self.outcome
        label = protocol.EXPORT_LABELS[outcome.format]
        self.setWindowTitle("Timeline exported")
        self.heading_label.setText(f"Saved {Path(outcome.path).name} for {label}")
        self.detail_label.setText(written_text(outcome))
        count = len(outcome.warnings)
        if count:
            self.warnings_label.setText(
                f"What this format cannot hold of the montage ({count}):"
            )
            self.warnings_view.setPlainText(warnings_text(outcome.warnings))
        else:
            self.warnings_label.setText("The format holds the whole edit: no warnings.")
            self.warnings_view.hide()
        self.warnings_label.setStyleSheet(NOTE_STYLE if count else "")
        self.warnings_label.setWordWrap(True)

        folder_button = self._add_button("Show in folder")
        folder_button.clicked.connect(
            lambda: self.folder_requested.emit(self.outcome.path)
        )
        copy_button = self._add_button("Copy path")
        copy_button.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.outcome.path)
        )
        folder_button.setDefault(True)

    def _show_failure(self) -> None:
        outcome = self.outcome
        label = protocol.EXPORT_LABELS[outcome.format]
        self.setWindowTitle("Export failed")
        self.heading_label.setText(
            f"Could not export {Path(outcome.timeline).name} as {label}"
        )
        self.detail_label.setText(outcome.error_message)
        self.detail_label.setStyleSheet(ERROR_STYLE)
        self.warnings_label.hide()
        self.warnings_view.hide()

    def _add_button(self, text: str) -> QPushButton:
        button = QPushButton(text)
        self.buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        return button

    def text(self) -> str:
        """Everything the message says, as plain text (for tests and the log)."""
        parts = [self.heading_label.text(), self.detail_label.text()]
        if self.warnings_label.isVisibleTo(self):
            parts.append(self.warnings_label.text())
        if self.warnings_view.isVisibleTo(self):
            parts.append(self.warnings_view.toPlainText())
        return "\n".join(parts)
