"""Widgets that take files dropped from a file manager: the clip list and song field."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QPainter,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QWidget,
)

from app.qt_compat import emit_signal

log = logging.getLogger(__name__)

PATH_ROLE = Qt.ItemDataRole.UserRole


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders a drag carries, in order."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def accept_files(event: QDragEnterEvent | QDragMoveEvent) -> None:
    """Take a drag that carries local files or folders; refuse any other."""
    if local_paths(event.mimeData()):
        event.acceptProposedAction()
    else:
        event.ignore()


class ClipListWidget(QListWidget):
    """The clips of the montage: files and folders, added by drop or dialog.

    A folder stays one entry; the engine expands it into the videos inside.
    """

    clips_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.placeholder_text = "Drop video files or folders here"

    def paths(self) -> list[str]:
        return [self.item(row).data(PATH_ROLE) for row in range(self.count())]

    def add_paths(self, paths: Iterable[Path]) -> int:
        """Add files and folders not listed yet; return how many were added."""
        known = set(self.paths())
        added = 0
        for path in paths:
            text = str(path)
            if text in known:
                continue
            known.add(text)
            self.addItem(self._make_item(path))
            added += 1
        if added:
            log.info("Added %d clip path(s)", added)
            emit_signal(self.clips_changed)
        return added

    def remove_selected(self) -> None:
        for item in self.selectedItems():
            self.takeItem(self.row(item))
        emit_signal(self.clips_changed)

    def clear_clips(self) -> None:
        self.clear()
        emit_signal(self.clips_changed)

    def _make_item(self, path: Path) -> QListWidgetItem:
        is_folder = path.is_dir()
        pixmap = QStyle.StandardPixmap
        icon = self.style().standardIcon(
            pixmap.SP_DirIcon if is_folder else pixmap.SP_FileIcon
        )
        label = f"{path.name}  (folder: every video inside)" if is_folder else path.name
        item = QListWidgetItem(icon, label or str(path))
        item.setData(PATH_ROLE, str(path))
        item.setToolTip(str(path))
        return item

    # Drops land on the viewport, which hands them to these handlers.

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        accept_files(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        accept_files(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        self.add_paths(paths)
        event.acceptProposedAction()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.count():
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().placeholderText().color())
        painter.drawText(
            self.viewport().rect(),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            self.placeholder_text,
        )
        painter.end()


class SongLineEdit(QLineEdit):
    """The song's path: typed, chosen, or dropped (the first dropped file wins)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setPlaceholderText("Drop a song here, or choose one")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        accept_files(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        accept_files(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        self.setText(str(paths[0]))
        event.acceptProposedAction()
