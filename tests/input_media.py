"""Test inputs of every kind people drop among their clips: video in any codec,
container, pixel shape or HDR coding; stills, GIFs, long or damaged copies, and
files that are not media."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from tests.audio_media import add_audio_stream, mux_samples, tone
from tests.media import (
    VIDEO_TIME_BASE,
    ClipTruth,
    check_clip_args,
    draw_marker_frame,
    encoder_options,
    frame_times_sec,
    write_marker_clip,
)

# Files that are not media.


def write_text_as_video(path: str | Path) -> None:
    """A text file named like a video, for the not-media error paths."""
    Path(path).write_text("This is a text file, not a video.\n", encoding="utf-8")


def write_empty(path: str | Path) -> None:
    """A zero-byte file."""
    Path(path).write_bytes(b"")


# Video of every kind people drop: codecs, containers, pixel shapes, HDR.

# Codecs whose default bit rate (200 kb/s) blurs the marker away.
_BIT_RATE = 4_000_000
_CODEC_OPTIONS = {
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "prores_ks": {"profile": "standard"},
}
# Codecs and containers that hold a constant rate only: time base 1/fps.
_CONSTANT_RATE_CODECS = {"mpeg2video", "mpeg4", "mjpeg"}
_CONSTANT_RATE_SUFFIXES = {".avi", ".mpg", ".mpeg"}
_MUXER_NAMES = {".webm": "webm", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}
_CLIP_AUDIO_CODECS = {
    ".webm": ("libopus", "flt"),
    ".avi": ("pcm_s16le", "s16"),
    ".mpg": ("mp2", "s16"),
    ".mpeg": ("mp2", "s16"),
}

# SMPTE ST 2084 (PQ) constants; SDR white sits at 203 cd/m2 (ITU-R BT.2408).
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_PQ_PEAK_NITS = 10000.0
HDR_WHITE_NITS = 203.0
# ARIB STD-B67 (HLG) constants; SDR white is scene light 0.2647, signal 75%.
_HLG_A, _HLG_B, _HLG_C = 0.17883277, 0.28466892, 0.55991073
_HLG_WHITE_SCENE = 0.2647
_BT709_TO_BT2020 = np.array(
    [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
)
_BT2020_KR, _BT2020_KB = 0.2627, 0.0593
# FFmpeg's enum values: BT.2020 primaries and non-constant matrix; PQ, HLG.
_HDR_TRANSFERS = {"pq": 16, "hlg": 18}


def write_marker_video(
    path: str | Path,
    *,
    frames: int,
    fps: int | Fraction = 25,
    display_size: tuple[int, int] = (320, 180),
    sample_aspect: tuple[int, int] = (1, 1),
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times_sec: Sequence[float] | None = None,
    start_sec: float = 0.0,
    gop: int | None = None,
    audio: bool = False,
    full_range: bool = False,
    hdr: str = "",
    streamed: bool = False,
) -> ClipTruth:
    """Write a marker clip in any codec, container, pixel shape or colour coding.

    display_size is the picture as a player shows it. The stored picture is
    pre-rotated (see write_marker_clip) and squeezed by sample_aspect, as
    anamorphic cameras and PAL DVDs store it. times_sec sets each frame's time
    from start_sec (a screen recording holds still pictures for long). full_range
    stores 0..255 levels, tagged so. hdr ("pq" as HDR10, "hlg" as iPhones)
    stores BT.2020 10-bit code values (yuv420p10le) of that transfer, SDR white
    at its reference level (203 cd/m2, 75% HLG), tagged so.
    streamed writes through a pipe that cannot seek back, as a browser records:
    the header then holds no duration and the file no index (cues).
    """
    check_clip_args(frames, rotation, ())
    suffix = Path(path).suffix.lower()
    time_base = _marker_video_time_base(codec, suffix, fps)
    if times_sec is None:
        times_sec = frame_times_sec(frames, fps, False, start_sec, time_base)
    else:
        times_sec = [round((start_sec + t) / time_base) * float(time_base)
                     for t in times_sec[:frames]]  # fmt: skip
    turned = rotation in (90, 270)
    upright_w, upright_h = display_size
    shown_w, shown_h = (upright_h, upright_w) if turned else display_size
    stored = (round(shown_w * sample_aspect[1] / sample_aspect[0]), shown_h)
    truth = ClipTruth(
        path=Path(path), fps=fps, frames=len(times_sec), times_sec=list(times_sec),
        cuts=[], rotation=rotation, size=stored, display_size=display_size,
        codec=codec, has_audio=audio, gop=gop,
    )  # fmt: skip

    coding = _VideoCoding(pix_fmt, time_base, sample_aspect, full_range, hdr)
    if streamed:
        with Path(path).open("wb") as file:
            _mux_marker_video(_UnseekablePipe(file), truth, coding)
    else:
        _mux_marker_video(str(path), truth, coding)
    return truth


@dataclass(frozen=True)
class _VideoCoding:
    """How write_marker_video stores pictures."""

    pix_fmt: str
    time_base: Fraction
    sample_aspect: tuple[int, int]
    full_range: bool
    hdr: str


def _mux_marker_video(target: Any, truth: ClipTruth, coding: _VideoCoding) -> None:
    suffix = truth.path.suffix.lower()
    with av.open(target, "w", format=_MUXER_NAMES.get(suffix)) as container:
        video = _add_marker_video_stream(container, truth, coding)
        audio_codec, sample_format = _CLIP_AUDIO_CODECS.get(suffix, ("aac", "fltp"))
        tone_stream = (
            add_audio_stream(container, audio_codec, 48000, 2)
            if truth.has_audio
            else None
        )
        for index, time_sec in enumerate(truth.times_sec):
            frame = _stored_frame(truth, index, coding)
            frame.pts = round(time_sec / coding.time_base)
            frame.time_base = coding.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if tone_stream is not None:
            tone_samples = tone(round(truth.end_sec * 48000), 48000, 440.0, 0.1)
            mux_samples(
                container, tone_stream, np.tile(tone_samples, (2, 1)), sample_format
            )


class _UnseekablePipe:
    """A file object with write and nothing else: the muxer cannot seek back."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: bytes) -> int:
        return int(self._file.write(data))


def _marker_video_time_base(codec: str, suffix: str, fps: int | Fraction) -> Fraction:
    if codec in _CONSTANT_RATE_CODECS or suffix in _CONSTANT_RATE_SUFFIXES:
        return 1 / Fraction(fps)
    return VIDEO_TIME_BASE


def _add_marker_video_stream(
    container: av.container.OutputContainer,
    truth: ClipTruth,
    coding: _VideoCoding,
) -> av.video.stream.VideoStream:
    stream = container.add_stream(truth.codec, rate=truth.fps)
    stream.width, stream.height = truth.size
    stream.pix_fmt = coding.pix_fmt
    context = stream.codec_context
    context.time_base = coding.time_base
    context.sample_aspect_ratio = Fraction(*coding.sample_aspect)
    if coding.full_range:
        context.color_range = 2
    if coding.hdr:
        context.color_range = 1
        context.color_primaries = context.colorspace = 9
        context.color_trc = _HDR_TRANSFERS[coding.hdr]
    if truth.gop is not None:
        context.gop_size = truth.gop
    if truth.codec not in ("libx264", "libx265"):
        context.bit_rate = _BIT_RATE
    stream.set_display_rotation(truth.rotation)
    stream.options = encoder_options(truth.codec, truth.gop) | _CODEC_OPTIONS.get(
        truth.codec, {}
    )
    return stream


def _stored_frame(truth: ClipTruth, index: int, coding: _VideoCoding) -> av.VideoFrame:
    """One frame as the file stores it: pre-rotated, squeezed, in pix_fmt."""
    upright = draw_marker_frame(index, size=truth.display_size)
    turned = np.ascontiguousarray(np.rot90(upright, k=-truth.rotation // 90))
    rgb = av.VideoFrame.from_ndarray(turned, format="rgb24")
    width, height = truth.size
    if coding.hdr:
        squeezed = rgb.reformat(width=width, height=height, interpolation="AREA")
        frame = _hdr_frame(squeezed.to_ndarray(), coding.hdr)
        frame.color_range = 1
        frame.color_primaries = frame.colorspace = 9
        frame.color_trc = _HDR_TRANSFERS[coding.hdr]
        return frame
    frame = rgb.reformat(
        width=width,
        height=height,
        format=coding.pix_fmt,
        interpolation="AREA",
        dst_color_range="JPEG" if coding.full_range else None,
    )
    if coding.full_range:
        frame.color_range = 2
    return frame


def _hdr_frame(rgb: np.ndarray, transfer: str) -> av.VideoFrame:
    """BT.709 RGB24 as BT.2020 yuv420p10le (limited range) in a PQ or HLG signal."""
    linear = (rgb.astype(np.float64) / 255) ** 2.4 @ _BT709_TO_BT2020.T
    signal = _pq_signal(linear) if transfer == "pq" else _hlg_signal(linear)
    red, green, blue = signal[..., 0], signal[..., 1], signal[..., 2]
    luma = _BT2020_KR * red + (1 - _BT2020_KR - _BT2020_KB) * green + _BT2020_KB * blue
    cb = (blue - luma) / (2 * (1 - _BT2020_KB))
    cr = (red - luma) / (2 * (1 - _BT2020_KR))
    width = luma.shape[1]
    planes = [
        64 + 876 * luma,
        512 + 896 * _pool_chroma(cb),
        512 + 896 * _pool_chroma(cr),
    ]
    stacked = np.concatenate(
        [planes[0], planes[1].reshape(-1, width), planes[2].reshape(-1, width)]
    )
    return av.VideoFrame.from_ndarray(
        np.rint(stacked).astype(np.uint16), format="yuv420p10le"
    )


def _pq_signal(linear: np.ndarray) -> np.ndarray:
    level = np.clip(linear * HDR_WHITE_NITS / _PQ_PEAK_NITS, 0, 1) ** _PQ_M1
    return np.asarray(((_PQ_C1 + _PQ_C2 * level) / (1 + _PQ_C3 * level)) ** _PQ_M2)


def _hlg_signal(linear: np.ndarray) -> np.ndarray:
    scene = np.clip(linear * _HLG_WHITE_SCENE, 0, 1)
    high = _HLG_A * np.log(np.maximum(12 * scene - _HLG_B, 1e-12)) + _HLG_C
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), high)


def _pool_chroma(plane: np.ndarray) -> np.ndarray:
    """Means of 2x2 blocks (even sizes): 4:2:0 chroma."""
    return (
        plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]
    ) / 4


# Stills, GIFs and damaged copies: what else people drop among their clips.

# EXIF orientation tag values for a picture stored turned by `rotation` (degrees
# counter-clockwise a viewer turns it by to show it upright, as in write_marker_clip).
_EXIF_ORIENTATION = {0: 1, 90: 8, 180: 3, 270: 6}


def write_still(
    path: str | Path,
    *,
    size: tuple[int, int] = (480, 360),
    index: int = 0,
    rotation: int = 0,
) -> np.ndarray:
    """Write a PNG or JPEG (by suffix) of draw_marker_frame(index) at size.

    size is the upright (width, height). With rotation (JPEG only), the pixels are
    stored turned and an EXIF orientation tag says how to show them upright, as
    phones do. Returns the upright RGB picture.
    """
    upright = draw_marker_frame(index, size=size)
    stored = np.ascontiguousarray(np.rot90(upright, k=-rotation // 90))
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        data = _encode_picture(stored, "png", "rgb24")
    elif suffix in (".jpg", ".jpeg"):
        data = _with_exif_orientation(
            _encode_picture(stored, "mjpeg", "yuvj420p"), _EXIF_ORIENTATION[rotation]
        )
    else:
        raise ValueError(f"{Path(path).name}: a still must be .png, .jpg or .jpeg")
    if rotation and suffix == ".png":
        raise ValueError("PNG stills hold no orientation here; use a JPEG")
    Path(path).write_bytes(data)
    return upright


def write_marker_gif(
    path: str | Path, *, frames: int, fps: int = 10, size: tuple[int, int] = (160, 90)
) -> ClipTruth:
    """An animated GIF whose every frame shows its index as a marker (3-3-2 colour).

    GIF delays count in hundredths of a second: fps must divide 100.
    """
    if 100 % fps:
        raise ValueError(f"GIF frame delays are in 1/100 s: fps {fps} must divide 100")
    time_base = Fraction(1, 100)
    with av.open(str(path), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "rgb8"
        stream.codec_context.time_base = time_base
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(
                draw_marker_frame(index, size=size), format="rgb24"
            ).reformat(format="rgb8")
            frame.pts = index * 100 // fps
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return ClipTruth(
        path=Path(path), fps=fps, frames=frames,
        times_sec=[index / fps for index in range(frames)], cuts=[], rotation=0,
        size=size, display_size=size, codec="gif", has_audio=False, gop=None,
    )  # fmt: skip


def write_faststart_copy(source: str | Path, target: str | Path) -> None:
    """Copy an MP4's video stream into one with its index (moov) first, as
    cameras and web exports write it."""
    options = {"movflags": "+faststart"}
    reading = av.open(str(source))
    with reading, av.open(str(target), "w", format="mp4", options=options) as writing:
        video = reading.streams.video[0]
        copy = writing.add_stream_from_template(video)
        for packet in reading.demux(video):
            if packet.dts is None:
                continue
            packet.stream = copy
            writing.mux(packet)


def write_truncated_copy(
    source: str | Path, target: str | Path, *, keep_bytes: int
) -> None:
    """The first keep_bytes of a file: a copy or download that stopped early."""
    with open(source, "rb") as reading:
        Path(target).write_bytes(reading.read(keep_bytes))


def _encode_picture(rgb: np.ndarray, codec: str, pix_fmt: str) -> bytes:
    context = av.CodecContext.create(codec, "w")
    context.width, context.height = rgb.shape[1], rgb.shape[0]
    context.pix_fmt = pix_fmt
    context.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    frame.pts = 0
    packets = [*context.encode(frame), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG with an EXIF segment holding one tag: its orientation (0x0112)."""
    # Big-endian TIFF header, then one IFD: one entry (tag, SHORT, count 1, the
    # value padded to 4 bytes), then no next IFD.
    entry = _big_endian((0x0112, 2), (3, 2), (1, 4), (orientation, 2), (0, 2))
    tiff = b"MM" + _big_endian((42, 2), (8, 4), (1, 2)) + entry + bytes(4)
    body = b"Exif\0\0" + tiff
    segment = b"\xff\xe1" + _big_endian((len(body) + 2, 2)) + body
    return jpeg[:2] + segment + jpeg[2:]


def _big_endian(*fields: tuple[int, int]) -> bytes:
    """(value, byte count) pairs as big-endian bytes, one after another."""
    return b"".join(value.to_bytes(size, "big") for value, size in fields)


def write_long_marker_clip(
    path: str | Path,
    *,
    duration_sec: float,
    fps: int = 1,
    period_frames: int = 60,
    size: tuple[int, int] = (160, 90),
) -> ClipTruth:
    """A long all-intra clip, cheaply: period_frames marker frames (every one a
    keyframe, as in ProRes, MJPEG or a short-GOP camera) encoded once, then
    copied packet by packet with later timestamps until duration_sec is filled.

    Frame n shows marker n % period_frames; ClipTruth.frames counts every frame.
    """
    period = Path(path).with_suffix(".period" + Path(path).suffix)
    write_marker_clip(period, frames=period_frames, fps=fps, size=size, gop=1)
    copies = max(1, round(duration_sec * fps / period_frames))
    write_repeated_copy(period, path, copies=copies, period_sec=period_frames / fps)
    period.unlink()
    frames = copies * period_frames
    return ClipTruth(
        path=Path(path), fps=fps, frames=frames,
        times_sec=[index / fps for index in range(frames)], cuts=[], rotation=0,
        size=size, display_size=size, codec="libx264", has_audio=False, gop=1,
    )  # fmt: skip


def write_repeated_copy(
    source: str | Path, target: str | Path, *, copies: int, period_sec: float
) -> None:
    """The video stream of source, copied packet by packet copies times, each copy
    period_sec after the one before: a long clip without encoding it.

    The copies keep the source's GOPs; period_sec is the source's length.
    """
    with av.open(str(source)) as reading, av.open(str(target), "w") as writing:
        stream = reading.streams.video[0]
        copy = writing.add_stream_from_template(stream)
        packets = [packet for packet in reading.demux(stream) if packet.size]
        period_pts = round(period_sec / stream.time_base)
        for number in range(copies):
            for packet in packets:
                writing.mux(_shifted_packet(packet, number * period_pts, copy))


def _shifted_packet(packet: av.Packet, offset_pts: int, stream: Any) -> av.Packet:
    """A copy of packet, offset_pts later: a muxed packet gives its data away."""
    shifted = av.Packet(bytes(packet))
    shifted.pts = None if packet.pts is None else packet.pts + offset_pts
    shifted.dts = None if packet.dts is None else packet.dts + offset_pts
    shifted.duration = packet.duration
    shifted.time_base = packet.time_base
    shifted.is_keyframe = packet.is_keyframe
    shifted.stream = stream
    return shifted
