"""The song at a glance: its waveform, beats, downbeats and sections.

It paints a music_info event from `engine.inspect`; before one arrives it says
the song is being analysed, and if the song cannot be used it shows why.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFontMetricsF,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
)
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
# Beat lines closer than this many pixels read as a grey wash over the waveform:
# they are left out, and drawn lighter up to FULL_BEAT_GAP_PX.
MIN_BEAT_GAP_PX = 4.0
FULL_BEAT_GAP_PX = 8.0
# Downbeats closer than this are drawn every 2nd, 4th… bar.
MIN_DOWNBEAT_GAP_PX = 8.0
# Space between a section's edge and its name, and the fewest letters of an
# elided name worth showing.
NAME_MARGIN_PX = 3.0
MIN_NAME_LETTERS = 2


@dataclass(frozen=True)
class BeatLines:
    """The beat lines worth drawing at a width, and how strong the plain ones are."""

    beats_sec: list[float]
    downbeats_sec: list[float]
    beat_opacity: float


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
        metrics = QFontMetricsF(font, self)
        boxes = section_name_boxes(self._sections(), area, duration_sec, metrics)
        for box, name in boxes:
            painter.drawText(
                box, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, name
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
        lines = beat_lines(
            self.beats_sec(), self.downbeats_sec(), duration_sec, area.width()
        )
        if downbeats:
            painter.setPen(QPen(DOWNBEAT_COLOUR, 1.5))
            times_sec = lines.downbeats_sec
        else:
            colour = QColor(BEAT_COLOUR)
            colour.setAlphaF(colour.alphaF() * lines.beat_opacity)
            painter.setPen(QPen(colour, 1))
            times_sec = lines.beats_sec
        for time_sec in times_sec:
            x = _x_of(time_sec, area, duration_sec)
            painter.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))


def section_name_boxes(
    sections: list[dict[str, Any]],
    area: QRectF,
    duration_sec: float,
    metrics: QFontMetricsF,
) -> list[tuple[QRectF, str]]:
    """Where each section's name goes, and the name as shown.

    A name stays inside its own section and clear of the one before: it is
    elided to the space there is, and left out if not even a few letters fit.
    """
    boxes: list[tuple[QRectF, str]] = []
    taken_right = area.left()
    for section in sections:
        left = max(_x_of(section["start_sec"], area, duration_sec), taken_right)
        left += NAME_MARGIN_PX
        right = _x_of(section["end_sec"], area, duration_sec) - NAME_MARGIN_PX
        if right <= left:
            continue
        name = metrics.elidedText(
            str(section["kind"]), Qt.TextElideMode.ElideRight, right - left
        )
        if len(name.rstrip("…")) < MIN_NAME_LETTERS:
            continue

        width = min(metrics.horizontalAdvance(name), right - left)
        boxes.append((QRectF(left, area.top() + 1, width, metrics.height()), name))
        taken_right = left + width
    return boxes


def beat_lines(
    beats_sec: list[float],
    downbeats_sec: list[float],
    duration_sec: float,
    width_px: float,
) -> BeatLines:
    """The beats and downbeats to draw so that lines stay a few pixels apart.

    Downbeats are kept first: every bar, or every 2nd, 4th… when bars are too
    close. Plain beats fade as they close in and are left out below
    MIN_BEAT_GAP_PX.
    """
    px_per_sec = width_px / duration_sec if duration_sec > 0 else 0.0
    bars = sorted(downbeats_sec)
    stride = 1
    while _median_gap_sec(bars) * stride * px_per_sec < MIN_DOWNBEAT_GAP_PX:
        if stride >= len(bars):
            break
        stride *= 2

    beat_gap_px = _median_gap_sec(sorted(beats_sec)) * px_per_sec
    if beat_gap_px < MIN_BEAT_GAP_PX:
        return BeatLines([], bars[::stride], 0.0)
    bar_set = set(bars)
    plain = [beat for beat in beats_sec if beat not in bar_set]
    opacity = min(1.0, beat_gap_px / FULL_BEAT_GAP_PX)
    return BeatLines(plain, bars[::stride], opacity)


def _median_gap_sec(times_sec: list[float]) -> float:
    """The median time between neighbours; infinite for fewer than two."""
    gaps_sec = sorted(b - a for a, b in itertools.pairwise(times_sec))
    return gaps_sec[len(gaps_sec) // 2] if gaps_sec else float("inf")


def _x_of(time_sec: float, area: QRectF, duration_sec: float) -> float:
    fraction = min(1.0, max(0.0, float(time_sec) / duration_sec))
    return area.left() + fraction * area.width()
