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
# Sound is anything louder than this relative to the loudest RMS frame.
SILENCE_DB = -45.0
RMS_FRAME_SAMPLES = 512
# The low onset envelope, for downbeats, covers the mel bands below this.
LOW_BAND_HZ = 700.0

ENERGY_STEP_SEC = 0.25
# About the window of EBU short-term loudness.
ENERGY_WINDOW_SEC = 3.0
ENERGY_FLOOR_DB = -80.0
# A song whose loudness varies less than this is not stretched to fill 0..1.
ENERGY_MIN_RANGE_DB = 6.0
QUIET_BELOW = 0.35
PEAK_ABOVE = 0.7
# Rising: energy up by at least RISE_MIN over the last RISE_SPAN_SEC.
RISE_SPAN_SEC = 2.0
RISE_MIN = 0.1
MIN_SECTION_SEC = 4.0
SECTION_LEVELS = {"quiet": 0, "build": 1, "peak": 2}


@dataclass
class Section:
    """A stretch of the song with one energy level: quiet, build or peak."""

    start_sec: float
    end_sec: float
    kind: str


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
    energy_times_sec, energy = _energy_curve(rms, sr, duration_sec)
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
        sections=_label_sections(energy_times_sec, energy, duration_sec),
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


def _energy_curve(
    rms: FloatArray, sr: int, duration_sec: float
) -> tuple[list[float], list[float]]:
    """Loudness over ENERGY_WINDOW_SEC, every ENERGY_STEP_SEC, scaled to 0..1."""
    # No wider than the song: np.convolve's "same" output takes the longer length.
    window = max(1, min(len(rms), round(ENERGY_WINDOW_SEC * sr / HOP_SAMPLES)))
    power = np.convolve(np.square(rms), np.ones(window) / window, mode="same")
    peak = max(float(power.max()), 1e-20)
    level_db = 10 * np.log10(np.maximum(power, 1e-20) / peak)
    level_db = np.maximum(level_db, ENERGY_FLOOR_DB)

    frame_times_sec = (np.arange(len(rms)) * HOP_SAMPLES + RMS_FRAME_SAMPLES / 2) / sr
    times_sec = np.arange(0.0, duration_sec, ENERGY_STEP_SEC)
    level_db = np.interp(times_sec, frame_times_sec, level_db)
    sounding = level_db[level_db > SILENCE_DB]
    low, high = np.percentile(sounding if sounding.size else level_db, [5, 95])
    if high - low < ENERGY_MIN_RANGE_DB:
        middle = (high + low) / 2
        low, high = middle - ENERGY_MIN_RANGE_DB / 2, middle + ENERGY_MIN_RANGE_DB / 2
    energy = np.clip((level_db - low) / (high - low), 0.0, 1.0)
    return [round(float(t), 3) for t in times_sec], [round(float(e), 4) for e in energy]


def _label_sections(
    times_sec: list[float], energy: list[float], duration_sec: float
) -> list[Section]:
    """Quiet, build and peak runs of the energy curve, none shorter than 4 s."""
    if not times_sec:
        return [Section(0.0, duration_sec, "build")]
    span = max(1, round(RISE_SPAN_SEC / ENERGY_STEP_SEC))
    rises = [value - energy[max(0, index - span)] for index, value in enumerate(energy)]
    bounds = [0.0] + [t - ENERGY_STEP_SEC / 2 for t in times_sec[1:]] + [duration_sec]
    runs: list[Section] = []
    for index, (value, rise) in enumerate(zip(energy, rises, strict=True)):
        kind = _energy_kind(value, rise >= RISE_MIN)
        if runs and runs[-1].kind == kind:
            runs[-1].end_sec = bounds[index + 1]
        else:
            runs.append(Section(bounds[index], bounds[index + 1], kind))
    return _merge_short_runs(runs)


def _energy_kind(value: float, rising: bool) -> str:
    """Quiet when low, peak when high, build in between or while rising."""
    if value < QUIET_BELOW and not rising:
        return "quiet"
    if value > PEAK_ABOVE and not rising:
        return "peak"
    return "build"


def _merge_short_runs(runs: list[Section]) -> list[Section]:
    """Fold the shortest run under MIN_SECTION_SEC into its closest neighbour."""
    while len(runs) > 1:
        index = min(range(len(runs)), key=lambda i: _length_sec(runs[i]))
        if _length_sec(runs[index]) >= MIN_SECTION_SEC:
            break
        neighbour = _closest_neighbour(runs, index)
        low, high = sorted((index, neighbour))
        runs[low : high + 1] = [
            Section(runs[low].start_sec, runs[high].end_sec, runs[neighbour].kind)
        ]
        runs = _join_equal_kinds(runs)
    return runs


def _length_sec(section: Section) -> float:
    return section.end_sec - section.start_sec


def _closest_neighbour(runs: list[Section], index: int) -> int:
    """The neighbour of runs[index] nearest in level, the longer one on a tie."""
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(runs)]
    level = SECTION_LEVELS[runs[index].kind]
    return min(
        neighbours,
        key=lambda i: (
            abs(SECTION_LEVELS[runs[i].kind] - level),
            -_length_sec(runs[i]),
        ),
    )


def _join_equal_kinds(runs: list[Section]) -> list[Section]:
    joined: list[Section] = []
    for run in runs:
        if joined and joined[-1].kind == run.kind:
            joined[-1] = Section(joined[-1].start_sec, run.end_sec, run.kind)
        else:
            joined.append(run)
    return joined
