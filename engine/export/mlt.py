"""The rendered edit as an MLT XML project, for Shotcut (and Kdenlive, as a clip).

Timing comes from the render's own reading of the timeline (read_placements), so
each frame MLT shows is the source instant our render shows.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import opentimelineio as otio

from engine.export.common import push_in_warning
from engine.follow import enhancement_warnings
from engine.frames import FrameTransform, grade_filters
from engine.looks import cleanup_filters
from engine.luts import INTERPOLATION, lut_path
from engine.placements import ClipPlacement, Join, read_placements
from engine.probe import _pick_video_stream
from engine.render import AUDIO_RATE
from engine.timeline import META, metadata_rate

# Source times are asked this much late, like the render's SourceReader tolerance:
# a frame time that floating point lands just short of still shows that frame.
EPSILON_SEC = 1e-4
# A frame interval off the nominal one by this share of it makes a stretch VFR.
VFR_TOLERANCE = 0.25
# Read this far on either side of a placement when looking at its frame times.
SEEK_MARGIN_SEC = 1.0
# The quietest gain a fade-out keyframe is given (volume levels are in dB).
SILENCE_DB = -60.0

Entry = tuple[str, int, int]  # producer id, in, out (profile frames, inclusive)


@dataclass
class _Cut:
    """A placement in its chain: chain position = output frame + offset."""

    chain: str
    offset: int

    def entry(self, start: int, end: int) -> Entry:
        """The chain's in and out for output frames start..end (exclusive)."""
        return self.chain, start + self.offset, end - 1 + self.offset


class _Project:
    """The document being written, services in the order MLT has to read them."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.fps, self.total_frames = metadata_rate(meta), int(meta["total_frames"])
        self.width, self.height = int(meta["width"]), int(meta["height"])
        grade = meta.get("grade") or {}
        self.transform = FrameTransform(
            self.width, self.height, meta["fit"], grade, self.fps
        )
        self.root = ET.Element("mlt", LC_NUMERIC="C", title="Montage AI")
        self.root.set("producer", "main")
        self.root.append(_profile(self.fps, self.width, self.height))
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []
        # Stabilized clips, shown as filmed.
        self.unstabilized: list[str] = []

    def add(
        self,
        tag: str,
        properties: Mapping[str, object],
        parent: ET.Element | None = None,
        **attributes: object,
    ) -> ET.Element:
        """A service under parent (or the root), with a fresh id unless given one."""
        self.counts[tag] += 1
        element = _element(parent if parent is not None else self.root, tag)
        element.set("id", str(attributes.pop("id", f"{tag}{self.counts[tag] - 1}")))
        for name, value in attributes.items():
            element.set(name.rstrip("_"), str(value))
        for name, value in properties.items():
            ET.SubElement(element, "property", name=name).text = str(value)
        return element


def write_mlt(timeline: otio.schema.Timeline) -> tuple[str, list[str]]:
    """The MLT XML project text for the rendered edit, and warnings for what MLT
    cannot say."""
    meta = timeline.metadata[META]
    project = _Project(meta)
    placements, joins = read_placements(timeline)
    facts = {
        clip.media_reference.target_url: clip.media_reference.metadata[META]
        for clip in timeline.video_tracks()[0].find_clips()
    }
    cuts = [_add_chain(project, p, facts[p.path]) for p in placements]
    video = _add_video_playlist(project, placements, joins, cuts)
    audio = _add_song(project, timeline.audio_tracks()[0][0], meta)
    _add_main_tractor(project, video, audio)
    if project.unstabilized:
        names = ", ".join(dict.fromkeys(project.unstabilized))
        project.warnings.append(
            "The MLT project does not stabilize: MLT's deshake filter crashes melt "
            f"(seen with 7.12). {names} play as filmed there; add Shotcut's own "
            "Stabilize filter to them."
        )
    if push_in := push_in_warning(timeline, "MLT"):
        project.warnings.append(push_in)
    project.warnings += enhancement_warnings(timeline, "MLT")
    if markers := len(timeline.tracks.markers):
        project.warnings.append(
            f"MLT has no markers: the {markers} beat markers are in the .otio "
            "(and in FCP 7 XML and FCPXML, where those are exported)."
        )
    ET.indent(project.root)
    text = ET.tostring(project.root, encoding="unicode", xml_declaration=True)
    return text + "\n", list(dict.fromkeys(project.warnings))


def _element(parent: ET.Element, tag: str, entry: Entry | None = None) -> ET.Element:
    """A child element; an entry gives its producer, in and out attributes."""
    element = ET.SubElement(parent, tag)
    if entry is not None:
        producer, first, last = entry
        element.attrib.update(producer=producer, **{"in": str(first)}, out=str(last))
    return element


def _profile(fps: Fraction, width: int, height: int) -> ET.Element:
    """Square pixels, progressive; the colorspace players assume of untagged video."""
    divisor = math.gcd(width, height)
    values = {
        "width": width, "height": height, "progressive": 1,
        "sample_aspect_num": 1, "sample_aspect_den": 1,
        "display_aspect_num": width // divisor, "display_aspect_den": height // divisor,
        "frame_rate_num": fps.numerator, "frame_rate_den": fps.denominator,
        "colorspace": 709 if height >= 720 else 601,
    }  # fmt: skip
    profile = ET.Element(
        "profile", description=f"Montage AI {width}x{height} {float(fps):.4g}"
    )
    profile.attrib.update((name, str(value)) for name, value in values.items())
    return profile


# Sources.


def _add_chain(
    project: _Project, placement: ClipPlacement, facts: dict[str, Any]
) -> _Cut:
    """A chain for one placement: its file, a timeremap link unless MLT's own
    timing agrees with ours, then the render's framing and grade."""
    first = placement.record_start - placement.reach_before
    span = placement.record_end + placement.reach_after - first
    still = bool(facts.get("still"))
    remap_sec = None if still else _remap_sec(project, placement, first, span)
    if remap_sec is None:
        in_frame = round(placement.source_in_sec * project.fps)
        file_frames = round(float(facts["duration_sec"]) * project.fps)
        length = max(file_frames, in_frame + span)
        chain = _add_source(project, placement.path, length, still=still)
        offset = in_frame - placement.record_start
    else:
        chain = _add_source(project, placement.path, span)
        timings = ";".join(f"{at}={sec:.6f}" for at, sec in remap_sec.items())
        remap = {"mlt_service": "timeremap", "map": timings, "image_mode": "nearest"}
        project.add("link", remap, chain)
        offset = -first
    cleanup = placement.cleanup
    if "stabilize" in cleanup:
        # NOTE: melt 7.12 crashes on about two renders in five with avfilter.deshake
        # (measured): left out, with a warning, rather than a project that crashes.
        cleanup = tuple(kind for kind in cleanup if kind != "stabilize")
        project.unstabilized.append(os.path.basename(placement.path))
    _add_frame_filters(project, chain, facts, cleanup)
    return _Cut(chain.get("id", ""), offset)


def _remap_sec(
    project: _Project, placement: ClipPlacement, first: int, span: int
) -> dict[int, float] | None:
    """Source seconds (from the first frame) by chain position, or None.

    MLT and our render both show the source frame nearest a time (the later on a
    tie), so a constant-rate clip whose in point is on a timeline frame needs no
    remap: the planner puts in points there wherever the two rates meet often
    (engine.plan.in_point). Otherwise (a 29.97 fps clip in a 30 fps timeline) MLT
    would count the in point in timeline frames: a timeremap link gives it the
    exact time. That link shows the last frame at or before the time it is given;
    given half a frame more, that is the nearest frame. A variable-rate stretch is
    mapped frame by frame.
    """
    fps, name = project.fps, os.path.basename(placement.path)
    start_sec = placement.source_sec(first, fps)
    end_sec = placement.source_sec(first + span, fps)
    times = _frame_times_sec(placement.path, start_sec, end_sec)
    if times is None:
        project.warnings.append(
            f"{name} could not be read to check its frame timing; if its frame "
            "rate varies, MLT may show a neighbouring frame now and then."
        )
    elif _is_variable(times, float(placement.rate)):
        project.warnings.append(
            f"{name} has a variable frame rate, which MLT counts at its average "
            "rate: its frames are mapped for MLT 7.12, and other MLT versions may "
            "show a neighbouring frame now and then."
        )
        return _frame_keyframes(placement, times, first, span, fps)
    in_frames = Fraction(placement.source_in_sec).limit_denominator(10**6) * fps
    if in_frames.denominator == 1 and placement.speed == 1:
        return None
    relative_sec = start_sec - placement.start_sec + 0.5 / float(placement.rate)
    relative_sec += EPSILON_SEC
    return {0: relative_sec, span: relative_sec + end_sec - start_sec}


def _add_source(
    project: _Project, path: str, length: int, *, still: bool = False
) -> ET.Element:
    properties: dict[str, Any] = {"length": length, "eof": "pause", "resource": path}
    properties["shotcut:caption"] = os.path.basename(path)
    if not still:
        # A still is left to MLT's loader (qimage), which avformat would not be.
        properties["mlt_service"] = "avformat"
    return project.add("chain", properties, out=length - 1)


def _frame_times_sec(
    path: str, first_sec: float, last_sec: float
) -> list[float] | None:
    """Presentation times of the video frames around first_sec..last_sec."""
    times: list[float] = []
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = _pick_video_stream(container)
            if stream is None:
                return None
            target = max(0.0, first_sec - SEEK_MARGIN_SEC) / stream.time_base
            container.seek(int(target), stream=stream, backward=True)
            for packet in container.demux(stream):
                if packet.pts is not None:
                    times.append(float(packet.pts * stream.time_base))
                # Packets come in decode order: read on past B-frames' reordering.
                if times and times[-1] > last_sec + 2 * SEEK_MARGIN_SEC:
                    break
    except (av.error.FFmpegError, OSError):
        return None
    return sorted(t for t in times if t <= last_sec + SEEK_MARGIN_SEC) or None


def _is_variable(times: list[float], rate: float) -> bool:
    nominal_sec = 1 / rate
    return any(
        abs(later - earlier - nominal_sec) > VFR_TOLERANCE * nominal_sec
        for earlier, later in itertools.pairwise(times)
    )


def _frame_keyframes(
    placement: ClipPlacement, times: list[float], first: int, span: int, fps: Fraction
) -> dict[int, float]:
    """One keyframe a frame: the time MLT counts as the frame our render shows.

    MLT 7.12 numbers a variable-rate source's frames by rounding their times to its
    average rate and shows the first frame numbered at or after the time asked:
    half a frame after our frame's own time lands on that frame's number.
    """
    average_rate = (len(times) - 1) / max(times[-1] - times[0], 1e-6)
    keyframes = {}
    for position in range(span):
        wanted_sec = placement.source_sec(first + position, fps)
        index = max(0, bisect.bisect_right(times, wanted_sec + EPSILON_SEC) - 1)
        shown_sec = times[index]
        if index + 1 < len(times) and (
            times[index + 1] - wanted_sec <= wanted_sec - shown_sec + EPSILON_SEC
        ):
            shown_sec = times[index + 1]  # as near or nearer: our render shows it
        keyframes[position] = shown_sec - placement.start_sec + 0.5 / average_rate
    return keyframes


def _add_frame_filters(
    project: _Project,
    chain: ET.Element,
    facts: dict[str, Any],
    cleanup: tuple[str, ...],
) -> None:
    """Scale and crop (or pad) to the frame as the render does, then its clean-up
    and grade."""
    sample_aspect = facts["sample_aspect"]
    shown = [facts["width"] * sample_aspect[0] / sample_aspect[1], facts["height"]]
    if facts["rotation"] % 180:
        shown.reverse()
    width, height = project.transform._scaled_size(*shown)
    x, y = (project.width - width) // 2, (project.height - height) // 2
    affine = {"mlt_service": "affine", "background": "color:black"}
    affine |= {"transition.rect": f"{x} {y} {width} {height} 1"}
    affine |= {"transition.fill": "1", "transition.distort": "1"}
    project.add("filter", affine | {"shotcut:filter": "affineSizePosition"}, chain)
    # Clean-up and grade are FFmpeg's filters, with the render's own arguments.
    grade = project.transform.grade
    for name, arguments in cleanup_filters(cleanup) + grade_filters(grade):
        if name == "format":
            continue  # MLT converts between pixel formats itself
        options = _avfilter_options(name, arguments, grade)
        project.add("filter", {"mlt_service": f"avfilter.{name}"} | options, chain)


def _avfilter_options(
    name: str, arguments: str, grade: dict[str, Any]
) -> dict[str, str]:
    """A filter's arguments as MLT's av.* properties, each set as it is."""
    if name == "lut3d":
        # Set on its own, the path needs none of the filter syntax's quoting.
        return {"av.file": str(lut_path(str(grade["lut"]))), "av.interp": INTERPOLATION}
    options = dict(part.split("=", 1) for part in arguments.split(":") if part)
    return {f"av.{key}": text.replace("\\,", ",") for key, text in options.items()}


# The video track: clips, and tractors for the transitions between them.


def _add_video_playlist(
    project: _Project,
    placements: list[ClipPlacement],
    joins: list[Join],
    cuts: list[_Cut],
) -> str:
    """V1: each clip without its transition frames, each transition a tractor."""
    join_after = {join.index: join for join in joins}
    entries: list[Entry] = []
    for index, placement in enumerate(placements):
        incoming, outgoing = join_after.get(index - 1), join_after.get(index)
        start = placement.record_start + (incoming.after if incoming else 0)
        end = placement.record_end - (outgoing.before if outgoing else 0)
        if end > start:
            entries.append(cuts[index].entry(start, end))
        if outgoing is not None:
            entries += _transition_entries(project, outgoing, cuts[index : index + 2])
    playlist = project.add("playlist", {"shotcut:video": 1, "shotcut:name": "V1"})
    for entry in entries:
        _element(playlist, "entry", entry)
    return playlist.get("id", "")


def _transition_entries(project: _Project, join: Join, cuts: list[_Cut]) -> list[Entry]:
    """A crossfade mixes both clips' handles; a dip or a flash mixes with a colour."""
    start, end = join.frame - join.before, join.frame + join.after
    if join.kind == "whip":
        project.warnings.append(
            "MLT has no whip pan: each is a dissolve of the same length, centred on "
            "the same cut."
        )
    if join.kind in ("crossfade", "whip"):
        outgoing, incoming = cuts[0].entry(start, end), cuts[1].entry(start, end)
        return [_add_dissolve(project, outgoing, incoming)]
    # As the render: a dip to black, and every other kind (dip_white, flash) white.
    colour = _colour(project, "black" if join.kind == "dip_black" else "white")
    entries = []
    if join.before:
        outgoing = cuts[0].entry(start, join.frame)
        entries.append(_add_dissolve(project, outgoing, (colour, 0, join.before - 1)))
    if join.after:
        incoming = cuts[1].entry(join.frame, end)
        entries.append(_add_dissolve(project, (colour, 0, join.after - 1), incoming))
    return entries


def _add_dissolve(project: _Project, first: Entry, second: Entry) -> Entry:
    """Shotcut's transition: a tractor dissolving its first track into its second.

    NOTE: MLT's luma weights frame k of n by k/n, the render by (k + 0.5)/n.
    """
    last = first[2] - first[1]
    tractor = project.add("tractor", {"shotcut:transition": "lumaMix"}, in_=0, out=last)
    _element(tractor, "track", first)
    _element(tractor, "track", second)
    tracks = {"a_track": 0, "b_track": 1}
    project.add("transition", tracks | {"mlt_service": "luma"}, tractor, out=last)
    mix = {"mlt_service": "mix", "start": -1, "accepts_blanks": 1}
    project.add("transition", tracks | mix, tractor, out=last)
    return tractor.get("id", ""), 0, last


def _colour(project: _Project, name: str) -> str:
    """A colour producer named after its colour, written once."""
    if project.root.find(f"producer[@id='{name}']") is None:
        length = project.total_frames
        properties = {"length": length, "eof": "pause", "resource": name}
        properties |= {"mlt_service": "color", "set.test_audio": 0}
        project.add("producer", properties, id=name, out=length - 1)
    return name


# The song, and the tractor that holds the tracks.


def _add_song(project: _Project, song: otio.schema.Clip, meta: dict[str, Any]) -> str:
    """A1: the song from where the render entered it, faded out as rendered."""
    fps, total = project.fps, project.total_frames
    start_sec = float(meta["music"]["start_sec"])
    in_frame = round(start_sec * fps)
    if (moved_ms := abs(in_frame / fps - start_sec) * 1000) > 1.0:
        project.warnings.append(
            f"The song enters {moved_ms:.0f} ms off a frame boundary, which MLT "
            "cannot say: the project starts it at the nearest frame, "
            f"{float(in_frame / fps):.3f} s into the song."
        )
    if round(start_sec * AUDIO_RATE):
        project.warnings.append(
            "The render fades the song in over 10 ms where it enters mid-song; MLT "
            "changes volume only once a frame, so here the song cuts straight in."
        )
    song_sec = song.media_reference.available_range.duration.to_seconds()
    length = max(round(song_sec * fps), in_frame + total)
    chain = _add_source(project, song.media_reference.target_url, length)
    if fade_frames := round(float(song.metadata[META]["fade_out_sec"]) * fps):
        _add_fade_out(project, chain, in_frame + total - fade_frames, fade_frames)
    playlist = project.add("playlist", {"shotcut:audio": 1, "shotcut:name": "A1"})
    _element(playlist, "entry", (chain.get("id", ""), in_frame, in_frame + total - 1))
    return playlist.get("id", "")


def _add_fade_out(
    project: _Project, chain: ET.Element, first: int, frames: int
) -> None:
    """A fade linear in gain, as rendered: one volume keyframe (in dB) a frame."""
    levels = []
    for position in range(frames):
        gain = (frames - position - 0.5) / frames
        levels.append(f"{position}={max(SILENCE_DB, 20 * math.log10(gain)):.3f}")
    volume = {"mlt_service": "volume", "level": ";".join(levels)}
    volume |= {"shotcut:filter": "fadeOutVolume"}
    project.add("filter", volume, chain, in_=first, out=first + frames - 1)


def _add_main_tractor(project: _Project, video: str, audio: str) -> None:
    """Shotcut's layout: a black background track, V1 muted, A1 mixed in."""
    last = project.total_frames - 1
    black = _colour(project, "black")
    background = project.add("playlist", {}, id="background")
    _element(background, "entry", (black, 0, last))
    tractor = project.add("tractor", {"shotcut": 1}, id="main", out=last)
    for producer, hidden in (("background", ""), (video, "audio"), (audio, "video")):
        track = _element(tractor, "track")
        track.attrib.update(producer=producer, **({"hide": hidden} if hidden else {}))
    for b_track in (1, 2):
        mix = {"a_track": 0, "b_track": b_track, "mlt_service": "mix"}
        project.add("transition", mix | {"always_active": 1, "sum": 1}, tractor)
