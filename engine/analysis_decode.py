"""Decoding for clip analysis: a clip's frames in order, each shrunk once to the
analysis size; damaged packets skipped, long clips read keyframe by keyframe.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from engine.errors import MediaError
from engine.probe import MediaInfo

log = logging.getLogger(__name__)

# Keyframes this far apart are reached by seeking over the packets between.
LONG_CLIP_SEEK_SEC = 5.0

# Longer side of the analysis picture, in pixels; the shorter side follows the
# display aspect, rounded to a multiple of 8 so it pools evenly.
ANALYSIS_SIZE_PX = 320

# Limited-range luma: black at 16, white at 235.
LUMA_BLACK = 16
LUMA_WHITE = 235
# PQ (SMPTE ST 2084, FFmpeg's transfer 16): SDR white sits at 203 cd/m2 (BT.2408).
PQ_TRANSFER = 16
HDR_REFERENCE_WHITE_NITS = 203.0

Thumbnail = npt.NDArray[np.float32]


@dataclass
class FrameFeatures:
    """The numbers kept per analysed frame, and the few recent thumbnails."""

    times_sec: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    exposure: list[float] = field(default_factory=list)
    # Frame index -> media time of an earlier frame that its picture returns to.
    returns_to_sec: dict[int, float] = field(default_factory=dict)
    recent: deque[tuple[float, Thumbnail]] = field(default_factory=deque)
    damaged_packets: int = 0
    stopped_by: Exception | None = None


def prepare_stream(container: Any, info: MediaInfo, keyframes_only: bool) -> Any:
    """The clip's video stream, set to decode fast for the analysis."""
    stream = container.streams[info.video_stream]
    stream.thread_type = "AUTO"
    # Deblocking costs a quarter of H.264 decoding and changes nothing the
    # analysis sees at its size (a 1080p block edge is a pixel wide at 320).
    stream.codec_context.options = {"skip_loop_filter": "all"}
    if keyframes_only:
        stream.codec_context.skip_frame = "NONKEY"
    return stream


def open_container(info: MediaInfo) -> Any:
    """The clip opened for decoding.

    Raises:
        MediaError: the clip cannot be opened.
    """
    try:
        return av.open(info.path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(
            f"{Path(info.path).name}: could not be opened for analysis ({error}). "
            "Check that the file is still there and plays in a video player.",
            info.path,
        ) from error


def decoded_frames(
    container: Any, stream: Any, features: FrameFeatures, step_sec: float = 0.0
) -> Iterator[Any]:
    """Frames in order, skipping packets the decoder rejects as damaged.

    With step_sec, only keyframes at least step_sec apart are decoded; when that is
    LONG_CLIP_SEEK_SEC or more, the packets between are skipped by a seek.
    """
    next_sec = -math.inf
    while True:
        seek_sec = None
        for packet in container.demux(stream):
            time_sec = _packet_time_sec(packet, stream)
            if step_sec and packet.size:
                if not packet.is_keyframe or time_sec is None or time_sec < next_sec:
                    continue
                next_sec = time_sec + step_sec
            yield from _decode_packet(packet, features)
            if step_sec >= LONG_CLIP_SEEK_SEC and packet.size:
                seek_sec = next_sec
                break
        if seek_sec is None:
            return
        # A seek drops the frames the decoder's threads still hold: take them.
        yield from stream.codec_context.decode(None)
        stream.codec_context.flush_buffers()
        _seek_backward(container, stream, seek_sec)


def _packet_time_sec(packet: Any, stream: Any) -> float | None:
    timestamp = packet.pts if packet.pts is not None else packet.dts
    return None if timestamp is None else float(timestamp * stream.time_base)


def _decode_packet(packet: Any, features: FrameFeatures) -> list[Any]:
    try:
        return list(packet.decode())
    except av.error.InvalidDataError:
        features.damaged_packets += 1
        return []


def _seek_backward(container: Any, stream: Any, time_sec: float) -> None:
    """To the keyframe at or before time_sec; reading on in place if seeking fails."""
    try:
        container.seek(int(time_sec / stream.time_base), stream=stream, backward=True)
    except av.error.FFmpegError as error:
        log.debug("Seek failed in %s (%s); reading on", container.name, error)


def shrink(
    reformatter: VideoReformatter, frame: Any, width: int, height: int
) -> npt.NDArray[np.uint8]:
    """The frame at the analysis size as yuv420p planes; PQ (HDR10) luma mapped
    to SDR as the render shows it, or its exposure would read dim."""
    small = reformatter.reformat(frame, width, height, "yuv420p", interpolation="AREA")
    planes = np.asarray(small.to_ndarray(), dtype=np.uint8)
    if frame.color_trc == PQ_TRANSFER:
        planes[:height] = _PQ_TO_SDR_LUMA[planes[:height]]
    return planes


def _pq_to_sdr_luma() -> npt.NDArray[np.uint8]:
    """8-bit limited-range luma: PQ code value to BT.709 code value, white at
    HDR_REFERENCE_WHITE_NITS. Luma only: enough for exposure and sharpness."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    code = np.clip((np.arange(256) - LUMA_BLACK) / (LUMA_WHITE - LUMA_BLACK), 0, 1)
    power = code ** (1 / m2)
    nits = 10000 * (np.maximum(power - c1, 0) / (c2 - c3 * power)) ** (1 / m1)
    relative = np.clip(nits / HDR_REFERENCE_WHITE_NITS, 0, 1)
    sdr = LUMA_BLACK + (LUMA_WHITE - LUMA_BLACK) * relative ** (1 / 2.4)
    return np.rint(sdr).astype(np.uint8)


_PQ_TO_SDR_LUMA = _pq_to_sdr_luma()


def frame_time_sec(frame: Any, info: MediaInfo, features: FrameFeatures) -> float:
    """Media time from the frame's timestamp, never from counting frames (VFR)."""
    if not features.times_sec:
        return max(0.0, float(frame.time or 0.0) - info.start_sec)
    previous_sec = features.times_sec[-1]
    if frame.time is None:
        return previous_sec + 1 / float(info.fps_fraction)
    # A damaged file may repeat or reverse timestamps: keep time from going back.
    return max(previous_sec, float(frame.time) - info.start_sec)


def check_decoded(info: MediaInfo, features: FrameFeatures) -> None:
    """Warn when only part of the clip decoded.

    Raises:
        MediaError: no frame of the clip decoded.
    """
    name = Path(info.path).name
    if not features.times_sec:
        damaged = features.damaged_packets
        cause = features.stopped_by or (
            f"{damaged} damaged packet{'s' * (damaged != 1)}"
            if damaged
            else "no frames"
        )
        raise MediaError(
            f"{name}: no picture could be decoded for analysis ({cause}). The file "
            "may be damaged or truncated; copy it again, or remove it from the clips.",
            info.path,
        )
    if features.damaged_packets or features.stopped_by:
        log.warning(
            "%s decoded only in part (%d damaged packets skipped%s); analysing the "
            "%d frames that decoded",
            name,
            features.damaged_packets,
            f", stopped by: {features.stopped_by}" if features.stopped_by else "",
            len(features.times_sec),
        )


def usable_duration_sec(
    info: MediaInfo, features: FrameFeatures, keyframes_only: bool
) -> float:
    """The probed length, or less when decoding ended well before it."""
    frame_sec = 1 / float(info.fps_fraction)
    decoded_end_sec = features.times_sec[-1] + frame_sec
    shortfall_sec = info.duration_sec - decoded_end_sec
    if features.stopped_by is None and (keyframes_only or shortfall_sec < 0.5):
        return info.duration_sec
    if shortfall_sec > 0:
        log.warning(
            "%s: frames decode only up to %.2f s of %.2f s; using that much",
            Path(info.path).name,
            decoded_end_sec,
            info.duration_sec,
        )
        return decoded_end_sec
    return info.duration_sec


def analysis_size(info: MediaInfo) -> tuple[int, int]:
    """Width and height of the analysis picture, each a multiple of 8."""
    display_width = info.width * info.sample_aspect[0] / max(1, info.sample_aspect[1])
    aspect = display_width / max(1, info.height)
    if aspect >= 1:
        return ANALYSIS_SIZE_PX, _multiple_of_8(ANALYSIS_SIZE_PX / aspect)
    return _multiple_of_8(ANALYSIS_SIZE_PX * aspect), ANALYSIS_SIZE_PX


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8) * 8)
