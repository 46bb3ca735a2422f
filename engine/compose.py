"""Compose the output frames in order: each placement's source frame, shaped,
and blended with its neighbour inside a transition.

Readers open as their shot comes and close after it, unless a later shot shows
more of the same source further on: then the reader waits for it, decoding on.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import MediaError, RenderError
from engine.follow import FollowPath, FollowReader, uncropped_transform
from engine.frames import FrameReader, FrameTransform, SourceReader
from engine.placements import ClipPlacement, Join
from engine.stills import StillReader
from engine.whip import whip_frame

# Sources kept open after their shot, for a later shot further on in them.
MAX_IDLE_READERS = 3
# Limited-range YUV values of black and white.
BLACK_YUV = (16, 128, 128)
WHITE_YUV = (235, 128, 128)


def compose_frames(
    placements: list[ClipPlacement],
    joins: list[Join],
    transform: FrameTransform,
    fps: Fraction,
    total_frames: int,
) -> Iterator[av.VideoFrame]:
    """Yield every output frame in order; readers open and close as clips pass."""
    readers = OpenReaders(placements)
    join_at = {join.index: join for join in joins}
    current = 0
    try:
        for number in range(total_frames):
            while (
                current + 1 < len(placements)
                and number >= placements[current].record_end
            ):
                current += 1
            for index in [i for i in readers if i < current]:
                # Kept open until its transition handle has been shown.
                if (
                    number
                    >= placements[index].record_end + placements[index].reach_after
                ):
                    readers.release(index, fps)
            yield _frame_at(
                number, current, placements, join_at, readers, transform, fps
            )
    finally:
        readers.close_all()


def _frame_at(
    number: int,
    current: int,
    placements: list[ClipPlacement],
    join_at: dict[int, Join],
    readers: OpenReaders,
    transform: FrameTransform,
    fps: Fraction,
) -> av.VideoFrame:
    frame = _source_frame(current, number, placements, readers, transform, fps)
    incoming = join_at.get(current)
    if incoming is not None and number >= incoming.frame - incoming.before:
        # The next clip's transition has begun before this clip's last frame.
        return _blend(
            incoming, number, frame, current + 1, placements, readers, transform, fps
        )
    outgoing = join_at.get(current - 1)
    if outgoing is not None and number < outgoing.frame + outgoing.after:
        return _blend(outgoing, number, None, current, placements, readers, transform, fps,
                      incoming_frame=frame)  # fmt: skip
    return frame


def _blend(
    join: Join,
    number: int,
    outgoing_frame: av.VideoFrame | None,
    other: int,
    placements: list[ClipPlacement],
    readers: OpenReaders,
    transform: FrameTransform,
    fps: Fraction,
    incoming_frame: av.VideoFrame | None = None,
) -> av.VideoFrame:
    """One frame inside a transition window around join.frame."""
    start = join.frame - join.before
    if join.kind in ("crossfade", "whip"):
        if outgoing_frame is None:
            outgoing_frame = _source_frame(
                other - 1, number, placements, readers, transform, fps
            )
        if incoming_frame is None:
            incoming_frame = _source_frame(
                other, number, placements, readers, transform, fps
            )
        weight = (number - start + 0.5) / (join.before + join.after)
        if join.kind == "whip":
            frames = join.before + join.after
            return whip_frame(outgoing_frame, incoming_frame, weight, frames)
        return _mix(outgoing_frame, incoming_frame, weight)
    color = BLACK_YUV if join.kind == "dip_black" else WHITE_YUV
    if number < join.frame:
        assert outgoing_frame is not None
        weight = (number - start + 0.5) / max(1, join.before)
        return _mix_color(outgoing_frame, color, weight)
    assert incoming_frame is not None
    weight = (number - join.frame + 0.5) / max(1, join.after)
    return _mix_color(incoming_frame, color, 1.0 - weight)


def _source_frame(
    index: int,
    number: int,
    placements: list[ClipPlacement],
    readers: OpenReaders,
    transform: FrameTransform,
    fps: Fraction,
) -> av.VideoFrame:
    placement = placements[index]
    reader = readers.get(index) or readers.reuse(index)
    if reader is None:
        reader = readers[index] = _open_reader(placement, transform, fps)
    try:
        return reader.frame_at(placement.source_sec(number, fps))
    except (av.error.FFmpegError, OSError) as error:
        # Not the output's fault: render_timeline reads a bare OSError as one.
        raise RenderError(
            f"{Path(placement.path).name}: reading it failed during the render "
            f"({error}); its drive may have been unplugged or the file changed. "
            "Reconnect it and render again.",
            placement.path,
        ) from error


def _open_reader(
    placement: ClipPlacement, transform: FrameTransform, fps: Fraction
) -> FrameReader:
    push_in = placement.still_push_in(fps)
    try:
        if push_in is not None:
            return StillReader(
                placement.path,
                transform,
                rotation=placement.rotation,
                sample_aspect=placement.sample_aspect,
                push_in=push_in,
            )
        return _open_video(placement, transform)
    except MediaError as error:
        # A source gone since it was probed fails this render, not the clip list.
        raise RenderError(error.message, error.path) from error
    except (av.error.FFmpegError, OSError) as error:
        raise RenderError(
            f"{Path(placement.path).name}: could not be read for rendering ({error}). "
            "Check that the file is still there and plays.",
            placement.path,
        ) from error


class OpenReaders(dict[int, FrameReader]):
    """The readers of the placements on screen, by index, and a few idle ones.

    When a shot ends and a later shot shows more of the same source further on,
    its reader stays open for it and decodes on instead of opening and seeking
    again: sources are decoded in order, once each where the edit allows.
    """

    def __init__(
        self, placements: list[ClipPlacement], max_idle: int = MAX_IDLE_READERS
    ) -> None:
        super().__init__()
        self.placements = placements
        self.max_idle = max_idle
        # By the index of the placement that will use it next.
        self._idle: dict[int, SourceReader] = {}

    def reuse(self, index: int) -> FrameReader | None:
        """The idle reader kept for this placement, now its own."""
        reader = self._idle.pop(index, None)
        if reader is not None:
            self[index] = reader
        return reader

    def release(self, index: int, fps: Fraction) -> None:
        """A placement's shot is over: keep its reader for a later one, or close it."""
        reader = self.pop(index, None)
        if reader is None:
            return
        later = self._next_use(index, fps)
        # Stateful clean-up filters (deshake) would carry one shot into the next.
        if not isinstance(reader, SourceReader) or reader.cleanup or later is None:
            reader.close()
            return
        self._idle[later] = reader
        while len(self._idle) > self.max_idle:
            # The one needed last goes first.
            self._idle.pop(max(self._idle)).close()

    def _next_use(self, index: int, fps: Fraction) -> int | None:
        """The next placement that shows its source from where this one stopped."""
        placement = self.placements[index]
        end_sec = placement.source_sec(
            placement.record_end + placement.reach_after, fps
        )
        for later in range(index + 1, len(self.placements)):
            other = self.placements[later]
            if other.path != placement.path or other.push_in is not None:
                continue
            start_sec = other.source_sec(other.record_start - other.reach_before, fps)
            if start_sec < end_sec or later in self._idle or later in self:
                return None
            return later
        return None

    def close_all(self) -> None:
        for reader in [*self.values(), *self._idle.values()]:
            reader.close()
        self.clear()
        self._idle.clear()


def _open_video(placement: ClipPlacement, transform: FrameTransform) -> FrameReader:
    """A video's reader, upscaled and following its subject where the plan says."""
    hook = None
    if placement.upscale:
        from engine.upscale import frame_hook  # loads OpenCV: only when upscaling

        hook = frame_hook(
            placement.path, placement.upscale["scale"], placement.upscale["method"]
        )
    follow = FollowPath.from_dict(placement.follow) if placement.follow else None
    reader = SourceReader(
        placement.path,
        uncropped_transform(transform) if follow else transform,
        rotation=placement.rotation,
        sample_aspect=placement.sample_aspect,
        rate=placement.rate,
        before_shape=hook,
        cleanup=placement.cleanup,
    )
    if follow is None:
        return reader
    return FollowReader(reader, follow, transform.width, transform.height)


def _mix(first: av.VideoFrame, second: av.VideoFrame, weight: float) -> av.VideoFrame:
    a = first.to_ndarray().astype(np.float32)
    b = second.to_ndarray().astype(np.float32)
    mixed = a + (b - a) * min(1.0, max(0.0, weight))
    return av.VideoFrame.from_ndarray(np.rint(mixed).astype(np.uint8), format="yuv420p")


def _mix_color(
    frame: av.VideoFrame, color: tuple[int, int, int], weight: float
) -> av.VideoFrame:
    """Blend toward a flat colour; weight 1 is all colour."""
    planes = frame.to_ndarray().astype(np.float32)
    height = frame.height
    target = np.empty_like(planes)
    target[:height] = color[0]
    # yuv420p arrays hold the U plane's rows, then the V plane's, under Y.
    chroma = target[height:].reshape(-1)
    chroma[: chroma.size // 2] = color[1]
    chroma[chroma.size // 2 :] = color[2]
    mixed = planes + (target - planes) * min(1.0, max(0.0, weight))
    return av.VideoFrame.from_ndarray(np.rint(mixed).astype(np.uint8), format="yuv420p")
