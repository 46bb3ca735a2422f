"""The render queue as the window shows it: a table model, a progress bar delegate,
and a panel with the actions and details for the selected job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QUrl,
)
from PySide6.QtGui import QDesktopServices, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.job_records import (
    RETRYABLE,
    JobNotFoundError,
    JobRecord,
    JobStatus,
)
from app.job_text import describe_warnings, detail_for, format_eta, stage_text
from app.render_queue import RenderQueue

log = logging.getLogger(__name__)

COLUMNS = ("Montage", "Status", "Stage", "Progress", "Time left")
NAME, STATUS, STAGE, PROGRESS, ETA = range(len(COLUMNS))
PROGRESS_STEPS = 1000
STATUS_LABELS = {
    JobStatus.WAITING: "Waiting",
    JobStatus.RUNNING: "Rendering",
    JobStatus.FINISHED: "Finished",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
    JobStatus.INTERRUPTED: "Interrupted",
}
EXPORT_TIP = "Export the timeline for your editor"
EXPORT_DISABLED_TIP = "Select a finished montage to export its timeline"
WARNINGS_TIP = "Select the job to read them under the list."
# Room around a row's text: the style's own rows (30 px in Fusion) left the
# table three jobs deep at the default window size.
ROW_PADDING_PX = 10
# The details' text box, once shown: the table keeps the rest.
DETAILS_MAX_HEIGHT = 110
JOB_ID_ROLE = Qt.ItemDataRole.UserRole
NO_PARENT = QModelIndex()


class RenderQueueModel(QAbstractTableModel):
    """One row per job in queue order (the order waiting jobs run in), kept up to
    date from the RenderQueue."""

    def __init__(self, queue: RenderQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._queue = queue
        self._records: list[JobRecord] = []
        self._warning_icon = QApplication.style().standardIcon(
            QStyle.StandardPixmap.SP_MessageBoxWarning
        )
        queue.jobs_changed.connect(self.reload)
        queue.job_changed.connect(self.refresh_job)
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._records = self._queue.records()
        self.endResetModel()

    def refresh_job(self, job_id: int) -> None:
        row = self.row_of(job_id)
        try:
            record = self._queue.record(job_id)
        except JobNotFoundError:
            record = None
        if row is None or record is None:
            self.reload()
            return
        if record.queue_order != self._records[row].queue_order:
            # Retried: it moved to the back of the queue.
            self.reload()
            return
        self._records[row] = record
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def row_of(self, job_id: int) -> int | None:
        for row, record in enumerate(self._records):
            if record.id == job_id:
                return row
        return None

    def record_at(self, row: int) -> JobRecord:
        return self._records[row]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = NO_PARENT) -> int:
        return 0 if parent.isValid() else len(self._records)

    def columnCount(
        self, parent: QModelIndex | QPersistentModelIndex = NO_PARENT
    ) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = 0
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
        ):
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid():
            return None
        record = self._records[index.row()]
        if role == JOB_ID_ROLE:
            return record.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tool_tip(record, index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(record, index.column())
        if role == Qt.ItemDataRole.DecorationRole and index.column() == STATUS:
            return self._warning_icon if record.warnings else None
        return None

    def _tool_tip(self, record: JobRecord, column: int) -> str | None:
        if column == NAME:
            return record.spec.output
        if column in (STATUS, STAGE) and record.warnings:
            return f"{describe_warnings(record.warnings)} {WARNINGS_TIP}"
        return None

    def _display(self, record: JobRecord, column: int) -> Any:
        if column == NAME:
            return Path(record.spec.output).name
        if column == STATUS:
            return STATUS_LABELS[record.status]
        if column == STAGE:
            return stage_text(record)
        if column == PROGRESS:
            return progress_steps(record)
        running = record.status is JobStatus.RUNNING
        return format_eta(record.eta_sec) if running else ""


def progress_steps(record: JobRecord) -> int | None:
    """0..PROGRESS_STEPS for a job that has a bar to show, else None."""
    if record.status is JobStatus.FINISHED:
        return PROGRESS_STEPS
    if record.status is JobStatus.RUNNING:
        return round(record.progress * PROGRESS_STEPS)
    return None


class ProgressBarDelegate(QStyledItemDelegate):
    """Paints the Progress column as a progress bar with its percentage."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        value = index.data(Qt.ItemDataRole.DisplayRole)
        if not isinstance(value, int):
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum, bar.progress = 0, PROGRESS_STEPS, value
        bar.text = f"{value * 100 // PROGRESS_STEPS}%"
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class RenderQueuePanel(QWidget):
    """The queue table, the actions for the selected job, and its details."""

    def __init__(self, queue: RenderQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.model = RenderQueueModel(queue, self)
        self._selected_id: int | None = None
        self.view = self._build_view()
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        # Folded by default: unfolded, it would leave the table a row or two.
        self.details_button = QToolButton()
        self.details_button.setCheckable(True)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setToolButtonStyle(
            Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        self.details_button.toggled.connect(self._update_selected)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumHeight(DETAILS_MAX_HEIGHT)

        detail_row = QHBoxLayout()
        detail_row.addWidget(self.detail_label, 1)
        detail_row.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(self._build_buttons())
        layout.addLayout(detail_row)
        layout.addWidget(self.log_view)

        self.model.modelReset.connect(self._restore_selection)
        self.model.dataChanged.connect(self._update_selected)
        self._update_selected()

    def _build_view(self) -> QTableView:
        view = QTableView(self)
        view.setModel(self.model)
        view.setItemDelegateForColumn(PROGRESS, ProgressBarDelegate(view))
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        rows = view.verticalHeader()
        rows.hide()
        rows.setMinimumSectionSize(1)
        rows.setDefaultSectionSize(view.fontMetrics().height() + ROW_PADDING_PX)
        view.setAlternatingRowColors(True)
        view.setWordWrap(False)
        header = view.horizontalHeader()
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(STAGE, QHeaderView.ResizeMode.Stretch)
        view.setColumnWidth(NAME, 230)
        view.setColumnWidth(STATUS, 90)
        view.setColumnWidth(PROGRESS, 130)
        view.setColumnWidth(ETA, 120)
        view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        view.doubleClicked.connect(self.open_video)
        return view

    def _build_buttons(self) -> QHBoxLayout:
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.retry_button = QPushButton("Retry")
        self.retry_button.clicked.connect(self.retry_selected)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_video)
        self.show_folder_button = QPushButton("Show in folder")
        self.show_folder_button.clicked.connect(self.show_folder)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        # Its menu comes from set_export_menu.
        self.export_button = QPushButton("Export")
        buttons = QHBoxLayout()
        for button in (self.cancel_button, self.retry_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        for button in (
            self.open_button,
            self.show_folder_button,
            self.export_button,
            self.remove_button,
        ):
            buttons.addWidget(button)
        return buttons

    def set_export_menu(self, menu: QMenu) -> None:
        """The menu the Export button pops up for a finished job."""
        self.export_button.setMenu(menu)

    # Selection

    def select_job(self, job_id: int) -> None:
        row = self.model.row_of(job_id)
        if row is not None:
            self.view.selectRow(row)
            self.view.scrollTo(self.model.index(row, 0))

    def selected_record(self) -> JobRecord | None:
        rows = self.view.selectionModel().selectedRows()
        return self.model.record_at(rows[0].row()) if rows else None

    def _on_selection_changed(self) -> None:
        record = self.selected_record()
        self._selected_id = record.id if record is not None else None
        self._update_selected()

    def _restore_selection(self) -> None:
        if self._selected_id is not None:
            self.select_job(self._selected_id)
        self._update_selected()

    def _update_selected(self) -> None:
        record = self.selected_record()
        status = record.status if record is not None else None
        self.cancel_button.setEnabled(status in (JobStatus.WAITING, JobStatus.RUNNING))
        self.retry_button.setEnabled(status in RETRYABLE)
        outputs = record.outputs if status is JobStatus.FINISHED and record else {}
        self.open_button.setEnabled("video" in outputs)
        self.show_folder_button.setEnabled(bool(outputs))
        finished = status is JobStatus.FINISHED
        self.export_button.setEnabled(finished)
        self.export_button.setToolTip(EXPORT_TIP if finished else EXPORT_DISABLED_TIP)
        self.remove_button.setEnabled(
            status is not None and status is not JobStatus.RUNNING
        )
        self._show_detail(record)

    def _show_detail(self, record: JobRecord | None) -> None:
        detail = detail_for(record)
        self.detail_label.setText(detail.message)
        self.detail_label.setStyleSheet(detail.style)
        self.detail_label.setVisible(bool(detail.message))
        if self.log_view.toPlainText() != detail.text:
            self.log_view.setPlainText(detail.text)
        unfolded = self.details_button.isChecked()
        verb = "Hide" if unfolded else "Show"
        self.details_button.setText(f"{verb} {detail.contents}")
        self.details_button.setArrowType(
            Qt.ArrowType.DownArrow if unfolded else Qt.ArrowType.RightArrow
        )
        self.details_button.setVisible(bool(detail.text))
        self.log_view.setVisible(bool(detail.text) and unfolded)

    # Actions

    def cancel_selected(self) -> None:
        record = self.selected_record()
        if record is not None:
            self.queue.cancel(record.id)

    def retry_selected(self) -> None:
        record = self.selected_record()
        if record is not None:
            self.queue.retry(record.id)

    def remove_selected(self) -> None:
        record = self.selected_record()
        if record is not None:
            self._selected_id = None
            self.queue.remove(record.id)

    def open_video(self) -> None:
        record = self.selected_record()
        if record is not None and "video" in record.outputs:
            QDesktopServices.openUrl(QUrl.fromLocalFile(record.outputs["video"]))

    def show_folder(self) -> None:
        record = self.selected_record()
        if record is None or not record.outputs:
            return
        path = record.outputs.get("video") or next(iter(record.outputs.values()))
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))
