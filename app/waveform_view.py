"""The song at a glance: its waveform, beats, downbeats and sections.

It paints a music_info event from `engine.inspect`; before one arrives it says
the song is being analysed, and if the song cannot be used it shows why.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

log = logging.getLogger(__name__)

SECTION_TINTS = {
    "quiet": QColor(70, 130, 220, 38),
    "build": QColor(230, 170, 40, 45),
    "peak": QColor(230, 60, 60, 45),
}
WAVEFORM_COLOUR = QColor(90, 140, 200)
BEAT_COLOUR = QColor(120, 120, 120, 110)
DOWNBEAT_COLOUR = QColor(235, 120, 20, 220)
ERROR_COLOUR = QColor(190, 40, 40)
PLACEHOLDER_NO_SONG = "The song's beats appear here once you choose it"
PLACEHOLDER_ANALYSING = "Analysing…"


class WaveformView(QWidget):
    """Paints the peaks mirrored around the centre line, beat lines over them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(56)
        self._message = PLACEHOLDER_NO_SONG
        self._is_error = False
        self._info: dict[str, Any] | None = None

    # Public API

    def clear(self) -> None:
        """No song: a hint in place of the waveform."""
        self._set(None, PLACEHOLDER_NO_SONG, is_error=False)

    def show_analysing(self) -> None:
        self._set(None, PLACEHOLDER_ANALYSING, is_error=False)

    def show_error(self, message: str) -> None:
        self._set(None, message, is_error=True)

    def show_music(self, info: dict[str, Any]) -> None:
        """A music_info event's fields; with ok false, its message as an error."""
        if not info.get("ok"):
            self.show_error(str(info.get("message") or "The song cannot be used."))
            return
        self._set(info, "", is_error=False)

    def message(self) -> str:
        """The text shown instead of a waveform, or "" once one is shown."""
        return self._message

    def beats_sec(self) -> list[float]:
        return list(self._info.get("beats_sec") or []) if self._info else []

    def downbeats_sec(self) -> list[float]:
        return list(self._info.get("downbeats_sec") or []) if self._info else []

    def sizeHint(self) -> QSize:
        return QSize(320, 72)

    def _set(self, info: dict[str, Any] | None, message: str, is_error: bool) -> None:
        self._info, self._message, self._is_error = info, message, is_error
        self.setToolTip(message if is_error else "")
        self.update()

    # Painting

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(self.palette().mid().color())
        painter.setBrush(self.palette().base())
        painter.drawRoundedRect(area, 4, 4)
        duration_sec = float(self._info.get("duration_sec") or 0) if self._info else 0
        if self._info is None or duration_sec <= 0:
            self._paint_message(painter, area)
        else:
            inner = area.adjusted(2, 2, -2, -2)
            self._paint_sections(painter, inner, duration_sec)
            self._paint_beats(painter, inner, duration_sec, downbeats=False)
            self._paint_peaks(painter, inner)
            self._paint_beats(painter, inner, duration_sec, downbeats=True)
            self._paint_section_names(painter, inner, duration_sec)
        painter.end()

    def _paint_message(self, painter: QPainter, area: QRectF) -> None:
        placeholder = self.palette().placeholderText().color()
        painter.setPen(ERROR_COLOUR if self._is_error else placeholder)
        painter.drawText(
            area.adjusted(8, 4, -8, -4),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            self._message,
        )

    def _sections(self) -> list[dict[str, Any]]:
        sections = (self._info or {}).get("sections") or []
        return [section for section in sections if section.get("kind") in SECTION_TINTS]

    def _paint_sections(
        self, painter: QPainter, area: QRectF, duration_sec: float
    ) -> None:
        for section in self._sections():
            left = _x_of(section["start_sec"], area, duration_sec)
            right = _x_of(section["end_sec"], area, duration_sec)
            band = QRectF(left, area.top(), max(1.0, right - left), area.height())
            painter.fillRect(band, SECTION_TINTS[section["kind"]])

    def _paint_section_names(
        self, painter: QPainter, area: QRectF, duration_sec: float
    ) -> None:
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        painter.setFont(font)
        painter.setPen(self.palette().text().color())
        for section in self._sections():
            left = _x_of(section["start_sec"], area, duration_sec)
            painter.drawText(
                QRectF(left + 3, area.top() + 1, 60, area.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                section["kind"],
            )

    def _paint_peaks(self, painter: QPainter, area: QRectF) -> None:
        peaks = [float(p) for p in (self._info or {}).get("waveform") or []]
        if not peaks:
            return
        centre = area.center().y()
        half = area.height() / 2 - 1
        step = area.width() / len(peaks)
        upper = [
            QPointF(area.left() + (i + 0.5) * step, centre - max(p, 0.01) * half)
            for i, p in enumerate(peaks)
        ]
        lower = [QPointF(point.x(), 2 * centre - point.y()) for point in upper]
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(WAVEFORM_COLOUR)
        painter.drawPolygon(QPolygonF([*upper, *reversed(lower)]))

    def _paint_beats(
        self, painter: QPainter, area: QRectF, duration_sec: float, downbeats: bool
    ) -> None:
        """Beats as thin lines behind the waveform, downbeats stronger over it."""
        bars = set(self.downbeats_sec())
        if downbeats:
            painter.setPen(QPen(DOWNBEAT_COLOUR, 1.5))
            times_sec = sorted(bars)
        else:
            painter.setPen(QPen(BEAT_COLOUR, 1))
            times_sec = [beat for beat in self.beats_sec() if beat not in bars]
        for time_sec in times_sec:
            x = _x_of(time_sec, area, duration_sec)
            painter.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))


def _x_of(time_sec: float, area: QRectF, duration_sec: float) -> float:
    fraction = min(1.0, max(0.0, float(time_sec) / duration_sec))
    return area.left() + fraction * area.width()
