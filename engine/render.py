"""Render the timeline frame by frame with PyAV: decode, transform, grade, encode.

Memory stays bounded: at most two sources are open at once (during a transition),
and only their current frames are held. The MP4 is written to a hidden temporary
file beside the output and renamed into place only when it is complete.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio

from engine.clip_audio import resampled_stereo, with_clip_sound
from engine.errors import DiskFullError, MediaError, OutputError, RenderError
from engine.follow import FollowPath, FollowReader, uncropped_transform
from engine.frames import (
    FrameReader,
    FrameTransform,
    PushIn,
    SourceReader,
    StillReader,
)
from engine.looks import cleanup_of
from engine.plan import META, timeline_rate
from engine.prefetch import Prefetcher
from engine.timewarp import clip_speed
from engine.whip import whip_frame

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_BITRATE = 192_000
QUALITY_SETTINGS = {
    "preview": {"preset": "ultrafast", "crf": "28"},
    "final": {"preset": "veryfast", "crf": "20"},
}
# Sources kept open after their shot, for a later shot further on in them.
MAX_IDLE_READERS = 3
# Output frames decoded ahead of the encoder (a 1080p frame is 3 MB).
PREFETCH_FRAMES = 8
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# Limited-range YUV values of black and white.
BLACK_YUV = (16, 128, 128)
WHITE_YUV = (235, 128, 128)

ProgressCallback = Callable[[float, float | None], None]


@dataclass
class ClipPlacement:
    """One timeline clip, resolved into output frames and source seconds."""

    path: str
    record_start: int
    record_end: int
    source_in_sec: float
    rate: Fraction
    start_sec: float
    rotation: int
    sample_aspect: tuple[int, int]
    reach_before: int = 0
    reach_after: int = 0
    # A still's scale at its first and last frame shown; None for a video.
    push_in: tuple[float, float] | None = None
    # engine.reframe's window path and engine.upscale's plan, from the metadata.
    follow: dict[str, Any] | None = None
    upscale: dict[str, Any] | None = None
    # Source seconds per output second (0.5: slow motion), and clean-up filters.
    speed: float = 1.0
    cleanup: tuple[str, ...] = ()

    def source_sec(self, frame: int, fps: Fraction) -> float:
        """The stream time shown at output frame `frame` (may lie in a handle)."""
        offset_sec = (frame - self.record_start) / fps * self.speed
        return self.start_sec + self.source_in_sec + offset_sec

    def still_push_in(self, fps: Fraction) -> PushIn | None:
        """A still's zoom over every frame it is shown, transition handles too."""
        if self.push_in is None:
            return None
        first = self.record_start - self.reach_before
        last = self.record_end + self.reach_after - 1
        return PushIn(
            self.source_sec(first, fps), self.source_sec(last, fps), *self.push_in
        )


@dataclass
class Join:
    """A transition between placements[index] and placements[index + 1]."""

    index: int
    frame: int
    kind: str
    before: int
    after: int


def read_placements(
    timeline: otio.schema.Timeline,
) -> tuple[list[ClipPlacement], list[Join]]:
    """Resolve the video track into placements and joins, in output frames."""
    fps = timeline_rate(timeline)
    track = timeline.video_tracks()[0]
    placements: list[ClipPlacement] = []
    joins: list[Join] = []
    pending: otio.schema.Transition | None = None
    record = 0
    for item in track:
        if isinstance(item, otio.schema.Transition):
            pending = item
            continue
        if not isinstance(item, otio.schema.Clip):
            record += round(item.duration().rescaled_to(fps).value)
            continue
        placement = _placement(item, record, fps)
        if pending is not None and placements:
            join = _join(pending, len(placements) - 1, record, fps)
            joins.append(join)
            placements[-1].reach_after = join.after
            placement.reach_before = join.before
            pending = None
        placements.append(placement)
        record = placement.record_end
    return placements, joins


def _placement(clip: otio.schema.Clip, record: int, fps: Fraction) -> ClipPlacement:
    reference = clip.media_reference
    facts = reference.metadata[META]
    rate = Fraction(*facts["fps"])
    source_range = clip.source_range
    offset = source_range.start_time - reference.available_range.start_time
    in_frames = offset.rescaled_to(float(rate)).value
    length = round(source_range.duration.rescaled_to(fps).value)
    clip_meta = clip.metadata.get(META, {})
    push_in = clip_meta.get("push_in")
    return ClipPlacement(
        path=reference.target_url,
        record_start=record,
        record_end=record + length,
        source_in_sec=float(Fraction(round(in_frames)) / rate),
        rate=rate,
        start_sec=float(facts["start_sec"]),
        rotation=int(facts["rotation"]),
        sample_aspect=(int(facts["sample_aspect"][0]), int(facts["sample_aspect"][1])),
        push_in=(float(push_in[0]), float(push_in[1])) if push_in else None,
        follow=clip_meta.get("follow"),
        upscale=clip_meta.get("upscale"),
        speed=clip_speed(clip),
        cleanup=cleanup_of(clip),
    )


def _join(
    transition: otio.schema.Transition, index: int, frame: int, fps: Fraction
) -> Join:
    kind = transition.metadata.get(META, {}).get("kind", "crossfade")
    before = round(transition.in_offset.rescaled_to(fps).value)
    after = round(transition.out_offset.rescaled_to(fps).value)
    return Join(index, frame, kind, before, after)


def render_timeline(
    timeline: otio.schema.Timeline,
    output: Path,
    progress: ProgressCallback | None = None,
) -> Path:
    """Render to `output` (MP4, H.264 + AAC) through a temporary file.

    Raises:
        OutputError: the output folder cannot be written.
        DiskFullError: the disk filled up (or the file-size limit was reached).
        RenderError: a source failed to decode or the encoder failed.
    """
    output = Path(output)
    temp = temp_path(output)
    check_output_folder(output)
    try:
        with av.open(
            str(temp), "w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            _encode_all(timeline, container, progress)
        os.replace(temp, output)
    except OSError as error:
        _remove(temp)
        if error.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(
                f"The disk holding {output.parent} is full (or a file size limit "
                "was reached) while writing the video. Free some space or choose "
                "another output folder, then render again.",
                str(output),
            ) from error
        raise OutputError(
            f"Could not write {output}: {error.strerror or error}. Choose another "
            "output folder.",
            str(output),
        ) from error
    except BaseException:
        _remove(temp)
        raise
    return output


def check_output_folder(output: Path) -> None:
    """Create the output's folder if needed; raise OutputError if it is read-only."""
    folder = output.parent
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True)
        except OSError as error:
            raise OutputError(
                f"Could not create the output folder {folder}: {error.strerror}. "
                "Choose another output folder.",
                str(output),
            ) from error
    if not os.access(folder, os.W_OK):
        raise OutputError(
            f"The output folder {folder} is read-only. Choose another output folder.",
            str(output),
        )


def temp_path(path: Path) -> Path:
    """The hidden name a file is written under until it is complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def remove_stale_temp_files(paths: list[Path]) -> list[Path]:
    """Remove what an engine killed while writing these paths left (SIGKILL, power
    loss): hidden .part files whose process is gone. Returns the files removed."""
    removed = []
    for path in paths:
        for temp in path.parent.glob(f".{glob_escape(path.name)}.*.part"):
            pid_text = temp.name[len(path.name) + 2 : -len(".part")]
            if not pid_text.isdigit() or _is_running(int(pid_text)):
                continue
            _remove(temp)
            removed.append(temp)
    if removed:
        log.info("Removed temporary files of a stopped render: %s", removed)
    return removed


def _is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("Could not remove the temporary file %s: %s", path, error)


def _encode_all(
    timeline: otio.schema.Timeline, container: Any, progress: ProgressCallback | None
) -> None:
    meta = timeline.metadata[META]
    fps, width, height = (
        timeline_rate(timeline),
        int(meta["width"]),
        int(meta["height"]),
    )
    total_frames = int(meta["total_frames"])
    video = _add_video_stream(container, fps, width, height, meta["quality"])
    audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
    audio.bit_rate = AUDIO_BITRATE
    music = timeline.audio_tracks()[0][0]
    audio_frames = music_frames(
        music.media_reference.target_url,
        start_sec=float(meta["music"]["start_sec"]),
        duration_sec=float(total_frames / fps),
        fade_out_sec=float(music.metadata[META]["fade_out_sec"]),
    )
    transform = FrameTransform(width, height, meta["fit"], meta["grade"], fps=fps)
    placements, joins = read_placements(timeline)
    audio_frames = with_clip_sound(
        audio_frames, placements, joins, fps, meta.get("clip_audio_db")
    )
    clock = _Eta(total_frames)
    audio_samples = 0
    # Decoding and shaping run a few frames ahead in their own thread.
    with Prefetcher(
        compose_frames(placements, joins, transform, fps, total_frames),
        depth=PREFETCH_FRAMES,
        name="montage-ai-decode",
    ) as frames:
        for number, frame in enumerate(frames):
            frame.pts = number
            frame.time_base = Fraction(1, fps)
            frame.pict_type = av.video.frame.PictureType.NONE
            container.mux(video.encode(frame))
            audio_samples = _encode_audio_until(
                container,
                audio,
                audio_frames,
                audio_samples,
                (number + 1) * AUDIO_RATE // fps,
            )
            if progress is not None and (
                number % 10 == 0 or number == total_frames - 1
            ):
                progress((number + 1) / total_frames, clock.remaining_sec(number + 1))
    container.mux(video.encode(None))
    _encode_audio_until(container, audio, audio_frames, audio_samples, None)
    container.mux(audio.encode(None))


def _add_video_stream(
    container: Any, fps: Fraction, width: int, height: int, quality: str
) -> Any:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = Fraction(1, fps)
    stream.options = dict(QUALITY_SETTINGS[quality])
    return stream


class _Eta:
    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()

    def remaining_sec(self, done: int) -> float | None:
        elapsed = time.monotonic() - self.started
        if done < 5 or elapsed < 0.5:
            return None
        return elapsed / done * (self.total - done)


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
        if not isinstance(reader, SourceReader) or later is None:
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


def music_frames(
    path: str, start_sec: float, duration_sec: float, fade_out_sec: float
) -> Iterator[av.AudioFrame]:
    """The song's samples from start_sec for duration_sec, 48 kHz stereo, faded.

    Samples are placed by counting from the first decoded sample, the same way the
    music analysis places them, so rendered beats sit where the analysis found them.
    """
    skip = round(start_sec * AUDIO_RATE)
    total = round(duration_sec * AUDIO_RATE)
    fade_in = min(round(0.01 * AUDIO_RATE), total) if skip else 0
    fade_out = min(round(fade_out_sec * AUDIO_RATE), total)
    position = 0  # samples from the song's start
    written = 0
    for chunk in _decoded_audio(path):
        count = chunk.shape[1]
        chunk = chunk[:, max(0, skip - position) :]
        position += count
        chunk = chunk[:, : total - written]
        if chunk.shape[1] == 0:
            if written >= total:
                break
            continue
        chunk = _apply_fades(chunk, written, total, fade_in, fade_out)
        yield _audio_frame(chunk, written)
        written += chunk.shape[1]
    if written < total:
        # The song is shorter than the picture: finish in silence.
        silence = np.zeros((2, total - written), dtype=np.float32)
        yield _audio_frame(silence, written)


def _decoded_audio(path: str) -> Iterator[np.ndarray]:
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        # Damaged audio is dropped the same way the music analysis drops it.
        for _, samples in resampled_stereo(container, stream, AUDIO_RATE):
            yield samples


def _apply_fades(
    chunk: np.ndarray, written: int, total: int, fade_in: int, fade_out: int
) -> np.ndarray:
    positions = np.arange(written, written + chunk.shape[1], dtype=np.float32)
    gain = np.ones_like(positions)
    if fade_in:
        gain = np.minimum(gain, positions / fade_in)
    if fade_out:
        gain = np.minimum(gain, (total - positions) / fade_out)
    return (chunk * np.clip(gain, 0.0, 1.0)).astype(np.float32)


def _audio_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples), format="fltp", layout="stereo"
    )
    frame.sample_rate = AUDIO_RATE
    frame.pts = pts
    frame.time_base = Fraction(1, AUDIO_RATE)
    return frame


def _encode_audio_until(
    container: Any,
    stream: Any,
    frames: Iterator[av.AudioFrame],
    written: int,
    until: int | None,
) -> int:
    """Encode audio up to sample `until` (None: to the end); returns samples done."""
    while until is None or written < until:
        frame = next(frames, None)
        if frame is None:
            break
        container.mux(stream.encode(frame))
        written += frame.samples
    return written
