"""Music analysis: decode the song, find its tempo, beats, downbeats and energy.

The result is cached by content hash; a cache hit never imports librosa.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from engine import cache
from engine.beats import HOP_SAMPLES, FloatArray, find_beats, pick_downbeats
from engine.errors import MusicError
from engine.paths import configure_numba_cache
from engine.sections import (
    RMS_FRAME_SAMPLES,
    SILENCE_DB,
    Section,
    energy_curve,
    label_sections,
)

log = logging.getLogger(__name__)

Progress = Callable[[float], None]

# Bump when the analysis changes, so old cache entries are not reused.
ANALYSIS_VERSION = 2
CACHE_KIND = "music"

ANALYSIS_SR = 22050
# librosa's default window; the spectrogram is computed this many frames at a time.
N_FFT = 2048
MEL_BLOCK_FRAMES = 4096
MIN_AUDIO_SEC = 1.0
# librosa.power_to_db's defaults: amin and top_db.
DB_FLOOR_POWER = 1e-10
DB_RANGE = 80.0
# Decoding fills a buffer sized from the header; a wrong header costs a regrowth.
MAX_PREALLOCATED_SEC = 3600.0

# A song whose loudest sample stays under this (-60 dBFS) is silent.
SILENT_PEAK = 0.001
# The low onset envelope, for downbeats, covers the mel bands below this.
LOW_BAND_HZ = 700.0


@dataclass
class MusicAnalysis:
    """Everything the planner needs to know about the song."""

    path: str
    content_hash: str
    duration_sec: float
    sample_rate: int
    tempo_bpm: float
    beats_sec: list[float]
    downbeats_sec: list[float]
    energy_times_sec: list[float]
    energy: list[float]
    sections: list[Section]
    first_sound_sec: float
    last_sound_sec: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for the cache and the job's summary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MusicAnalysis:
        """The analysis to_dict wrote."""
        values = dict(data)
        values["sections"] = [Section(**section) for section in values["sections"]]
        return cls(**values)

    def section_at(self, time_sec: float) -> str:
        """The kind of section playing at time_sec (clamped to the song)."""
        if not self.sections:
            return "build"
        starts = [section.start_sec for section in self.sections]
        index = bisect.bisect_right(starts, time_sec) - 1
        return self.sections[max(0, index)].kind

    def energy_at(self, time_sec: float) -> float:
        """The smoothed energy (0..1) at time_sec, interpolated, clamped at ends."""
        if not self.energy:
            return 0.5
        return float(np.interp(time_sec, self.energy_times_sec, self.energy))


def decode_audio_mono(path: str | Path, sample_rate: int = ANALYSIS_SR) -> FloatArray:
    """Decode the first audio stream of a file to mono float32 at sample_rate.

    Samples are placed in decode order from time 0, as the renderer does, so beat
    times and rendered audio agree. Damaged packets are skipped.

    Raises:
        MusicError: the file cannot be opened, has no audio, or under 1 s of it.
    """
    path = Path(path)
    _check_file(path)
    container = _open_container(path)
    with container:
        stream = _first_audio_stream(path, container)
        samples = _decode_stream(path, container, stream, sample_rate)
    if len(samples) < MIN_AUDIO_SEC * sample_rate:
        raise MusicError(
            f"{path.name}: holds only {len(samples) / sample_rate:.2f} s of audio, "
            "too short to find a beat (or the audio is damaged). Choose another "
            "song of at least a few seconds.",
            str(path),
        )
    return samples


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise MusicError(
            f"{path}: this is a folder; the song is one audio file (MP3, M4A, WAV, "
            "FLAC, Ogg...). Choose the file itself.",
            str(path),
        )
    if not path.is_file():
        raise MusicError(
            f"{path}: the song is not there (moved, deleted, or on a drive that is "
            "not connected). Reconnect it or choose another song.",
            str(path),
        )
    if path.stat().st_size == 0:
        raise MusicError(
            f"{path.name}: the file is empty (0 bytes); it may not have finished "
            "copying. Copy it again or choose another song.",
            str(path),
        )


def _open_container(path: Path) -> Any:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as error:
        raise MusicError(
            f"{path.name}: not audio FFmpeg can read (it may be another kind of "
            "file with an audio extension, or damaged). Choose another song, or "
            "convert this one to MP3, M4A or WAV.",
            str(path),
        ) from error
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MusicError(
            f"{path.name}: could not be opened ({error}). Check that the file is "
            "readable and plays, or choose another song.",
            str(path),
        ) from error


def _first_audio_stream(path: Path, container: Any) -> Any:
    if not container.streams.audio:
        raise MusicError(
            f"{path.name}: has no sound (a silent video or a picture?). Choose "
            "another song, or a video whose sound you want as the music.",
            str(path),
        )
    return container.streams.audio[0]


def _decode_stream(
    path: Path, container: Any, stream: Any, sample_rate: int
) -> FloatArray:
    """Stream packets through decoder and resampler into one buffer."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    buffer = _SampleBuffer(_expected_samples(container, stream, sample_rate))
    damaged_packets = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            # NOTE: after a damaged packet the AAC decoder also refuses some of the
            # next ones with EPERM (av.error.PermissionError), not only EINVAL.
            except (av.error.InvalidDataError, av.error.PermissionError):
                damaged_packets += 1
                continue
            for frame in frames:
                buffer.extend(_resample(resampler, frame))
    except av.error.FFmpegError as error:
        log.warning(
            "%s: decoding stopped at %.1f s (%s); using the audio before it.",
            path.name,
            buffer.length / sample_rate,
            error,
        )
    buffer.extend(_resample(resampler, None))
    if damaged_packets:
        log.warning("%s: skipped %d damaged audio packets.", path.name, damaged_packets)
    return buffer.samples()


def _expected_samples(container: Any, stream: Any, sample_rate: int) -> int:
    """The song's length in samples at sample_rate from its header, a second
    over; a minute when the header does not say, at most an hour."""
    if stream.duration is not None and stream.time_base is not None:
        duration_sec = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_sec = container.duration / av.time_base
    else:
        duration_sec = 59.0
    duration_sec = min(max(0.0, duration_sec) + 1.0, MAX_PREALLOCATED_SEC)
    return round(duration_sec * sample_rate)


def _resample(resampler: Any, frame: Any) -> list[FloatArray]:
    return [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]


class _SampleBuffer:
    """Mono float32 samples appended in place: a 20-minute song decoded frame by
    frame and joined at the end held twice its size, and kept the heap it
    fragmented."""

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(max(1, capacity), dtype=np.float32)
        self.length = 0

    def extend(self, chunks: list[FloatArray]) -> None:
        for chunk in chunks:
            end = self.length + len(chunk)
            if end > len(self.data):
                grown = np.empty(max(end, len(self.data) * 3 // 2), dtype=np.float32)
                grown[: self.length] = self.data[: self.length]
                self.data = grown
            self.data[self.length : end] = chunk
            self.length = end

    def samples(self) -> FloatArray:
        return self.data[: self.length]


def cached_analysis(path: str | Path) -> MusicAnalysis | None:
    """The cached analysis of this song's content, or None; never imports librosa.

    Raises:
        MusicError: the file is missing or empty.
    """
    path = Path(path)
    _check_file(path)
    key = f"{cache.content_hash(path)}-v{ANALYSIS_VERSION}"
    analysis = cache.load(CACHE_KIND, key, MusicAnalysis.from_dict)
    if analysis is not None:
        analysis.path = str(path.absolute())
    return analysis


def analyze_music(
    path: str | Path, progress: Progress | None = None, use_cache: bool = True
) -> MusicAnalysis:
    """Find the tempo, beats, downbeats, energy curve and sections of a song.

    Args:
        path: the song; any file with an audio stream FFmpeg can decode.
        progress: called with the fraction done (0..1) a few times.
        use_cache: reuse and store the result keyed by the file's content.

    Raises:
        MusicError: the song cannot be decoded or is too short.
    """
    path = Path(path)
    report = progress or _no_progress
    cached = cached_analysis(path) if use_cache else None
    if cached is not None:
        report(1.0)
        return cached
    content_hash = cache.content_hash(path)
    key = f"{content_hash}-v{ANALYSIS_VERSION}"

    started = time.monotonic()
    samples = decode_audio_mono(path, ANALYSIS_SR)
    _check_not_silent(path, samples)
    report(0.3)
    analysis = _analyze_samples(samples, ANALYSIS_SR, report)
    analysis.path = str(path.absolute())
    analysis.content_hash = content_hash
    log.info(
        "Analysed %s in %.1f s: %.1f BPM, %d beats, %d sections.",
        path.name,
        time.monotonic() - started,
        analysis.tempo_bpm,
        len(analysis.beats_sec),
        len(analysis.sections),
    )
    if use_cache:
        cache.store(CACHE_KIND, key, analysis.to_dict())
    report(1.0)
    return analysis


def _no_progress(fraction: float) -> None:
    del fraction


def _check_not_silent(path: Path, samples: FloatArray) -> None:
    if float(np.max(np.abs(samples))) < SILENT_PEAK:
        raise MusicError(
            f"{path.name}: is silent (nothing louder than -60 dB), so it has no "
            "beat to cut to. Choose another song.",
            str(path),
        )


def _analyze_samples(samples: FloatArray, sr: int, report: Progress) -> MusicAnalysis:
    rms = _frame_rms(samples)
    sounding_sec = _sound_bounds(rms, sr)
    onset_envelope, low_onset_envelope = _onset_envelopes(samples, sr)
    report(0.5)

    librosa = _import_librosa()
    tempo_bpm, beats_sec = find_beats(
        librosa, samples, sr, onset_envelope, sounding_sec
    )
    downbeats_sec = pick_downbeats(beats_sec, onset_envelope, low_onset_envelope, sr)
    report(0.8)

    duration_sec = len(samples) / sr
    energy_times_sec, energy = energy_curve(rms, sr, duration_sec)
    return MusicAnalysis(
        path="",
        content_hash="",
        duration_sec=duration_sec,
        sample_rate=sr,
        tempo_bpm=tempo_bpm,
        beats_sec=beats_sec,
        downbeats_sec=downbeats_sec,
        energy_times_sec=energy_times_sec,
        energy=energy,
        sections=label_sections(energy_times_sec, energy, duration_sec),
        first_sound_sec=sounding_sec[0],
        last_sound_sec=sounding_sec[1],
    )


def _frame_rms(samples: FloatArray) -> FloatArray:
    """RMS of frames of RMS_FRAME_SAMPLES, one every HOP_SAMPLES, from sample 0.

    Computed MEL_BLOCK_FRAMES frames at a time: squaring a 20-minute song at
    once would hold 0.4 GB.
    """
    padded = _zero_padded(samples, 0, max(len(samples), RMS_FRAME_SAMPLES))
    frames = np.lib.stride_tricks.sliding_window_view(padded, RMS_FRAME_SAMPLES)
    frames = frames[::HOP_SAMPLES]
    blocks = [
        frames[first : first + MEL_BLOCK_FRAMES]
        for first in range(0, len(frames), MEL_BLOCK_FRAMES)
    ]
    energy = [np.square(block, dtype=np.float64).sum(axis=1) for block in blocks]
    counted = min(len(samples), RMS_FRAME_SAMPLES) or 1
    rms: FloatArray = np.sqrt(np.concatenate(energy) / counted)
    return rms


def _sound_bounds(rms: FloatArray, sr: int) -> tuple[float, float]:
    """Start of the first and end of the last frame louder than SILENCE_DB."""
    peak = float(rms.max())
    if peak <= 0:
        return 0.0, 0.0
    loud = np.flatnonzero(rms >= peak * 10 ** (SILENCE_DB / 20))
    first_sound_sec = loud[0] * HOP_SAMPLES / sr
    last_sound_sec = (loud[-1] * HOP_SAMPLES + RMS_FRAME_SAMPLES) / sr
    return float(first_sound_sec), float(last_sound_sec)


def _onset_envelopes(samples: FloatArray, sr: int) -> tuple[FloatArray, FloatArray]:
    """librosa onset strength, over all mel bands and over those below LOW_BAND_HZ."""
    librosa = _import_librosa()
    mel_db = _power_to_db_in_place(_mel_power(librosa, samples, sr))
    onset_envelope = librosa.onset.onset_strength(
        S=mel_db, sr=sr, hop_length=HOP_SAMPLES
    )
    band_hz = librosa.mel_frequencies(n_mels=128, fmax=sr / 2)
    low_bands = max(1, int(np.searchsorted(band_hz, LOW_BAND_HZ)))
    low_onset_envelope = librosa.onset.onset_strength(
        S=mel_db[:low_bands], sr=sr, hop_length=HOP_SAMPLES
    )
    return onset_envelope, low_onset_envelope


def _mel_power(librosa: Any, samples: FloatArray, sr: int) -> FloatArray:
    """librosa's centred mel spectrogram, computed a block of frames at a time.

    The same numbers as one call, but the complex STFT of a whole song (about
    0.8 GB for 20 minutes) is never held at once: only MEL_BLOCK_FRAMES of it.
    """
    total_frames = 1 + len(samples) // HOP_SAMPLES
    mel: FloatArray = np.empty((0, 0), dtype=np.float32)
    for first in range(0, total_frames, MEL_BLOCK_FRAMES):
        count = min(MEL_BLOCK_FRAMES, total_frames - first)
        start = first * HOP_SAMPLES - N_FFT // 2
        block = _zero_padded(samples, start, (count - 1) * HOP_SAMPLES + N_FFT)
        block_mel = librosa.feature.melspectrogram(
            y=block, sr=sr, n_fft=N_FFT, hop_length=HOP_SAMPLES, center=False,
            n_mels=128, fmax=sr / 2,
        )  # fmt: skip
        if first == 0:
            mel = np.empty((block_mel.shape[0], total_frames), dtype=block_mel.dtype)
        mel[:, first : first + count] = block_mel[:, :count]
    return mel


def _power_to_db_in_place(power: FloatArray) -> FloatArray:
    """librosa.power_to_db(power, ref=np.max) with its default floor and 80 dB
    range, computed in place: the copy costs 50 MB for a 20-minute song."""
    np.maximum(power, DB_FLOOR_POWER, out=power)
    np.log10(power, out=power)
    power *= 10.0
    power -= power.max(initial=-np.inf)
    np.maximum(power, -DB_RANGE, out=power)
    return power


def _zero_padded(samples: FloatArray, start: int, length: int) -> FloatArray:
    """samples[start : start + length], with zeros where that runs past an end."""
    inside = samples[max(0, start) : max(0, start + length)]
    before = min(length, max(0, -start))
    after = length - before - len(inside)
    if before == after == 0:
        return inside
    return np.pad(inside, (before, after))


def _import_librosa() -> Any:
    """librosa, imported late: numba must learn its cache folder first."""
    configure_numba_cache()
    import librosa

    return librosa
