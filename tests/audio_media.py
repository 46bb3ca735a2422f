"""Test audio drawn with numpy and encoded with PyAV: click tracks and songs at a
known tempo; decoding audio back and finding its onsets."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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
    onsets = beat_samples(60 * sample_rate / bpm, start, stop)
    if bed:
        samples[start:stop] += tone(stop - start, sample_rate, 110.0, 0.02)

    for number, onset in enumerate(onsets):
        accent = number % max(accent_every, 1) == 0
        add_at(samples, onset, click(sample_rate, accent))

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
    samples = gain * pad(length, sample_rate)

    samples_per_beat = 60 * sample_rate / bpm
    beats = beat_samples(samples_per_beat, 0, length)
    for number, onset in enumerate(beats):
        add_at(samples, onset, gain[onset] * kick(sample_rate))
        if number % 2 == 1:
            add_at(samples, onset, gain[onset] * snare(sample_rate))
        offbeat = onset + round(samples_per_beat / 2)
        if offbeat < length:
            add_at(samples, offbeat, gain[offbeat] * hihat(sample_rate))

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


def beat_samples(interval: float, start: int, stop: int) -> list[int]:
    count = max(0, int(np.ceil((stop - start) / interval)))
    onsets = [start + round(number * interval) for number in range(count)]
    return [onset for onset in onsets if onset < stop]


def add_at(samples: np.ndarray, onset: int, sound: np.ndarray) -> None:
    end = min(samples.size, onset + sound.size)
    samples[onset:end] += sound[: end - onset]


def tone(length: int, sample_rate: int, hz: float, amplitude: float) -> np.ndarray:
    t_sec = np.arange(length) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t_sec)).astype(np.float32)


def chirp(
    length: int, sample_rate: int, hz: tuple[float, float], amplitude: float
) -> np.ndarray:
    """A sine sweeping linearly from hz[0] at its start to hz[1] at its end."""
    t_sec = np.arange(length) / sample_rate
    sweep_per_sec = (hz[1] - hz[0]) / max(t_sec[-1], 1e-9) if length else 0.0
    phase = 2 * np.pi * (hz[0] * t_sec + 0.5 * sweep_per_sec * t_sec**2)
    return (amplitude * np.sin(phase)).astype(np.float32)


def click(sample_rate: int, accent: bool) -> np.ndarray:
    # A cosine starts at its peak: the onset is the first sample, sharp.
    t_sec = np.arange(round(0.015 * sample_rate)) / sample_rate
    hz, amplitude = (1000.0, 0.9) if accent else (2000.0, 0.5)
    envelope = np.exp(-t_sec / 0.004)
    return (amplitude * envelope * np.cos(2 * np.pi * hz * t_sec)).astype(np.float32)


def kick(sample_rate: int) -> np.ndarray:
    t_sec = np.arange(round(0.15 * sample_rate)) / sample_rate
    # Pitch falls from 110 Hz to 50 Hz, like a drum head relaxing.
    phase = 2 * np.pi * (50 * t_sec + 60 * 0.03 * (1 - np.exp(-t_sec / 0.03)))
    return (0.55 * np.exp(-t_sec / 0.05) * np.sin(phase)).astype(np.float32)


def snare(sample_rate: int) -> np.ndarray:
    length = round(0.1 * sample_rate)
    noise = np.random.default_rng(7).uniform(-1, 1, length)
    envelope = np.exp(-np.arange(length) / (0.025 * sample_rate))
    return (0.35 * envelope * noise).astype(np.float32)


def hihat(sample_rate: int) -> np.ndarray:
    length = round(0.03 * sample_rate)
    # The difference of white noise tilts it towards high frequencies.
    noise = np.diff(np.random.default_rng(11).uniform(-1, 1, length + 1))
    envelope = np.exp(-np.arange(length) / (0.008 * sample_rate))
    return (0.12 * envelope * noise).astype(np.float32)


def pad(length: int, sample_rate: int) -> np.ndarray:
    chord_hz = (220.0, 277.18, 329.63)
    return sum(tone(length, sample_rate, hz, 0.08) for hz in chord_hz)


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
        stream = add_audio_stream(container, codec, sample_rate, samples.shape[0])
        mux_samples(container, stream, samples, sample_format)


def add_audio_stream(
    container: av.container.OutputContainer, codec: str, sample_rate: int, channels: int
) -> av.audio.stream.AudioStream:
    layout = "mono" if channels == 1 else "stereo"
    stream = container.add_stream(codec, rate=sample_rate, layout=layout)
    stream.time_base = Fraction(1, sample_rate)
    return stream


def mux_samples(
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
            as_sample_format(chunk, sample_format), format=sample_format, layout=layout
        )
        frame.sample_rate = stream.sample_rate
        frame.pts = start
        # NOTE: not stream.time_base: Matroska turns it into 1/1000 once the
        # header is written, and samples would then count as milliseconds.
        frame.time_base = Fraction(1, stream.sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def as_sample_format(chunk: np.ndarray, sample_format: str) -> np.ndarray:
    if sample_format == "fltp":
        return np.ascontiguousarray(chunk, dtype=np.float32)
    interleaved = chunk.T.reshape(1, -1)
    if sample_format == "flt":
        return np.ascontiguousarray(interleaved, dtype=np.float32)
    return np.round(np.clip(interleaved, -1, 1) * 32767).astype(np.int16)
