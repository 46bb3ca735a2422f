"""Test clips with a known subject: a drawn face that OpenCV's Haar cascade finds,
a moving square with no face, and fine detail for upscaling; drawn with numpy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

BACKGROUND = 90


@dataclass(frozen=True)
class SubjectTruth:
    """Where the subject is in each frame: (left, top, right, bottom) pixels."""

    path: Path
    fps: int
    size: tuple[int, int]
    boxes: list[tuple[int, int, int, int]]

    def box_at(self, time_sec: float) -> tuple[int, int, int, int]:
        index = min(len(self.boxes) - 1, max(0, round(time_sec * self.fps)))
        return self.boxes[index]


def draw_face(size: int) -> np.ndarray:
    """A grey cartoon face, size x size: oval, brows, eyes, nose and mouth."""
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = size / 2

    def inside(x: float, y: float, rx: float, ry: float) -> np.ndarray:
        x0, y0 = centre + x * size, centre + y * size
        return ((columns - x0) / (rx * size)) ** 2 + (
            (rows - y0) / (ry * size)
        ) ** 2 < 1

    face = np.full((size, size), 60.0, np.float32)
    face[inside(0, 0, 0.36, 0.46)] = 200
    for side in (-1, 1):
        face[inside(side * 0.15, -0.17, 0.10, 0.025)] = 70
        face[inside(side * 0.15, -0.08, 0.07, 0.035)] = 40
    face[inside(0, 0.06, 0.04, 0.03)] = 120
    face[inside(0, 0.22, 0.13, 0.035)] = 70
    return cv2.GaussianBlur(face, (0, 0), size / 60)


def write_face_clip(
    path: Path,
    *,
    centres: Callable[[float], list[tuple[float, float]]],
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (640, 360),
    face_px: int = 80,
) -> SubjectTruth:
    """A clip with faces whose centres (fractions of the frame) are centres(t);
    the truth holds the box around all faces of each frame."""
    face = draw_face(face_px)
    width, height = size

    def draw(time_sec: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        picture = np.full((height, width), BACKGROUND, np.float32)
        lefts, tops = [], []
        for x, y in centres(time_sec):
            left = round(x * width - face_px / 2)
            top = round(y * height - face_px / 2)
            picture[top : top + face_px, left : left + face_px] = face
            lefts.append(left)
            tops.append(top)
        box = (min(lefts), min(tops), max(lefts) + face_px, max(tops) + face_px)
        return picture, box

    return _write_clip(path, draw, seconds, fps, size)


def write_square_clip(
    path: Path,
    *,
    centre_x: Callable[[float], float],
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (640, 360),
    square_px: int = 60,
) -> SubjectTruth:
    """A bright square moving on a still, textured background: motion, no face."""
    width, height = size
    rows, columns = np.mgrid[0:height, 0:width]
    texture = (BACKGROUND + 20 * np.sin(columns / 7.0) * np.cos(rows / 9.0)).astype(
        np.float32
    )

    def draw(time_sec: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        picture = texture.copy()
        left = round(centre_x(time_sec) * width - square_px / 2)
        top = (height - square_px) // 2
        picture[top : top + square_px, left : left + square_px] = 235
        return picture, (left, top, left + square_px, top + square_px)

    return _write_clip(path, draw, seconds, fps, size)


def write_detail_clip(
    path: Path,
    *,
    seconds: float = 1.0,
    fps: int = 25,
    size: tuple[int, int] = (160, 90),
) -> SubjectTruth:
    """Small, detailed frames: edges and text-like strokes, drifting slowly."""
    width, height = size
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)

    def draw(time_sec: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        shift = 8 * time_sec
        rings = np.sin(((columns - width / 2 - shift) ** 2 + (rows - height / 2) ** 2)
                       / 40.0)  # fmt: skip
        bars = ((columns + shift) // 6 % 2) * ((rows // 10) % 2)
        picture = 128 + 70 * np.sign(rings) * (1 - bars) + 60 * bars
        return picture.astype(np.float32), (0, 0, width, height)

    return _write_clip(path, draw, seconds, fps, size)


def _write_clip(
    path: Path,
    draw: Callable[[float], tuple[np.ndarray, tuple[int, int, int, int]]],
    seconds: float,
    fps: int,
    size: tuple[int, int],
) -> SubjectTruth:
    width, height = size
    boxes = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "ultrafast", "g": str(fps)}
        for index in range(round(seconds * fps)):
            picture, box = draw(index / fps)
            boxes.append(box)
            grey = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(
                np.repeat(grey[:, :, None], 3, axis=2), format="rgb24"
            )
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return SubjectTruth(path, fps, size, boxes)
