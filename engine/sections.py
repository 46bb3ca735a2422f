"""The song's loudness over time: an energy curve from 0 to 1 and the quiet, build
and peak sections read from it, which the planner paces the cuts by."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.beats import HOP_SAMPLES, FloatArray

# Sound is anything louder than this relative to the loudest RMS frame.
SILENCE_DB = -45.0
RMS_FRAME_SAMPLES = 512

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


def energy_curve(
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


def label_sections(
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
