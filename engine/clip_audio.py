"""The clips' own sound under the music: each shot's audio, decoded by timestamp for
the source range its picture shows, lowered, and faded at every join so that cuts
never click. Streamed: at most two shots' decoders are open (during a crossfade).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import opentimelineio as otio

from engine.protocol import EXPORT_SUFFIXES
from engine.timeline import META

if TYPE_CHECKING:
    from engine.placements import ClipPlacement, Join

log = logging.getLogger(__name__)

# Every shot's sound fades in and out over at least this long: a click is a jump
# in the waveform, and 15 ms of raised cosine leaves none (below 70 Hz of spread).
JOIN_FADE_SEC = 0.015
# Seek this far before a shot's first sample: audio packets start on their own
# boundaries, and the samples before the shot are dropped by timestamp.
SEEK_MARGIN_SEC = 0.2
# A timestamp this far from where counting puts a frame is a gap in the stream.
GAP_SEC = 0.01


@dataclass(frozen=True)
class ShotSound:
    """One shot's sound in output samples, and the stream time of its first one."""

    path: str
    start_sample: int
    end_sample: int
    fade_in_samples: int
    fade_out_samples: int
    source_start_sec: float


def shot_sounds(
    placements: list[ClipPlacement], joins: list[Join], fps: Fraction, rate: int
) -> list[ShotSound]:
    """Where each video shot's sound plays: its record range, reaching into a
    crossfade as its picture does and fading across it; a dip fades each shot's
    sound with its own picture. Stills have no sound."""
    into = {join.index + 1: join for join in joins}
    out_of = {join.index: join for join in joins}
    sounds = []
    for index, placement in enumerate(placements):
        if placement.push_in is not None:
            continue
        first, fade_in = _sound_start(placement.record_start, into.get(index))
        last, fade_out = _sound_end(placement.record_end, out_of.get(index))
        start, end = (round(frame * rate / fps) for frame in (first, last))
        shortest = round(JOIN_FADE_SEC * rate)
        sounds.append(
            ShotSound(
                path=placement.path,
                start_sample=start,
                end_sample=end,
                fade_in_samples=max(shortest, round(fade_in * rate / fps)),
                fade_out_samples=max(shortest, round(fade_out * rate / fps)),
                source_start_sec=placement.source_sec(first, fps),
            )
        )
    return sounds


def _sound_start(record_start: int, join: Join | None) -> tuple[int, int]:
    """The first output frame of a shot's sound and its fade-in, in frames."""
    if join is None:
        return record_start, 0
    if join.kind == "crossfade":
        return record_start - join.before, join.before + join.after
    return record_start, join.after


def _sound_end(record_end: int, join: Join | None) -> tuple[int, int]:
    if join is None:
        return record_end, 0
    if join.kind == "crossfade":
        return record_end + join.after, join.before + join.after
    return record_end, join.before


def with_clip_sound(
    music: Iterator[av.AudioFrame],
    placements: list[ClipPlacement],
    joins: list[Join],
    fps: Fraction,
    level_db: float | None,
) -> Iterator[av.AudioFrame]:
    """The music frames with every shot's own sound mixed under them at level_db
    (None: the music as it is). Frames keep their pts, counted in samples."""
    if level_db is None:
        yield from music
        return
    mixer: ClipSoundMixer | None = None
    try:
        for frame in music:
            if mixer is None:
                sounds = shot_sounds(placements, joins, fps, frame.sample_rate)
                mixer = ClipSoundMixer(sounds, 10 ** (level_db / 20), frame.sample_rate)
            samples = frame.to_ndarray()
            mixed = samples + mixer.sound(int(frame.pts or 0), samples.shape[1])
            yield _like(frame, np.clip(mixed, -1.0, 1.0).astype(np.float32))
    finally:
        if mixer is not None:
            mixer.close()


def _like(frame: av.AudioFrame, samples: np.ndarray) -> av.AudioFrame:
    mixed = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples), format="fltp", layout="stereo"
    )
    mixed.sample_rate = frame.sample_rate
    mixed.pts = frame.pts
    mixed.time_base = frame.time_base
    return mixed


class ClipSoundMixer:
    """The sum of the shots' sounds over any run of output samples, asked in order."""

    def __init__(self, sounds: list[ShotSound], gain: float, rate: int) -> None:
        self.sounds = sorted(sounds, key=lambda sound: sound.start_sample)
        self.gain = gain
        self.rate = rate
        self.readers: dict[int, ShotSoundReader] = {}
        self.next_index = 0

    def sound(self, start: int, count: int) -> np.ndarray:
        """(2, count) float32 samples for output samples start .. start + count."""
        end = start + count
        while (
            self.next_index < len(self.sounds)
            and self.sounds[self.next_index].start_sample < end
        ):
            sound = self.sounds[self.next_index]
            self.readers[self.next_index] = ShotSoundReader(sound, self.rate)
            self.next_index += 1
        total = np.zeros((2, count), dtype=np.float32)
        for index, reader in list(self.readers.items()):
            total += reader.read(start, end)
            if reader.sound.end_sample <= end:
                reader.close()
                del self.readers[index]
        return total * np.float32(self.gain)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()


class ShotSoundReader:
    """One shot's sound, decoded forward from a seek and placed by timestamp."""

    def __init__(self, sound: ShotSound, rate: int) -> None:
        self.sound = sound
        self.rate = rate
        self._chunks = _placed_chunks(sound, rate)
        # Decoded samples not yet read, and the output sample of their first one.
        self._pending = np.zeros((2, 0), dtype=np.float32)
        self._pending_start = sound.start_sample

    def read(self, start: int, end: int) -> np.ndarray:
        """(2, end - start) samples of this shot, silence outside its range."""
        out = np.zeros((2, end - start), dtype=np.float32)
        first = max(start, self.sound.start_sample)
        last = min(end, self.sound.end_sample)
        if first >= last:
            return out
        while self._pending_start + self._pending.shape[1] < last:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._append(*chunk)
        self._copy_pending(out, start, first, last)
        positions = np.arange(first, last)
        out[:, first - start : last - start] *= self._envelope(positions)
        return out

    def _append(self, position: int, samples: np.ndarray) -> None:
        """Join a decoded chunk at its output position; a gap becomes silence,
        an overlap (a timestamp a little early) keeps the samples already there."""
        end = self._pending_start + self._pending.shape[1]
        if position > end:
            gap = np.zeros((2, position - end), dtype=np.float32)
            self._pending = np.concatenate([self._pending, gap], axis=1)
        elif position < end:
            samples = samples[:, end - position :]
        self._pending = np.concatenate([self._pending, samples], axis=1)

    def _copy_pending(self, out: np.ndarray, start: int, first: int, last: int) -> None:
        offset = first - self._pending_start
        available = self._pending[:, max(0, offset) : last - self._pending_start]
        skip = max(0, -offset)
        out[:, first - start + skip : first - start + skip + available.shape[1]] = (
            available
        )
        # Everything before `last` has been read: requests come in order.
        self._pending = self._pending[:, max(0, last - self._pending_start) :]
        self._pending_start = max(self._pending_start, last)

    def _envelope(self, positions: np.ndarray) -> np.ndarray:
        """Raised-cosine fades: smooth at both ends, so no step and no kink."""
        sound = self.sound
        rise = (positions - sound.start_sample + 0.5) / sound.fade_in_samples
        fall = (sound.end_sample - positions - 0.5) / sound.fade_out_samples
        ramp = np.clip(np.minimum(rise, fall), 0.0, 1.0)
        return (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)

    def close(self) -> None:
        self._chunks.close()


def _placed_chunks(
    sound: ShotSound, rate: int
) -> Generator[tuple[int, np.ndarray], None, None]:
    """(output sample, (2, n) samples) of the shot's source, from just before its
    first sample; nothing for a source without sound or one that fails to open."""
    try:
        container = av.open(sound.path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as error:
        log.warning("No clip sound from %s: %s", Path(sound.path).name, error)
        return
    try:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        _seek(container, stream, sound.source_start_sec - SEEK_MARGIN_SEC)
        yield from _placed(resampled_stereo(container, stream, rate), sound, rate)
    except (av.error.FFmpegError, OSError) as error:
        # The picture decides whether the render goes on; the sound goes quiet.
        log.warning("Clip sound of %s stops early: %s", Path(sound.path).name, error)
    finally:
        container.close()


def _placed(
    frames: Iterator[tuple[float | None, np.ndarray]], sound: ShotSound, rate: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Place each chunk by its timestamp where it has one, else right after the last;
    samples are counted on from a timestamp unless it jumps (a gap in the stream)."""
    position: int | None = None
    for time_sec, samples in frames:
        stamped = (
            None
            if time_sec is None
            else sound.start_sample + round((time_sec - sound.source_start_sec) * rate)
        )
        if position is None or (
            stamped is not None and abs(stamped - position) > GAP_SEC * rate
        ):
            position = stamped if stamped is not None else sound.start_sample
        yield position, samples
        position += samples.shape[1]
        if position >= sound.end_sample:
            return


def _seek(container: Any, stream: Any, time_sec: float) -> None:
    if time_sec <= 0 or stream.time_base is None:
        return
    try:
        container.seek(round(time_sec / stream.time_base), stream=stream, backward=True)
    except (av.error.FFmpegError, OSError) as error:
        # Then it decodes from the start, as a file without an index must.
        log.info("Seek in %s failed (%s); decoding from its start", stream, error)


# FFmpeg's default level for the centre and surround channels in a fold-down.
SURROUND_MIX = 0.7071


def resampled_stereo(
    container: Any, stream: Any, rate: int
) -> Iterator[tuple[float | None, np.ndarray]]:
    """(stream time or None, (2, n) float32) at `rate` stereo, damaged packets
    skipped; more channels are folded down without going past full scale."""
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    gain = downmix_gain([channel.name for channel in stream.layout.channels])
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.PermissionError):
            continue
        for frame in frames:
            for resampled in resampler.resample(frame):
                yield _time_sec(resampled), _scaled(resampled.to_ndarray(), gain)
    for resampled in resampler.resample(None):
        yield _time_sec(resampled), _scaled(resampled.to_ndarray(), gain)


def downmix_gain(channels: list[str]) -> float:
    """What keeps FFmpeg's default fold-down to stereo under full scale.

    It adds the centre and each surround at -3 dB to its side and leaves out the
    LFE, without scaling for float output: a loud 5.1 song would reach 2.4 times
    full scale. Dividing by the larger side's sum of coefficients is what its own
    normalisation does. Mono and stereo pass as they are (1.0).
    """
    if len(channels) <= 2:
        return 1.0
    sides = {"L": 0.0, "R": 0.0}
    for name in channels:
        if name in ("FL", "FR"):
            sides[name[1]] += 1.0
        elif name.startswith("LFE"):
            continue
        elif name[-1:] in sides:
            sides[name[-1]] += SURROUND_MIX
        else:  # the centre channels: to both sides
            sides["L"] += SURROUND_MIX
            sides["R"] += SURROUND_MIX
    return 1.0 / max(1.0, *sides.values())


def _scaled(samples: np.ndarray, gain: float) -> np.ndarray:
    if gain != 1.0:
        samples *= gain
    return samples


def _time_sec(frame: av.AudioFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def clip_sound_warnings(timeline: otio.schema.Timeline, format_name: str) -> list[str]:
    """What an export of a render with the clips' sound cannot hold, in words."""
    level_db = timeline.metadata[META].get("clip_audio_db")
    if level_db is None or format_name == "csv":
        return []
    return [
        f"The {EXPORT_SUFFIXES.get(format_name, format_name)} file holds the song "
        f"only: the clips' own sound, mixed {-float(level_db):g} dB under their "
        "recorded level in the render, is not in it. Turn up the clips' audio in "
        "your editor (each clip names its source range)."
    ]
