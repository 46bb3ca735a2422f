"""Frames from a source by timestamp, shaped for the output by a libavfilter graph.

A SourceReader seeks to the keyframe before a time and decodes forward, handing out
the frame on screen at each requested time (variable frame rate safe). A
FrameTransform builds the graph that rotates, scales, crops or pads and grades, all
in C on YUV, with no conversion to RGB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from types import GeneratorType
from typing import Any, Protocol

import av

from engine.errors import MediaError
from engine.looks import cleanup_filters
from engine.luts import lut_filter
from engine.probe import _pick_video_stream

log = logging.getLogger(__name__)

# Seek instead of decoding forward when the next request is this far ahead.
SEEK_AHEAD_SEC = 1.0
# Times closer than this count as a tie (float rounding of timestamps).
TIE_SEC = 1e-6
# A seek that lands after the target (MPEG-TS, open GOPs) is retried this much earlier.
SEEK_MARGIN_SEC = 1.0
# HDR transfers (FFmpeg's enum values): PQ (HDR10, Dolby Vision base) and HLG.
HDR_TRANSFERS = {16, 18}
# Primaries wider than BT.709's: BT.2020, as HDR and some 10-bit video tag.
WIDE_PRIMARIES = {9}
# swscale's colour management (FFmpeg 8) tone-maps and gamut-maps to these.
TO_BT709 = "out_transfer=bt709:out_primaries=bt709:out_color_matrix=bt709"


class FrameTransform:
    """Output shaping shared by every source of one render."""

    def __init__(
        self, width: int, height: int, fit: str, grade: dict[str, Any], fps: Fraction
    ) -> None:
        self.width = width
        self.height = height
        self.fit = fit
        self.grade = grade
        self.fps = fps
        # Configuring a graph costs ~0.1 s (lookup tables); its filters keep no
        # state between frames, so one graph serves every clip of the same shape.
        self._graphs: dict[tuple[Any, ...], av.filter.Graph] = {}

    def filters(
        self,
        width: int,
        height: int,
        rotation: int,
        sample_aspect: tuple[int, int],
        to_bt709: bool = False,
        cleanup: tuple[str, ...] = (),
    ) -> list[tuple[str, str]]:
        """The filter chain (name, arguments) for a stored size and orientation.

        to_bt709 tone-maps HDR and maps wide-gamut colour into BT.709 SDR;
        cleanup (engine.looks) denoises or stabilizes, before the grade.
        """
        display_width = width * sample_aspect[0] / sample_aspect[1]
        display_height = float(height)
        turned = rotation % 180 != 0
        if turned:
            display_width, display_height = display_height, display_width
        scaled_width, scaled_height = self._scaled_size(display_width, display_height)
        colour = f":{TO_BT709}" if to_bt709 else ""
        chain: list[tuple[str, str]] = []
        if turned:
            chain.append(
                ("scale", f"{scaled_height}:{scaled_width}:out_range=tv{colour}")
            )
            chain.append(("transpose", "cclock" if rotation == 90 else "clock"))
        else:
            chain.append(
                ("scale", f"{scaled_width}:{scaled_height}:out_range=tv{colour}")
            )
            if rotation == 180:
                chain += [("hflip", ""), ("vflip", "")]
        chain.append(self._frame_filter(scaled_width, scaled_height))
        chain += [("setsar", "1"), ("format", "yuv420p")]
        chain += cleanup_filters(cleanup)
        chain += grade_filters(self.grade)
        return chain

    def _scaled_size(
        self, display_width: float, display_height: float
    ) -> tuple[int, int]:
        pick = max if self.fit == "crop" else min
        factor = pick(self.width / display_width, self.height / display_height)
        width = even(display_width * factor)
        height = even(display_height * factor)
        if self.fit == "crop":
            return max(width, self.width), max(height, self.height)
        return min(width, self.width), min(height, self.height)

    def _frame_filter(self, width: int, height: int) -> tuple[str, str]:
        x, y = abs(width - self.width) // 2, abs(height - self.height) // 2
        if self.fit == "crop":
            return "crop", f"{self.width}:{self.height}:{x}:{y}"
        return "pad", f"{self.width}:{self.height}:{x}:{y}:black"

    def graph_for(
        self,
        frame: av.VideoFrame,
        rotation: int,
        sample_aspect: tuple[int, int],
        time_base: Fraction,
        cleanup: tuple[str, ...] = (),
        graphs: dict[tuple[Any, ...], av.filter.Graph] | None = None,
    ) -> av.filter.Graph:
        """A configured graph for frames of this shape, built once per shape.

        Clean-up filters keep state from frame to frame: a source with clean-up
        passes its own `graphs`, so that no other clip shares them.
        """
        key = (frame.format.name, frame.width, frame.height, rotation, sample_aspect,
               time_base, needs_bt709(frame), cleanup)  # fmt: skip
        graphs = self._graphs if graphs is None else graphs
        graph = graphs.get(key)
        if graph is None:
            graph = graphs[key] = self._build_graph(
                frame, rotation, sample_aspect, time_base, cleanup
            )
        return graph

    def _build_graph(
        self,
        frame: av.VideoFrame,
        rotation: int,
        sample_aspect: tuple[int, int],
        time_base: Fraction,
        cleanup: tuple[str, ...] = (),
    ) -> av.filter.Graph:
        graph = av.filter.Graph()
        node = graph.add_buffer(
            width=frame.width,
            height=frame.height,
            format=frame.format,
            time_base=time_base,
        )
        for name, args in self.filters(
            frame.width, frame.height, rotation, sample_aspect, needs_bt709(frame),
            cleanup,
        ):  # fmt: skip
            filter_node = graph.add(name, args) if args else graph.add(name)
            node.link_to(filter_node)
            node = filter_node
        node.link_to(graph.add("buffersink"))
        graph.configure()
        return graph


def needs_bt709(frame: av.VideoFrame) -> bool:
    """Whether a frame is HDR or wide-gamut: shown as is, it looks dim and grey."""
    return frame.color_trc in HDR_TRANSFERS or frame.color_primaries in WIDE_PRIMARIES


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def grade_filters(grade: dict[str, Any]) -> list[tuple[str, str]]:
    """A colour look as a YUV lookup table (lutyuv), then a 3D LUT (lut3d) if the
    grade names one, plus an optional vignette."""
    contrast = float(grade.get("contrast", 1.0))
    brightness = float(grade.get("brightness", 0.0))
    gamma = float(grade.get("gamma", 1.0))
    saturation = float(grade.get("saturation", 1.0))
    warmth = float(grade.get("warmth", 0.0))
    tint = float(grade.get("tint", 0.0))
    chain: list[tuple[str, str]] = []
    neutral = (contrast, brightness, gamma, saturation, warmth, tint) == (
        1,
        0,
        1,
        1,
        0,
        0,
    )
    if not neutral:
        # Values are limited-range 8-bit: luma 16..235, chroma 16..240 around 128.
        luma = (
            f"clip(16+219*((pow(clip((val-16)/219\\,0\\,1)\\,{1 / gamma:.4f})-0.5)"
            f"*{contrast:.4f}+0.5+{brightness:.4f})\\,16\\,235)"
        )
        u_shift = -14 * warmth + 10 * tint
        v_shift = 14 * warmth + 10 * tint
        u = f"clip(128+(val-128)*{saturation:.4f}+{u_shift:.3f}\\,16\\,240)"
        v = f"clip(128+(val-128)*{saturation:.4f}+{v_shift:.3f}\\,16\\,240)"
        chain.append(("lutyuv", f"y={luma}:u={u}:v={v}"))
    if grade.get("lut"):
        # lut3d works in RGB: back to the encoder's YUV in the same graph.
        chain += [lut_filter(str(grade["lut"])), ("format", "yuv420p")]
    if grade.get("vignette"):
        chain.append(("vignette", "angle=PI/5"))
    return chain


def check_still_there(path: str, kind: str) -> None:
    """Raise MediaError when the source went away after the job was planned."""
    if not Path(path).exists():
        raise MediaError(
            f"{path}: the {kind} is no longer there (moved, deleted or on a drive "
            "that was unplugged). Reconnect it and render again.",
            path,
        )


class CleanStarts:
    """Stream times from which a file with false sync samples decodes whole.

    Some files (cockatoo.mp4's yuv444 H.264) mark frames that are no entry point
    as sync samples, so a seek there decodes garbage and the reader backs off.
    What it learns is a fact of the file, kept for the process (a few files)
    so the next shot from it starts at a known good point.
    """

    def __init__(self, max_files: int = 64) -> None:
        self.max_files = max_files
        self._starts: dict[tuple[str, int, int], list[float]] = {}

    def start_before(self, path: str, time_sec: float) -> float | None:
        """The latest known good start at or before time_sec, if any."""
        starts = self._starts.get(_file_key(path), [])
        earlier = [start for start in starts if start <= time_sec + TIE_SEC]
        return max(earlier, default=None)

    def files(self) -> set[str]:
        """The files found to have false sync samples (this process, so far)."""
        return {path for path, _, _ in self._starts}

    def add(self, path: str, time_sec: float) -> None:
        key = _file_key(path)
        if key not in self._starts and len(self._starts) >= self.max_files:
            self._starts.pop(next(iter(self._starts)))
        starts = self._starts.setdefault(key, [])
        if time_sec not in starts:
            starts.append(time_sec)


def _file_key(path: str) -> tuple[str, int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, status.st_size, status.st_mtime_ns)


CLEAN_STARTS = CleanStarts()


class SourceReader:
    """Hands out transformed frames of one source at increasing stream times."""

    def __init__(
        self,
        path: str,
        transform: FrameTransform,
        rotation: int,
        sample_aspect: tuple[int, int],
        rate: Fraction,
        before_shape: Callable[[av.VideoFrame], av.VideoFrame] | None = None,
        cleanup: tuple[str, ...] = (),
    ) -> None:
        check_still_there(path, "clip")
        self.path = path
        # Runs on each decoded frame shown, before the graph (the upscaler).
        self.before_shape = before_shape
        self.transform = transform
        self.rotation = rotation
        self.sample_aspect = sample_aspect
        self.cleanup = cleanup
        self._graphs: dict[tuple[Any, ...], av.filter.Graph] | None = (
            {} if cleanup else None
        )
        self.container = av.open(path, metadata_errors="ignore")
        self.stream = _pick_video_stream(self.container)
        self.stream.thread_type = "AUTO"
        # The frame on screen at t is the last one with a timestamp <= t; allow for
        # timestamps rounded to the time base (milliseconds in Matroska).
        self.tolerance_sec = min(
            0.25 / float(rate), max(1e-4, 1.01 * float(self.stream.time_base))
        )
        self._frames: Iterator[av.VideoFrame] = iter(())
        self._current: av.VideoFrame | None = None
        self._next: av.VideoFrame | None = None
        self._shaped_for: av.VideoFrame | None = None
        self._shaped: av.VideoFrame | None = None
        self._clean_starts = CLEAN_STARTS

    def close(self) -> None:
        # The decode generator refers back to this reader: close it to break the
        # cycle, or each reader's decoder (tens of MB) waits for the cycle collector.
        self._close_frames()
        self._current = self._next = self._shaped_for = self._shaped = None
        self.container.close()

    def _close_frames(self) -> None:
        if isinstance(self._frames, GeneratorType):
            self._frames.close()
        self._frames = iter(())

    def frame_at(self, time_sec: float) -> av.VideoFrame:
        """The transformed frame nearest stream time `time_sec` (the later on a tie).

        Nearest, as MLT and editors sample a clip whose rate differs from the
        timeline's, so that what they show is what we rendered.
        """
        if self._should_seek(time_sec):
            self._seek(time_sec)
        self._advance_to(time_sec)
        # Decoding stays at the last frame at or before time_sec; the next one,
        # already decoded, is shown when it is nearer.
        shown, upcoming = self._current, self._next
        assert shown is not None
        if upcoming is not None and (
            upcoming.time - time_sec <= time_sec - shown.time + TIE_SEC
        ):
            shown = upcoming
        return self._shape(shown)

    def _should_seek(self, time_sec: float) -> bool:
        """Seek when going back, or far ahead where a seek costs less than decoding
        on (not so in a file whose only whole starts lie behind the position)."""
        current = self._current
        if current is None or time_sec + self.tolerance_sec < current.time:
            return True
        if time_sec - current.time <= SEEK_AHEAD_SEC:
            return False
        known = self._clean_starts.start_before(self.path, time_sec)
        return known is None or known > current.time

    def _advance_to(self, time_sec: float) -> None:
        limit = time_sec + self.tolerance_sec
        while self._next is not None and self._next.time <= limit:
            self._current, self._next = self._next, next(self._frames, None)

    def _seek(self, time_sec: float) -> None:
        """Start decoding so that the frame at time_sec comes out whole.

        A seek can land after the target (MPEG-TS) or on a sync sample that is no
        real entry point (its frames decode corrupt): then start further back, down
        to the first frame if need be.
        """
        margin = 0.0
        known = self._clean_starts.start_before(self.path, time_sec)
        saw_corrupt = False
        while True:
            target = max(0.0, time_sec - margin)
            self._close_frames()
            self._frames = self._decode_from(target)
            self._current = next(self._frames, None)
            self._next = next(self._frames, None)
            if self._current is None and target == 0.0:
                raise MediaError(
                    f"{Path(self.path).name}: no picture could be decoded for "
                    "rendering (damaged or truncated). Remove it and render again.",
                    self.path,
                )
            start = self._current
            if start is not None and (
                start.time <= time_sec + self.tolerance_sec or target == 0.0
            ):
                self._advance_to(time_sec)
                assert self._current is not None
                if not self._current.is_corrupt or target == 0.0:
                    if saw_corrupt:
                        self._clean_starts.add(self.path, start.time)
                    return
            corrupt = start is not None and start.time <= time_sec + self.tolerance_sec
            saw_corrupt = saw_corrupt or corrupt
            if corrupt and known is not None and known < target:
                # A file with false sync samples: go straight back to where
                # decoding came out whole before, not step by step.
                margin, known = time_sec - known, None
            else:
                margin = margin * 2 or SEEK_MARGIN_SEC

    def _decode_from(self, time_sec: float) -> Iterator[av.VideoFrame]:
        offset = int(time_sec / self.stream.time_base)
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except av.error.FFmpegError as error:
            log.warning(
                "Seek failed in %s (%s); decoding from the start", self.path, error
            )
            self.container.seek(0)
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as error:
                log.warning("Skipped a damaged packet in %s: %s", self.path, error)
                continue
            for frame in frames:
                if frame.time is not None:
                    yield frame

    def _shape(self, frame: av.VideoFrame) -> av.VideoFrame:
        if frame is self._shaped_for and self._shaped is not None:
            return self._shaped
        source = frame if self.before_shape is None else self.before_shape(frame)
        graph = self.transform.graph_for(
            source, self.rotation, self.sample_aspect, self.stream.time_base,
            self.cleanup, self._graphs,
        )  # fmt: skip
        graph.push(source)
        shaped = graph.pull()
        assert isinstance(shaped, av.VideoFrame)
        self._shaped_for, self._shaped = frame, shaped
        return shaped


class FrameReader(Protocol):
    """What the renderer asks of a source: a SourceReader or a StillReader."""

    def frame_at(self, time_sec: float) -> av.VideoFrame: ...

    def close(self) -> None: ...
