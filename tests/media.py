"""Deterministic test media drawn with PyAV and numpy: marker clips, click tracks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

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
        frame.time_base = stream.time_base
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
) -> ClipTruth:
    """Write a clip whose every frame shows its index as a marker.

    size is the stored (width, height); with rotation 90 or 270 the clip displays
    as (height, width). The stored picture is pre-rotated so that it displays
    upright once rotated counter-clockwise by rotation. Each index in cuts starts
    a new shot. vfr alternates frame intervals of 0.6/fps and 1.4/fps. fps may be
    a Fraction (30000/1001). timecode ("01:00:10:05") becomes the start timecode
    (a tmcd track in MOV and MP4).
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
            tone = _tone(round(truth.end_sec * 48000), 48000, 440.0, 0.1)
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
