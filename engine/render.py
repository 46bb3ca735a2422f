"""Render the timeline frame by frame with PyAV: decode, transform, grade, encode.

Memory stays bounded: the frames on screen, a few sources waiting for a later shot
and a few frames decoded ahead are all that is held. The MP4 is written to a hidden temporary
file beside the output and renamed into place only when it is complete.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio

from engine.clip_audio import resampled_stereo, with_clip_sound
from engine.compose import compose_frames
from engine.errors import DiskFullError, OutputError
from engine.frames import (
    FrameTransform,
)
from engine.placements import read_placements
from engine.prefetch import Prefetcher
from engine.temp_files import remove_quietly, temp_path
from engine.timeline import META, timeline_rate

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_BITRATE = 192_000
QUALITY_SETTINGS = {
    "preview": {"preset": "ultrafast", "crf": "28"},
    "final": {"preset": "veryfast", "crf": "20"},
}
# Output frames decoded ahead of the encoder (a 1080p frame is 3 MB).
PREFETCH_FRAMES = 8
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}

ProgressCallback = Callable[[float, float | None], None]


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
    temp = render_to_temp(timeline, output, progress)
    with _removed_on_failure(temp, output):
        os.replace(temp, output)
    return output


def render_to_temp(
    timeline: otio.schema.Timeline,
    output: Path,
    progress: ProgressCallback | None = None,
) -> Path:
    """Render to the hidden temporary file of `output` and return its path; the
    caller renames it into place. On any failure the temporary file is removed.

    Raises: as render_timeline.
    """
    temp = temp_path(output)
    check_output_folder(output)
    with (
        _removed_on_failure(temp, output),
        av.open(
            str(temp), "w", format="mp4", options={"movflags": "+faststart"}
        ) as container,
    ):
        _encode_all(timeline, container, progress)
    return temp


@contextmanager
def _removed_on_failure(temp: Path, output: Path) -> Iterator[None]:
    """Remove the temporary file if the block fails; an OSError is the output's."""
    try:
        yield
    except OSError as error:
        remove_quietly(temp)
        raise _output_error(error, output) from error
    except BaseException:
        remove_quietly(temp)
        raise


def _output_error(error: OSError, output: Path) -> OutputError:
    if error.errno in DISK_FULL_ERRNOS:
        return DiskFullError(
            f"The disk holding {output.parent} is full (or a file size limit "
            "was reached) while writing the video. Free some space or choose "
            "another output folder, then render again.",
            str(output),
        )
    return OutputError(
        f"Could not write {output}: {error.strerror or error}. Choose another "
        "output folder.",
        str(output),
    )


def check_output_folder(output: Path) -> None:
    """Create the output's folder if needed; raise OutputError if no file can be
    made in it (read-only, a read-only disk, a system folder such as /proc)."""
    check_writable_folder(output.parent, output)


def check_writable_folder(folder: Path, path: Path | None = None) -> None:
    """Create the folder if needed and make and remove a hidden file in it: the
    only test that holds for root, read-only disks and system folders alike.

    Raises:
        OutputError: naming the folder and the system's reason.
    """
    named = str(path or folder)
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True)
        except OSError as error:
            raise OutputError(
                f"Could not create the output folder {folder} "
                f"({_why_not(error, 'a folder')}). Choose another output folder.",
                named,
            ) from error
    try:
        handle, probe = tempfile.mkstemp(prefix=".montage-ai-", suffix=".check",
                                         dir=folder)  # fmt: skip
    except OSError as error:
        raise OutputError(
            f"Montage AI cannot write in the output folder {folder} "
            f"({_why_not(error, 'files')}). Choose another output folder.",
            named,
        ) from error
    os.close(handle)
    remove_quietly(Path(probe))


def _why_not(error: OSError, what: str) -> str:
    """The system's reason for refusing to make `what` in a folder, in words."""
    if error.errno in READ_ONLY_ERRNOS:
        return "it is read-only, or you may not write there"
    if error.errno == errno.ENOENT:
        # A folder that exists but takes nothing, or a parent that cannot be made.
        return f"the system does not allow {what} there"
    return error.strerror or str(error)


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
