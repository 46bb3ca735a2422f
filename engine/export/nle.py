"""The timeline through OpenTimelineIO's adapters: .otio, FCP 7 XML, FCPXML, EDL.

The adapters write the cuts; what they leave out or get wrong for editors is filled
in here from our own probe (frame sizes, rates, durations, start timecodes), so no
ffprobe binary is needed. Each writer works on a copy of the timeline.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from fractions import Fraction
from typing import Any

import opentimelineio as otio

from engine.export.common import (
    common_warnings,
    file_url,
    push_in_warning,
    song_clip,
    song_to_frames,
    source_rate,
    standard_rate,
    timeline_fps,
    video_clips,
)
from engine.timeline import META
from engine.timewarp import remove_time_warps

Files = dict[str, str]
REEL_LENGTH = 8
# Reel names with a meaning of their own in CMX 3600 (black, bars, auxiliary).
RESERVED_REELS = {"AX", "BL", "BLACK", "BARS"}


def write_otio(timeline: otio.schema.Timeline, stem: str) -> tuple[Files, list[str]]:
    """The timeline itself: cuts, transitions, song, markers and our metadata."""
    text = otio.adapters.write_to_string(timeline, "otio_json")
    push_in = push_in_warning(timeline, "The .otio (outside its Montage AI metadata)")
    return {".otio": text}, [push_in] if push_in else []


def write_fcp7(timeline: otio.schema.Timeline, stem: str) -> tuple[Files, list[str]]:
    """FCP 7 XML (xmeml 5) for Premiere Pro and DaVinci Resolve."""
    copy = _with_file_urls(timeline.deepcopy())
    moved = song_to_frames(copy, "FCP 7 XML")
    _clips_to_timeline_rate(copy, from_timecode=False)
    text = otio.adapters.write_to_string(copy, "fcp_xml")
    root = ET.fromstring(text)
    _fill_fcp7_media(root, timeline)
    warnings = [moved] if moved else []
    warnings += common_warnings(
        timeline, "FCP 7 XML", transitions=True, markers=True, fades=False
    )
    return {".xml": _xml_text(root, "xmeml")}, warnings


def write_fcpxml(timeline: otio.schema.Timeline, stem: str) -> tuple[Files, list[str]]:
    """FCPXML 1.8 for Final Cut Pro (and DaVinci Resolve)."""
    copy = _with_file_urls(timeline.deepcopy())
    for clip in copy.find_clips():
        # The adapter finds elements by name with an XPath quoted in apostrophes.
        clip.name = clip.name.replace("'", "\u2019")
    fps = timeline_fps(timeline)
    # The adapter knows whole rates only (and 29.97 as a rounded float): an NTSC
    # timeline is written at its whole rate, every time then stretched back exactly.
    stretch = Fraction(round(fps)) / fps
    if stretch != 1:
        _scale_rates(copy, stretch)
    text = otio.adapters.write_to_string(copy, "fcpx_xml")
    root = ET.fromstring(text)
    if stretch != 1:
        _stretch_fcpxml_times(root, stretch, fps)
    _fill_fcpxml_formats(root, timeline)
    _fill_fcpxml_song(root, timeline)
    warnings = common_warnings(
        timeline, "FCPXML", transitions=False, markers=True, fades=False
    )
    return {".fcpxml": _xml_text(root, "fcpxml")}, warnings


def write_edl(timeline: otio.schema.Timeline, stem: str) -> tuple[Files, list[str]]:
    """A CMX 3600 EDL at the timeline's rate, and a table of its reel names."""
    copy = timeline.deepcopy()
    remove_time_warps(copy)
    moved = song_to_frames(copy, "The EDL")
    _clips_to_timeline_rate(copy, from_timecode=True)
    fps = timeline_fps(timeline)
    clips = [*video_clips(copy), *([song] if (song := song_clip(copy)) else [])]
    reels = reel_names([clip.media_reference.target_url for clip in clips])
    for clip in clips:
        path = clip.media_reference.target_url
        clip.name = os.path.basename(path)
        clip.metadata["cmx_3600"] = {"reel": reels[path]}
    text = otio.adapters.write_to_string(
        copy, "cmx_3600", rate=float(fps), style="avid"
    )
    if fps.denominator != 1 and fps.numerator % 30000 == 0:
        # 29.97 and 59.94 count in drop-frame timecode (the adapter writes ';').
        text = text.replace("\n\n", "\nFCM: DROP FRAME\n\n", 1)
    # Full-path comments make Premiere Pro name the media UNKNOWN and not relink;
    # the clip-name comments and the reel table are what editors match on.
    kept = [
        line
        for line in text.splitlines()
        if not line.startswith(("* FROM CLIP:", "* TO CLIP:", "* OTIO TRUNCATED"))
    ]
    song = song_clip(copy)
    if song is not None:
        kept += _edl_song_event(song, reels, fps, _last_event_number(kept) + 1)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["reel", "path", "file name"])
    for path, reel in reels.items():
        writer.writerow([reel, path, os.path.basename(path)])
    warnings = [moved] if moved else []
    warnings += _edl_rate_warnings(timeline, fps)
    warnings += common_warnings(
        timeline, "The EDL", transitions=True, markers=False, fades=False
    )
    return {".edl": "\n".join(kept) + "\n", ".reels.csv": table.getvalue()}, warnings


def reel_names(paths: list[str]) -> dict[str, str]:
    """A distinct reel name of at most 8 letters and digits for each path."""
    reels: dict[str, str] = {}
    taken = set(RESERVED_REELS)
    for path in dict.fromkeys(paths):
        stem = os.path.splitext(os.path.basename(path))[0]
        ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore")
        base = re.sub(r"[^A-Z0-9]", "", ascii_stem.decode().upper()) or "REEL"
        name = base[:REEL_LENGTH]
        number = 1
        while name in taken:
            suffix = f"{number:02d}"
            name = base[: REEL_LENGTH - len(suffix)] + suffix
            number += 1
        taken.add(name)
        reels[path] = name
    return reels


def _last_event_number(lines: list[str]) -> int:
    numbers = [int(line[:3]) for line in lines if line[:3].isdigit()]
    return max(numbers, default=0)


def _edl_song_event(
    song: otio.schema.Clip, reels: dict[str, str], fps: Fraction, number: int
) -> list[str]:
    """The song as a stereo audio event (the adapter writes the first track only)."""
    source = song.source_range
    record = song.range_in_parent()

    def timecode(time: otio.opentime.RationalTime) -> str:
        return otio.opentime.to_timecode(time.rescaled_to(fps), fps)

    reel = reels[song.media_reference.target_url]
    return [
        f"{number:03d}  {reel:8} AA    C        {timecode(source.start_time)} "
        f"{timecode(source.end_time_exclusive())} {timecode(record.start_time)} "
        f"{timecode(record.end_time_exclusive())}",
        f"* FROM CLIP NAME:  {song.name}",
    ]


def _edl_rate_warnings(timeline: otio.schema.Timeline, fps: Fraction) -> list[str]:
    others = sorted(
        {
            f"{os.path.basename(clip.media_reference.target_url)} "
            f"({float(source_rate(clip)):.4g} fps)"
            for clip in video_clips(timeline)
            if source_rate(clip) != fps
        }
    )
    if not others:
        return []
    return [
        f"A CMX 3600 EDL counts every timecode at one rate ({float(fps):.4g} fps): "
        f"the source timecodes of {', '.join(others)} start at their own start "
        f"timecode and count on at {float(fps):.4g} fps, so past their first frame "
        "they differ from the clip's own timecode. "
        "Editors that read them at the clip's own rate can land a frame off; use "
        "the .otio or FCP 7 XML export for those."
    ]


def _clips_to_timeline_rate(
    timeline: otio.schema.Timeline, *, from_timecode: bool
) -> None:
    """Count every clip's source positions in timeline frames, rounded.

    The adapters mix rates when a clip's source rate differs from its transitions'
    (they subtract 30 fps offsets from 25 fps in points, then truncate), so clips
    count at the sequence rate, as editors write them. An in point rounded to the
    sequence rate is within half a source frame of the frame, which editors show.
    from_timecode keeps positions counted from timecode zero (the EDL's source
    timecodes); otherwise they count from the first frame and each file's own rate
    and timecode are filled in afterwards (FCP 7 XML).
    """
    fps = timeline_fps(timeline)
    for clip in video_clips(timeline):
        reference = clip.media_reference
        available = reference.available_range
        offset = clip.source_range.start_time - available.start_time
        first = otio.opentime.RationalTime(0, fps)
        if from_timecode:
            first = _timecode_at(reference.metadata[META].get("timecode"), fps) or (
                otio.opentime.RationalTime(
                    round(available.start_time.to_seconds() * fps), fps
                )
            )
        reference.available_range = otio.opentime.TimeRange(
            first,
            otio.opentime.RationalTime(
                round(available.duration.to_seconds() * fps), fps
            ),
        )
        in_frames = round(offset.to_seconds() * fps)
        clip.source_range = otio.opentime.TimeRange(
            otio.opentime.RationalTime(first.value + in_frames, fps),
            clip.source_range.duration.rescaled_to(fps),
        )


def _timecode_at(label: str | None, fps: Fraction) -> otio.opentime.RationalTime | None:
    """A source's start timecode label, counted at the EDL's rate, so that its first
    frame keeps its own label there (01:00:00:00 stays 01:00:00:00 at any rate)."""
    if not label:
        return None
    drop_frame = fps.denominator != 1 and fps.numerator % 30000 == 0
    text = label[:-3] + (";" if drop_frame else ":") + label[-2:]
    try:
        return otio.opentime.from_timecode(text, float(fps))
    except ValueError:
        return None


def _with_file_urls(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    for clip in timeline.find_clips():
        reference = clip.media_reference
        if isinstance(reference, otio.schema.ExternalReference):
            # Named by the file's own name, not its percent-encoded URL.
            reference.name = reference.name or os.path.basename(reference.target_url)
            reference.target_url = file_url(reference.target_url)
    return timeline


def _facts_by_url(timeline: otio.schema.Timeline) -> dict[str, dict[str, Any]]:
    return {
        file_url(clip.media_reference.target_url): clip.media_reference.metadata[META]
        for clip in video_clips(timeline)
    }


def _fill_fcp7_media(root: ET.Element, timeline: otio.schema.Timeline) -> None:
    """Frame size and rate of each file and of the sequence, from our probe."""
    facts = _facts_by_url(timeline)
    for file_element in root.iter("file"):
        url = file_element.findtext("pathurl")
        if url not in facts:
            continue
        media = file_element.find("media")
        video = media.find("video") if media is not None else None
        if media is None or video is None:
            continue
        fact = facts[url]
        rate = standard_rate(Fraction(*fact["fps"]))
        _set_fcp7_rate(file_element, rate)
        duration = file_element.find("duration")
        if duration is not None:
            duration.text = str(round(fact["duration_sec"] * rate))
        timecode = file_element.find("timecode")
        if timecode is not None:
            file_element.remove(timecode)
        file_element.insert(
            list(file_element).index(media), _fcp7_timecode(fact.get("timecode"), rate)
        )
        video.append(_fcp7_characteristics(rate, fact["width"], fact["height"]))
        audio = media.find("audio")
        if audio is not None and not fact.get("has_audio", True):
            media.remove(audio)
    meta = timeline.metadata[META]
    for sequence_format in root.findall(".//sequence/media/video/format"):
        sequence_format.clear()
        sequence_format.append(
            _fcp7_characteristics(timeline_fps(timeline), meta["width"], meta["height"])
        )


def _set_fcp7_rate(element: ET.Element, rate: Fraction) -> None:
    old = element.find("rate")
    new = _fcp7_rate(rate)
    if old is None:
        element.append(new)
    else:
        element.insert(list(element).index(old), new)
        element.remove(old)


def _fcp7_rate(rate: Fraction) -> ET.Element:
    """An FCP 7 rate: a whole timebase, flagged NTSC when it runs 1000/1001 slow."""
    ntsc = (rate * Fraction(1001, 1000)).denominator == 1
    timebase = round(rate * Fraction(1001, 1000)) if ntsc else round(rate)
    rate_element = ET.Element("rate")
    ET.SubElement(rate_element, "timebase").text = str(timebase)
    ET.SubElement(rate_element, "ntsc").text = "TRUE" if ntsc else "FALSE"
    return rate_element


def _fcp7_timecode(timecode: str | None, rate: Fraction) -> ET.Element:
    """The file's start timecode at its own rate (drop-frame where it says so)."""
    text = timecode or "00:00:00:00"
    try:
        start = otio.opentime.from_timecode(text, float(rate))
    except ValueError:
        text, start = "00:00:00:00", otio.opentime.RationalTime(0, float(rate))
    element = ET.Element("timecode")
    element.append(_fcp7_rate(rate))
    ET.SubElement(element, "string").text = text
    ET.SubElement(element, "frame").text = str(round(start.value))
    ET.SubElement(element, "displayformat").text = "DF" if ";" in text else "NDF"
    return element


def _fcp7_characteristics(rate: Fraction, width: int, height: int) -> ET.Element:
    characteristics = ET.Element("samplecharacteristics")
    characteristics.append(_fcp7_rate(rate))
    ET.SubElement(characteristics, "width").text = str(width)
    ET.SubElement(characteristics, "height").text = str(height)
    ET.SubElement(characteristics, "anamorphic").text = "FALSE"
    ET.SubElement(characteristics, "pixelaspectratio").text = "square"
    ET.SubElement(characteristics, "fielddominance").text = "none"
    return characteristics


def _scale_rates(timeline: otio.schema.Timeline, factor: Fraction) -> None:
    """Every time in the timeline divided by factor (its rate multiplied by it)."""

    def scaled(time: otio.opentime.RationalTime) -> otio.opentime.RationalTime:
        rate = time.rate * float(factor)
        # Timeline rates land on whole numbers, which the adapter looks up.
        whole = round(rate)
        return otio.opentime.RationalTime(
            time.value, whole if abs(rate - whole) < 1e-6 else rate
        )

    def scaled_range(span: otio.opentime.TimeRange) -> otio.opentime.TimeRange:
        return otio.opentime.TimeRange(scaled(span.start_time), scaled(span.duration))

    timeline.global_start_time = scaled(timeline.global_start_time)
    for marker in timeline.tracks.markers:
        marker.marked_range = scaled_range(marker.marked_range)
    for track in timeline.tracks:
        for item in track:
            if isinstance(item, otio.schema.Transition):
                item.in_offset = scaled(item.in_offset)
                item.out_offset = scaled(item.out_offset)
            elif isinstance(item, otio.schema.Clip):
                item.source_range = scaled_range(item.source_range)
                reference = item.media_reference
                reference.available_range = scaled_range(reference.available_range)


def _stretch_fcpxml_times(root: ET.Element, factor: Fraction, fps: Fraction) -> None:
    """Undo _scale_rates in the written document, and give it its true rate."""
    for element in root.iter():
        for name in ("offset", "duration", "start"):
            value = element.get(name)
            if value and value.endswith("s"):
                element.set(name, _seconds(Fraction(value[:-1]) * factor))
        if element.tag == "format" and element.get("frameDuration"):
            element.set("frameDuration", _seconds(1 / fps))


def _fill_fcpxml_formats(root: ET.Element, timeline: otio.schema.Timeline) -> None:
    """A format per source (its own rate and size), durations and start timecodes."""
    resources = root.find("resources")
    if resources is None:
        return
    meta = timeline.metadata[META]
    sequence = root.find("./project/sequence")
    if sequence is not None:
        sequence_format = resources.find(f"./format[@id='{sequence.get('format')}']")
        if sequence_format is not None:
            sequence_format.set("frameDuration", _seconds(1 / timeline_fps(timeline)))
            sequence_format.set("width", str(meta["width"]))
            sequence_format.set("height", str(meta["height"]))
            # The adapter names it after the first clip's size (through ffprobe,
            # when installed): a 640x480 name on a 1080p sequence misleads Final Cut.
            sequence_format.attrib.pop("name", None)
    facts = _facts_by_url(timeline)
    formats: dict[tuple[Fraction, int, int], str] = {}
    used_ids = {element.get("id") for element in resources}
    assets: dict[str, str] = {}
    for asset in resources.findall("asset"):
        fact = facts.get(asset.get("src", ""))
        if fact is None:
            continue
        rate = standard_rate(Fraction(*fact["fps"]))
        key = (rate, int(fact["width"]), int(fact["height"]))
        if key not in formats:
            number = len(used_ids) + 1
            while f"r{number}" in used_ids:
                number += 1
            format_id = f"r{number}"
            used_ids.add(format_id)
            formats[key] = format_id
            format_element = ET.Element(
                "format",
                {
                    "id": format_id,
                    "frameDuration": _seconds(1 / rate),
                    "width": str(key[1]),
                    "height": str(key[2]),
                },
            )
            resources.insert(0, format_element)
        frames = round(fact["duration_sec"] * rate)
        asset.set("format", formats[key])
        asset.set("duration", _seconds(frames / rate))
        asset.set(
            "start", _seconds(_first_frame(timeline, asset.get("src", "")) / rate)
        )
        asset.set("hasAudio", "1" if fact.get("has_audio") else "0")
        assets[asset.get("id", "")] = formats[key]
    rates = {
        asset.get("id", ""): Fraction(*facts[asset.get("src", "")]["fps"])
        for asset in resources.findall("asset")
        if asset.get("src", "") in facts
    }
    for asset_clip in root.iter("asset-clip"):
        ref = asset_clip.get("ref", "")
        if ref in assets:
            asset_clip.set("format", assets[ref])
            _on_format_grid(asset_clip, "start", rates[ref])
    for clip in root.iter("clip"):
        video = clip.find("video")
        if video is not None and video.get("ref", "") in rates:
            rate = rates[video.get("ref", "")]
            _on_format_grid(clip, "start", rate)
            _on_format_grid(video, "duration", rate)


def _on_format_grid(element: ET.Element, name: str, rate: Fraction) -> None:
    """A source time counted in its format's frames, as Final Cut counts them.

    The adapter writes it at the source's measured rate (frame 1 of a 30.02 fps
    phone clip at 999/29990 s); its format runs at the named rate (1/30 s a
    frame), and Final Cut wants in points on that grid.
    """
    value = element.get(name, "")
    if value.endswith("s"):
        frames = round(Fraction(value[:-1]) * rate)
        element.set(name, _seconds(frames / standard_rate(rate)))


def _first_frame(timeline: otio.schema.Timeline, url: str) -> int:
    for clip in video_clips(timeline):
        if file_url(clip.media_reference.target_url) == url:
            return round(clip.media_reference.available_range.start_time.value)
    return 0


def _fill_fcpxml_song(root: ET.Element, timeline: otio.schema.Timeline) -> None:
    """The song's exact start, and beat markers on it; downbeats as to-do markers."""
    song = song_clip(timeline)
    if song is None:
        return
    element = next(
        (clip for clip in root.iter("clip") if clip.get("lane") == "-1"),
        None,
    )
    if element is None:
        return
    fps = timeline_fps(timeline)
    start = song.source_range.start_time
    song_start = Fraction(round(start.value), round(start.rate))
    # The adapter truncates the song's start and its place to frames: it starts on
    # a sample, with the picture (at the local start of the clip it hangs from).
    element.set("start", _seconds(song_start))
    parent = next((clip for clip in root.iter("clip") if element in list(clip)), None)
    if parent is not None and parent.get("start"):
        element.set("offset", parent.get("start", "0s"))
    for marker in timeline.tracks.markers:
        frame = round(marker.marked_range.start_time.rescaled_to(fps).value)
        attributes = {
            "start": _seconds(song_start + Fraction(frame, fps)),
            "duration": _seconds(Fraction(1, fps)),
            "value": marker.name,
        }
        if marker.metadata.get(META, {}).get("downbeat"):
            attributes["completed"] = "0"
        ET.SubElement(element, "marker", attributes)


def _seconds(value: Fraction) -> str:
    """A time as FCPXML writes it: a rational number of seconds."""
    value = Fraction(value)
    if value.denominator == 1:
        return f"{value.numerator}s"
    return f"{value.numerator}/{value.denominator}s"


def _xml_text(root: ET.Element, doctype: str) -> str:
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE {doctype}>\n{body}\n'
