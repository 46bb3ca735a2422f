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
import numpy.typing as npt

from engine import cache
from engine.errors import MusicError
from engine.paths import configure_numba_cache

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.intp]
Progress = Callable[[float], None]

# Bump when the analysis changes, so old cache entries are not reused.
ANALYSIS_VERSION = 1
CACHE_KIND = "music"

ANALYSIS_SR = 22050
# 256 samples at 22050 Hz: onset frames 11.6 ms apart.
HOP_SAMPLES = 256
# librosa's default window; the spectrogram is computed this many frames at a time.
N_FFT = 2048
MEL_BLOCK_FRAMES = 4096
MIN_AUDIO_SEC = 1.0

# A song whose loudest sample stays under this (-60 dBFS) is silent.
SILENT_PEAK = 0.001
# Sound is anything louder than this relative to the loudest RMS frame.
SILENCE_DB = -45.0
RMS_FRAME_SAMPLES = 512
# Beats may sit this far outside [first_sound, last_sound] (refinement jitter).
EDGE_TOLERANCE_SEC = 0.01
END_TOLERANCE_SEC = 0.05
# No beat this close to the end of the audio: no shot fits after it, and codecs
# leave transients where a file is cut off.
END_MARGIN_SEC = 0.1

# Odd beats this much weaker than even ones fall between the onsets: the tempo
# is doubled. (A kick alone next to kick and snare measures about 0.25.)
UNDOUBLE_RATIO = 0.1
# The grid shifted half a beat must be this much stronger to move the beats.
PHASE_SHIFT_RATIO = 1.5
# Off-beats this strong make the double tempo a candidate, if nearer TAPPED_BPM.
DOUBLE_RATIO = 0.6
TAPPED_BPM = 120.0
# The tempogram window (librosa's default is 8 s, at twice the cost).
TEMPOGRAM_SEC = 4.0
# End beats whose interval strays by more than this are the tracker's, not the
# song's: librosa bends the grid over the last beats.
OFF_GRID_FRACTION = 0.15
MAX_OFF_GRID_END_BEATS = 4

# Attacks: the sharpest rise of a 5 ms energy window. The first search runs from
# 3 hops before a beat to 1 after (onset peaks trail attacks by 11-25 ms), the
# second +-1.5 hops around the beat moved by the typical lag.
REFINE_SEARCH_SAMPLES = (HOP_SAMPLES * 3, HOP_SAMPLES)
REFINE_RADIUS_SAMPLES = HOP_SAMPLES * 3 // 2
REFINE_WINDOW_SEC = 0.005
# An attack: mean power over the 5 ms after it at least this many times that
# over the 25 ms before it (long enough to span the beating of a chord).
REFINE_BEFORE_SEC = 0.025
REFINE_MIN_RISE = 4.0

BEATS_PER_BAR = 4
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
    """Stream packets through decoder and resampler; one concatenate at the end."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[FloatArray] = []
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
                chunks.extend(_resample(resampler, frame))
    except av.error.FFmpegError as error:
        decoded_sec = sum(len(chunk) for chunk in chunks) / sample_rate
        log.warning(
            "%s: decoding stopped at %.1f s (%s); using the audio before it.",
            path.name,
            decoded_sec,
            error,
        )
    chunks.extend(_resample(resampler, None))
    if damaged_packets:
        log.warning("%s: skipped %d damaged audio packets.", path.name, damaged_packets)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _resample(resampler: Any, frame: Any) -> list[FloatArray]:
    return [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]


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
    _check_file(path)
    content_hash = cache.content_hash(path)
    key = f"{content_hash}-v{ANALYSIS_VERSION}"
    if use_cache and (cached := cache.load(CACHE_KIND, key)) is not None:
        analysis = MusicAnalysis.from_dict(cached)
        analysis.path = str(path.absolute())
        report(1.0)
        return analysis

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

    tempo_bpm, beats_sec = _find_beats(samples, sr, onset_envelope, sounding_sec)
    downbeats_sec = _pick_downbeats(beats_sec, onset_envelope, low_onset_envelope, sr)
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
    """RMS of frames of RMS_FRAME_SAMPLES, one every HOP_SAMPLES, from sample 0."""
    squares = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    starts = np.arange(0, max(1, len(samples) - RMS_FRAME_SAMPLES + 1), HOP_SAMPLES)
    ends = np.minimum(starts + RMS_FRAME_SAMPLES, len(samples))
    power = (squares[ends] - squares[starts]) / np.maximum(1, ends - starts)
    rms: FloatArray = np.sqrt(np.maximum(power, 0.0))
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
    mel_power = _mel_power(librosa, samples, sr)
    mel_db = librosa.power_to_db(mel_power, ref=np.max)
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
    half = N_FFT // 2
    padded = np.pad(samples, half)
    total_frames = 1 + len(samples) // HOP_SAMPLES
    blocks = []
    for first in range(0, total_frames, MEL_BLOCK_FRAMES):
        count = min(MEL_BLOCK_FRAMES, total_frames - first)
        start = first * HOP_SAMPLES
        block = padded[start : start + (count - 1) * HOP_SAMPLES + N_FFT]
        block = np.pad(block, (0, max(0, N_FFT - len(block))))
        blocks.append(
            librosa.feature.melspectrogram(
                y=block, sr=sr, n_fft=N_FFT, hop_length=HOP_SAMPLES, center=False,
                n_mels=128, fmax=sr / 2,
            )[:, :count]
        )  # fmt: skip
    mel: FloatArray = np.concatenate(blocks, axis=1)
    return mel


def _import_librosa() -> Any:
    """librosa, imported late: numba must learn its cache folder first."""
    configure_numba_cache()
    import librosa

    return librosa


def _find_beats(
    samples: FloatArray,
    sr: int,
    onset_envelope: FloatArray,
    sounding_sec: tuple[float, float],
) -> tuple[float, list[float]]:
    """Tempo and beat times from librosa's tracker, checked for octave and phase,
    moved onto the attacks and kept within the sounding part."""
    librosa = _import_librosa()
    tempo_bpm = _estimate_tempo(librosa, onset_envelope, sr)
    # NOTE: trim=True drops every beat of a quiet intro; silence is cut later.
    _, beat_frames = librosa.beat.beat_track(
        onset_envelope=onset_envelope,
        sr=sr,
        hop_length=HOP_SAMPLES,
        bpm=tempo_bpm,
        trim=False,
    )
    beat_frames = np.asarray(beat_frames, dtype=np.intp)
    beat_frames, tempo_bpm = _undouble_tempo(beat_frames, onset_envelope, tempo_bpm)
    beat_frames = _fix_phase(beat_frames, onset_envelope)
    beat_frames, tempo_bpm = _prefer_tapped_octave(
        beat_frames, onset_envelope, tempo_bpm
    )

    attacks = _AttackFinder(samples, sr)
    beats = _place_between_attacks(attacks.refine(beat_frames * HOP_SAMPLES))
    beats_sec = _repair_ends(attacks, beats, sounding_sec, len(samples) / sr)
    if len(beats_sec) >= 2:
        tempo_bpm = 60.0 / float(np.median(np.diff(beats_sec)))
    return tempo_bpm, beats_sec


def _estimate_tempo(librosa: Any, onset_envelope: FloatArray, sr: int) -> float:
    """librosa's tempo estimate with its prior around 120 BPM.

    NOTE: the estimate weighs a compressed autocorrelation against the prior, so
    lags that fall between frames lose: pooling the envelope to a hop of 512
    samples (twice as fast) turned a 120 BPM kick and snare into 60 BPM.
    """
    tempo = librosa.feature.tempo(
        onset_envelope=onset_envelope,
        sr=sr,
        hop_length=HOP_SAMPLES,
        ac_size=TEMPOGRAM_SEC,
    )
    return float(np.atleast_1d(tempo)[0])


def _strength_at(onset_envelope: FloatArray, frames: IntArray) -> FloatArray:
    """Onset strength at each frame, the largest within one frame either side."""
    last = len(onset_envelope) - 1
    around = np.stack([np.clip(frames + step, 0, last) for step in (-1, 0, 1)])
    strength: FloatArray = onset_envelope[around].max(axis=0)
    return strength


def _on_and_off_beat(
    beat_frames: IntArray, onset_envelope: FloatArray
) -> tuple[float, float, IntArray]:
    """Mean onset strength at the beats and halfway between them; the midpoints."""
    midpoints: IntArray = (beat_frames[:-1] + beat_frames[1:]) // 2
    on_beat = float(_strength_at(onset_envelope, beat_frames).mean())
    off_beat = float(_strength_at(onset_envelope, midpoints).mean())
    return on_beat, off_beat, midpoints


def _undouble_tempo(
    beat_frames: IntArray, onset_envelope: FloatArray, tempo_bpm: float
) -> tuple[IntArray, float]:
    """Drop every other beat when one half of them falls between the onsets."""
    if len(beat_frames) < 8:
        return beat_frames, tempo_bpm
    strength = _strength_at(onset_envelope, beat_frames)
    even, odd = float(strength[0::2].mean()), float(strength[1::2].mean())
    if min(even, odd) >= UNDOUBLE_RATIO * max(even, odd):
        return beat_frames, tempo_bpm
    log.debug("Every other beat fell between onsets: halving %.1f BPM.", tempo_bpm)
    return beat_frames[0 if even >= odd else 1 :: 2], tempo_bpm / 2


def _fix_phase(beat_frames: IntArray, onset_envelope: FloatArray) -> IntArray:
    """Move the beats half a beat when the off-beat grid is clearly stronger.

    NOTE: librosa's tracker has put every beat of a drum loop on the off-beat.
    """
    if len(beat_frames) < 4:
        return beat_frames
    on_beat, off_beat, midpoints = _on_and_off_beat(beat_frames, onset_envelope)
    if off_beat <= PHASE_SHIFT_RATIO * on_beat:
        return beat_frames
    log.debug("Beats sat on the off-beat (%.2f vs %.2f): shifting.", on_beat, off_beat)
    half_beat = int(np.median(np.diff(beat_frames))) // 2
    shifted = np.concatenate([midpoints, [beat_frames[-1] + half_beat]])
    if beat_frames[0] - half_beat >= 0:
        shifted = np.concatenate([[beat_frames[0] - half_beat], shifted])
    return shifted[shifted < len(onset_envelope)].astype(np.intp)


def _prefer_tapped_octave(
    beat_frames: IntArray, onset_envelope: FloatArray, tempo_bpm: float
) -> tuple[IntArray, float]:
    """Double the tempo when the off-beats are nearly as strong as the beats and
    the double is nearer the tempo listeners tap.

    A kick on every beat and a snare on every other reads as half tempo to
    librosa's tempo estimate.
    """
    doubled_bpm = 2 * tempo_bpm
    nearer = abs(np.log2(doubled_bpm / TAPPED_BPM)) < abs(
        np.log2(tempo_bpm / TAPPED_BPM)
    )
    if len(beat_frames) < 8 or not nearer:
        return beat_frames, tempo_bpm
    on_beat, off_beat, midpoints = _on_and_off_beat(beat_frames, onset_envelope)
    if off_beat < DOUBLE_RATIO * on_beat:
        return beat_frames, tempo_bpm
    log.debug("Off-beats nearly as strong as beats: doubling %.1f BPM.", tempo_bpm)
    doubled = np.empty(2 * len(beat_frames) - 1, dtype=np.intp)
    doubled[0::2], doubled[1::2] = beat_frames, midpoints
    return doubled, doubled_bpm


class _AttackFinder:
    """Finds the attack (the sharpest energy rise) of a transient near a time.

    Energy is that of the first difference of the signal, which favours attacks
    (hats, snares, clicks) over the bass. A hit on the first sample is an attack.
    """

    def __init__(self, samples: FloatArray, sr: int) -> None:
        self.sr = sr
        self.window = max(1, round(REFINE_WINDOW_SEC * sr))
        self.before_window = max(1, round(REFINE_BEFORE_SEC * sr))
        emphasis = np.diff(samples, prepend=samples[:1])
        squares = np.cumsum(np.square(emphasis, dtype=np.float64))
        # squares[self.before_window + n] sums the energy before sample n.
        self.squares = np.concatenate([np.zeros(self.before_window + 1), squares])

    def find(self, center: int, before: int, after: int) -> int | None:
        """The attack from before samples ahead of center to after it, or None."""
        offset = self.before_window
        low = max(0, center - before) + offset
        high = min(len(self.squares) - 1 - self.window, center + after + offset)
        if high <= low:
            return None
        candidates = np.arange(low, high + 1)
        squares = self.squares
        power_after = (squares[candidates + self.window] - squares[candidates]) / (
            self.window
        )
        # Before the first samples, average over the samples there are.
        counted = np.clip(candidates - offset, 1, offset)
        power_before = (squares[candidates] - squares[candidates - offset]) / counted
        best = int(np.argmax(power_after - power_before))
        if power_after[best] <= REFINE_MIN_RISE * power_before[best]:
            return None
        return int(candidates[best]) - offset

    def snap_sec(self, time_sec: float) -> float | None:
        """The attack within REFINE_RADIUS_SAMPLES of time_sec, or None."""
        radius = REFINE_RADIUS_SAMPLES
        attack = self.find(round(time_sec * self.sr), radius, radius)
        return None if attack is None else attack / self.sr

    def refine(self, beat_samples: IntArray) -> list[tuple[float, bool]]:
        """Beats moved onto their attacks: (time, whether an attack was found).

        librosa's onset peaks trail attacks by 1-2 hops, by an amount that depends
        on the sound. A first, wide search measures the typical lag; the second
        looks within REFINE_RADIUS_SAMPLES of each beat moved by it. A beat with
        no clear attack there only moves by the typical lag.
        """
        before, after = REFINE_SEARCH_SAMPLES
        lags = [
            attack - int(beat)
            for beat in beat_samples
            if (attack := self.find(int(beat), before, after)) is not None
        ]
        lag_sec = float(np.median(lags)) / self.sr if lags else 0.0
        beats: dict[float, bool] = {}
        for beat in beat_samples:
            start_sec = max(0.0, int(beat) / self.sr + lag_sec)
            attack_sec = self.snap_sec(start_sec)
            if attack_sec is None:
                beats.setdefault(start_sec, False)
            else:
                beats[attack_sec] = True
        return sorted(beats.items())


def _place_between_attacks(
    beats: list[tuple[float, bool]],
) -> list[tuple[float, bool]]:
    """Beats without an attack of their own, set halfway between neighbours that
    have one when those sit two periods apart.

    A kick under a pad has no attack that the first difference can see.
    """
    if len(beats) < 3:
        return beats
    period_sec = float(np.median(np.diff([time_sec for time_sec, _ in beats])))
    placed = list(beats)
    for index in range(1, len(beats) - 1):
        before_sec, before_found = beats[index - 1]
        after_sec, after_found = beats[index + 1]
        span_error_sec = abs(after_sec - before_sec - 2 * period_sec)
        on_grid = span_error_sec <= OFF_GRID_FRACTION * period_sec
        if before_found and after_found and on_grid and not beats[index][1]:
            placed[index] = ((before_sec + after_sec) / 2, False)
    return placed


def _repair_ends(
    attacks: _AttackFinder,
    beats: list[tuple[float, bool]],
    sounding_sec: tuple[float, float],
    end_sec: float,
) -> list[float]:
    """Beat times within the sounding part, from the first to the last attack on
    the grid: the tracker's beats past them, or off the grid, are replaced by the
    grid continued while attacks fall on it."""
    first_sec = max(0.0, sounding_sec[0] - EDGE_TOLERANCE_SEC)
    last_sec = min(sounding_sec[1] + END_TOLERANCE_SEC, end_sec - END_MARGIN_SEC)
    beats = [(time_sec, found) for time_sec, found in beats if first_sec <= time_sec]
    beats = [(time_sec, found) for time_sec, found in beats if time_sec <= last_sec]
    attack_indices = [index for index, (_, found) in enumerate(beats) if found]
    if len(attack_indices) < 4:
        log.warning(
            "Few clear attacks (a soft or beatless song): the beats are the "
            "tracker's even grid, not moved onto attacks."
        )
        return [time_sec for time_sec, _ in beats]
    times_sec = [time_sec for time_sec, _ in beats]
    times_sec = times_sec[attack_indices[0] : attack_indices[-1] + 1]
    period_sec = float(np.median(np.diff(times_sec)))
    times_sec = _drop_off_grid_end(times_sec, period_sec)
    times_sec = _drop_off_grid_end(times_sec[::-1], period_sec)[::-1]

    while (beat := attacks.snap_sec(times_sec[-1] + period_sec)) is not None:
        if beat > last_sec:
            break
        times_sec.append(beat)
    while (beat := attacks.snap_sec(times_sec[0] - period_sec)) is not None:
        if beat < first_sec:
            break
        times_sec.insert(0, beat)
    return times_sec


def _drop_off_grid_end(beats: list[float], period_sec: float) -> list[float]:
    """beats without the last few whose interval strays from the period."""
    for _ in range(MAX_OFF_GRID_END_BEATS):
        if len(beats) < 4:
            break
        interval_sec = abs(beats[-1] - beats[-2])
        if abs(interval_sec - period_sec) <= OFF_GRID_FRACTION * period_sec:
            break
        beats = beats[:-1]
    return beats


def _pick_downbeats(
    beats_sec: list[float],
    onset_envelope: FloatArray,
    low_onset_envelope: FloatArray,
    sr: int,
) -> list[float]:
    """The beats of the bar phase (4/4) with the strongest low-frequency accent."""
    if len(beats_sec) < 2 * BEATS_PER_BAR:
        return beats_sec[::BEATS_PER_BAR]
    # Onset peaks trail the attacks by 1-2 hops: look from 0 to 2 frames after.
    frames = np.round(np.asarray(beats_sec) * sr / HOP_SAMPLES).astype(np.intp) + 1
    accent = _normalised(_strength_at(low_onset_envelope, frames)) + _normalised(
        _strength_at(onset_envelope, frames)
    )
    scores = [accent[phase::BEATS_PER_BAR].mean() for phase in range(BEATS_PER_BAR)]
    phase = int(np.argmax(scores))
    return beats_sec[phase::BEATS_PER_BAR]


def _normalised(values: FloatArray) -> FloatArray:
    scale = float(np.mean(values))
    return values / scale if scale > 0 else values


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
