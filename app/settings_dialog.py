"""The settings dialog: output folder, renders at once, memory limit, quality, and
the AI director's endpoint."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.settings import (
    MAX_MEMORY_LIMIT_MB,
    MAX_RENDERS_AT_ONCE,
    MIN_MEMORY_LIMIT_MB,
    AppSettings,
)
from engine import protocol

QUALITY_LABELS = {"preview": "Preview (fast, smaller)", "final": "Final (full quality)"}


class SettingsDialog(QDialog):
    """Edits a copy of the settings; `settings()` reads the result back."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        form = QFormLayout(self)

        self.output_dir_edit = QLineEdit(settings.output_dir)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_output_dir)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.output_dir_edit, 1)
        row_layout.addWidget(browse)
        form.addRow("Output folder", row)

        self.renders_spin = QSpinBox()
        self.renders_spin.setRange(1, MAX_RENDERS_AT_ONCE)
        self.renders_spin.setValue(settings.renders_at_once)
        self.renders_spin.setToolTip(
            "More at once finishes a queue sooner on a "
            "machine with many cores, and needs more memory."
        )
        form.addRow("Renders at once", self.renders_spin)

        self.memory_spin = QSpinBox()
        self.memory_spin.setRange(MIN_MEMORY_LIMIT_MB, MAX_MEMORY_LIMIT_MB)
        self.memory_spin.setSingleStep(100)
        self.memory_spin.setSuffix(" MB")
        self.memory_spin.setValue(settings.memory_limit_mb)
        self.memory_spin.setToolTip(
            "A render that uses more is stopped before the system runs out of memory."
        )
        form.addRow("Memory limit per render", self.memory_spin)

        self.quality_combo = QComboBox()
        for value, label in QUALITY_LABELS.items():
            self.quality_combo.addItem(label, value)
        self.quality_combo.setCurrentIndex(
            max(0, self.quality_combo.findData(settings.default_quality))
        )
        form.addRow("Default quality", self.quality_combo)
        self._add_director_rows(form, settings)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _add_director_rows(self, form: QFormLayout, settings: AppSettings) -> None:
        self.director_url_edit = QLineEdit(settings.director_url)
        self.director_url_edit.setPlaceholderText(
            "Optional: http://localhost:11434/v1 (Ollama), :1234/v1 (LM Studio)"
        )
        form.addRow("AI director URL", self.director_url_edit)
        self.director_model_edit = QLineEdit(settings.director_model)
        self.director_model_edit.setPlaceholderText("The model, e.g. llama3.2")
        form.addRow("AI director model", self.director_model_edit)
        self.director_key_edit = QLineEdit(settings.director_key)
        self.director_key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.director_key_edit.setPlaceholderText("Only for a hosted endpoint")
        form.addRow("AI director key", self.director_key_edit)
        note = QLabel(
            "The AI director reads the prompt into the style. When it is not set, "
            "slow, unreachable or answers nonsense, the offline rules read it, and "
            "the job says which did. The key never goes into a job file or log."
        )
        note.setWordWrap(True)
        note.setEnabled(False)
        form.addRow("", note)
        self.director_error_label = QLabel()
        self.director_error_label.setWordWrap(True)
        self.director_error_label.setStyleSheet("QLabel { color: #b00020; }")
        self.director_error_label.hide()
        form.addRow("", self.director_error_label)

    def accept(self) -> None:
        """Close only with an AI director address the engine can use."""
        settings = self.settings()
        try:
            protocol.check_director(settings.director_url, settings.director_model)
        except protocol.JobSpecError as error:
            self.director_error_label.setText(str(error))
            self.director_error_label.show()
            return
        super().accept()

    def settings(self) -> AppSettings:
        """The settings as the dialog shows them, each within its range."""
        return dataclasses.replace(
            self._settings,
            output_dir=self.output_dir_edit.text().strip(),
            renders_at_once=self.renders_spin.value(),
            memory_limit_mb=self.memory_spin.value(),
            default_quality=self.quality_combo.currentData(),
            director_url=self.director_url_edit.text(),
            director_model=self.director_model_edit.text(),
            director_key=self.director_key_edit.text(),
        ).checked()

    def _choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Save montages in", self.output_dir_edit.text()
        )
        if folder:
            self.output_dir_edit.setText(folder)
