"""Still pictures as sources: one decode, shaped like any clip, then a slow push-in
resampled per frame at a fractional scale."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import MediaError
from engine.frames import FrameTransform, check_still_there, even


@dataclass(frozen=True)
class PushIn:
    """A slow zoom into the centre of a still: start_scale at start_sec, growing
    evenly to end_scale at end_sec (source seconds)."""

    start_sec: float
    end_sec: float
    start_scale: float
    end_scale: float

    def scale_at(self, time_sec: float) -> float:
        span_sec = self.end_sec - self.start_sec
        progress = (time_sec - self.start_sec) / span_sec if span_sec > 0 else 0.0
        progress = min(1.0, max(0.0, progress))
        return self.start_scale + (self.end_scale - self.start_scale) * progress


class StillReader:
    """Hands out one still picture, shaped like any source, slowly pushed in.

    The picture goes once through a FrameTransform larger than the output by the
    push-in's largest scale, so the zoom only ever shrinks it. Each frame is then
    resampled from it at a fractional scale (bilinear): a crop to whole pixels, as
    FFmpeg's zoompan makes, would jitter.
    """

    def __init__(
        self,
        path: str,
        transform: FrameTransform,
        rotation: int,
        sample_aspect: tuple[int, int],
        push_in: PushIn,
    ) -> None:
        check_still_there(path, "picture")
        self.push_in = push_in
        self.width, self.height = transform.width, transform.height
        largest = max(1.0, push_in.start_scale, push_in.end_scale)
        large = FrameTransform(
            even(transform.width * largest),
            even(transform.height * largest),
            transform.fit,
            transform.grade,
            transform.fps,
        )
        picture = _decode_still(path)
        graph = large.graph_for(picture, rotation, sample_aspect, Fraction(1, 25))
        graph.push(picture)
        shaped = graph.pull()
        assert isinstance(shaped, av.VideoFrame)
        self._planes = yuv420p_planes(shaped)
        # Large-picture pixels per output pixel at scale 1: the whole picture shows.
        self._step = min(large.width / self.width, large.height / self.height)
        self._shown: tuple[float, av.VideoFrame] | None = None

    def close(self) -> None:
        self._planes = []
        self._shown = None

    def frame_at(self, time_sec: float) -> av.VideoFrame:
        """The picture at the push-in's scale for stream time `time_sec`."""
        scale = self.push_in.scale_at(time_sec)
        if self._shown is not None and self._shown[0] == scale:
            return self._shown[1]
        step = self._step / scale
        luma, blue, red = self._planes
        frame = yuv420p_frame(
            _resample(luma, self.width, self.height, step),
            _resample(blue, self.width // 2, self.height // 2, step),
            _resample(red, self.width // 2, self.height // 2, step),
        )
        self._shown = (scale, frame)
        return frame


def _decode_still(path: str) -> av.VideoFrame:
    name = Path(path).name
    try:
        with av.open(path, metadata_errors="ignore") as container:
            for frame in container.decode(video=0):
                return frame
    except (av.error.FFmpegError, OSError) as error:
        raise MediaError(
            f"{name}: the picture could not be read for rendering ({error}). Check "
            "that it opens in an image viewer, or remove it from the clips.",
            path,
        ) from error
    raise MediaError(
        f"{name}: no picture could be decoded for rendering (damaged or truncated). "
        "Remove it and render again.",
        path,
    )


def yuv420p_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, U and V of an even-sized yuv420p frame, as float32 arrays."""
    width, height = frame.width, frame.height
    stacked = frame.to_ndarray()
    chroma = stacked[height:].reshape(2, height // 2, width // 2)
    return [stacked[:height].astype(np.float32), *chroma.astype(np.float32)]


def yuv420p_frame(luma: np.ndarray, blue: np.ndarray, red: np.ndarray) -> av.VideoFrame:
    width = luma.shape[1]
    flat = np.concatenate([luma.ravel(), blue.ravel(), red.ravel()])
    return av.VideoFrame.from_ndarray(flat.reshape(-1, width), format="yuv420p")


def _resample(plane: np.ndarray, width: int, height: int, step: float) -> np.ndarray:
    """A width x height window around the plane's centre, `step` plane pixels per
    output pixel, interpolated bilinearly; uint8."""
    rows, row_weights = _sample_points(plane.shape[0], height, step)
    columns, column_weights = _sample_points(plane.shape[1], width, step)
    # In place, one axis at a time: about 20 ms a 1080p frame.
    tall = _lerp(plane[rows], plane[rows + 1], row_weights[:, None])
    wide = _lerp(
        np.take(tall, columns, axis=1),
        np.take(tall, columns + 1, axis=1),
        column_weights,
    )
    np.rint(wide, out=wide)
    return np.clip(wide, 0, 255, out=wide).astype(np.uint8)


def _lerp(low: np.ndarray, high: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """low + (high - low) * weights, reusing high's memory."""
    high -= low
    high *= weights
    high += low
    return high


def _sample_points(size: int, count: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """For count samples centred on a line of size pixels, `step` pixels apart: the
    pixel before each sample point and the weight of the pixel after it."""
    centres = size / 2 + (np.arange(count) + 0.5 - count / 2) * step - 0.5
    before = np.clip(np.floor(centres), 0, size - 2).astype(np.intp)
    weights = np.clip(centres - before, 0.0, 1.0).astype(np.float32)
    return before, weights
