"""Probe media with PyAV: what a file holds and whether the montage can use it."""

from __future__ import annotations

import itertools
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from engine.errors import MediaError

log = logging.getLogger(__name__)

# Extensions looked at when a folder is given; single files are always probed.
MEDIA_EXTENSIONS = {
    ".3gp", ".avi", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg",
    ".mts", ".mxf", ".ogv", ".ts", ".webm", ".wmv", ".gif", ".flv", ".dv",
}  # fmt: skip

# Mean frame interval differing from the nominal rate by more than this is VFR.
VFR_TOLERANCE = 0.01
VFR_SAMPLE_PACKETS = 120


@dataclass
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int


@dataclass
class MediaInfo:
    """What the engine needs to know of one video source."""

    path: str
    container: str
    duration_sec: float
    start_sec: float
    video_stream: int
    codec: str
    width: int
    height: int
    sample_aspect: tuple[int, int]
    rotation: int
    fps: tuple[int, int]
    variable_frame_rate: bool
    pixel_format: str
    bit_depth: int
    audio_streams: list[AudioStreamInfo] = field(default_factory=list)
    creation_time: str | None = None
    # The start timecode a camera or editor wrote ("01:00:10:05"), if any.
    timecode: str | None = None

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(*self.fps)

    @property
    def display_size(self) -> tuple[float, float]:
        """Width and height as shown: sample aspect applied, then rotation."""
        width = self.width * self.sample_aspect[0] / self.sample_aspect[1]
        if self.rotation % 180:
            return float(self.height), width
        return width, float(self.height)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaInfo:
        values = dict(data)
        values["audio_streams"] = [
            AudioStreamInfo(**stream) for stream in values.get("audio_streams", [])
        ]
        values["sample_aspect"] = tuple(values["sample_aspect"])
        values["fps"] = tuple(values["fps"])
        return cls(**values)


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given, and the media files inside given folders, sorted, no repeats."""
    found: list[Path] = []
    for name in paths:
        path = Path(name).expanduser()
        if path.is_dir():
            found.extend(
                child
                for child in sorted(path.rglob("*"))
                if child.is_file()
                and child.suffix.lower() in MEDIA_EXTENSIONS
                and not child.name.startswith(".")
            )
        else:
            found.append(path)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.absolute(), None)
    return list(unique)


def probe_media(path: str | Path) -> MediaInfo:
    """Probe one video file.

    Raises:
        MediaError: the file is missing, empty, not media, or has no video.
    """
    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as error:
        raise MediaError(
            f"{path.name}: not a video FFmpeg can read (it may be another kind of "
            "file with a video extension, or damaged). Check that it plays, or "
            "remove it from the clips.",
            str(path),
        ) from error
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(
            f"{path.name}: could not be opened ({_reason(error)}). Check that the file is "
            "readable and plays in a video player.",
            str(path),
        ) from error
    with container:
        return _probe_container(path, container)


def _reason(error: Exception) -> str:
    """An FFmpeg or OS error in words, without its errno."""
    return str(getattr(error, "strerror", None) or error)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(
            f"{path}: the file is not there (moved, deleted, or on a drive that "
            "is not connected). Reconnect it or remove it from the clips.",
            str(path),
        )
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file.", str(path))
    if path.stat().st_size == 0:
        raise MediaError(
            f"{path.name}: the file is empty (0 bytes); it may not have finished "
            "copying. Copy it again from the camera or phone.",
            str(path),
        )


def _probe_container(path: Path, container: Any) -> MediaInfo:
    if _is_still_image(container):
        raise MediaError(
            f"{path.name}: is a still picture, not a video; still pictures are not "
            "used in montages yet. Remove it from the clips, or make a short video "
            "of it.",
            str(path),
        )  # TODO(#5) use a still as a shot with a slow push-in.
    stream = _pick_video_stream(container)
    if stream is None:
        raise MediaError(
            f"{path.name}: has no video picture (an audio file or a document?). "
            "Use it as the song, or remove it from the clips.",
            str(path),
        )
    codec_context = stream.codec_context
    first_frame = _first_frame(path, container, stream)
    start_sec = float(first_frame.time or 0.0)
    fps = _nominal_rate(stream)
    duration_sec = _duration_sec(container, stream, start_sec)
    if duration_sec <= 0:
        raise MediaError(
            f"{path.name}: has no playable length (a single picture or a broken "
            "header). Check that it plays, or remove it from the clips.",
            str(path),
        )
    pixel_format = first_frame.format.name
    sar = stream.sample_aspect_ratio or codec_context.sample_aspect_ratio
    sample_aspect = (sar.numerator, sar.denominator) if sar else (1, 1)
    info = MediaInfo(
        path=str(path.absolute()),
        container=container.format.name,
        duration_sec=duration_sec,
        start_sec=start_sec,
        video_stream=stream.index,
        codec=codec_context.name,
        width=first_frame.width,
        height=first_frame.height,
        sample_aspect=sample_aspect,
        rotation=_rotation(first_frame),
        fps=(fps.numerator, fps.denominator),
        variable_frame_rate=False,
        pixel_format=pixel_format,
        bit_depth=_bit_depth(pixel_format),
        audio_streams=[_audio_info(s) for s in container.streams.audio],
        creation_time=container.metadata.get("creation_time"),
        timecode=_start_timecode(container, stream),
    )
    info.variable_frame_rate = _is_variable_rate(container, stream, fps)
    return info


def _start_timecode(container: Any, stream: Any) -> str | None:
    """The source's start timecode: from the video stream, a tmcd track or the file."""
    candidates = [stream, *container.streams.data, container]
    for holder in candidates:
        value = holder.metadata.get("timecode")
        if isinstance(value, str) and re.fullmatch(
            r"\d{2}:\d{2}:\d{2}[:;.]\d{2}", value
        ):
            return value
    return None


def _is_still_image(container: Any) -> bool:
    """Image demuxers (PNG, JPEG, WebP... by name or content) hold single pictures."""
    name = container.format.name
    return name == "image2" or name.endswith("_pipe")


def _pick_video_stream(container: Any) -> Any:
    """The first video stream that is a picture sequence, not attached cover art."""
    for stream in container.streams.video:
        disposition = getattr(stream, "disposition", 0)
        if disposition & av.stream.Disposition.attached_pic:
            continue
        return stream
    return None


def _first_frame(path: Path, container: Any, stream: Any) -> Any:
    stream.thread_type = "AUTO"
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.error.InvalidDataError:
                continue
    except av.error.FFmpegError as error:
        raise MediaError(
            f"{path.name}: the video could not be decoded ({_reason(error)}). The file may "
            "be damaged or use a codec this build lacks; convert it or remove it.",
            str(path),
        ) from error
    raise MediaError(
        f"{path.name}: no picture could be decoded (truncated or damaged). "
        "Copy it again, or remove it from the clips.",
        str(path),
    )


def _nominal_rate(stream: Any) -> Fraction:
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate and 1 <= float(rate) <= 1000:
            return Fraction(rate.numerator, rate.denominator).limit_denominator(1001)
    return Fraction(25)


def _duration_sec(container: Any, stream: Any, start_sec: float) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        container_start = (container.start_time or 0) / av.time_base
        return container.duration / av.time_base - (start_sec - container_start)
    return _duration_from_packets(container, stream, start_sec)


def _duration_from_packets(container: Any, stream: Any, start_sec: float) -> float:
    """Length from packet timestamps, for headers without one (browser WebM)."""
    container.seek(0)
    end_sec = start_sec
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        packet_end = packet.pts + (packet.duration or 0)
        end_sec = max(end_sec, float(packet_end * stream.time_base))
    return end_sec - start_sec


def _is_variable_rate(container: Any, stream: Any, fps: Fraction) -> bool:
    """Whether frame intervals in the first packets stray from the nominal rate."""
    try:
        container.seek(0)
        times = []
        for packet in container.demux(stream):
            if packet.pts is not None:
                times.append(float(packet.pts * stream.time_base))
            if len(times) >= VFR_SAMPLE_PACKETS:
                break
    except av.error.FFmpegError:
        return False
    # Packets arrive in decode order: the last few may leave holes when sorted.
    times = sorted(times)[: max(0, len(times) - 8)]
    intervals = [b - a for a, b in itertools.pairwise(times) if b > a]
    if len(intervals) < 2:
        return False
    nominal = 1 / float(fps)
    return any(abs(step - nominal) > nominal * 0.5 for step in intervals) or (
        abs(sum(intervals) / len(intervals) - nominal) > nominal * VFR_TOLERANCE
    )


def _rotation(frame: Any) -> int:
    """Counterclockwise display rotation in degrees: 0, 90, 180 or 270."""
    try:
        degrees = round(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return (round(degrees / 90) * 90) % 360


def _bit_depth(pixel_format: str) -> int:
    try:
        return int(av.VideoFormat(pixel_format).components[0].bits)
    except (ValueError, IndexError):
        return 8


def _audio_info(stream: Any) -> AudioStreamInfo:
    context = stream.codec_context
    return AudioStreamInfo(
        index=stream.index,
        codec=context.name,
        sample_rate=int(context.sample_rate or 0),
        channels=int(getattr(context, "channels", 0) or 0),
    )


def file_size(path: str | Path) -> int:
    return os.stat(path).st_size
