"""Smart reframing: a crop window per output frame that follows the subject.

For every clip of a planned timeline whose picture is wider (or taller) than the
output, faces and motion are sampled over the frames it shows (engine.detect),
and a smoothed window path is stored in the clip's metadata for the renderer
(engine.follow). A face is never cut by the window's edge: the window moves to
hold it, and widens (with black above and below) when one window cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio

from engine.detect import DETECT_RATE_PER_SEC, SubjectSample, sample_subject
from engine.follow import FollowPath, display_size
from engine.placements import ClipPlacement, read_placements
from engine.timeline import META, timeline_rate

log = logging.getLogger(__name__)

# Follow speeds: the Gaussian smoothing of the window's path, in seconds.
SMOOTHING_SEC = {"calm": 1.0, "normal": 0.4, "fast": 0.12}
# A face's box grows by this share of its width on each side (hair, ears, chin).
FACE_MARGIN = 0.25
# A window holding less than this much more than the output is not worth moving.
MIN_SURPLUS = 0.01

Progress = Callable[[float], None]


def add_follow_paths(
    timeline: otio.schema.Timeline, speed: str, progress: Progress | None = None
) -> dict[str, int]:
    """Plan and store a follow path for each clip that has room to move in.

    Returns how many clips follow faces, motion, or stay centred (nothing found).
    """
    smoothing_sec = SMOOTHING_SEC[speed]
    meta = timeline.metadata[META]
    meta["reframe"] = speed
    size = (int(meta["width"]), int(meta["height"]))
    fps = timeline_rate(timeline)
    clips = [c for c in timeline.video_tracks()[0] if isinstance(c, otio.schema.Clip)]
    placements, _ = read_placements(timeline)
    counts = {"faces": 0, "motion": 0, "centre": 0}
    for number, (clip, placement) in enumerate(zip(clips, placements, strict=True)):
        window = _window_share(clip.media_reference.metadata[META], size)
        if placement.push_in is not None or window is None:
            continue
        path, subject = _follow_clip(placement, clip, fps, window, smoothing_sec,
                                     _part(progress, number, len(clips)))  # fmt: skip
        clip.metadata[META]["follow"] = path.to_dict()
        clip.metadata[META]["follow_subject"] = subject
        counts[subject] += 1
    log.info("Reframed (%s): %s", speed, counts)
    return counts


def _part(progress: Progress | None, number: int, count: int) -> Progress | None:
    if progress is None:
        return None
    return lambda fraction: progress((number + fraction) / count)


def _window_share(
    facts: dict[str, Any], size: tuple[int, int]
) -> tuple[float, float] | None:
    """The output's width and height as shares of the source scaled to cover it,
    or None when the source has the output's shape (nothing to follow)."""
    display = display_size(facts)
    factor = max(size[0] / display[0], size[1] / display[1])
    share = (size[0] / (display[0] * factor), size[1] / (display[1] * factor))
    if min(share) > 1 - MIN_SURPLUS:
        return None
    return share


def _follow_clip(
    placement: ClipPlacement,
    clip: otio.schema.Clip,
    fps: Fraction,
    window: tuple[float, float],
    smoothing_sec: float,
    progress: Progress | None,
) -> tuple[FollowPath, str]:
    facts = clip.media_reference.metadata[META]
    first = placement.record_start - placement.reach_before
    count = placement.record_end + placement.reach_after - first
    start_sec = placement.source_sec(first, fps)
    end_sec = placement.source_sec(first + count - 1, fps)
    display = display_size(facts)
    samples = sample_subject(placement.path, display, placement.rotation,
                             placement.sample_aspect, placement.rate,
                             (start_sec, end_sec), progress)  # fmt: skip
    times_sec = start_sec + np.arange(count) / float(fps)
    path = plan_follow_path(samples, times_sec, window, smoothing_sec)
    log.debug("Follow path for %s: %s", Path(placement.path).name, _subject(samples))
    return path, _subject(samples)


def _subject(samples: list[SubjectSample]) -> str:
    if any(sample.faces for sample in samples):
        return "faces"
    if any(sample.motion is not None for sample in samples):
        return "motion"
    return "centre"


def plan_follow_path(
    samples: list[SubjectSample],
    times_sec: np.ndarray,
    window: tuple[float, float],
    smoothing_sec: float,
) -> FollowPath:
    """The window (centre and zoom) at each of times_sec, evenly spaced.

    Args:
        samples: faces and motion found, in time order.
        times_sec: the stream time of every frame shown.
        window: the output's width and height as shares of the scaled source.
        smoothing_sec: the follow speed (see SMOOTHING_SEC).
    """
    step_sec = float(times_sec[1] - times_sec[0]) if len(times_sec) > 1 else 1.0
    sigma_frames = smoothing_sec / step_sec
    faces = _face_boxes_at(samples, times_sec, 0.0)
    # Widened only for the faces themselves; their margin is kept where it fits.
    zoom = _required_zoom(faces, window)
    smooth_zoom = np.maximum(
        zoom, _smooth(_running_max(zoom, round(2 * sigma_frames)), sigma_frames)
    )
    boxes = _face_boxes_at(samples, times_sec, FACE_MARGIN)
    spans = np.stack([window[0] * smooth_zoom, window[1] * smooth_zoom], axis=1)
    too_wide = boxes[:, 2:] - boxes[:, :2] > spans  # per axis: x, y
    boxes = np.where(too_wide[:, [0, 1, 0, 1]], faces, boxes)
    targets = _targets_at(samples, times_sec)
    centres = []
    for axis in (0, 1):
        centre = _smooth(targets[:, axis], sigma_frames)
        centres.append(_hold_faces(centre, boxes[:, axis], boxes[:, axis + 2],
                                   window[axis] * smooth_zoom))  # fmt: skip
    return FollowPath(
        start_sec=float(times_sec[0]),
        step_sec=step_sec,
        x=[float(v) for v in centres[0]],
        y=[float(v) for v in centres[1]],
        zoom=[float(v) for v in smooth_zoom],
    )


def _face_boxes_at(
    samples: list[SubjectSample], times_sec: np.ndarray, margin: float
) -> np.ndarray:
    """Per frame, the box (left, top, right, bottom) holding every face, margins
    included, moved linearly from one sample's box to the next; NaN where
    neither sample either side has a face.

    A box that changed in a step at each sample would make the window jump there.
    """
    per_sample = np.full((len(samples), 4), np.nan)
    for index, sample in enumerate(samples):
        if sample.faces:
            faces = np.array([_with_margin(face, margin) for face in sample.faces])
            per_sample[index] = [*faces[:, :2].min(axis=0), *faces[:, 2:].max(axis=0)]
    sample_times = np.array([sample.time_sec for sample in samples])
    before = np.clip(np.searchsorted(sample_times, times_sec, "right") - 1, 0, None)
    after = np.minimum(before + 1, len(samples) - 1)
    gap_sec = sample_times[after] - sample_times[before]
    share = np.where(
        gap_sec > 0, (times_sec - sample_times[before]) / np.maximum(gap_sec, 1e-9), 0
    )
    share = np.clip(share, 0.0, 1.0)[:, None]
    first, second = per_sample[before], per_sample[after]
    # Where only one side saw a face, hold its box.
    first = np.where(np.isnan(first), second, first)
    second = np.where(np.isnan(second), first, second)
    return first + (second - first) * share


def _with_margin(face: tuple[float, float, float, float], margin: float) -> list[float]:
    left, top, right, bottom = face
    grow_x = (right - left) * margin
    grow_y = (bottom - top) * margin
    return [
        max(0.0, left - grow_x),
        max(0.0, top - grow_y),
        min(1.0, right + grow_x),
        min(1.0, bottom + grow_y),
    ]


def _required_zoom(boxes: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """How much wider than the output the window must be to hold the faces."""
    width = np.nan_to_num(boxes[:, 2] - boxes[:, 0])
    height = np.nan_to_num(boxes[:, 3] - boxes[:, 1])
    return np.maximum(1.0, np.maximum(width / window[0], height / window[1]))


def _targets_at(samples: list[SubjectSample], times_sec: np.ndarray) -> np.ndarray:
    """Where the window aims, per frame: the faces' centre, else the motion's,
    else the centre of the picture; interpolated between samples."""
    known_times, known = [], []
    for sample in samples:
        if sample.faces:
            faces = np.array(sample.faces)
            box = [*faces[:, :2].min(axis=0), *faces[:, 2:].max(axis=0)]
            known.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
            known_times.append(sample.time_sec)
        elif sample.motion is not None:
            known.append(sample.motion)
            # The change since the sample before is centred between the two.
            known_times.append(sample.time_sec - 0.5 / DETECT_RATE_PER_SEC)
    if not known:
        return np.full((len(times_sec), 2), 0.5)
    points = np.array(known)
    return np.stack(
        [np.interp(times_sec, known_times, points[:, axis]) for axis in (0, 1)],
        axis=1,
    )


def _hold_faces(
    centre: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    span: np.ndarray,
) -> np.ndarray:
    """Move the window (centre, span wide) the least that keeps [low, high] inside
    it, and the window inside the picture; a window wider than the picture is
    centred."""
    half = span / 2
    lowest = np.maximum(half, np.where(np.isnan(high), -np.inf, high - half))
    highest = np.minimum(1 - half, np.where(np.isnan(low), np.inf, low + half))
    held = np.minimum(np.maximum(centre, lowest), highest)
    return np.where(half >= 0.5, 0.5, held)


def _smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """A Gaussian blur along time, the ends held (no pull toward zero)."""
    if sigma_frames < 0.5 or len(values) < 2:
        return values.astype(np.float64)
    radius = int(3 * sigma_frames)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_frames) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values.astype(np.float64), radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _running_max(values: np.ndarray, radius: int) -> np.ndarray:
    """The largest value within radius frames either side."""
    if radius < 1:
        return values
    padded = np.pad(values, radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return windows.max(axis=1)
