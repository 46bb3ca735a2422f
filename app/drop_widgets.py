"""Widgets that take files dropped from a file manager: the clip list and song field.

The clip list shows each clip's thumbnail, length and size once the media
inspector has described it; a file that is not usable stays listed, with why.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFontMetrics,
    QIcon,
    QPainter,
    QPaintEvent,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.path_edit import PathLineEdit
from app.qt_compat import emit_signal

log = logging.getLogger(__name__)

PATH_ROLE = Qt.ItemDataRole.UserRole
# The second line under the name: "0:12 · 1920x1080 · 12.4 MB", or why not usable.
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 1
# A folder's second line starts so: "Folder · 3 clips".
FOLDER_PREFIX = "Folder · "
STATE_ROLE = Qt.ItemDataRole.UserRole + 2
# An unusable file's size and time when the inspector judged it (None when the
# inspector itself failed): a verdict holds only while the file is unchanged.
VERDICT_ROLE = Qt.ItemDataRole.UserRole + 4
# The clip_info event's fields, once described.
INFO_ROLE = Qt.ItemDataRole.UserRole + 3
THUMBNAIL_SIZE = QSize(80, 45)
ROW_MARGIN = 4
THUMBNAIL_GAP = 8


class ClipState(enum.StrEnum):
    PENDING = "pending"
    USABLE = "usable"
    UNUSABLE = "unusable"


def format_duration(duration_sec: float) -> str:
    """m:ss, or h:mm:ss from an hour; tenths under a second ("0.4 s"), so a clip
    too short to use does not read as 0:00."""
    if round(duration_sec, 1) < 1:
        return f"{duration_sec:.1f} s"
    total = round(duration_sec)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def format_size(size_bytes: int) -> str:
    """Decimal units, as file managers show them: 12.4 MB."""
    size = float(size_bytes)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def describe_clip_facts(info: dict[str, Any]) -> str:
    """The detail line of a usable clip."""
    if info.get("still"):
        parts = [
            f"still, shown {format_duration(float(info.get('duration_sec') or 0))}"
        ]
    else:
        parts = [format_duration(float(info.get("duration_sec") or 0))]
    if info.get("width") and info.get("height"):
        parts.append(f"{info['width']}\N{MULTIPLICATION SIGN}{info['height']}")
    if isinstance(info.get("size_bytes"), int):
        parts.append(format_size(info["size_bytes"]))
    return " · ".join(parts)


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders a drag carries, in order."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class FileDropTarget:
    """Mixed into a widget: takes drags of local files and folders, refuses others,
    and hands the dropped paths to take_dropped."""

    def take_dropped(self, paths: list[Path]) -> None:
        raise NotImplementedError

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        self._accept_files(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self._accept_files(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        self.take_dropped(paths)
        event.acceptProposedAction()

    @staticmethod
    def _accept_files(event: QDragEnterEvent | QDragMoveEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()


class ClipListWidget(FileDropTarget, QListWidget):
    """The clips of the montage: files and folders, added by drop or dialog.

    A folder stays one entry; the engine expands it into the clips inside.
    """

    clips_changed = Signal()
    # The paths just added, for the media inspector to describe.
    paths_added = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setIconSize(THUMBNAIL_SIZE)
        self.setUniformItemSizes(True)
        self.setItemDelegate(ClipItemDelegate(self))
        self.placeholder_text = "Drop video files or folders here"
        # Per listed folder: each video found inside, and whether it is usable.
        self._folder_videos: dict[str, dict[str, bool]] = {}

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
            new_paths = self.paths()[-added:]
            emit_signal(self.paths_added, new_paths)
            emit_signal(self.clips_changed)
        return added

    # Facts from the media inspector

    def show_clip_info(self, info: dict[str, Any]) -> None:
        """Show a clip_info event on its row, or count it in its folder's row."""
        path = os.path.abspath(str(info["path"]))
        item = self._item_for(path)
        if item is not None:
            self._show_facts(item, info)
        for folder_item in self._folders_holding(path):
            folder = os.path.abspath(folder_item.data(PATH_ROLE))
            videos = self._folder_videos.setdefault(folder, {})
            videos[path] = bool(info.get("ok"))
            self._show_folder_count(folder_item, finished=False)

    def show_inspection_failed(self, path: str, message: str) -> None:
        """The inspector could not describe this path: show it as unusable."""
        item = self._item_for(os.path.abspath(path))
        if item is not None:
            self._show_unusable(item, message, judged=False)

    def finish_folders(self, paths: list[str]) -> None:
        """The inspector has looked inside these folders: show their final count."""
        for path in paths:
            item = self._item_for(os.path.abspath(path))
            if item is not None and item.data(STATE_ROLE) == ClipState.PENDING:
                self._show_folder_count(item, finished=True)

    def all_checked(self) -> bool:
        """Whether every listed file and folder has been described."""
        return all(
            self.item(row).data(STATE_ROLE) != ClipState.PENDING
            for row in range(self.count())
        )

    def verdicts_hold(self) -> bool:
        """Whether every unusable file was judged so by the inspector and is still
        as it was then (a file still copying when added may be whole now)."""
        for row in range(self.count()):
            item = self.item(row)
            if item.data(STATE_ROLE) != ClipState.UNUSABLE:
                continue
            verdict = item.data(VERDICT_ROLE)
            if verdict is None or verdict != file_state(str(item.data(PATH_ROLE))):
                return False
        return True

    def usable_count(self) -> int:
        """Files described as usable, counting the clips inside folders."""
        count = 0
        for row in range(self.count()):
            item = self.item(row)
            folder = os.path.abspath(item.data(PATH_ROLE))
            if folder in self._folder_videos:
                count += sum(self._folder_videos[folder].values())
            elif item.data(STATE_ROLE) == ClipState.USABLE:
                count += 1
        return count

    def remove_selected(self) -> None:
        for item in self.selectedItems():
            self.takeItem(self.row(item))
        emit_signal(self.clips_changed)

    def clear_clips(self) -> None:
        self.clear()
        self._folder_videos.clear()
        emit_signal(self.clips_changed)

    def _make_item(self, path: Path) -> QListWidgetItem:
        is_folder = path.is_dir()
        pixmap = QStyle.StandardPixmap
        icon = self.style().standardIcon(
            pixmap.SP_DirIcon if is_folder else pixmap.SP_FileIcon
        )
        item = QListWidgetItem(icon, path.name or str(path))
        item.setData(PATH_ROLE, str(path))
        item.setData(STATE_ROLE, ClipState.PENDING)
        item.setData(
            DETAIL_ROLE,
            f"{FOLDER_PREFIX}looking for clips…" if is_folder else "Reading…",
        )
        item.setToolTip(
            f"{path}\nFolder: every clip inside" if is_folder else str(path)
        )
        return item

    def _item_for(self, path: str) -> QListWidgetItem | None:
        for row in range(self.count()):
            item = self.item(row)
            if os.path.abspath(item.data(PATH_ROLE)) == path:
                return item
        return None

    def _folders_holding(self, path: str) -> list[QListWidgetItem]:
        items = (self.item(row) for row in range(self.count()))
        return [
            item
            for item in items
            if path.startswith(os.path.join(os.path.abspath(item.data(PATH_ROLE)), ""))
        ]

    def _show_facts(self, item: QListWidgetItem, info: dict[str, Any]) -> None:
        if not info.get("ok"):
            self._show_unusable(item, str(info.get("message") or "Not a usable video."))
            return
        thumbnail = QPixmap(str(info.get("thumbnail") or ""))
        if not thumbnail.isNull():
            item.setIcon(QIcon(thumbnail))
        else:
            log.warning("No thumbnail for %s", info["path"])
        item.setData(INFO_ROLE, dict(info))
        item.setData(STATE_ROLE, ClipState.USABLE)
        item.setData(DETAIL_ROLE, describe_clip_facts(info))
        facts = f"{info.get('fps', '?')} fps, {info.get('codec', '?')}"
        if info.get("variable_frame_rate"):
            facts += ", variable frame rate"
        facts += ", with sound" if info.get("has_audio") else ", no sound"
        item.setToolTip(f"{info['path']}\n{facts}")

    def _show_unusable(
        self, item: QListWidgetItem, message: str, judged: bool = True
    ) -> None:
        icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        item.setIcon(icon)
        item.setData(STATE_ROLE, ClipState.UNUSABLE)
        verdict = file_state(str(item.data(PATH_ROLE))) if judged else None
        item.setData(VERDICT_ROLE, verdict)
        # The name is on the line above: "clip.mp4: the file is empty" -> "The file…"
        name_prefix = f"{Path(item.data(PATH_ROLE)).name}: "
        detail = message.removeprefix(name_prefix)
        item.setData(DETAIL_ROLE, detail[:1].upper() + detail[1:])
        item.setToolTip(f"{item.data(PATH_ROLE)}\n{message}")

    def _show_folder_count(self, item: QListWidgetItem, finished: bool) -> None:
        videos = self._folder_videos.get(os.path.abspath(item.data(PATH_ROLE)), {})
        usable = sum(videos.values())
        unusable = len(videos) - usable
        if finished and not usable:
            found = f" ({unusable} not usable)" if unusable else ""
            self._show_unusable(item, f"No usable clips found inside{found}.")
            return
        # Clips: the videos and still pictures inside.
        detail = f"{usable} clip{'' if usable == 1 else 's'}"
        if unusable:
            detail += f", {unusable} not usable"
        item.setData(STATE_ROLE, ClipState.USABLE if finished else ClipState.PENDING)
        detail = FOLDER_PREFIX + (detail if finished else f"{detail} so far…")
        item.setData(DETAIL_ROLE, detail)

    # Drops land on the viewport, which hands them to these handlers.

    def take_dropped(self, paths: list[Path]) -> None:
        self.add_paths(paths)

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


class ClipItemDelegate(QStyledItemDelegate):
    """Draws a clip row: thumbnail, name, and a quieter detail line below."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        line = option.fontMetrics.lineSpacing()
        height = max(THUMBNAIL_SIZE.height(), 2 * line) + 2 * ROW_MARGIN
        return QSize(THUMBNAIL_SIZE.width() + 200, height)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        view_option = QStyleOptionViewItem(option)
        self.initStyleOption(view_option, index)
        # Copies: the option's fields are views that the next line would empty.
        name, icon = str(view_option.text), QIcon(view_option.icon)
        view_option.text, view_option.icon = "", QIcon()
        widget = view_option.widget
        style = widget.style() if widget is not None else QApplication.style()
        element = QStyle.ControlElement.CE_ItemViewItem
        style.drawControl(element, view_option, painter, widget)

        area = view_option.rect.adjusted(
            ROW_MARGIN, ROW_MARGIN, -ROW_MARGIN, -ROW_MARGIN
        )
        thumbnail = QRect(area.topLeft(), THUMBNAIL_SIZE)
        thumbnail.moveTop(area.center().y() - THUMBNAIL_SIZE.height() // 2)
        icon.paint(painter, thumbnail, Qt.AlignmentFlag.AlignCenter)
        text = area.adjusted(THUMBNAIL_SIZE.width() + THUMBNAIL_GAP, 0, 0, 0)
        self._paint_text(painter, view_option, text, name, index)

    def _paint_text(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        area: QRect,
        name: str,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        unusable = index.data(STATE_ROLE) == ClipState.UNUSABLE
        role = (
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        group = QPalette.ColorGroup.Disabled if unusable else QPalette.ColorGroup.Normal
        name_colour = option.palette.color(group, role)
        detail_colour = option.palette.color(QPalette.ColorGroup.Disabled, role)
        if not selected and not unusable:
            detail_colour = option.palette.color(QPalette.ColorRole.PlaceholderText)

        metrics = option.fontMetrics
        line = metrics.lineSpacing()
        width = area.width()
        detail = str(index.data(DETAIL_ROLE) or "")
        # Why a clip is unusable takes two lines where the row has room for them.
        room = 2 if unusable and area.height() >= 3 * line else 1
        details = wrapped_lines(detail, metrics, width, room)
        top = area.center().y() - line * (1 + len(details)) // 2
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.save()
        painter.setPen(name_colour)
        name_rect = QRect(area.left(), top, width, line)
        elide = Qt.TextElideMode.ElideMiddle
        painter.drawText(name_rect, flags, metrics.elidedText(name, elide, width))
        painter.setPen(detail_colour)
        for number, text in enumerate(details, start=1):
            painter.drawText(QRect(area.left(), top + number * line, width, line),
                             flags, text)  # fmt: skip
        painter.restore()


def file_state(path: str) -> list[int] | None:
    """A file's (or folder's) size and modification time, None if it is gone."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def wrapped_lines(text: str, metrics: QFontMetrics, width: int, most: int) -> list[str]:
    """Text in at most `most` lines of width pixels, broken between words; the last
    line elided if the text goes on."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < most - 1:
        taken = 1
        while (
            taken < len(words)
            and metrics.horizontalAdvance(" ".join(words[: taken + 1])) <= width
        ):
            taken += 1
        if metrics.horizontalAdvance(" ".join(words[:taken])) > width:
            break  # one word wider than the line: the last line elides it
        lines.append(" ".join(words[:taken]))
        words = words[taken:]
    rest = " ".join(words)
    if rest or not lines:
        lines.append(metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width))
    return lines


class SongLineEdit(FileDropTarget, PathLineEdit):
    """The song's path: typed, chosen, or dropped (the first dropped file wins)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setPlaceholderText("Drop a song here, or choose one")

    def take_dropped(self, paths: list[Path]) -> None:
        self.setText(str(paths[0]))
