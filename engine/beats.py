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
