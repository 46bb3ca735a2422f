"""Clip analysis: one low-resolution decode pass finds a clip's shots and scores them.

Each frame is shrunk once by FFmpeg's scaler; a few numbers per frame and the
thumbnails of the last MIN_SHOT_SEC are kept, never the clip itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from engine import cache
from engine.analysis_decode import (
    ANALYSIS_SIZE_PX,
    LUMA_BLACK,
    LUMA_WHITE,
    FrameFeatures,
    Thumbnail,
    analysis_size,
    check_decoded,
    decoded_frames,
    frame_time_sec,
    open_container,
    prepare_stream,
    shrink,
    usable_duration_sec,
)
from engine.probe import MediaInfo

log = logging.getLogger(__name__)

# Bump when the features or the cut detection change: old cache entries then miss.
ANALYSIS_VERSION = 1

# Clips longer than this are skimmed keyframe by keyframe (about 37x real time).
LONG_CLIP_SEC = 120.0
# A long clip is read from at most this many keyframes, spread evenly: a two-hour
# recording with keyframes every second, or all-intra (ProRes, MJPEG), would
# otherwise decode thousands of full-size pictures.
LONG_CLIP_MAX_FRAMES = 600

# Content change is the mean absolute difference of Y, U and V thumbnails, in
# 8-bit code values. A cut is a spike above the floor, well above the local
# median, and well above both neighbours: a whip pan ramps up, a cut stands alone.
CUT_FLOOR = 10.0
CUT_MEDIAN_RATIO = 3.0
CUT_MEDIAN_HALF_WINDOW_FRAMES = 12
CUT_NEIGHBOUR_RATIO = 1.5
# Below this change a frame repeats the previous one.
DUPLICATE_CHANGE = 0.1
# A picture that comes back (flash, passing object) is no cut: a candidate whose
# frame is this close to a frame before the spike, relative to its own change.
RETURN_FRACTION = 0.4
MIN_SHOT_SEC = 0.4

# Motion is content change per second; this rate and above reads as 1.0.
MOTION_FULL_SCALE_PER_SEC = 120.0
# Laplacian variance (8-bit luma, 320 px picture) at which sharpness reads 0.63.
SHARPNESS_SCALE = 300.0

DEFAULT_WEIGHTS = {"motion": 0.4, "sharpness": 0.35, "exposure": 0.25}
PROGRESS_INTERVAL_SEC = 0.5


@dataclass
class Shot:
    """A stretch of one clip between two cuts, in media seconds from its first frame."""

    start_sec: float
    end_sec: float
    motion: float
    sharpness: float
    exposure: float
    score: float

    @property
    def duration_sec(self) -> float:
        return self.end_sec - self.start_sec


@dataclass
class ClipAnalysis:
    """The shots of one clip, as found by `analyze_clip`."""

    path: str
    content_hash: str
    duration_sec: float
    shots: list[Shot]
    frames_analyzed: int
    keyframes_only: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipAnalysis:
        values = dict(data)
        values["shots"] = [Shot(**shot) for shot in values["shots"]]
        return cls(**values)


def shot_score(shot: Shot, weights: dict[str, float] | None = None) -> float:
    """The overall usefulness of a shot, 0..1: a weighted mean of its features.

    Args:
        shot: the shot; its own `score` is not read.
        weights: weight per feature name (motion, sharpness, exposure); missing
            names weigh 0. Defaults to `DEFAULT_WEIGHTS`.
    """
    weights = DEFAULT_WEIGHTS if weights is None else weights
    total = sum(max(0.0, weight) for weight in weights.values())
    if total <= 0:
        return 0.0
    features = {
        "motion": shot.motion,
        "sharpness": shot.sharpness,
        "exposure": shot.exposure,
    }
    weighted = sum(
        features.get(name, 0.0) * max(0.0, weight) for name, weight in weights.items()
    )
    return _clamp01(weighted / total)


def analyze_clip(
    info: MediaInfo,
    progress: Callable[[float], None] | None = None,
    use_cache: bool = True,
) -> ClipAnalysis:
    """Find the shots of one clip and score each, in one low-resolution decode pass.

    Clips longer than `LONG_CLIP_SEC` are skimmed keyframe by keyframe (at most
    `LONG_CLIP_MAX_FRAMES`, evenly spread), so their cuts land on the first
    keyframe read after the real cut.

    Args:
        info: the probed clip.
        progress: called about every `PROGRESS_INTERVAL_SEC` with the fraction
            of the clip analysed, 0..1.
        use_cache: read and write the "clips" cache, keyed by content.

    Raises:
        MediaError: the clip cannot be opened or no picture of it decodes.
    """
    if info.still:
        return _analyze_still(info)
    keyframes_only = info.duration_sec > LONG_CLIP_SEC
    content_hash = cache.content_hash(info.path)
    key = _cache_key(content_hash, keyframes_only)
    if use_cache:
        # The same content may sit at another path than when it was analysed.
        cached = cache.load(
            "clips",
            key,
            lambda data: ClipAnalysis.from_dict(data | {"path": info.path}),
        )
        if cached is not None:
            log.debug("Clip analysis of %s found in the cache", info.path)
            return cached

    started = time.monotonic()
    features = _decode_features(info, keyframes_only, progress)
    duration_sec = usable_duration_sec(info, features, keyframes_only)
    cut_indices = _detect_cuts(features)
    analysis = ClipAnalysis(
        path=info.path,
        content_hash=content_hash,
        duration_sec=duration_sec,
        shots=_build_shots(features, cut_indices, duration_sec),
        frames_analyzed=len(features.times_sec),
        keyframes_only=keyframes_only,
    )
    _log_done(analysis, time.monotonic() - started)
    if use_cache:
        cache.store("clips", key, analysis.to_dict())
    if progress is not None:
        progress(1.0)
    return analysis


def _analyze_still(info: MediaInfo) -> ClipAnalysis:
    """A still picture is one shot as long as it may be shown; nothing in it moves.

    Its one picture is decoded for sharpness and exposure; too cheap to cache.
    """
    features = _decode_features(info, keyframes_only=False, progress=None)
    shot = _score_shot(features, 0, 1, 0.0, info.duration_sec)
    return ClipAnalysis(
        path=info.path,
        content_hash=cache.content_hash(info.path),
        duration_sec=info.duration_sec,
        shots=[shot],
        frames_analyzed=1,
        keyframes_only=False,
    )


def _cache_key(content_hash: str, keyframes_only: bool) -> str:
    """The content, the version and every parameter that shapes the result."""
    parameters = [
        ANALYSIS_VERSION, keyframes_only, ANALYSIS_SIZE_PX, CUT_FLOOR,
        CUT_MEDIAN_RATIO, CUT_MEDIAN_HALF_WINDOW_FRAMES, CUT_NEIGHBOUR_RATIO,
        DUPLICATE_CHANGE, RETURN_FRACTION, MIN_SHOT_SEC, MOTION_FULL_SCALE_PER_SEC,
        SHARPNESS_SCALE, DEFAULT_WEIGHTS, LONG_CLIP_MAX_FRAMES,
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode())
    return f"{content_hash}-{digest.hexdigest()[:16]}"


def _log_done(analysis: ClipAnalysis, elapsed_sec: float) -> None:
    fps = analysis.frames_analyzed / elapsed_sec if elapsed_sec > 0 else 0.0
    log.info(
        "Analysed %s: %d shots from %d %s in %.2f s (%.0f fps)",
        Path(analysis.path).name,
        len(analysis.shots),
        analysis.frames_analyzed,
        "keyframes" if analysis.keyframes_only else "frames",
        elapsed_sec,
        fps,
    )


# Decoding


def _decode_features(
    info: MediaInfo, keyframes_only: bool, progress: Callable[[float], None] | None
) -> FrameFeatures:
    """Decode the clip once, in order, and keep the features of every frame."""
    features = FrameFeatures()
    width, height = analysis_size(info)
    # One scaler for the whole clip: frame.reformat would set one up per frame.
    reformatter = VideoReformatter()
    reporter = _ProgressReporter(progress, info.duration_sec)
    step_sec = info.duration_sec / LONG_CLIP_MAX_FRAMES if keyframes_only else 0.0
    with open_container(info) as container:
        stream = prepare_stream(container, info, keyframes_only)
        try:
            for frame in decoded_frames(container, stream, features, step_sec):
                time_sec = frame_time_sec(frame, info, features)
                planes = shrink(reformatter, frame, width, height)
                _add_frame(features, time_sec, planes, height)
                reporter.report(time_sec)
        except av.error.FFmpegError as error:
            features.stopped_by = error
    check_decoded(info, features)
    return features


class _ProgressReporter:
    """Calls progress with the fraction done, at most every PROGRESS_INTERVAL_SEC."""

    def __init__(
        self, progress: Callable[[float], None] | None, duration_sec: float
    ) -> None:
        self.progress = progress
        self.duration_sec = duration_sec
        self.next_report = time.monotonic()

    def report(self, time_sec: float) -> None:
        if self.progress is None or time.monotonic() < self.next_report:
            return
        self.next_report = time.monotonic() + PROGRESS_INTERVAL_SEC
        self.progress(_clamp01(time_sec / self.duration_sec))


# Per-frame features


def _add_frame(
    features: FrameFeatures,
    time_sec: float,
    planes: npt.NDArray[np.uint8],
    height: int,
) -> None:
    """Record one frame: its change from the previous one, sharpness, exposure."""
    luma = planes[:height]
    thumbnail = _thumbnail(planes, height)
    index = len(features.times_sec)
    change = 0.0
    if features.recent:
        change = _difference(thumbnail, features.recent[-1][1])
        if change >= CUT_FLOOR:
            _record_return(features, index, thumbnail, change)

    features.times_sec.append(time_sec)
    features.change.append(change)
    features.sharpness.append(_laplacian_variance(luma))
    features.exposure.append(_frame_exposure(luma))
    _remember(features, time_sec, thumbnail)


def _thumbnail(planes: npt.NDArray[np.uint8], height: int) -> Thumbnail:
    """Y, U and V averaged over 4x4 luma pixels each, in 8-bit code values."""
    width = planes.shape[1]
    # yuv420p rows after the luma: U then V, each height/2 x width/2, so one 2x2
    # pooling of the luma matches them; 4 scales chroma to the luma's 2x2 sums.
    chroma = planes[height:].reshape(2, height // 2, width // 2).astype(np.uint16)
    luma = _pool_2x2(planes[:height].astype(np.uint16))
    summed = _pool_2x2(np.concatenate([luma[None], chroma * 4]))
    return summed.astype(np.float32) * np.float32(1 / 16)


def _pool_2x2(values: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint16]:
    """Sums of 2x2 blocks over the last two axes; strided adds beat reshape-sum."""
    values = values[..., 0::2, :] + values[..., 1::2, :]
    return values[..., 0::2] + values[..., 1::2]


def _difference(first: Thumbnail, second: Thumbnail) -> float:
    return float(np.abs(first - second).mean())


def _record_return(
    features: FrameFeatures, index: int, thumbnail: Thumbnail, change: float
) -> None:
    """Note when a spiking frame looks like a frame from before the spike."""
    # The last thumbnail is the one the spike is measured against; skip it.
    for earlier_sec, earlier in list(features.recent)[-2::-1]:
        if _difference(thumbnail, earlier) < RETURN_FRACTION * change:
            features.returns_to_sec[index] = earlier_sec
            return


def _remember(features: FrameFeatures, time_sec: float, thumbnail: Thumbnail) -> None:
    features.recent.append((time_sec, thumbnail))
    while len(features.recent) > 2 and (
        time_sec - features.recent[0][0] > MIN_SHOT_SEC
    ):
        features.recent.popleft()


def _laplacian_variance(luma: npt.NDArray[np.uint8]) -> float:
    pixels = luma.astype(np.int16)
    laplacian = (
        4 * pixels[1:-1, 1:-1]
        - pixels[:-2, 1:-1]
        - pixels[2:, 1:-1]
        - pixels[1:-1, :-2]
        - pixels[1:-1, 2:]
    )
    # A float32 dot product is several times faster than ndarray.var here.
    flat = laplacian.astype(np.float32).ravel()
    mean = float(flat.sum()) / flat.size
    return max(0.0, float(np.dot(flat, flat)) / flat.size - mean * mean)


def _frame_exposure(luma: npt.NDArray[np.uint8]) -> float:
    """1 for mid-grey mean and no clipped pixels; 0 for black or blown out."""
    mid = (LUMA_BLACK + LUMA_WHITE) / 2
    mean = int(luma.sum(dtype=np.uint32)) / luma.size
    distance = min(1.0, abs(mean - mid) / (mid - LUMA_BLACK))
    clipped = int(np.count_nonzero(luma <= LUMA_BLACK)) + int(
        np.count_nonzero(luma >= LUMA_WHITE)
    )
    return (1 - distance * distance) * (1 - clipped / luma.size)


# Cuts and shots


def _detect_cuts(features: FrameFeatures) -> list[int]:
    """Indices of the frames that start a new shot, in order."""
    change = np.asarray(features.change, dtype=np.float64)
    # Repeated frames (pulldown, dropped-frame padding) say nothing: leave them
    # out, or their zeros drag the median down and hide a ramp's neighbours.
    distinct = np.flatnonzero(change > DUPLICATE_CHANGE)
    values = change[distinct]
    if values.size < 1:
        return []
    median = _local_median(values, CUT_MEDIAN_HALF_WINDOW_FRAMES)
    spikes = (
        (values >= CUT_FLOOR)
        & (values >= CUT_MEDIAN_RATIO * median)
        & _stands_alone(values)
    )
    candidates = [int(index) for index in distinct[spikes]]
    candidates = _drop_returns(features, candidates)
    return _keep_min_shot(features.times_sec, change, candidates)


def _local_median(values: npt.NDArray[np.float64], half: int) -> Any:
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1)


def _stands_alone(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Whether each value, alone or with one neighbour, towers over its neighbours.

    A pair counts too: a cut through one blended frame, or two cuts a frame
    apart, are two big changes in a row. A whip pan's changes ramp up and down.
    """
    padded = np.pad(values, 2)
    before2, before, after, after2 = (
        padded[shift : shift + values.size] for shift in (0, 1, 3, 4)
    )
    ratio = CUT_NEIGHBOUR_RATIO
    alone = values >= ratio * np.maximum(before, after)
    with_after = np.minimum(values, after) >= ratio * np.maximum(before, after2)
    with_before = np.minimum(values, before) >= ratio * np.maximum(before2, after)
    result: npt.NDArray[np.bool_] = alone | with_after | with_before
    return result


def _drop_returns(features: FrameFeatures, candidates: list[int]) -> list[int]:
    """Drop spikes after which the picture came back to what it was (flashes)."""
    dropped: set[int] = set()
    for index, earlier_sec in features.returns_to_sec.items():
        dropped.update(
            other
            for other in candidates
            if earlier_sec < features.times_sec[other] <= features.times_sec[index]
        )
    return [index for index in candidates if index not in dropped]


def _keep_min_shot(
    times_sec: list[float], change: npt.NDArray[np.float64], candidates: list[int]
) -> list[int]:
    """Strongest spikes first; no two cuts closer than MIN_SHOT_SEC.

    A cut near the clip's start or end stays: a short first or last shot is true,
    where merging it would hide a cut inside its neighbour.
    """
    kept: list[int] = []
    for index in sorted(candidates, key=lambda i: -change[i]):
        time_sec = times_sec[index]
        if all(abs(time_sec - times_sec[other]) >= MIN_SHOT_SEC for other in kept):
            kept.append(index)
    return sorted(kept)


def _build_shots(
    features: FrameFeatures, cut_indices: list[int], duration_sec: float
) -> list[Shot]:
    times_sec = features.times_sec
    # A frame stamped past the probed end cannot start a shot inside the clip.
    cut_indices = [index for index in cut_indices if times_sec[index] < duration_sec]
    firsts = [0, *cut_indices]
    stops = [*cut_indices, len(times_sec)]
    bounds_sec = [0.0, *(times_sec[index] for index in cut_indices), duration_sec]
    return [
        _score_shot(features, first, stop, bounds_sec[number], bounds_sec[number + 1])
        for number, (first, stop) in enumerate(zip(firsts, stops, strict=True))
    ]


def _score_shot(
    features: FrameFeatures, first: int, stop: int, start_sec: float, end_sec: float
) -> Shot:
    """Features of frames first..stop-1; motion leaves out the cut into the shot."""
    # Change per second, summed over the shot: right for variable frame rates
    # and repeated frames alike.
    span_sec = features.times_sec[stop - 1] - features.times_sec[first]
    total_change = sum(features.change[first + 1 : stop])
    motion = total_change / span_sec if span_sec > 0 else 0.0
    sharpness = statistics.fmean(features.sharpness[first:stop])
    shot = Shot(
        start_sec=start_sec,
        end_sec=end_sec,
        motion=_clamp01(motion / MOTION_FULL_SCALE_PER_SEC),
        sharpness=1 - math.exp(-sharpness / SHARPNESS_SCALE),
        exposure=_clamp01(statistics.fmean(features.exposure[first:stop])),
        score=0.0,
    )
    shot.score = shot_score(shot)
    return shot


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))
