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
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff",
}  # fmt: skip

# How long a still picture can be shown: it may fill any shot up to this length.
STILL_DURATION_SEC = 5.0
# A nominal rate for a still; the plan gives it the timeline's own.
STILL_RATE = 25

# Mean frame interval differing from the nominal rate by more than this is VFR.
VFR_TOLERANCE = 0.01
VFR_SAMPLE_PACKETS = 120
# The end of a stream is looked for in the packets of this last stretch of the file.
END_SEARCH_SEC = 10.0


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
    # A still picture (PNG, JPEG...): shown for up to duration_sec, pushed in.
    still: bool = False

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
    return scan_inputs(paths)[0]


def scan_inputs(paths: list[str]) -> tuple[list[Path], list[Path]]:
    """The clips in paths (files as given, media files inside folders, sorted, each
    file once), and the videos inside folders left out as earlier renders of ours
    (a timeline of the same name beside them that we wrote). A clip of the user's
    at the output's path is kept, so that the job refuses to overwrite it."""
    found: list[Path] = []
    renders: list[Path] = []
    for name in paths:
        path = Path(name).expanduser()
        if not path.is_dir():
            found.append(path)
            continue
        for child in sorted(path.rglob("*")):
            # Hidden files and folders hold thumbnails and previews, not shots.
            if (
                not child.is_file()
                or child.suffix.lower() not in MEDIA_EXTENSIONS
                or any(part.startswith(".") for part in child.relative_to(path).parts)
            ):
                continue
            if _is_our_render(child):
                renders.append(child)
            else:
                found.append(child)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path.absolute())
    return list(unique.values()), renders


def _is_our_render(video: Path) -> bool:
    """Whether a video has beside it a timeline of the same name that Montage AI
    wrote (its own metadata inside), as every render leaves."""
    timeline = video.with_suffix(".otio")
    try:
        return timeline.is_file() and '"montage_ai"' in timeline.read_text(
            encoding="utf-8", errors="replace"
        )
    except OSError:
        return False


def probe_media(path: str | Path) -> MediaInfo:
    """Probe one video file or still picture.

    Raises:
        MediaError: the file is missing, empty, not media, or has no video.
    """
    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.EOFError) as error:
        # EOF: the file stops inside its header (a recording cut off at once).
        raise _unreadable_error(path) from error
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(
            f"{path.name}: could not be opened ({_reason(error)}). Check that the file is "
            "readable and plays in a video player.",
            str(path),
        ) from error
    with container:
        return _probe_container(path, container)


def has_moving_picture(path: str | Path) -> bool:
    """Whether a file holds video (not cover art, not one still): a song chosen from
    a video uses its sound, which the user should hear about."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if _is_still_image(container):
                return False
            return _pick_video_stream(container) is not None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return False


def _unreadable_error(path: Path) -> MediaError:
    """Why FFmpeg found no media in a file: damaged video, or not media at all."""
    kind = _container_signature(path)
    if kind is not None:
        return MediaError(
            f"{path.name}: starts like {kind} file but cannot be read: it is "
            "incomplete or damaged (a copy or download that stopped early, or a "
            "recording cut off). Copy it again from the camera or phone, or remove "
            "it from the clips.",
            str(path),
        )
    return MediaError(
        f"{path.name}: is not a video or a picture (its content is some other kind "
        "of file, whatever its name says). Remove it from the clips.",
        str(path),
    )


def _container_signature(path: Path) -> str | None:
    """The kind of video file the first bytes announce, if any."""
    try:
        with path.open("rb") as stream:
            head = stream.read(192)
    except OSError:
        return None
    signatures = [
        (head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"), "an MP4 or MOV"),
        (head.startswith(b"\x1a\x45\xdf\xa3"), "a Matroska or WebM"),
        (head.startswith(b"RIFF") and head[8:12] == b"AVI ", "an AVI"),
        (head.startswith(b"\x00\x00\x01\xba"), "an MPEG"),
        (head[:1] == b"G" and head[188:189] == b"G", "an MPEG-TS"),
        (head.startswith(b"\x30\x26\xb2\x75"), "a WMV"),
        (head.startswith(b"FLV"), "an FLV"),
        (head.startswith(b"OggS"), "an Ogg"),
    ]
    return next((kind for matched, kind in signatures if matched), None)


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
        return _probe_still(path, container)
    stream = _pick_video_stream(container)
    if stream is None:
        raise _no_picture_error(path, container)
    codec_context = stream.codec_context
    first_frame = _first_frame(path, container, stream)
    start_sec = float(first_frame.time or 0.0)
    fps = _nominal_rate(stream)
    duration_sec = _duration_sec(container, stream, start_sec, fps)
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
    """Image demuxers (PNG, JPEG, WebP... by name or content) hold single pictures;
    so does a GIF of one frame (an animated GIF is a video)."""
    name = container.format.name
    if name == "gif":
        return all(stream.frames <= 1 for stream in container.streams.video)
    return name == "image2" or name.endswith("_pipe")


def _probe_still(path: Path, container: Any) -> MediaInfo:
    """A still picture as a source STILL_DURATION_SEC long, at the plan's rate."""
    stream = container.streams.video[0]
    frame = _first_frame(path, container, stream)
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return MediaInfo(
        path=str(path.absolute()),
        container=container.format.name,
        duration_sec=STILL_DURATION_SEC,
        start_sec=0.0,
        video_stream=stream.index,
        codec=stream.codec_context.name,
        width=frame.width,
        height=frame.height,
        sample_aspect=(sar.numerator, sar.denominator) if sar else (1, 1),
        # JPEG's EXIF orientation arrives as the frame's display rotation.
        rotation=_rotation(frame),
        fps=(STILL_RATE, 1),
        variable_frame_rate=False,
        pixel_format=frame.format.name,
        bit_depth=_bit_depth(frame.format.name),
        creation_time=container.metadata.get("creation_time"),
        still=True,
    )


def _no_picture_error(path: Path, container: Any) -> MediaError:
    if container.streams.audio:
        return MediaError(
            f"{path.name}: is an audio file (it holds sound but no picture). Choose "
            "it as the song, or remove it from the clips.",
            str(path),
        )
    return MediaError(
        f"{path.name}: holds no picture (no video stream). Remove it from the clips.",
        str(path),
    )


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


def _duration_sec(
    container: Any, stream: Any, start_sec: float, fps: Fraction
) -> float:
    """From the first frame to the end of the last one.

    Only MP4/MOV tracks and AVI streams state their own length. Matroska gives every
    stream the file's length (audio may run on after the picture) and a browser's
    recording states none: there the length is read from the last packets.
    """
    own_length = container.format.name.startswith(("mov", "avi"))
    if own_length and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    end_sec = _end_from_tail_sec(container, stream, fps)
    if end_sec is None:
        container.seek(0)
        end_sec = _last_packet_end_sec(container, stream, fps)
    return (end_sec or start_sec) - start_sec


def _end_from_tail_sec(container: Any, stream: Any, fps: Fraction) -> float | None:
    """The picture's end, from packets in the last END_SEARCH_SEC of the file."""
    if not container.duration:
        return None
    file_end_sec = ((container.start_time or 0) + container.duration) / av.time_base
    target_sec = max(0.0, file_end_sec - END_SEARCH_SEC)
    try:
        container.seek(int(target_sec / stream.time_base), stream=stream, backward=True)
    except av.error.FFmpegError as error:
        log.debug("Could not seek to the end of %s: %s", container.name, error)
        return None
    return _last_packet_end_sec(container, stream, fps)


def _last_packet_end_sec(container: Any, stream: Any, fps: Fraction) -> float | None:
    """The latest packet end from here on (a frame interval when none is stated);
    a damaged packet ends the search, as it ends playback."""
    end_pts: Fraction | None = None
    frame_pts = 1 / (fps * stream.time_base)
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            packet_end = packet.pts + (packet.duration or frame_pts)
            end_pts = packet_end if end_pts is None else max(end_pts, packet_end)
    except av.error.FFmpegError as error:
        log.debug("Packets of %s stop early: %s", container.name, error)
    return None if end_pts is None else float(end_pts * stream.time_base)


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
