"""A line edit for a file path that, while not being edited, shows the file's name
whole and shortens the folders before it; the full path is in its tooltip.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QLineEdit, QStyle, QStyleOptionFrame, QWidget

# QLineEdit keeps this many pixels between its frame and its text, left and right.
TEXT_MARGIN = 2
SEPARATORS = "/\\" if os.sep == "\\" else "/"


def elide_path(path: str, metrics: QFontMetrics, width: int) -> str:
    """path in width pixels: the folders elided in the middle, the name whole
    while it fits ("/home/…/Music/song.ogg"), else the name elided in the middle."""
    if metrics.horizontalAdvance(path) <= width:
        return path
    cut = max(path.rfind(separator) for separator in SEPARATORS)
    folder, name = path[:cut], path[cut:]
    elide = Qt.TextElideMode.ElideMiddle
    folder_width = width - metrics.horizontalAdvance(name)
    if cut <= 0 or folder_width < metrics.horizontalAdvance(folder[:1] + "…"):
        return metrics.elidedText(name.lstrip(SEPARATORS), elide, width)
    return metrics.elidedText(folder, elide, folder_width) + name


class PathLineEdit(QLineEdit):
    """Shows elide_path of its text unless it has the focus, where the whole
    path scrolls as usual for editing."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.textChanged.connect(self.setToolTip)

    def paintEvent(self, event: QPaintEvent) -> None:
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        area = self._text_area(option)
        fits = self.fontMetrics().horizontalAdvance(self.text()) <= area.width()
        if self.hasFocus() or fits:
            super().paintEvent(event)
        else:
            self._paint_elided(option, area)

    def _text_area(self, option: QStyleOptionFrame) -> QRect:
        """Where QLineEdit draws its text, inside the frame and margins."""
        element = QStyle.SubElement.SE_LineEditContents
        contents = self.style().subElementRect(element, option, self)
        area = contents.marginsRemoved(self.textMargins())
        return area.adjusted(TEXT_MARGIN, 0, -TEXT_MARGIN, 0)

    def _paint_elided(self, option: QStyleOptionFrame, area: QRect) -> None:
        painter = QPainter(self)
        panel = QStyle.PrimitiveElement.PE_PanelLineEdit
        self.style().drawPrimitive(panel, option, painter, self)
        enabled = self.isEnabled()
        group = QPalette.ColorGroup.Normal if enabled else QPalette.ColorGroup.Disabled
        painter.setPen(self.palette().color(group, QPalette.ColorRole.Text))

        painter.setClipRect(area)
        shown = elide_path(self.text(), self.fontMetrics(), area.width())
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(area, flags, shown)
        painter.end()
