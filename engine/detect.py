"""Where the subject is in a stretch of a clip: faces, or else what moves.

A few low-resolution frames a second are decoded upright; faces are found by
OpenCV's shipped Haar cascade on their luma, motion by the difference between one
sample and the last. Results are cached by the clip's content and the stretch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from engine import cache
from engine.frames import FrameTransform, SourceReader, even

log = logging.getLogger(__name__)

# Bump when detection changes: old cache entries then miss.
DETECT_VERSION = 1
DETECT_RATE_PER_SEC = 6.0
# Longer side of the picture faces are looked for in; a face narrower than
# FACE_MIN_FRACTION of the shorter side is not looked for.
DETECT_SIZE_PX = 640
FACE_MIN_FRACTION = 0.07
FACE_CASCADE = "haarcascade_frontalface_default.xml"
# Motion is read on a smaller, blurred picture; a change of fewer code values
# than MOTION_THRESHOLD is noise, and less than MOTION_MIN_SHARE of the picture
# changing means nothing moves.
MOTION_SIZE_PX = 160
MOTION_THRESHOLD = 12
MOTION_MIN_SHARE = 0.002

Box = tuple[float, float, float, float]


@dataclass
class SubjectSample:
    """What one sampled frame shows, in fractions of the upright picture."""

    time_sec: float
    # (left, top, right, bottom) of each face.
    faces: list[Box] = field(default_factory=list)
    # Centre of what moved since the sample before, if anything did.
    motion: tuple[float, float] | None = None


def sample_subject(
    path: str,
    display_size: tuple[float, float],
    rotation: int,
    sample_aspect: tuple[int, int],
    rate: Fraction,
    span_sec: tuple[float, float],
    progress: Callable[[float], None] | None = None,
) -> list[SubjectSample]:
    """Faces and motion at DETECT_RATE_PER_SEC from span_sec[0] to span_sec[1]
    (stream seconds), from the cache when this stretch was seen before."""
    key = _cache_key(path, span_sec)
    cached = cache.load("subject", key, _parse_samples)
    if cached is not None:
        return cached
    width, height = _detect_size(display_size)
    transform = FrameTransform(width, height, "fit", {}, fps=Fraction(25))
    reader = SourceReader(path, transform, rotation, sample_aspect, rate)
    try:
        samples = _detect(reader, height, _sample_times(*span_sec), progress)
    finally:
        reader.close()
    cache.store("subject", key, {"samples": [asdict(s) for s in samples]})
    return samples


def _detect(
    reader: SourceReader,
    height: int,
    times: list[float],
    progress: Callable[[float], None] | None,
) -> list[SubjectSample]:
    samples = []
    previous: np.ndarray | None = None
    for number, time_sec in enumerate(times):
        luma = reader.frame_at(time_sec).to_ndarray()[:height]
        small = _motion_picture(luma)
        faces = find_faces(luma)
        samples.append(SubjectSample(time_sec, faces, _motion_centre(previous, small)))
        previous = small
        if progress is not None:
            progress((number + 1) / len(times))
    return _steady_faces(samples)


def _detect_size(display_size: tuple[float, float]) -> tuple[int, int]:
    display_width, display_height = display_size
    scale = DETECT_SIZE_PX / max(display_width, display_height)
    return even(display_width * scale), even(display_height * scale)


def _sample_times(start_sec: float, end_sec: float) -> list[float]:
    count = max(2, round((end_sec - start_sec) * DETECT_RATE_PER_SEC) + 1)
    return [float(t) for t in np.linspace(start_sec, max(start_sec, end_sec), count)]


_cascade: Any = None


def find_faces(luma: np.ndarray) -> list[Box]:
    """Frontal faces in a grey picture, as fractions (left, top, right, bottom)."""
    global _cascade
    if _cascade is None:
        folder = cv2.data.haarcascades  # type: ignore[attr-defined]
        _cascade = cv2.CascadeClassifier(folder + FACE_CASCADE)
    height, width = luma.shape
    smallest = max(24, round(FACE_MIN_FRACTION * min(width, height)))
    found = _cascade.detectMultiScale(
        np.ascontiguousarray(luma),
        scaleFactor=1.1,
        minNeighbors=5,
        minSize=(smallest, smallest),
    )
    return [
        (x / width, y / height, (x + w) / width, (y + h) / height)
        for x, y, w, h in (tuple(int(v) for v in face) for face in found)
    ]


def _motion_picture(luma: np.ndarray) -> np.ndarray:
    height, width = luma.shape
    size = (MOTION_SIZE_PX, max(2, round(MOTION_SIZE_PX * height / width)))
    small = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0).astype(np.int16)


def _motion_centre(
    previous: np.ndarray | None, current: np.ndarray
) -> tuple[float, float] | None:
    """The centre of the change between two pictures, weighted by its size."""
    if previous is None:
        return None
    change = np.abs(current - previous).astype(np.float32)
    change[change < MOTION_THRESHOLD] = 0.0
    if np.count_nonzero(change) < MOTION_MIN_SHARE * change.size:
        return None
    rows, columns = np.indices(change.shape, dtype=np.float32)
    total = float(change.sum())
    height, width = change.shape
    return (
        float((columns * change).sum()) / total / (width - 1),
        float((rows * change).sum()) / total / (height - 1),
    )


def _steady_faces(samples: list[SubjectSample]) -> list[SubjectSample]:
    """Drop faces seen in one sample alone (a false find in texture): a real face
    is found again, overlapping, in the sample before or after."""
    if len(samples) < 3:
        return samples
    kept = []
    for index, sample in enumerate(samples):
        neighbours = [
            face
            for other in samples[max(0, index - 1) : index + 2]
            if other is not sample
            for face in other.faces
        ]
        faces = [f for f in sample.faces if any(_overlap(f, n) for n in neighbours)]
        kept.append(SubjectSample(sample.time_sec, faces, sample.motion))
    return kept


def _overlap(first: Box, second: Box) -> bool:
    return (
        first[0] < second[2]
        and second[0] < first[2]
        and first[1] < second[3]
        and second[1] < first[3]
    )


def _cache_key(path: str, span_sec: tuple[float, float]) -> str:
    parameters = [
        DETECT_VERSION, DETECT_RATE_PER_SEC, DETECT_SIZE_PX, FACE_MIN_FRACTION,
        FACE_CASCADE, MOTION_SIZE_PX, MOTION_THRESHOLD, MOTION_MIN_SHARE,
        round(span_sec[0], 3), round(span_sec[1], 3),
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(parameters).encode()).hexdigest()[:16]
    return f"{cache.content_hash(path)}-{digest}"


def _parse_samples(data: dict[str, Any]) -> list[SubjectSample]:
    samples = []
    for item in data["samples"]:
        faces: list[Box] = [(float(a), float(b), float(c), float(d))
                            for a, b, c, d in item["faces"]]  # fmt: skip
        motion = item["motion"]
        centre = None if motion is None else (float(motion[0]), float(motion[1]))
        samples.append(SubjectSample(float(item["time_sec"]), faces, centre))
    return samples
