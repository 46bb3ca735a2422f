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

from app.job_form import QUALITY_LABELS
from app.settings import (
    MAX_MEMORY_LIMIT_MB,
    MAX_RENDERS_AT_ONCE,
    MIN_MEMORY_LIMIT_MB,
    AppSettings,
    OutputDirError,
    prepare_output_dir,
)
from engine import protocol

DIRECTOR_URL_HINT = "Optional: http://localhost:11434/v1 (Ollama), :1234/v1 (LM Studio)"
# The dialog opens wide enough to show such a path, or the saved one up to
# MAX_SHOWN_PATH_CHARS, and the URL hint uncut. Padding covers a line edit's
# frame and text margins.
TYPICAL_OUTPUT_DIR = "/home/firstname.lastname/Videos/Montage AI"
MAX_SHOWN_PATH_CHARS = 64
LINE_EDIT_PADDING_PX = 16
ERROR_STYLE = "QLabel { color: #b00020; }"


class SettingsDialog(QDialog):
    """Edits a copy of the settings; `settings()` reads the result back."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        form = self._form = QFormLayout(self)

        self.output_dir_edit = QLineEdit(settings.output_dir)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_output_dir)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.output_dir_edit, 1)
        row_layout.addWidget(browse)
        form.addRow("Output folder", row)
        self.output_error_label = _error_label()
        form.addRow("", self.output_error_label)
        form.setRowVisible(self.output_error_label, False)

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
        self._fit_text(settings.output_dir)
        self.resize(self.sizeHint().width(), 0)
        self._fit_height()

    def _fit_text(self, output_dir: str) -> None:
        """Size the line edits so the path and the URL hint show uncut."""
        metrics = self.fontMetrics()
        path_px = max(
            metrics.horizontalAdvance(TYPICAL_OUTPUT_DIR),
            metrics.horizontalAdvance(output_dir[:MAX_SHOWN_PATH_CHARS]),
        )
        hint_px = metrics.horizontalAdvance(DIRECTOR_URL_HINT)
        self.output_dir_edit.setMinimumWidth(path_px + LINE_EDIT_PADDING_PX)
        self.director_url_edit.setMinimumWidth(hint_px + LINE_EDIT_PADDING_PX)

    def _add_director_rows(self, form: QFormLayout, settings: AppSettings) -> None:
        self.director_url_edit = QLineEdit(settings.director_url)
        self.director_url_edit.setPlaceholderText(DIRECTOR_URL_HINT)
        form.addRow("AI director URL", self.director_url_edit)
        self.director_model_edit = QLineEdit(settings.director_model)
        self.director_model_edit.setPlaceholderText("The model, e.g. llama3.2")
        form.addRow("AI director model", self.director_model_edit)
        self.director_key_edit = QLineEdit(settings.director_key)
        self.director_key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.director_key_edit.setPlaceholderText("Only for a hosted endpoint")
        form.addRow("AI director key", self.director_key_edit)
        note = self._director_note = QLabel(
            "The AI director reads the prompt into the style. When it is not set, "
            "slow, unreachable or answers nonsense, the offline rules read it, and "
            "the job says which did. The key never goes into a job file or log."
        )
        note.setWordWrap(True)
        note.setEnabled(False)
        form.addRow("", note)
        self.director_error_label = _error_label()
        form.addRow("", self.director_error_label)
        form.setRowVisible(self.director_error_label, False)

    def accept(self) -> None:
        """Close only with an output folder and AI director the engine can use.

        A missing output folder is created here, so that Create montage finds it.
        """
        settings = self.settings()
        output_error = director_error = ""
        try:
            prepare_output_dir(settings.output_dir)
        except OutputDirError as error:
            output_error = str(error)
        try:
            protocol.check_director(settings.director_url, settings.director_model)
        except protocol.JobSpecError as error:
            director_error = str(error)

        self._show_error(self.output_error_label, output_error)
        self._show_error(self.director_error_label, director_error)
        if output_error:
            self.output_dir_edit.setFocus()
        if not (output_error or director_error):
            super().accept()

    def _show_error(self, label: QLabel, message: str) -> None:
        label.setText(message)
        self._form.setRowVisible(label, bool(message))
        self._fit_height()

    def _fit_height(self) -> None:
        """Tall enough for every row, wrapped text included, at any width allowed."""
        # NOTE: QFormLayout gives a wrapped label the height of its size hint, or
        # less, not the height its width needs; the field column is never
        # narrower than the URL field, so that width's height always suffices.
        field_px = self.director_url_edit.minimumWidth()
        wrapped = [
            self.output_error_label,
            self._director_note,
            self.director_error_label,
        ]
        for label in wrapped:
            needed_px = label.heightForWidth(field_px) if label.text() else 0
            label.setMinimumHeight(needed_px)
        self._form.activate()
        self.resize(self.width(), max(self.height(), self.minimumSizeHint().height()))

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


def _error_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(ERROR_STYLE)
    return label
