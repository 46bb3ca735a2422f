"""Finds the tempo, beats refined to the attack, and downbeats from onset envelopes."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.intp]

# 256 samples at 22050 Hz: onset frames 11.6 ms apart.
HOP_SAMPLES = 256

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
TEMPOGRAM_BLOCK_FRAMES = 2048
# The local tempo is read every TEMPO_STEP_SEC. Where the song's beat period
# (within SONG_LAG_FRACTION, or its double or half) autocorrelates under
# SONG_TEMPO_SUPPORT of the strongest period, for half of TEMPO_SMOOTH_SEC or
# more, the tempo has changed and the beats follow the local tempo.
TEMPO_STEP_SEC = 0.25
SONG_LAG_FRACTION = 0.04
SONG_TEMPO_SUPPORT = 0.55
TEMPO_SMOOTH_SEC = 8.0
# End beats whose interval strays by more than this are the tracker's, not the
# song's: librosa bends the grid over the last beats.
OFF_GRID_FRACTION = 0.15
MAX_OFF_GRID_END_BEATS = 4
# The period at a beat is the median of this many intervals either side of it.
LOCAL_PERIOD_BEATS = 8

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


def find_beats(
    librosa: Any,
    samples: FloatArray,
    sr: int,
    onset_envelope: FloatArray,
    sounding_sec: tuple[float, float],
) -> tuple[float, list[float]]:
    """Tempo and beat times from librosa's tracker, checked for octave and phase,
    moved onto the attacks and kept within the sounding part.

    Args:
        librosa: the librosa module, imported by the caller once numba's cache
            folder is set.
        samples: the mono song at sr.
        sr: the sample rate of samples, in Hz.
        onset_envelope: librosa onset strength, one value every HOP_SAMPLES.
        sounding_sec: start of the first and end of the last sound, in seconds.

    Returns:
        The tempo in BPM (from the median beat interval when there are two
        beats or more) and the beat times in seconds, ascending.
    """
    tempo_bpm, frame_bpm = _estimate_tempo(librosa, onset_envelope, sr)
    # NOTE: trim=True drops every beat of a quiet intro; silence is cut later.
    _, beat_frames = librosa.beat.beat_track(
        onset_envelope=onset_envelope,
        sr=sr,
        hop_length=HOP_SAMPLES,
        bpm=frame_bpm,
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


def _estimate_tempo(
    librosa: Any, onset_envelope: FloatArray, sr: int
) -> tuple[float, float | FloatArray]:
    """The song's tempo, and the tempo to track: that one, or one per onset frame
    where the song changes tempo.

    Both come from librosa's estimate with its prior around 120 BPM, over the mean
    tempogram column and over one column every TEMPO_STEP_SEC.

    NOTE: the estimate weighs a compressed autocorrelation against the prior, so
    lags that fall between frames lose: pooling the envelope to a hop of 512
    samples (twice as fast) turned a 120 BPM kick and snare into 60 BPM.
    """
    mean_column, step_columns = _tempogram_columns(librosa, onset_envelope, sr)
    song_bpm = float(_tempo_of(librosa, mean_column[:, None], sr)[0])
    step_bpm = _step_tempo(librosa, song_bpm, step_columns, sr)
    curve_bpm = _median_smoothed(step_bpm, TEMPO_SMOOTH_SEC / TEMPO_STEP_SEC, song_bpm)
    if np.all(curve_bpm == song_bpm):
        return song_bpm, song_bpm
    log.info(
        "The tempo changes: %s BPM.", ", ".join(f"{b:.0f}" for b in _runs(curve_bpm))
    )
    return song_bpm, _tempo_per_frame(curve_bpm, len(onset_envelope), sr)


def _tempo_per_frame(curve_bpm: FloatArray, total_frames: int, sr: int) -> FloatArray:
    """The tempo at every onset frame from the tempo at every step, each change
    half a beat late.

    librosa's tracker judges the interval that ends at a frame by the tempo there:
    the interval that ends on the first beat of a new tempo is of the old one.
    """
    frames_per_step = _tempo_step_frames(sr)
    last_step = len(curve_bpm) - 1
    steps = np.arange(total_frames) / frames_per_step
    tempo_bpm = curve_bpm[np.minimum(np.round(steps), last_step).astype(np.intp)]
    half_beat_steps = 30.0 / tempo_bpm * sr / HOP_SAMPLES / frames_per_step
    earlier = np.clip(np.round(steps - half_beat_steps), 0, last_step)
    delayed: FloatArray = curve_bpm[earlier.astype(np.intp)]
    return delayed


def _tempo_of(librosa: Any, tempogram: FloatArray, sr: int) -> FloatArray:
    """librosa's tempo for each tempogram column, with its default prior."""
    bpm: FloatArray = librosa.feature.tempo(
        tg=tempogram, sr=sr, hop_length=HOP_SAMPLES, aggregate=None
    )
    return bpm


def _tempo_step_frames(sr: int) -> int:
    return max(1, round(TEMPO_STEP_SEC * sr / HOP_SAMPLES))


def _tempogram_columns(
    librosa: Any, onset_envelope: FloatArray, sr: int
) -> tuple[FloatArray, FloatArray]:
    """The mean column of librosa's centred tempogram, and every
    TEMPO_STEP_SEC-th column, computed TEMPOGRAM_BLOCK_FRAMES at a time.

    The same numbers as one call, without holding the whole tempogram: 2.8 GB
    with its temporaries for a 20-minute song.
    """
    window = int(librosa.time_to_frames(TEMPOGRAM_SEC, sr=sr, hop_length=HOP_SAMPLES))
    half = window // 2
    padded = np.pad(onset_envelope, half, mode="linear_ramp", end_values=[0, 0])
    total_frames = len(onset_envelope)
    step = _tempo_step_frames(sr)
    column_sum = np.zeros(window)
    picked = []
    for first in range(0, total_frames, TEMPOGRAM_BLOCK_FRAMES):
        count = min(TEMPOGRAM_BLOCK_FRAMES, total_frames - first)
        block = padded[first : first + count + window - 1]
        tempogram = librosa.feature.tempogram(
            onset_envelope=block, sr=sr, hop_length=HOP_SAMPLES,
            win_length=window, center=False,
        )[:, :count]  # fmt: skip
        column_sum += tempogram.sum(axis=1)
        # A copy: a view would keep each block's whole tempogram alive.
        picked.append(tempogram[:, (-first) % step :: step].copy())
    return column_sum / max(1, total_frames), np.concatenate(picked, axis=1)


def _step_tempo(
    librosa: Any, song_bpm: float, step_columns: FloatArray, sr: int
) -> FloatArray:
    """The tempo at each step: the song's, unless the song's beat period (or its
    double or half) has next to no autocorrelation there.

    NOTE: local estimates wander between 100 and 150 BPM in the breakdowns of a
    steady 150 BPM song, while its period still autocorrelates at 0.6 or more of
    the peak; a click at 100 BPM after 140 measures 0.0, drums 0.4 to 0.45.
    """
    window = step_columns.shape[0]
    lag_bpm = librosa.tempo_frequencies(window, hop_length=HOP_SAMPLES, sr=sr)
    near_song = np.zeros(window, dtype=bool)
    for octave in (-1, 0, 1):
        distance = np.abs(np.log2(lag_bpm[1:] / (song_bpm * 2.0**octave)))
        near_song[1:] |= distance <= np.log2(1 + SONG_LAG_FRACTION)
    peak = step_columns.max(axis=0)
    support = step_columns[near_song].max(axis=0) / np.maximum(peak, 1e-12)
    # A silent window has an all-zero column and no tempo of its own.
    changed = (support < SONG_TEMPO_SUPPORT) & (peak > 0)
    step_bpm: FloatArray = np.where(
        changed, _tempo_of(librosa, step_columns, sr), song_bpm
    )
    return step_bpm


def _median_smoothed(values: FloatArray, width: float, outside: float) -> FloatArray:
    """The running median over an odd number of values near width, taking the
    values past either end as outside."""
    odd = max(1, round(width)) // 2 * 2 + 1
    padded = np.pad(values, odd // 2, constant_values=outside)
    windows = np.lib.stride_tricks.sliding_window_view(padded, odd)
    smoothed: FloatArray = np.median(windows, axis=1)
    return smoothed


def _runs(values: FloatArray) -> list[float]:
    """values with repeats in a row dropped."""
    keep = np.concatenate([[True], values[1:] != values[:-1]])
    return [float(value) for value in values[keep]]


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
        self.samples = samples
        self.sr = sr
        self.window = max(1, round(REFINE_WINDOW_SEC * sr))
        self.before_window = max(1, round(REFINE_BEFORE_SEC * sr))

    def find(self, center: int, before: int, after: int) -> int | None:
        """The attack from before samples ahead of center to after it, or None."""
        first = max(0, center - before)
        last = min(len(self.samples) - self.window, center + after)
        if last <= first:
            return None
        start = max(0, first - self.before_window)
        energy = self._energy_from(start, last + self.window)
        candidates = np.arange(first, last + 1)
        following = energy[candidates + self.window - start]
        here = energy[candidates - start]
        # Before the first samples, average over the samples there are.
        earlier = energy[np.maximum(candidates - self.before_window, start) - start]
        counted = np.clip(candidates, 1, self.before_window)
        power_after = (following - here) / self.window
        power_before = (here - earlier) / counted
        best = int(np.argmax(power_after - power_before))
        if power_after[best] <= REFINE_MIN_RISE * power_before[best]:
            return None
        return int(candidates[best])

    def _energy_from(self, start: int, stop: int) -> FloatArray:
        """Energy of the first difference from sample start: element i sums
        samples start to start + i - 1. Only this stretch is ever squared."""
        first = max(0, start - 1)
        stretch = self.samples[first:stop]
        emphasis = np.diff(stretch, prepend=stretch[:1])[start - first :]
        energy: FloatArray = np.concatenate(
            [[0.0], np.cumsum(np.square(emphasis, dtype=np.float64))]
        )
        return energy

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
    periods_sec = _local_periods_sec([time_sec for time_sec, _ in beats])
    placed = list(beats)
    for index in range(1, len(beats) - 1):
        before_sec, before_found = beats[index - 1]
        after_sec, after_found = beats[index + 1]
        period_sec = periods_sec[index]
        span_error_sec = abs(after_sec - before_sec - 2 * period_sec)
        on_grid = span_error_sec <= OFF_GRID_FRACTION * period_sec
        if before_found and after_found and on_grid and not beats[index][1]:
            placed[index] = ((before_sec + after_sec) / 2, False)
    return placed


def _local_periods_sec(times_sec: list[float]) -> FloatArray:
    """At each beat, the median of the LOCAL_PERIOD_BEATS intervals either side.

    One period for the whole song would put every beat of a tempo change off
    the grid.
    """
    intervals_sec = np.diff(times_sec)
    reach = LOCAL_PERIOD_BEATS
    return np.array(
        [
            np.median(intervals_sec[max(0, index - reach) : index + reach])
            for index in range(len(times_sec))
        ]
    )


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
    times_sec = _drop_off_grid_end(times_sec)
    times_sec = _drop_off_grid_end(times_sec[::-1])[::-1]

    period_sec = _end_period_sec(times_sec)
    while (beat := attacks.snap_sec(times_sec[-1] + period_sec)) is not None:
        if beat > last_sec:
            break
        times_sec.append(beat)
    period_sec = _end_period_sec(times_sec[::-1])
    while (beat := attacks.snap_sec(times_sec[0] - period_sec)) is not None:
        if beat < first_sec:
            break
        times_sec.insert(0, beat)
    return times_sec


def _end_period_sec(beats: list[float]) -> float:
    """The median interval of the last 2 * LOCAL_PERIOD_BEATS beats."""
    last_beats = beats[-2 * LOCAL_PERIOD_BEATS :]
    return float(np.median(np.abs(np.diff(last_beats))))


def _drop_off_grid_end(beats: list[float]) -> list[float]:
    """beats without the last few whose interval strays from the period there."""
    period_sec = _end_period_sec(beats)
    for _ in range(MAX_OFF_GRID_END_BEATS):
        if len(beats) < 4:
            break
        interval_sec = abs(beats[-1] - beats[-2])
        if abs(interval_sec - period_sec) <= OFF_GRID_FRACTION * period_sec:
            break
        beats = beats[:-1]
    return beats


def pick_downbeats(
    beats_sec: list[float],
    onset_envelope: FloatArray,
    low_onset_envelope: FloatArray,
    sr: int,
) -> list[float]:
    """The beats of the bar phase (4/4) with the strongest low-frequency accent.

    Args:
        beats_sec: the beat times in seconds, ascending.
        onset_envelope: onset strength over all mel bands, every HOP_SAMPLES.
        low_onset_envelope: onset strength over the low mel bands only.
        sr: the sample rate the envelopes were computed at, in Hz.

    Returns:
        Every BEATS_PER_BAR-th beat from the strongest phase; with under two
        bars of beats, every BEATS_PER_BAR-th from the first.
    """
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
