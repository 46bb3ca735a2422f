"""Render a clip through its follow-the-subject path: a moving crop window.

engine.reframe plans the path and stores it in the clip's metadata; here each
output frame is cut from the scaled, uncropped source frame at the path's window,
by slicing the YUV planes (a few milliseconds a frame). A window wider than the
output (to keep several faces whole) is scaled down and padded with black.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import opentimelineio as otio

from engine.frames import FrameReader, FrameTransform
from engine.timeline import META

log = logging.getLogger(__name__)

# Limited-range black in Y, U and V.
BLACK_YUV = (16, 128, 128)
# Below this the window is the output's own size: a plain slice, no scaling.
ZOOM_EPSILON = 1e-3


@dataclass(frozen=True)
class FollowPath:
    """Window centre (fractions of the scaled frame) and zoom per output frame.

    Index i holds the window at stream time start_sec + i * step_sec. Zoom 1 is the
    output's own size; zoom z shows a window z times as wide and tall.
    """

    start_sec: float
    step_sec: float
    x: list[float]
    y: list[float]
    zoom: list[float]

    def window_at(self, time_sec: float) -> tuple[float, float, float]:
        """(centre x, centre y, zoom) at stream time time_sec, held at the ends."""
        index = round((time_sec - self.start_sec) / self.step_sec)
        index = min(len(self.x) - 1, max(0, index))
        return self.x[index], self.y[index], self.zoom[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_sec": round(self.start_sec, 6),
            "step_sec": self.step_sec,
            "x": [round(value, 4) for value in self.x],
            "y": [round(value, 4) for value in self.y],
            "zoom": [round(value, 4) for value in self.zoom],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FollowPath:
        return cls(
            start_sec=float(data["start_sec"]),
            step_sec=float(data["step_sec"]),
            x=[float(value) for value in data["x"]],
            y=[float(value) for value in data["y"]],
            zoom=[float(value) for value in data["zoom"]],
        )


def display_size(facts: dict[str, Any]) -> tuple[float, float]:
    """A source's upright picture size, from its reference metadata."""
    width = facts["width"] * facts["sample_aspect"][0] / facts["sample_aspect"][1]
    if facts["rotation"] % 180:
        return float(facts["height"]), width
    return width, float(facts["height"])


class UncroppedTransform(FrameTransform):
    """A FrameTransform that scales to cover the output but leaves the crop to
    FollowReader; grading still happens in the graph."""

    def _frame_filter(self, width: int, height: int) -> tuple[str, str]:
        # NOTE: overrides FrameTransform's centred crop (or pad) with a no-op crop.
        return "crop", f"{width}:{height}:0:0"


_uncropped: dict[str, UncroppedTransform] = {}


def uncropped_transform(transform: FrameTransform) -> UncroppedTransform:
    """The uncropped twin of a render's transform, made once so that its graphs
    (about 0.1 s each to configure) serve every followed clip of the render."""
    key = repr((transform.width, transform.height, transform.fps,
                sorted(transform.grade.items())))  # fmt: skip
    twin = _uncropped.get(key)
    if twin is None:
        _uncropped.clear()
        twin = _uncropped[key] = UncroppedTransform(
            transform.width, transform.height, "crop", transform.grade, transform.fps
        )
    return twin


class FollowReader:
    """A FrameReader that shows each frame of another through a moving window."""

    def __init__(self, reader: FrameReader, path: FollowPath, width: int, height: int):
        self.reader = reader
        self.path = path
        self.width = width
        self.height = height

    def close(self) -> None:
        self.reader.close()

    def frame_at(self, time_sec: float) -> av.VideoFrame:
        frame = self.reader.frame_at(time_sec)
        x, y, zoom = self.path.window_at(time_sec)
        return cut_window(frame, x, y, zoom, self.width, self.height)


def cut_window(
    frame: av.VideoFrame, x: float, y: float, zoom: float, width: int, height: int
) -> av.VideoFrame:
    """The width x height picture of `frame` seen through a window centred at
    (x, y), fractions of the frame, zoom times the output's size."""
    if zoom < 1 + ZOOM_EPSILON and frame.width >= width and frame.height >= height:
        left = _even_clamp(x * frame.width - width / 2, frame.width - width)
        top = _even_clamp(y * frame.height - height / 2, frame.height - height)
        planes = _planes(frame)
        return _frame_of(
            planes[0][top : top + height, left : left + width],
            planes[1][top // 2 : (top + height) // 2, left // 2 : (left + width) // 2],
            planes[2][top // 2 : (top + height) // 2, left // 2 : (left + width) // 2],
        )
    return _zoomed_window(frame, x, y, zoom, width, height)


def _zoomed_window(
    frame: av.VideoFrame, x: float, y: float, zoom: float, width: int, height: int
) -> av.VideoFrame:
    """A window larger than the output: the part inside the frame, scaled down by
    zoom, on black where the window reaches past the frame's edges."""
    left = x * frame.width - width * zoom / 2
    top = y * frame.height - height * zoom / 2
    x0, x1 = _even_span(left, width * zoom, frame.width)
    y0, y1 = _even_span(top, height * zoom, frame.height)
    inner_width = min(width, _even((x1 - x0) / zoom))
    inner_height = min(height, _even((y1 - y0) / zoom))
    planes = _planes(frame)
    part = _frame_of(
        planes[0][y0:y1, x0:x1],
        planes[1][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
        planes[2][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
    )
    small = _planes(part.reformat(width=inner_width, height=inner_height))
    canvas = [
        np.full((height, width), BLACK_YUV[0], np.uint8),
        np.full((height // 2, width // 2), BLACK_YUV[1], np.uint8),
        np.full((height // 2, width // 2), BLACK_YUV[2], np.uint8),
    ]
    at_x = _even_clamp((x0 - left) / zoom, width - inner_width)
    at_y = _even_clamp((y0 - top) / zoom, height - inner_height)
    for index, plane in enumerate(small):
        shift = 0 if index == 0 else 1
        rows, columns = plane.shape
        canvas[index][
            at_y >> shift : (at_y >> shift) + rows,
            at_x >> shift : (at_x >> shift) + columns,
        ] = plane
    return _frame_of(*canvas)


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _even_clamp(value: float, highest: int) -> int:
    return min(max(0, highest) // 2 * 2, max(0, round(value / 2) * 2))


def _even_span(start: float, length: float, size: int) -> tuple[int, int]:
    """The part of [start, start + length) inside [0, size), on even pixels."""
    low = max(0, round(start / 2) * 2)
    high = min(size // 2 * 2, round((start + length) / 2) * 2)
    return low, max(low + 2, high)


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, U and V of an even-sized yuv420p frame."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    width, height = frame.width, frame.height
    stacked = frame.to_ndarray()
    chroma = stacked[height:].reshape(2, height // 2, width // 2)
    return [stacked[:height], chroma[0], chroma[1]]


def _frame_of(luma: np.ndarray, blue: np.ndarray, red: np.ndarray) -> av.VideoFrame:
    width = luma.shape[1]
    flat = np.concatenate([luma.ravel(), blue.ravel(), red.ravel()])
    return av.VideoFrame.from_ndarray(flat.reshape(-1, width), format="yuv420p")


def enhancement_warnings(timeline: otio.schema.Timeline, format_name: str) -> list[str]:
    """What an editor's timeline cannot show of the reframing and upscaling."""
    followed, upscaled = set(), set()
    for clip in timeline.video_tracks()[0].find_clips():
        name = os.path.basename(clip.media_reference.target_url)
        if clip.metadata.get(META, {}).get("follow"):
            followed.add(name)
        if clip.metadata.get(META, {}).get("upscale"):
            upscaled.add(name)
    warnings = []
    if followed:
        warnings.append(
            f"{format_name} does not carry the crop window that follows the subject "
            f"in {_names(followed)}: your editor shows those shots cropped in the "
            "centre (the window's path is in the .otio, under montage_ai.follow)."
        )
    if upscaled:
        warnings.append(
            f"{format_name} links the original, smaller {_names(upscaled)}: the "
            "upscaled picture is in the rendered video only."
        )
    return warnings


def _names(names: set[str]) -> str:
    listed = ", ".join(sorted(names)[:5])
    return listed + (" and others" if len(names) > 5 else "")
