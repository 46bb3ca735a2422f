"""Plan the edit: cuts on the beat grid, shots chosen for them, as an OTIO timeline.

The timeline is the one project model: the renderer and every export read it.
All times inside the plan are output frames unless a name says otherwise.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
from dataclasses import dataclass, field, replace
from fractions import Fraction

import opentimelineio as otio

from engine.analysis import ClipAnalysis, shot_score
from engine.music import MusicAnalysis
from engine.probe import MediaInfo
from engine.styles import Style
from engine.timeline import build_timeline

log = logging.getLogger(__name__)

# A longer silence before a song's first sound is left out of the montage; a
# shorter one stays, as one opening shot with no cut in the silence.
SILENT_INTRO_MAX_SEC = 10.0
# In points sit on timeline frames too when both grids meet at least this often.
MAX_COMMON_STEP_SEC = Fraction(1, 4)
SAME_SOURCE_PENALTY = 0.5
USE_COUNT_PENALTY = 0.15
SCORE_JITTER = 0.05
# shot_index of a segment that runs across the shots of a clip.
WHOLE_CLIP = -1


@dataclass
class PlanOptions:
    fps: Fraction
    size: tuple[int, int]
    aspect: str
    fit: str
    seed: int
    duration_sec: float | None = None
    prompt: str = ""
    quality: str = "final"


@dataclass
class Source:
    """One usable clip: its probe and its shots."""

    info: MediaInfo
    analysis: ClipAnalysis


@dataclass
class Segment:
    """One stretch of the output between two cuts, and what fills it."""

    start_frame: int
    end_frame: int
    section: str
    beat_index: int | None
    source_index: int = -1
    shot_index: int = -1
    in_sec: float = 0.0
    handle_before_frames: int = 0
    handle_after_frames: int = 0
    # Source seconds per output second: below 1 is slow motion.
    speed: float = 1.0
    # Slowed because no clip lasts as long as the segment.
    filled_slower: bool = False

    @property
    def length_frames(self) -> int:
        return self.end_frame - self.start_frame

    def source_sec(self, frames: int, fps: Fraction) -> float:
        """The source time `frames` output frames of this segment play through."""
        return float(frames / fps) * self.speed


@dataclass
class Cut:
    """The join at the start of segment `index` + 1, and how it is made."""

    frame: int
    kind: str
    frames_before: int
    frames_after: int


@dataclass
class Usage:
    counts: dict[tuple[int, int], int] = field(default_factory=dict)
    per_source: dict[int, int] = field(default_factory=dict)
    previous_source: int = -1


def output_size(
    aspect: str, quality: str, size: tuple[int, int] | None
) -> tuple[int, int]:
    """The output frame size: as asked, else 1080p or 360p in the aspect's shape."""
    if size is not None:
        return (size[0] // 2 * 2, size[1] // 2 * 2)
    short = 360 if quality == "preview" else 1080
    long = short * 16 // 9
    return {"16:9": (long, short), "9:16": (short, long), "1:1": (short, short)}[aspect]


def music_window(
    music: MusicAnalysis, fps: Fraction, duration_sec: float | None
) -> tuple[float, int]:
    """Where the song starts and how many frames the montage lasts.

    The whole song by default. A shorter montage keeps its exact length and ends on a
    downbeat: the song is entered up to one bar late so that a downbeat falls on the
    last frame, and the audio fades out into it. Asked for more than the song holds,
    the montage ends with the song. Either way a silent intro longer than
    SILENT_INTRO_MAX_SEC is left out: the montage starts on the first sound.
    """
    first_sec = music_start_sec(music)
    song_frames = math.floor((music.duration_sec - first_sec) * fps)
    if duration_sec is None or duration_sec * fps >= song_frames:
        return first_sec, song_frames
    total_frames = round(duration_sec * fps)
    total_sec = total_frames / fps
    ends = [d for d in music.downbeats_sec if d - total_sec >= first_sec]
    start_sec = ends[0] - total_sec if ends else first_sec
    if start_sec + total_sec > music.duration_sec:
        start_sec = max(first_sec, music.duration_sec - total_sec)
    return start_sec, total_frames


def music_start_sec(music: MusicAnalysis) -> float:
    """Where a montage may start in the song: 0, or its first sound after a silent
    intro longer than SILENT_INTRO_MAX_SEC (no beat there, so no cut either)."""
    if music.first_sound_sec <= SILENT_INTRO_MAX_SEC:
        return 0.0
    return music.first_sound_sec


def plan_cuts(
    music: MusicAnalysis,
    style: Style,
    start_sec: float,
    total_frames: int,
    fps: Fraction,
    rng: random.Random,
    longest_sec: float = math.inf,
) -> list[Segment]:
    """Split the output into segments whose joins fall on beats.

    No segment is longer than longest_sec of source can fill (the longest clip)
    where a beat allows: the cut comes on an earlier beat instead.
    """
    beat_frames = _beat_frames(music.beats_sec, start_sec, total_frames, fps)
    downbeats = {round((b - start_sec) * fps) for b in music.downbeats_sec}
    min_frames = max(1, round(style.min_shot_sec * fps))
    # A transition's frames on either side of its cut come from the same clip.
    beat_sec = 60.0 / music.tempo_bpm if music.tempo_bpm > 0 else 0.5
    handles = max(
        (round(rule.beats * beat_sec * fps / 2) * 2 for rule in style.transitions.values()
         if rule.kind != "cut"),
        default=0,
    )  # fmt: skip
    segments: list[Segment] = []
    start_frame, index = 0, -1
    while True:
        section = music.section_at(start_sec + start_frame / fps)
        found = _next_cut_beat(
            beat_frames, downbeats, index, style, section, start_frame, min_frames, rng
        )
        if found is None or total_frames - beat_frames[found] < min_frames:
            found = None
        reach = longest_sec / style.speed.get(section, 1.0) * fps - handles
        found = _earlier_beat_in_reach(
            beat_frames, index, found, total_frames, max(reach, min_frames), min_frames
        )
        if found is None:
            segments.append(Segment(start_frame, total_frames, section, None))
            return segments
        index = found
        segments.append(Segment(start_frame, beat_frames[index], section, index))
        start_frame = beat_frames[index]


def _earlier_beat_in_reach(
    beat_frames: list[int],
    index: int,
    found: int | None,
    total_frames: int,
    reach: float,
    min_frames: int,
) -> int | None:
    """found, or the latest beat before it within reach of the segment's start
    (beat index), when the segment to found would outrun every clip."""
    start_frame = beat_frames[index] if index >= 0 else 0
    end_frame = total_frames if found is None else beat_frames[found]
    if end_frame - start_frame <= reach:
        return found
    stop = len(beat_frames) if found is None else found
    earlier = [
        i
        for i in range(index + 1, stop)
        if beat_frames[i] - start_frame <= reach
        and total_frames - beat_frames[i] >= min_frames
    ]
    return earlier[-1] if earlier else found


def _beat_frames(
    beats_sec: list[float], start_sec: float, total_frames: int, fps: Fraction
) -> list[int]:
    frames = sorted({round((b - start_sec) * fps) for b in beats_sec})
    return [f for f in frames if 0 < f < total_frames]


def _next_cut_beat(
    beat_frames: list[int],
    downbeats: set[int],
    index: int,
    style: Style,
    section: str,
    start_frame: int,
    min_frames: int,
    rng: random.Random,
) -> int | None:
    """Index of the beat that ends the segment starting at start_frame, or None."""
    beats = style.beats_per_cut[section]
    if style.variation and rng.random() < style.variation:
        beats = max(1, beats * 2 if rng.random() < 0.5 else beats // 2)
    target = index + beats
    while target < len(beat_frames) and beat_frames[target] - start_frame < min_frames:
        target += 1
    # Snap last, so the minimum length cannot push a cut off its downbeat.
    if style.cut_on_downbeat and beats >= 4:
        while target < len(beat_frames) and beat_frames[target] not in downbeats:
            target += 1
    return target if target < len(beat_frames) else None


def plan_transitions(
    segments: list[Segment],
    music: MusicAnalysis,
    style: Style,
    fps: Fraction,
    start_sec: float,
) -> list[Cut]:
    """How each join is made; transitions are centred on the cut, which stays put."""
    beat_sec = 60.0 / music.tempo_bpm if music.tempo_bpm > 0 else 0.5
    downbeats = {round((b - start_sec) * fps) for b in music.downbeats_sec}
    cuts = []
    for before, after in itertools.pairwise(segments):
        rule = style.transitions[after.section]
        half = round(rule.beats * beat_sec * fps / 2)
        half = min(half, before.length_frames // 2, after.length_frames // 2)
        if (
            style.downbeat_flash
            and after.section == "peak"
            and after.start_frame in downbeats
        ):
            flash = min(max(2, round(fps * 0.2)), after.length_frames // 2)
            cuts.append(Cut(after.start_frame, "flash", 0, flash))
        elif rule.kind == "cut" or half < 1:
            cuts.append(Cut(after.start_frame, "cut", 0, 0))
        else:
            cuts.append(Cut(after.start_frame, rule.kind, half, half))
    return cuts


def choose_shots(
    segments: list[Segment],
    cuts: list[Cut],
    sources: list[Source],
    style: Style,
    fps: Fraction,
    rng: random.Random,
) -> None:
    """Fill each segment with a shot: best score, spread across sources, no reuse
    until every shot has been used once."""
    for position, segment in enumerate(segments):
        if position > 0 and cuts[position - 1].kind != "cut":
            segment.handle_before_frames = cuts[position - 1].frames_before
        if position < len(cuts) and cuts[position].kind != "cut":
            segment.handle_after_frames = cuts[position].frames_after
        segment.speed = style.speed.get(segment.section, 1.0)
    usage = Usage()
    for segment in segments:
        _fill_segment(segment, sources, style, fps, rng, usage)
    if style.chronological:
        _reorder_chronologically(segments, sources, fps)
    for segment in segments:
        _end_inside_the_clip(segment, sources[segment.source_index], fps)


def _end_inside_the_clip(segment: Segment, source: Source, fps: Fraction) -> None:
    """Keep a segment from playing past its clip's last frame, which an editor
    shows as offline: in points lie on source frames, and a filling order may
    move them. Start it earlier where the clip allows, else play it slower."""
    info = source.info
    if info.still:
        return
    rate = info.fps_fraction
    after_sec = segment.source_sec(
        segment.length_frames + segment.handle_after_frames, fps
    )
    over_sec = segment.in_sec + after_sec - info.duration_sec
    if over_sec <= 1e-9:
        return
    earliest_sec = segment.source_sec(segment.handle_before_frames, fps)
    earlier = Fraction(math.floor((segment.in_sec - over_sec) * rate)) / rate
    if earlier >= earliest_sec:
        segment.in_sec = float(earlier)
        return
    last_frame = max(0, math.ceil(info.duration_sec * rate) - 1)
    segment.in_sec = float(
        Fraction(min(math.ceil(earliest_sec * rate), last_frame)) / rate
    )
    room_sec = info.duration_sec - segment.in_sec
    segment.speed *= room_sec / after_sec
    segment.filled_slower = True


def _fill_segment(
    segment: Segment,
    sources: list[Source],
    style: Style,
    fps: Fraction,
    rng: random.Random,
    usage: Usage,
) -> None:
    need_sec = segment.source_sec(
        segment.length_frames
        + segment.handle_before_frames
        + segment.handle_after_frames,
        fps,
    )
    candidates = [
        (source_index, shot_index)
        for source_index, source in enumerate(sources)
        for shot_index, shot in enumerate(source.analysis.shots)
        if shot.end_sec - shot.start_sec >= need_sec
    ]
    if not candidates:
        # No single shot is long enough: run across shot boundaries of a whole clip,
        # or, when no clip is that long, take the longest (_end_inside_the_clip
        # then plays it slower so that it fills the segment).
        longest = max(range(len(sources)), key=lambda i: sources[i].info.duration_sec)
        candidates = [
            (source_index, WHOLE_CLIP)
            for source_index, source in enumerate(sources)
            if source.info.duration_sec >= need_sec
        ] or [(longest, WHOLE_CLIP)]
    fresh = _least_used(candidates, usage)
    if len(sources) > 1 and all(c[0] == usage.previous_source for c in fresh):
        # Reusing another clip's shot early beats the same clip cut after cut.
        others = [c for c in candidates if c[0] != usage.previous_source]
        fresh = _least_used(others, usage) if others else fresh
    least_used = usage.counts.get(fresh[0], 0)
    source_index, shot_index = max(
        fresh, key=lambda c: _candidate_score(c, sources, style, usage, rng)
    )
    source = sources[source_index]
    if shot_index == WHOLE_CLIP:
        _place(segment, source_index, shot_index, source, 0.0, need_sec, fps, rng)
    else:
        shot = source.analysis.shots[shot_index]
        _place(segment, source_index, shot_index, source, shot.start_sec, need_sec, fps,
               rng, shot.end_sec)  # fmt: skip
    usage.counts[(source_index, shot_index)] = least_used + 1
    usage.per_source[source_index] = usage.per_source.get(source_index, 0) + 1
    usage.previous_source = source_index


def _least_used(
    candidates: list[tuple[int, int]], usage: Usage
) -> list[tuple[int, int]]:
    fewest = min(usage.counts.get(c, 0) for c in candidates)
    return [c for c in candidates if usage.counts.get(c, 0) == fewest]


def _candidate_score(
    candidate: tuple[int, int],
    sources: list[Source],
    style: Style,
    usage: Usage,
    rng: random.Random,
) -> float:
    source_index, shot_index = candidate
    shots = sources[source_index].analysis.shots
    if shot_index == WHOLE_CLIP:
        score = max(shot_score(shot, style.score_weights) for shot in shots)
    else:
        score = shot_score(shots[shot_index], style.score_weights)
    if source_index == usage.previous_source and len(sources) > 1:
        score -= SAME_SOURCE_PENALTY
    score -= USE_COUNT_PENALTY * usage.per_source.get(source_index, 0)
    return score + rng.uniform(-SCORE_JITTER, SCORE_JITTER)


def _place(
    segment: Segment,
    source_index: int,
    shot_index: int,
    source: Source,
    start_sec: float,
    need_sec: float,
    fps: Fraction,
    rng: random.Random,
    end_sec: float | None = None,
) -> None:
    """Pick the in-point: a seeded position inside the shot, on a source frame."""
    end_sec = source.info.duration_sec if end_sec is None else end_sec
    rate = source.info.fps_fraction
    if source.info.still:
        segment.speed = 1.0
    first = start_sec + segment.source_sec(segment.handle_before_frames, fps)
    last = max(first, end_sec - need_sec + first - start_sec)
    if source.info.still:
        # Every moment of a still is the same picture: it starts at its start.
        last = first
    in_sec = rng.uniform(first, last)
    segment.source_index = source_index
    segment.shot_index = shot_index
    segment.in_sec = float(in_point(in_sec, first, last, rate, fps))


def in_point(
    wanted_sec: float, first_sec: float, last_sec: float, rate: Fraction, fps: Fraction
) -> Fraction:
    """An in point at or after wanted_sec on a source frame, no later than last_sec.

    Where source frames and timeline frames meet often (a 25 fps clip in a 30 fps
    timeline: every 0.2 s) it is on both, so that formats and editors that count in
    points in timeline frames (EDL, FCP 7 clip items, MLT) start on the same frame.
    """
    step = _common_step(rate, fps)
    if step is not None and step <= MAX_COMMON_STEP_SEC:
        on_both = math.ceil(Fraction(wanted_sec) / step) * step
        if on_both > last_sec:
            on_both = math.floor(Fraction(last_sec) / step) * step
        if on_both >= first_sec - 1e-9:
            return on_both
    frame = min(math.ceil(wanted_sec * rate), math.floor(last_sec * rate))
    return Fraction(max(frame, math.ceil(first_sec * rate))) / rate


def _common_step(rate: Fraction, fps: Fraction) -> Fraction | None:
    """The shortest time that is a whole number of frames at both rates."""
    if rate <= 0 or fps <= 0:
        return None
    source, timeline = 1 / Fraction(rate), 1 / Fraction(fps)
    return Fraction(
        math.lcm(source.numerator, timeline.numerator),
        math.gcd(source.denominator, timeline.denominator),
    )


def _reorder_chronologically(
    segments: list[Segment], sources: list[Source], fps: Fraction
) -> None:
    """Keep the chosen shots but tell them in filming order, each placed to fit."""
    picks = sorted(
        ((s.source_index, s.shot_index, s.in_sec) for s in segments),
        key=lambda p: (_filmed_key(sources[p[0]]), p[2]),
    )
    order = sorted(range(len(sources)), key=lambda i: _filmed_key(sources[i]))
    # Where each source's last placed shot ended: time only moves forward.
    cursor_sec: dict[int, float] = {}
    for segment, (source_index, shot_index, in_sec) in zip(
        segments, picks, strict=True
    ):
        handle_sec = segment.source_sec(segment.handle_before_frames, fps)
        need_sec = segment.source_sec(
            segment.length_frames
            + segment.handle_before_frames
            + segment.handle_after_frames,
            fps,
        )

        def room(index: int, need_sec: float = need_sec) -> float:
            return (
                sources[index].info.duration_sec - need_sec - cursor_sec.get(index, 0.0)
            )

        if room(source_index) < 0:
            # This clip is used up: go on with the next one filmed that has room.
            later = (
                order[order.index(source_index) :] + order[: order.index(source_index)]
            )
            fitting = [i for i in later if room(i) >= 0]
            if fitting:
                source_index, shot_index, in_sec = fitting[0], WHOLE_CLIP, 0.0
        source = sources[source_index]
        latest_sec = max(handle_sec, source.info.duration_sec - need_sec + handle_sec)
        in_sec = max(in_sec, cursor_sec.get(source_index, 0.0) + handle_sec)
        rate = source.info.fps_fraction
        wanted_sec = min(in_sec, latest_sec)
        segment.source_index, segment.shot_index = source_index, shot_index
        segment.in_sec = float(in_point(wanted_sec, wanted_sec, latest_sec, rate, fps))
        cursor_sec[source_index] = segment.in_sec + segment.source_sec(
            segment.length_frames, fps
        )


def _filmed_key(source: Source) -> tuple[str, str]:
    info = source.info
    when = info.creation_time or ""
    if not when:
        try:
            when = f"{os.stat(info.path).st_mtime:020.3f}"
        except OSError:
            when = ""
    return when, info.path


def _at_timeline_rate(source: Source, fps: Fraction) -> Source:
    """A still has no frame rate of its own: it takes the timeline's, so that its
    ranges count in whole output frames in every editor."""
    if not source.info.still:
        return source
    info = replace(source.info, fps=(fps.numerator, fps.denominator))
    return Source(info, source.analysis)


def plan_montage(
    sources: list[Source],
    music: MusicAnalysis,
    style: Style,
    options: PlanOptions,
) -> otio.schema.Timeline:
    """From analysed sources and song to the timeline, deterministically for a seed."""
    rng = random.Random(options.seed)
    sources = [_at_timeline_rate(source, options.fps) for source in sources]
    start_sec, total_frames = music_window(music, options.fps, options.duration_sec)
    longest_sec = max(
        math.inf if source.info.still else source.info.duration_sec
        for source in sources
    )
    segments = plan_cuts(
        music, style, start_sec, total_frames, options.fps, rng, longest_sec
    )
    cuts = plan_transitions(segments, music, style, options.fps, start_sec)
    choose_shots(segments, cuts, sources, style, options.fps, rng)
    log.info("Planned %d shots over %d frames", len(segments), total_frames)
    return build_timeline(
        segments, cuts, sources, music, style, options, start_sec, total_frames
    )
