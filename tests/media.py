"""Deterministic test media drawn with PyAV and numpy: marker clips, click tracks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

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

_AUDIO_CODECS = {
    ".wav": ("pcm_s16le", "s16"),
    ".flac": ("flac", "s16"),
    ".m4a": ("aac", "fltp"),
    ".mp4": ("aac", "fltp"),
    ".ogg": ("libopus", "flt"),
    ".opus": ("libopus", "flt"),
}
_AUDIO_CHUNK_SAMPLES = 1024
_SECTION_GAINS = {"quiet": (0.12, 0.12), "build": (0.12, 1.0), "peak": (1.0, 1.0)}


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


# Audio.


def write_click_track(
    path: str | Path,
    *,
    bpm: float,
    duration_sec: float,
    silent_intro_sec: float = 0.0,
    silent_outro_sec: float = 0.0,
    sample_rate: int = 44100,
    channels: int = 2,
    accent_every: int = 4,
    bed: bool = False,
) -> list[float]:
    """Write clicks every 60/bpm seconds; returns the click onset times.

    duration_sec is the length of the whole file. Clicks start at silent_intro_sec
    and stop before the silent outro; every accent_every-th click, starting with
    the first, is louder and lower. Opus files are always 48 kHz.
    """
    sample_rate = _sample_rate_for(Path(path), sample_rate)
    samples = np.zeros(round(duration_sec * sample_rate), dtype=np.float32)
    start = round(silent_intro_sec * sample_rate)
    stop = round((duration_sec - silent_outro_sec) * sample_rate)
    onsets = _beat_samples(60 * sample_rate / bpm, start, stop)
    if bed:
        samples[start:stop] += _tone(stop - start, sample_rate, 110.0, 0.02)

    for number, onset in enumerate(onsets):
        accent = number % max(accent_every, 1) == 0
        _add_at(samples, onset, _click(sample_rate, accent))

    _write_audio(path, np.tile(samples, (channels, 1)), sample_rate)
    return [onset / sample_rate for onset in onsets]


def write_song(
    path: str | Path,
    *,
    bpm: float,
    duration_sec: float | None = None,
    sections: Sequence[tuple[str, float]] = (
        ("quiet", 8.0),
        ("build", 8.0),
        ("peak", 8.0),
    ),
    sample_rate: int = 44100,
    channels: int = 2,
) -> list[float]:
    """Write kick, snare, hi-hat and pad whose loudness follows the sections.

    Sections are ("quiet" | "build" | "peak", seconds); build ramps from quiet to
    peak loudness. duration_sec defaults to the sections' total; past their end
    the last loudness holds. Returns the beat (kick onset) times.
    """
    sample_rate = _sample_rate_for(Path(path), sample_rate)
    total_sec = sum(seconds for _, seconds in sections)
    length = round((duration_sec or total_sec) * sample_rate)
    gain = _section_gain(sections, length, sample_rate)
    samples = gain * _pad(length, sample_rate)

    beat_samples = 60 * sample_rate / bpm
    beats = _beat_samples(beat_samples, 0, length)
    for number, onset in enumerate(beats):
        _add_at(samples, onset, gain[onset] * _kick(sample_rate))
        if number % 2 == 1:
            _add_at(samples, onset, gain[onset] * _snare(sample_rate))
        offbeat = onset + round(beat_samples / 2)
        if offbeat < length:
            _add_at(samples, offbeat, gain[offbeat] * _hihat(sample_rate))

    np.clip(samples, -0.99, 0.99, out=samples)
    _write_audio(path, np.tile(samples, (channels, 1)), sample_rate)
    return [onset / sample_rate for onset in beats]


def decode_audio(path: str | Path) -> tuple[np.ndarray, int, float]:
    """Decode the first audio stream: (mono float32 samples, sample rate, start)."""
    resampler = av.AudioResampler(format="fltp")
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        start_sec = None
        for frame in container.decode(stream):
            if start_sec is None:
                start_sec = float(frame.time or 0.0)
            chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(None)]
        sample_rate = stream.sample_rate
    return np.concatenate(chunks).astype(np.float32), sample_rate, start_sec or 0.0


def find_onsets_sec(
    samples: np.ndarray,
    sample_rate: int,
    *,
    threshold: float = 0.1,
    min_gap_sec: float = 0.1,
) -> list[float]:
    """Times where |samples| first rises past threshold after min_gap_sec below."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return []
    gaps = np.diff(loud) > min_gap_sec * sample_rate
    starts = np.concatenate([loud[:1], loud[1:][gaps]])
    return [float(start) / sample_rate for start in starts]


def _sample_rate_for(path: Path, sample_rate: int) -> int:
    # libopus encodes 48 kHz only (and 8/12/16/24 kHz, never 44.1 kHz).
    codec, _ = _audio_codec_for(path)
    return 48000 if codec == "libopus" else sample_rate


def _audio_codec_for(path: Path) -> tuple[str, str]:
    if path.suffix.lower() not in _AUDIO_CODECS:
        known = ", ".join(sorted(_AUDIO_CODECS))
        raise ValueError(f"{path.name}: audio extension must be one of {known}")
    return _AUDIO_CODECS[path.suffix.lower()]


def _beat_samples(interval: float, start: int, stop: int) -> list[int]:
    count = max(0, int(np.ceil((stop - start) / interval)))
    onsets = [start + round(number * interval) for number in range(count)]
    return [onset for onset in onsets if onset < stop]


def _add_at(samples: np.ndarray, onset: int, sound: np.ndarray) -> None:
    end = min(samples.size, onset + sound.size)
    samples[onset:end] += sound[: end - onset]


def _tone(length: int, sample_rate: int, hz: float, amplitude: float) -> np.ndarray:
    t_sec = np.arange(length) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t_sec)).astype(np.float32)


def _chirp(
    length: int, sample_rate: int, hz: tuple[float, float], amplitude: float
) -> np.ndarray:
    """A sine sweeping linearly from hz[0] at its start to hz[1] at its end."""
    t_sec = np.arange(length) / sample_rate
    sweep_per_sec = (hz[1] - hz[0]) / max(t_sec[-1], 1e-9) if length else 0.0
    phase = 2 * np.pi * (hz[0] * t_sec + 0.5 * sweep_per_sec * t_sec**2)
    return (amplitude * np.sin(phase)).astype(np.float32)


def _click(sample_rate: int, accent: bool) -> np.ndarray:
    # A cosine starts at its peak: the onset is the first sample, sharp.
    t_sec = np.arange(round(0.015 * sample_rate)) / sample_rate
    hz, amplitude = (1000.0, 0.9) if accent else (2000.0, 0.5)
    envelope = np.exp(-t_sec / 0.004)
    return (amplitude * envelope * np.cos(2 * np.pi * hz * t_sec)).astype(np.float32)


def _kick(sample_rate: int) -> np.ndarray:
    t_sec = np.arange(round(0.15 * sample_rate)) / sample_rate
    # Pitch falls from 110 Hz to 50 Hz, like a drum head relaxing.
    phase = 2 * np.pi * (50 * t_sec + 60 * 0.03 * (1 - np.exp(-t_sec / 0.03)))
    return (0.55 * np.exp(-t_sec / 0.05) * np.sin(phase)).astype(np.float32)


def _snare(sample_rate: int) -> np.ndarray:
    length = round(0.1 * sample_rate)
    noise = np.random.default_rng(7).uniform(-1, 1, length)
    envelope = np.exp(-np.arange(length) / (0.025 * sample_rate))
    return (0.35 * envelope * noise).astype(np.float32)


def _hihat(sample_rate: int) -> np.ndarray:
    length = round(0.03 * sample_rate)
    # The difference of white noise tilts it towards high frequencies.
    noise = np.diff(np.random.default_rng(11).uniform(-1, 1, length + 1))
    envelope = np.exp(-np.arange(length) / (0.008 * sample_rate))
    return (0.12 * envelope * noise).astype(np.float32)


def _pad(length: int, sample_rate: int) -> np.ndarray:
    chord_hz = (220.0, 277.18, 329.63)
    return sum(_tone(length, sample_rate, hz, 0.08) for hz in chord_hz)


def _section_gain(
    sections: Sequence[tuple[str, float]], length: int, sample_rate: int
) -> np.ndarray:
    ramps = []
    for name, seconds in sections:
        if name not in _SECTION_GAINS:
            raise ValueError(f"section {name!r} must be one of {list(_SECTION_GAINS)}")
        first, last = _SECTION_GAINS[name]
        ramps.append(np.linspace(first, last, round(seconds * sample_rate)))
    gain = np.concatenate(ramps).astype(np.float32)
    if gain.size < length:
        gain = np.pad(gain, (0, length - gain.size), mode="edge")
    return gain[:length]


def _write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    with av.open(str(path), "w") as container:
        codec, sample_format = _audio_codec_for(Path(path))
        stream = _add_audio_stream(container, codec, sample_rate, samples.shape[0])
        _mux_samples(container, stream, samples, sample_format)


def _add_audio_stream(
    container: av.container.OutputContainer, codec: str, sample_rate: int, channels: int
) -> av.audio.stream.AudioStream:
    layout = "mono" if channels == 1 else "stereo"
    stream = container.add_stream(codec, rate=sample_rate, layout=layout)
    stream.time_base = Fraction(1, sample_rate)
    return stream


def _mux_samples(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: np.ndarray,
    sample_format: str,
) -> None:
    """Encode (channels, n) float samples; pts from zero so AAC gets its edit list."""
    layout = stream.layout.name
    for start in range(0, samples.shape[1], _AUDIO_CHUNK_SAMPLES):
        chunk = samples[:, start : start + _AUDIO_CHUNK_SAMPLES]
        frame = av.AudioFrame.from_ndarray(
            _as_sample_format(chunk, sample_format), format=sample_format, layout=layout
        )
        frame.sample_rate = stream.sample_rate
        frame.pts = start
        # NOTE: not stream.time_base: Matroska turns it into 1/1000 once the
        # header is written, and samples would then count as milliseconds.
        frame.time_base = Fraction(1, stream.sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _as_sample_format(chunk: np.ndarray, sample_format: str) -> np.ndarray:
    if sample_format == "fltp":
        return np.ascontiguousarray(chunk, dtype=np.float32)
    interleaved = chunk.T.reshape(1, -1)
    if sample_format == "flt":
        return np.ascontiguousarray(interleaved, dtype=np.float32)
    return np.round(np.clip(interleaved, -1, 1) * 32767).astype(np.int16)


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
    _check_clip_args(frames, rotation, cuts)
    if Path(path).suffix.lower() == ".avi" and (rotation or vfr or start_sec):
        raise ValueError("AVI holds no display rotation, start time or VFR timestamps")
    time_base = _codec_time_base(codec)
    times_sec = _frame_times_sec(frames, fps, vfr, start_sec, time_base)
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
            _add_audio_stream(container, audio_codec, 48000, 2) if audio else None
        )
        _mux_marker_frames(container, video, truth)
        if tone_stream is not None:
            tone = _chirp(round(truth.end_sec * 48000), 48000, tone_hz, 0.1)
            _mux_samples(container, tone_stream, np.tile(tone, (2, 1)), sample_format)
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


def _check_clip_args(frames: int, rotation: int, cuts: Sequence[int]) -> None:
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation}")
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be 1 to {MAX_FRAMES}, not {frames}")
    if any(not 0 < cut < frames for cut in cuts):
        raise ValueError(f"cuts must lie between 1 and {frames - 1}: {list(cuts)}")


def _frame_times_sec(
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
    stream.options = _encoder_options(truth.codec, truth.gop)
    return stream


def _encoder_options(codec: str, gop: int | None) -> dict[str, str]:
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


# Files that are not media.


def write_text_as_video(path: str | Path) -> None:
    """A text file named like a video, for the not-media error paths."""
    Path(path).write_text("This is a text file, not a video.\n", encoding="utf-8")


def write_empty(path: str | Path) -> None:
    """A zero-byte file."""
    Path(path).write_bytes(b"")


# Video of every kind people drop: codecs, containers, pixel shapes, HDR.

# Codecs whose default bit rate (200 kb/s) blurs the marker away.
_BIT_RATE = 4_000_000
_CODEC_OPTIONS = {
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "prores_ks": {"profile": "standard"},
}
# Codecs and containers that hold a constant rate only: time base 1/fps.
_CONSTANT_RATE_CODECS = {"mpeg2video", "mpeg4", "mjpeg"}
_CONSTANT_RATE_SUFFIXES = {".avi", ".mpg", ".mpeg"}
_MUXER_NAMES = {".webm": "webm", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}
_CLIP_AUDIO_CODECS = {
    ".webm": ("libopus", "flt"),
    ".avi": ("pcm_s16le", "s16"),
    ".mpg": ("mp2", "s16"),
    ".mpeg": ("mp2", "s16"),
}

# SMPTE ST 2084 (PQ) constants; SDR white sits at 203 cd/m2 (ITU-R BT.2408).
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_PQ_PEAK_NITS = 10000.0
HDR_WHITE_NITS = 203.0
# ARIB STD-B67 (HLG) constants; SDR white is scene light 0.2647, signal 75%.
_HLG_A, _HLG_B, _HLG_C = 0.17883277, 0.28466892, 0.55991073
_HLG_WHITE_SCENE = 0.2647
_BT709_TO_BT2020 = np.array(
    [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
)
_BT2020_KR, _BT2020_KB = 0.2627, 0.0593
# FFmpeg's enum values: BT.2020 primaries and non-constant matrix; PQ, HLG.
_HDR_TRANSFERS = {"pq": 16, "hlg": 18}


def write_marker_video(
    path: str | Path,
    *,
    frames: int,
    fps: int | Fraction = 25,
    display_size: tuple[int, int] = (320, 180),
    sample_aspect: tuple[int, int] = (1, 1),
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times_sec: Sequence[float] | None = None,
    start_sec: float = 0.0,
    gop: int | None = None,
    audio: bool = False,
    full_range: bool = False,
    hdr: str = "",
    streamed: bool = False,
) -> ClipTruth:
    """Write a marker clip in any codec, container, pixel shape or colour coding.

    display_size is the picture as a player shows it. The stored picture is
    pre-rotated (see write_marker_clip) and squeezed by sample_aspect, as
    anamorphic cameras and PAL DVDs store it. times_sec sets each frame's time
    from start_sec (a screen recording holds still pictures for long). full_range
    stores 0..255 levels, tagged so. hdr ("pq" as HDR10, "hlg" as iPhones)
    stores BT.2020 10-bit code values (yuv420p10le) of that transfer, SDR white
    at its reference level (203 cd/m2, 75% HLG), tagged so.
    streamed writes through a pipe that cannot seek back, as a browser records:
    the header then holds no duration and the file no index (cues).
    """
    _check_clip_args(frames, rotation, ())
    suffix = Path(path).suffix.lower()
    time_base = _marker_video_time_base(codec, suffix, fps)
    if times_sec is None:
        times_sec = _frame_times_sec(frames, fps, False, start_sec, time_base)
    else:
        times_sec = [round((start_sec + t) / time_base) * float(time_base)
                     for t in times_sec[:frames]]  # fmt: skip
    turned = rotation in (90, 270)
    upright_w, upright_h = display_size
    shown_w, shown_h = (upright_h, upright_w) if turned else display_size
    stored = (round(shown_w * sample_aspect[1] / sample_aspect[0]), shown_h)
    truth = ClipTruth(
        path=Path(path), fps=fps, frames=len(times_sec), times_sec=list(times_sec),
        cuts=[], rotation=rotation, size=stored, display_size=display_size,
        codec=codec, has_audio=audio, gop=gop,
    )  # fmt: skip

    coding = _VideoCoding(pix_fmt, time_base, sample_aspect, full_range, hdr)
    if streamed:
        with Path(path).open("wb") as file:
            _mux_marker_video(_UnseekablePipe(file), truth, coding)
    else:
        _mux_marker_video(str(path), truth, coding)
    return truth


@dataclass(frozen=True)
class _VideoCoding:
    """How write_marker_video stores pictures."""

    pix_fmt: str
    time_base: Fraction
    sample_aspect: tuple[int, int]
    full_range: bool
    hdr: str


def _mux_marker_video(target: Any, truth: ClipTruth, coding: _VideoCoding) -> None:
    suffix = truth.path.suffix.lower()
    with av.open(target, "w", format=_MUXER_NAMES.get(suffix)) as container:
        video = _add_marker_video_stream(container, truth, coding)
        audio_codec, sample_format = _CLIP_AUDIO_CODECS.get(suffix, ("aac", "fltp"))
        tone_stream = (
            _add_audio_stream(container, audio_codec, 48000, 2)
            if truth.has_audio
            else None
        )
        for index, time_sec in enumerate(truth.times_sec):
            frame = _stored_frame(truth, index, coding)
            frame.pts = round(time_sec / coding.time_base)
            frame.time_base = coding.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if tone_stream is not None:
            tone = _tone(round(truth.end_sec * 48000), 48000, 440.0, 0.1)
            _mux_samples(container, tone_stream, np.tile(tone, (2, 1)), sample_format)


class _UnseekablePipe:
    """A file object with write and nothing else: the muxer cannot seek back."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: bytes) -> int:
        return int(self._file.write(data))


def _marker_video_time_base(codec: str, suffix: str, fps: int | Fraction) -> Fraction:
    if codec in _CONSTANT_RATE_CODECS or suffix in _CONSTANT_RATE_SUFFIXES:
        return 1 / Fraction(fps)
    return VIDEO_TIME_BASE


def _add_marker_video_stream(
    container: av.container.OutputContainer,
    truth: ClipTruth,
    coding: _VideoCoding,
) -> av.video.stream.VideoStream:
    stream = container.add_stream(truth.codec, rate=truth.fps)
    stream.width, stream.height = truth.size
    stream.pix_fmt = coding.pix_fmt
    context = stream.codec_context
    context.time_base = coding.time_base
    context.sample_aspect_ratio = Fraction(*coding.sample_aspect)
    if coding.full_range:
        context.color_range = 2
    if coding.hdr:
        context.color_range = 1
        context.color_primaries = context.colorspace = 9
        context.color_trc = _HDR_TRANSFERS[coding.hdr]
    if truth.gop is not None:
        context.gop_size = truth.gop
    if truth.codec not in ("libx264", "libx265"):
        context.bit_rate = _BIT_RATE
    stream.set_display_rotation(truth.rotation)
    stream.options = _encoder_options(truth.codec, truth.gop) | _CODEC_OPTIONS.get(
        truth.codec, {}
    )
    return stream


def _stored_frame(truth: ClipTruth, index: int, coding: _VideoCoding) -> av.VideoFrame:
    """One frame as the file stores it: pre-rotated, squeezed, in pix_fmt."""
    upright = draw_marker_frame(index, size=truth.display_size)
    turned = np.ascontiguousarray(np.rot90(upright, k=-truth.rotation // 90))
    rgb = av.VideoFrame.from_ndarray(turned, format="rgb24")
    width, height = truth.size
    if coding.hdr:
        squeezed = rgb.reformat(width=width, height=height, interpolation="AREA")
        frame = _hdr_frame(squeezed.to_ndarray(), coding.hdr)
        frame.color_range = 1
        frame.color_primaries = frame.colorspace = 9
        frame.color_trc = _HDR_TRANSFERS[coding.hdr]
        return frame
    frame = rgb.reformat(
        width=width,
        height=height,
        format=coding.pix_fmt,
        interpolation="AREA",
        dst_color_range="JPEG" if coding.full_range else None,
    )
    if coding.full_range:
        frame.color_range = 2
    return frame


def _hdr_frame(rgb: np.ndarray, transfer: str) -> av.VideoFrame:
    """BT.709 RGB24 as BT.2020 yuv420p10le (limited range) in a PQ or HLG signal."""
    linear = (rgb.astype(np.float64) / 255) ** 2.4 @ _BT709_TO_BT2020.T
    signal = _pq_signal(linear) if transfer == "pq" else _hlg_signal(linear)
    red, green, blue = signal[..., 0], signal[..., 1], signal[..., 2]
    luma = _BT2020_KR * red + (1 - _BT2020_KR - _BT2020_KB) * green + _BT2020_KB * blue
    cb = (blue - luma) / (2 * (1 - _BT2020_KB))
    cr = (red - luma) / (2 * (1 - _BT2020_KR))
    width = luma.shape[1]
    planes = [
        64 + 876 * luma,
        512 + 896 * _pool_chroma(cb),
        512 + 896 * _pool_chroma(cr),
    ]
    stacked = np.concatenate(
        [planes[0], planes[1].reshape(-1, width), planes[2].reshape(-1, width)]
    )
    return av.VideoFrame.from_ndarray(
        np.rint(stacked).astype(np.uint16), format="yuv420p10le"
    )


def _pq_signal(linear: np.ndarray) -> np.ndarray:
    level = np.clip(linear * HDR_WHITE_NITS / _PQ_PEAK_NITS, 0, 1) ** _PQ_M1
    return np.asarray(((_PQ_C1 + _PQ_C2 * level) / (1 + _PQ_C3 * level)) ** _PQ_M2)


def _hlg_signal(linear: np.ndarray) -> np.ndarray:
    scene = np.clip(linear * _HLG_WHITE_SCENE, 0, 1)
    high = _HLG_A * np.log(np.maximum(12 * scene - _HLG_B, 1e-12)) + _HLG_C
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), high)


def _pool_chroma(plane: np.ndarray) -> np.ndarray:
    """Means of 2x2 blocks (even sizes): 4:2:0 chroma."""
    return (
        plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]
    ) / 4


# Stills, GIFs and damaged copies: what else people drop among their clips.

# EXIF orientation tag values for a picture stored turned by `rotation` (degrees
# counter-clockwise a viewer turns it by to show it upright, as in write_marker_clip).
_EXIF_ORIENTATION = {0: 1, 90: 8, 180: 3, 270: 6}


def write_still(
    path: str | Path,
    *,
    size: tuple[int, int] = (480, 360),
    index: int = 0,
    rotation: int = 0,
) -> np.ndarray:
    """Write a PNG or JPEG (by suffix) of draw_marker_frame(index) at size.

    size is the upright (width, height). With rotation (JPEG only), the pixels are
    stored turned and an EXIF orientation tag says how to show them upright, as
    phones do. Returns the upright RGB picture.
    """
    upright = draw_marker_frame(index, size=size)
    stored = np.ascontiguousarray(np.rot90(upright, k=-rotation // 90))
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        data = _encode_picture(stored, "png", "rgb24")
    elif suffix in (".jpg", ".jpeg"):
        data = _with_exif_orientation(
            _encode_picture(stored, "mjpeg", "yuvj420p"), _EXIF_ORIENTATION[rotation]
        )
    else:
        raise ValueError(f"{Path(path).name}: a still must be .png, .jpg or .jpeg")
    if rotation and suffix == ".png":
        raise ValueError("PNG stills hold no orientation here; use a JPEG")
    Path(path).write_bytes(data)
    return upright


def write_marker_gif(
    path: str | Path, *, frames: int, fps: int = 10, size: tuple[int, int] = (160, 90)
) -> ClipTruth:
    """An animated GIF whose every frame shows its index as a marker (3-3-2 colour).

    GIF delays count in hundredths of a second: fps must divide 100.
    """
    if 100 % fps:
        raise ValueError(f"GIF frame delays are in 1/100 s: fps {fps} must divide 100")
    time_base = Fraction(1, 100)
    with av.open(str(path), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "rgb8"
        stream.codec_context.time_base = time_base
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(
                draw_marker_frame(index, size=size), format="rgb24"
            ).reformat(format="rgb8")
            frame.pts = index * 100 // fps
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return ClipTruth(
        path=Path(path), fps=fps, frames=frames,
        times_sec=[index / fps for index in range(frames)], cuts=[], rotation=0,
        size=size, display_size=size, codec="gif", has_audio=False, gop=None,
    )  # fmt: skip


def write_faststart_copy(source: str | Path, target: str | Path) -> None:
    """Copy an MP4's video stream into one with its index (moov) first, as
    cameras and web exports write it."""
    options = {"movflags": "+faststart"}
    reading = av.open(str(source))
    with reading, av.open(str(target), "w", format="mp4", options=options) as writing:
        video = reading.streams.video[0]
        copy = writing.add_stream_from_template(video)
        for packet in reading.demux(video):
            if packet.dts is None:
                continue
            packet.stream = copy
            writing.mux(packet)


def write_truncated_copy(
    source: str | Path, target: str | Path, *, keep_bytes: int
) -> None:
    """The first keep_bytes of a file: a copy or download that stopped early."""
    with open(source, "rb") as reading:
        Path(target).write_bytes(reading.read(keep_bytes))


def _encode_picture(rgb: np.ndarray, codec: str, pix_fmt: str) -> bytes:
    context = av.CodecContext.create(codec, "w")
    context.width, context.height = rgb.shape[1], rgb.shape[0]
    context.pix_fmt = pix_fmt
    context.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    frame.pts = 0
    packets = [*context.encode(frame), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG with an EXIF segment holding one tag: its orientation (0x0112)."""
    # Big-endian TIFF header, then one IFD: one entry (tag, SHORT, count 1, the
    # value padded to 4 bytes), then no next IFD.
    entry = _big_endian((0x0112, 2), (3, 2), (1, 4), (orientation, 2), (0, 2))
    tiff = b"MM" + _big_endian((42, 2), (8, 4), (1, 2)) + entry + bytes(4)
    body = b"Exif\0\0" + tiff
    segment = b"\xff\xe1" + _big_endian((len(body) + 2, 2)) + body
    return jpeg[:2] + segment + jpeg[2:]


def _big_endian(*fields: tuple[int, int]) -> bytes:
    """(value, byte count) pairs as big-endian bytes, one after another."""
    return b"".join(value.to_bytes(size, "big") for value, size in fields)


def write_long_marker_clip(
    path: str | Path,
    *,
    duration_sec: float,
    fps: int = 1,
    period_frames: int = 60,
    size: tuple[int, int] = (160, 90),
) -> ClipTruth:
    """A long all-intra clip, cheaply: period_frames marker frames (every one a
    keyframe, as in ProRes, MJPEG or a short-GOP camera) encoded once, then
    copied packet by packet with later timestamps until duration_sec is filled.

    Frame n shows marker n % period_frames; ClipTruth.frames counts every frame.
    """
    period = Path(path).with_suffix(".period" + Path(path).suffix)
    write_marker_clip(period, frames=period_frames, fps=fps, size=size, gop=1)
    copies = max(1, round(duration_sec * fps / period_frames))
    write_repeated_copy(period, path, copies=copies, period_sec=period_frames / fps)
    period.unlink()
    frames = copies * period_frames
    return ClipTruth(
        path=Path(path), fps=fps, frames=frames,
        times_sec=[index / fps for index in range(frames)], cuts=[], rotation=0,
        size=size, display_size=size, codec="libx264", has_audio=False, gop=1,
    )  # fmt: skip


def write_repeated_copy(
    source: str | Path, target: str | Path, *, copies: int, period_sec: float
) -> None:
    """The video stream of source, copied packet by packet copies times, each copy
    period_sec after the one before: a long clip without encoding it.

    The copies keep the source's GOPs; period_sec is the source's length.
    """
    with av.open(str(source)) as reading, av.open(str(target), "w") as writing:
        stream = reading.streams.video[0]
        copy = writing.add_stream_from_template(stream)
        packets = [packet for packet in reading.demux(stream) if packet.size]
        period_pts = round(period_sec / stream.time_base)
        for number in range(copies):
            for packet in packets:
                writing.mux(_shifted_packet(packet, number * period_pts, copy))


def _shifted_packet(packet: av.Packet, offset_pts: int, stream: Any) -> av.Packet:
    """A copy of packet, offset_pts later: a muxed packet gives its data away."""
    shifted = av.Packet(bytes(packet))
    shifted.pts = None if packet.pts is None else packet.pts + offset_pts
    shifted.dts = None if packet.dts is None else packet.dts + offset_pts
    shifted.duration = packet.duration
    shifted.time_base = packet.time_base
    shifted.is_keyframe = packet.is_keyframe
    shifted.stream = stream
    return shifted


# Songs in the formats people choose, for issue #5: codecs, layouts, tempo changes.

# Encoder and sample format by suffix. Ogg holds Vorbis (FFmpeg's own encoder),
# as music players write it; .aac is raw ADTS, with no room for a priming count.
_SONG_CODECS = {
    ".mp3": ("libmp3lame", "fltp"),
    ".m4a": ("aac", "fltp"),
    ".aac": ("aac", "fltp"),
    ".flac": ("flac", "s16"),
    ".wav": ("pcm_s16le", "s16"),
    ".ogg": ("vorbis", "fltp"),
    ".opus": ("libopus", "flt"),
}
_SONG_LAYOUTS = {"mono": 1, "stereo": 2, "5.1": 6}
_LFE_CHANNEL = 3
_COVER_SIZE = (96, 96)
_LONG_SONG_CHUNK_SAMPLES = 16384


def write_clicks(
    path: str | Path,
    *,
    tempos: Sequence[tuple[float, float]],
    silent_intro_sec: float = 0.0,
    silent_outro_sec: float = 0.5,
    sample_rate: int = 44100,
    layout: str = "stereo",
    cover_art: bool = False,
    gapless_header: bool = True,
) -> list[float]:
    """Write clicks at each (bpm, seconds) in turn, encoded as the suffix says
    (.mp3 .m4a .aac .flac .wav .ogg .opus); returns the click onset times.

    Every fourth click, from the first, is accented. A 5.1 layout holds the
    clicks in every channel but the LFE. cover_art adds a JPEG as an attached
    picture (MP3, M4A, FLAC), as tagged songs hold. gapless_header=False leaves
    out an MP3's Xing/LAME header, as old encoders do: decoders then cannot skip
    the encoder's priming samples. Opus files are always 48 kHz.
    """
    if Path(path).suffix.lower() == ".opus":
        sample_rate = 48000
    total_sec = silent_intro_sec + sum(sec for _, sec in tempos) + silent_outro_sec
    samples = np.zeros(round(total_sec * sample_rate), dtype=np.float32)
    onsets: list[int] = []
    start_sec = silent_intro_sec
    for bpm, seconds in tempos:
        start, stop = (
            round(start_sec * sample_rate),
            round((start_sec + seconds) * sample_rate),
        )
        onsets += _beat_samples(60 * sample_rate / bpm, start, stop)
        start_sec += seconds
    for number, onset in enumerate(onsets):
        _add_at(samples, onset, _click(sample_rate, number % 4 == 0))

    _write_song_file(
        path,
        samples,
        sample_rate,
        layout,
        cover_art=cover_art,
        gapless_header=gapless_header,
    )
    return [onset / sample_rate for onset in onsets]


def write_long_song(path: str | Path, *, bpm: float, minutes: float) -> list[float]:
    """Write kick, snare and hi-hat for minutes, cheaply: one bar repeated,
    mono at 22.05 kHz (the analysis rate), FLAC or WAV. Returns the kick times."""
    sample_rate = 22050
    bar_samples = round(4 * 60 * sample_rate / bpm)
    bar = np.zeros(bar_samples, dtype=np.float32)
    for beat in range(4):
        onset = round(beat * 60 * sample_rate / bpm)
        _add_at(bar, onset, _kick(sample_rate))
        _add_at(bar, onset + round(30 * sample_rate / bpm), _hihat(sample_rate))
        if beat % 2:
            _add_at(bar, onset, _snare(sample_rate))
    bars = max(1, round(minutes * 60 * sample_rate / bar_samples))

    codec, sample_format = _SONG_CODECS[Path(path).suffix.lower()]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        stream.time_base = Fraction(1, sample_rate)
        song = np.tile(bar, bars)[None, :]
        for start in range(0, song.shape[1], _LONG_SONG_CHUNK_SAMPLES):
            chunk = song[:, start : start + _LONG_SONG_CHUNK_SAMPLES]
            frame = av.AudioFrame.from_ndarray(
                _as_sample_format(chunk, sample_format),
                format=sample_format,
                layout="mono",
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return [
        (number * bar_samples + round(beat * 60 * sample_rate / bpm)) / sample_rate
        for number in range(bars)
        for beat in range(4)
    ]


def _write_song_file(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    layout: str,
    *,
    cover_art: bool,
    gapless_header: bool,
) -> None:
    suffix = Path(path).suffix.lower()
    codec, sample_format = _SONG_CODECS[suffix]
    planes = np.tile(samples, (_SONG_LAYOUTS[layout], 1))
    if layout == "5.1":
        planes[_LFE_CHANNEL] = 0
    muxer_options = {} if gapless_header else {"write_xing": "0"}
    encoder_options = {"strict": "experimental"} if codec == "vorbis" else {}
    # FFmpeg's ipod muxer (its pick for .m4a) refuses a picture; mp4 takes it.
    muxer = "mp4" if cover_art and suffix == ".m4a" else None
    with av.open(str(path), "w", format=muxer, options=muxer_options) as container:
        stream = container.add_stream(
            codec, rate=sample_rate, layout=layout, options=encoder_options
        )
        stream.time_base = Fraction(1, sample_rate)
        # NOTE: every stream is added before the first mux (see write_marker_clip).
        cover = _add_cover_stream(container) if cover_art else None
        if cover is not None:
            _mux_cover(container, cover)
        _mux_samples(container, stream, planes, sample_format)


def _add_cover_stream(
    container: av.container.OutputContainer,
) -> av.video.stream.VideoStream:
    stream = container.add_stream("mjpeg", rate=1)
    stream.width, stream.height = _COVER_SIZE
    stream.pix_fmt = "yuvj420p"
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _mux_cover(
    container: av.container.OutputContainer, stream: av.video.stream.VideoStream
) -> None:
    picture = av.VideoFrame.from_ndarray(
        draw_marker_frame(0, size=_COVER_SIZE), format="rgb24"
    ).reformat(format="yuvj420p")
    picture.pts = 0
    container.mux(stream.encode(picture))
    container.mux(stream.encode(None))


def write_drums(
    path: str | Path, *, tempos: Sequence[tuple[float, float]], sample_rate: int = 44100
) -> list[float]:
    """Write kick and snare on the beats, hi-hats between and a pad, at each
    (bpm, seconds) in turn, encoded as the suffix says. Returns the kick times."""
    total_samples = round(sum(seconds for _, seconds in tempos) * sample_rate)
    samples = 0.5 * _pad(total_samples, sample_rate)
    kicks: list[int] = []
    start_sec = 0.0
    for bpm, seconds in tempos:
        interval = 60 * sample_rate / bpm
        start = round(start_sec * sample_rate)
        stop = round((start_sec + seconds) * sample_rate)
        kicks += _beat_samples(interval, start, stop)
        start_sec += seconds
    for number, onset in enumerate(kicks):
        _add_at(samples, onset, _kick(sample_rate))
        if number % 2:
            _add_at(samples, onset, _snare(sample_rate))
        following = kicks[number + 1] if number + 1 < len(kicks) else total_samples
        _add_at(samples, (onset + following) // 2, _hihat(sample_rate))

    np.clip(samples, -0.99, 0.99, out=samples)
    _write_song_file(
        path, samples, sample_rate, "stereo", cover_art=False, gapless_header=True
    )
    return [onset / sample_rate for onset in kicks]
