"""Deterministic test media drawn with PyAV and numpy: clips whose every frame shows
its index as a marker, and reading markers and frames back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.audio_media import add_audio_stream, chirp, mux_samples

VIDEO_TIME_BASE = Fraction(1, 90000)
MAX_FRAMES = 8192

# The marker is a square of 9 units: a white ring, a black ring, 5x5 cells.
_GRID_CELLS = 5
_MARKER_UNITS = _GRID_CELLS + 4
_INDEX_BITS = 13
_CRC_BITS = 8
# Corners read white, black, black, black in the upright marker only, so a
# rotated or mirrored marker reads as None instead of a wrong index.
_CORNER_BITS = {0: 1, 4: 0, 20: 0, 24: 0}
_DATA_CELLS = [cell for cell in range(_GRID_CELLS**2) if cell not in _CORNER_BITS]

# Shot colours alternate dark and bright so that every cut is a large jump.
_SHOT_COLOURS = np.array(
    [
        (20, 60, 110),
        (240, 200, 60),
        (60, 20, 40),
        (120, 230, 160),
        (30, 80, 30),
        (250, 150, 200),
    ],
    dtype=np.float32,
)
_CUE_TOP_RGB = (220, 30, 30)
_CUE_BOTTOM_RGB = (30, 30, 220)
_CUE_FRACTION = 0.15


@dataclass(frozen=True)
class ClipTruth:
    """What write_marker_clip wrote, for tests to compare against."""

    path: Path
    fps: int | Fraction
    frames: int
    times_sec: list[float]
    cuts: list[int]
    rotation: int
    size: tuple[int, int]
    display_size: tuple[int, int]
    codec: str
    has_audio: bool
    gop: int | None

    @property
    def end_sec(self) -> float:
        """End of the last frame, taking its duration as 1/fps."""
        return self.times_sec[-1] + 1 / self.fps

    def shot_of(self, index: int) -> int:
        """The shot number (0 for the first shot) of one frame index."""
        return sum(1 for cut in self.cuts if cut <= index)


# Video.


def write_marker_clip(
    path: str | Path,
    *,
    frames: int,
    fps: int | Fraction = 25,
    size: tuple[int, int] = (320, 180),
    cuts: Sequence[int] = (),
    rotation: int = 0,
    vfr: bool = False,
    start_sec: float = 0.0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    gop: int | None = None,
    timecode: str | None = None,
    tone_hz: tuple[float, float] = (440.0, 440.0),
) -> ClipTruth:
    """Write a clip whose every frame shows its index as a marker.

    size is the stored (width, height); with rotation 90 or 270 the clip displays
    as (height, width). The stored picture is pre-rotated so that it displays
    upright once rotated counter-clockwise by rotation. Each index in cuts starts
    a new shot. vfr alternates frame intervals of 0.6/fps and 1.4/fps. fps may be
    a Fraction (30000/1001). timecode ("01:00:10:05") becomes the start timecode
    (a tmcd track in MOV and MP4). With audio, a tone of amplitude 0.1 from 0 s,
    sweeping linearly over the clip from tone_hz[0] to tone_hz[1].
    """
    check_clip_args(frames, rotation, cuts)
    if Path(path).suffix.lower() == ".avi" and (rotation or vfr or start_sec):
        raise ValueError("AVI holds no display rotation, start time or VFR timestamps")
    time_base = _codec_time_base(codec)
    times_sec = frame_times_sec(frames, fps, vfr, start_sec, time_base)
    width, height = size
    display_size = (width, height) if rotation in (0, 180) else (height, width)
    truth = ClipTruth(
        path=Path(path),
        fps=fps,
        frames=frames,
        times_sec=times_sec,
        cuts=sorted(cuts),
        rotation=rotation,
        size=size,
        display_size=display_size,
        codec=codec,
        has_audio=audio,
        gop=gop,
    )

    # NOTE: every stream is added before the first mux; adding one after it
    # kills the process with a floating point exception (PyAV 18.1).
    with av.open(str(path), "w") as container:
        video = _add_video_stream(container, truth, pix_fmt)
        if timecode is not None:
            video.metadata["timecode"] = timecode
        audio_codec, sample_format = _clip_audio_codec(truth.path)
        tone_stream = (
            add_audio_stream(container, audio_codec, 48000, 2) if audio else None
        )
        _mux_marker_frames(container, video, truth)
        if tone_stream is not None:
            tone = chirp(round(truth.end_sec * 48000), 48000, tone_hz, 0.1)
            mux_samples(container, tone_stream, np.tile(tone, (2, 1)), sample_format)
    return truth


def draw_marker_frame(
    index: int, *, shot: int = 0, size: tuple[int, int] = (320, 180)
) -> np.ndarray:
    """The upright RGB24 picture of one frame: scene, orientation cue, marker."""
    width, height = size
    picture = _draw_scene(index, shot, width, height)
    band = round(_CUE_FRACTION * height)
    picture[:band] = _CUE_TOP_RGB
    picture[height - band :] = _CUE_BOTTOM_RGB
    _draw_marker(picture, index)
    return picture


def check_clip_args(frames: int, rotation: int, cuts: Sequence[int]) -> None:
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation}")
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be 1 to {MAX_FRAMES}, not {frames}")
    if any(not 0 < cut < frames for cut in cuts):
        raise ValueError(f"cuts must lie between 1 and {frames - 1}: {list(cuts)}")


def frame_times_sec(
    frames: int, fps: int | Fraction, vfr: bool, start_sec: float, time_base: Fraction
) -> list[float]:
    pattern_frames = (0.6, 1.4) if vfr else (1.0,)
    intervals_sec = [
        pattern_frames[index % len(pattern_frames)] / fps for index in range(frames - 1)
    ]
    times_sec = start_sec + np.concatenate([[0.0], np.cumsum(intervals_sec)])
    # Rounded to the time base, so that the truth is what the file holds.
    return [round(t / time_base) * float(time_base) for t in times_sec]


def _codec_time_base(codec: str) -> Fraction:
    # MPEG-4 part 2 caps the time base denominator at 65535.
    return Fraction(1, 1000) if codec == "mpeg4" else VIDEO_TIME_BASE


def _add_video_stream(
    container: av.container.OutputContainer, truth: ClipTruth, pix_fmt: str
) -> av.video.stream.VideoStream:
    stream = container.add_stream(truth.codec, rate=truth.fps)
    stream.width, stream.height = truth.size
    stream.pix_fmt = pix_fmt
    stream.time_base = VIDEO_TIME_BASE
    stream.codec_context.time_base = _codec_time_base(truth.codec)
    stream.set_display_rotation(truth.rotation)
    if truth.gop is not None:
        stream.codec_context.gop_size = truth.gop
    stream.options = encoder_options(truth.codec, truth.gop)
    return stream


def encoder_options(codec: str, gop: int | None) -> dict[str, str]:
    if codec not in ("libx264", "libx265"):
        return {}
    options = {"crf": "18", "preset": "veryfast"}
    # With a gop, keyframes fall exactly every gop frames: no scene-cut extras.
    keyint = f"keyint={gop}:min-keyint={gop}:scenecut=0" if gop else ""
    if codec == "libx264":
        options["x264-params"] = keyint
    else:
        options["x265-params"] = ":".join(filter(None, ["log-level=error", keyint]))
    return {key: value for key, value in options.items() if value}


def _clip_audio_codec(path: Path) -> tuple[str, str]:
    return ("libopus", "flt") if path.suffix.lower() == ".webm" else ("aac", "fltp")


def _mux_marker_frames(
    container: av.container.OutputContainer,
    stream: av.video.stream.VideoStream,
    truth: ClipTruth,
) -> None:
    for index, time_sec in enumerate(truth.times_sec):
        upright = draw_marker_frame(
            index, shot=truth.shot_of(index), size=truth.display_size
        )
        stored = np.rot90(upright, k=-truth.rotation // 90)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="rgb24")
        frame.pts = round(time_sec / VIDEO_TIME_BASE)
        frame.time_base = VIDEO_TIME_BASE
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _draw_scene(index: int, shot: int, width: int, height: int) -> np.ndarray:
    """A shot colour with a drifting gradient and a sliding block: gentle motion."""
    colour = _SHOT_COLOURS[shot % len(_SHOT_COLOURS)]
    drift = index * max(1, width // 80)
    period = max(8, width // 5)
    along = np.arange(width if shot % 2 == 0 else height)
    wave = 30 * np.sin(2 * np.pi * (along + drift) / period)
    wave = wave[None, :] if shot % 2 == 0 else wave[:, None]
    picture = np.broadcast_to(colour, (height, width, 3)) + wave[..., None]

    block_w, block_h = max(2, width // 6), max(2, height // 6)
    left = (width // 8 + 2 * drift) % max(1, width - block_w)
    top = round(0.2 * height)
    picture[top : top + block_h, left : left + block_w] = 255 - colour
    return np.clip(picture, 0, 255).astype(np.uint8)


def _marker_unit(width: int, height: int) -> int:
    # Inside the central 30% of the width and 50% of the height, with margin.
    return max(1, int(min(0.28 * width, 0.48 * height) / _MARKER_UNITS))


def _draw_marker(picture: np.ndarray, index: int) -> None:
    height, width = picture.shape[:2]
    unit = _marker_unit(width, height)
    side = unit * _MARKER_UNITS
    top, left = (height - side) // 2, (width - side) // 2
    picture[top : top + side, left : left + side] = 255
    picture[top + unit : top + side - unit, left + unit : left + side - unit] = 0

    for cell, bit in enumerate(_marker_bits(index)):
        row, column = divmod(cell, _GRID_CELLS)
        y, x = top + (2 + row) * unit, left + (2 + column) * unit
        picture[y : y + unit, x : x + unit] = 255 * bit


def _marker_bits(index: int) -> list[int]:
    """Cell values, row by row: 1 white, 0 black."""
    payload = (index << _CRC_BITS) | _crc8(index, _INDEX_BITS)
    total = _INDEX_BITS + _CRC_BITS
    data = [(payload >> (total - 1 - bit)) & 1 for bit in range(total)]
    bits = dict(_CORNER_BITS) | dict(zip(_DATA_CELLS, data, strict=True))
    return [bits[cell] for cell in range(_GRID_CELLS**2)]


def _crc8(value: int, bits: int) -> int:
    """CRC-8 (polynomial x^8+x^2+x+1), xored so that all-black cells fail."""
    crc = 0
    for bit in reversed(range(bits)):
        feedback = ((crc >> 7) & 1) ^ ((value >> bit) & 1)
        crc = ((crc << 1) & 0xFF) ^ (0x07 if feedback else 0)
    return crc ^ 0x55


# Reading pictures back.


def read_marker(rgb: np.ndarray) -> int | None:
    """The frame index shown by a centred marker at any scale, or None.

    rgb is an upright (height, width, 3) uint8 picture, possibly scaled, cropped
    or boxed around its centre. Unreadable, rotated or mirrored markers give None.
    """
    located = _locate_marker(rgb)
    if located is None:
        return None
    side, white, black = located

    unit = side / _MARKER_UNITS
    centre_y, centre_x = rgb.shape[0] / 2, rgb.shape[1] / 2
    offsets = (np.arange(_GRID_CELLS) - (_GRID_CELLS - 1) / 2) * unit
    levels = np.array(
        [
            _mean_luma(rgb, centre_y + dy, centre_x + dx, unit / 4)
            for dy in offsets
            for dx in offsets
        ]
    )
    threshold, margin = (white + black) / 2, 0.2 * (white - black)
    if np.any(np.abs(levels - threshold) < margin):
        return None
    return _decode_bits([int(level > threshold) for level in levels])


def is_upright(rgb: np.ndarray) -> bool:
    """Whether a full, uncropped marker picture has its red cue on top."""
    rows = max(1, round(0.1 * rgb.shape[0]))
    top = rgb[:rows].reshape(-1, 3).mean(axis=0)
    bottom = rgb[-rows:].reshape(-1, 3).mean(axis=0)
    return bool(top[0] - top[2] > 80 and bottom[2] - bottom[0] > 80)


def _locate_marker(rgb: np.ndarray) -> tuple[float, float, float] | None:
    """Find the marker's side in pixels by scoring both rings at every size.

    Returns (side, white level, black level). A size scores the darkest white
    ring sample minus the brightest black ring sample; the true size is the
    middle of the run of high scores around the best.
    """
    height, width = rgb.shape[:2]
    sides = np.arange(3 * _MARKER_UNITS, min(height, width) + 1, dtype=np.float64)
    if sides.size == 0:
        return None
    unit = sides / _MARKER_UNITS
    white = _ring_luma(rgb, sides / 2 - unit / 2)
    black = _ring_luma(rgb, sides / 2 - 1.5 * unit)
    scores = white.min(axis=1) - black.max(axis=1)

    best = int(np.argmax(scores))
    if scores[best] < 80:
        return None
    good = scores >= 0.8 * scores[best]
    first, last = best, best
    while first > 0 and good[first - 1]:
        first -= 1
    while last < good.size - 1 and good[last + 1]:
        last += 1
    middle = (first + last) // 2
    return (
        sides[middle],
        float(np.median(white[middle])),
        float(np.median(black[middle])),
    )


def _ring_luma(rgb: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Luma at 9 points along each side of centred squares: (radii, 36)."""
    height, width = rgb.shape[:2]
    along = np.linspace(-1, 1, 9)[None, :] * radii[:, None]
    across = np.broadcast_to(radii[:, None], along.shape)
    xs = np.concatenate([along, along, -across, across], axis=1) + width / 2
    ys = np.concatenate([-across, across, along, along], axis=1) + height / 2
    rows = np.clip(ys.astype(int), 0, height - 1)
    columns = np.clip(xs.astype(int), 0, width - 1)
    return rgb[rows, columns].mean(axis=-1)


def _mean_luma(rgb: np.ndarray, y: float, x: float, half: float) -> float:
    reach = max(1, int(half))
    row, column = int(y), int(x)
    patch = rgb[
        max(0, row - reach) : row + reach + 1,
        max(0, column - reach) : column + reach + 1,
    ]
    return float(patch.mean()) if patch.size else 0.0


def _decode_bits(bits: list[int]) -> int | None:
    if any(bits[cell] != value for cell, value in _CORNER_BITS.items()):
        return None
    payload = 0
    for cell in _DATA_CELLS:
        payload = (payload << 1) | bits[cell]
    index, crc = payload >> _CRC_BITS, payload & ((1 << _CRC_BITS) - 1)
    return index if crc == _crc8(index, _INDEX_BITS) else None


def decode_rgb_frames(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, upright RGB24 picture) for each frame of video 0."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            # frame.rotation is counter-clockwise degrees, like np.rot90.
            upright = np.rot90(rgb, k=frame.rotation // 90)
            yield float(frame.time or 0.0), np.ascontiguousarray(upright)
