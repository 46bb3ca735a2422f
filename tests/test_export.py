"""Timelines for editors: every format read back gives the rendered edit, frame for frame.

One real render (mixed rates, a start timecode, a 29.97 fps clip, VFR, a late
start, folders with spaces and non-ASCII letters) is exported to every format;
each file is read back through OpenTimelineIO's own adapter and compared, record
frame by record frame, with the timeline the render used.
"""

from __future__ import annotations

import csv
import errno
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import av
import opentimelineio as otio
import pytest

from engine.errors import OutputError
from engine.export import StagedFiles, build_exports
from engine.export.nle import reel_names
from engine.placements import read_placements
from engine.probe import probe_media
from engine.protocol import (
    EXIT_CODES,
    ErrorCode,
    EventKind,
    JobSpec,
    JobSpecError,
    parse_event,
    parse_export_formats,
)
from engine.timeline import timeline_rate
from tests.audio_media import write_song
from tests.engine_runs import run_engine
from tests.media import decode_rgb_frames, read_marker, write_marker_clip

FPS = 30
FORMATS = ["fcp7", "fcpxml", "edl", "csv"]
TIMECODE = "01:00:10:05"


@pytest.fixture(scope="module")
def render(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished 30 fps render with every export, and the events it reported."""
    return render_job(media_dir, tmp_path_factory.mktemp("export render ü"), FPS)


@pytest.fixture(scope="module")
def ntsc_render(
    media_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The same at 29.97 fps, whose timecodes are drop-frame."""
    return render_job(media_dir, tmp_path_factory.mktemp("export ntsc"), 29.97)


def render_job(media_dir: Path, out_dir: Path, fps: float) -> dict[str, Any]:
    folder = media_dir / "export clips é"
    folder.mkdir(exist_ok=True)
    specs: dict[str, dict[str, Any]] = {
        "a 25 fps.mp4": {"frames": 150, "fps": 25, "cuts": [60, 110]},
        "b mum's timecode.mov": {"frames": 180, "fps": 30, "timecode": TIMECODE},
        "c ntsc.mov": {"frames": 150, "fps": Fraction(30000, 1001), "cuts": [80]},
        "d vfr.mp4": {"frames": 150, "fps": 30, "vfr": True, "cuts": [70]},
        "e late ü.mov": {"frames": 125, "fps": 25, "start_sec": 1.5},
        # A phone's measured rate, which editors take for 30.
        "f phone.mp4": {"frames": 150, "fps": Fraction(1501, 50), "cuts": [75]},
    }
    for name, spec in specs.items():
        if not (folder / name).exists():
            write_marker_clip(folder / name, **spec)
    song = media_dir / "export song.wav"
    if not song.exists():
        write_song(song, bpm=120, sections=(("quiet", 6.0), ("build", 6.0)))
    output = out_dir / "my montage.mp4"
    job = {
        "clips": [str(folder)],
        "music": str(song),
        "output": str(output),
        "style": "documentary",
        "duration_sec": 10,
        "quality": "preview",
        "size": [320, 180],
        "fps": fps,
        "seed": 7,
        "export": FORMATS,
    }
    status, events, stderr = run_engine(job, out_dir)
    assert status == 0, stderr[-2000:]
    finished = [e for e in events if e.kind is EventKind.FINISHED][-1]
    timeline = otio.adapters.read_from_file(finished.data["outputs"]["otio"])
    remember_sources(timeline)
    return {
        "outputs": finished.data["outputs"],
        "events": events,
        "timeline": timeline,
        "folder": out_dir,
    }


# The cut list, as each output frame shows it.


def source_rates(timeline: otio.schema.Timeline) -> dict[str, Fraction]:
    return {
        clip.media_reference.target_url: Fraction(
            *clip.media_reference.metadata["montage_ai"]["fps"]
        )
        for clip in timeline.video_tracks()[0].find_clips()
    }


def transition_frames(timeline: otio.schema.Timeline) -> set[int]:
    """Output frames inside a transition, where two sources are mixed."""
    fps = float(timeline_rate(timeline))
    track = timeline.video_tracks()[0]
    frames: set[int] = set()
    for index, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            cut = round(track.range_of_child_at_index(index + 1).start_time.value)
            before = round(item.in_offset.rescaled_to(fps).value)
            after = round(item.out_offset.rescaled_to(fps).value)
            frames.update(range(cut - before - 1, cut + after + 1))
    return frames


def shown_frames(
    timeline: otio.schema.Timeline,
    rates: dict[str, Fraction],
    fps: float,
    path_of: Any = None,
) -> dict[int, tuple[str, int]]:
    """Output frame -> (source path, source frame number counted from timecode 0)."""
    track = timeline.video_tracks()[0]
    shown: dict[int, tuple[str, int]] = {}
    for clip in track.find_clips():
        path = path_of(clip) if path_of else local_path(clip.media_reference.target_url)
        rate = rates[path]
        record = track.range_of_child(clip)
        record_in = round(record.start_time.to_seconds() * fps)
        record_out = record_in + round(record.duration.to_seconds() * fps)
        source_in_sec = clip.source_range.start_time.to_seconds()
        if path_of:
            source_in_sec = edl_source_sec(clip.source_range.start_time, path, fps)
        for frame in range(record_in, record_out):
            source_sec = source_in_sec + (frame - record_in) / fps
            shown[frame] = (path, round(source_sec * rate + 1e-6))
    return shown


TIMECODES: dict[str, str] = {}


def edl_source_sec(time: otio.opentime.RationalTime, path: str, fps: float) -> float:
    """An EDL source timecode as seconds from the source's timecode zero.

    The EDL counts a source from its own start timecode label at the EDL's rate.
    """
    label = TIMECODES.get(path)
    if not label:
        return time.to_seconds()
    drop = ";" if abs(fps - 30000 / 1001) < 1e-6 else ":"
    edl_first = otio.opentime.from_timecode(label[:-3] + drop + label[-2:], fps)
    own_first = otio.opentime.from_timecode(label, float(source_rates_by_path[path]))
    return own_first.to_seconds() + (time.value - edl_first.value) / fps


source_rates_by_path: dict[str, Fraction] = {}


def remember_sources(timeline: otio.schema.Timeline) -> None:
    for clip in timeline.video_tracks()[0].find_clips():
        reference = clip.media_reference
        TIMECODES[reference.target_url] = reference.metadata["montage_ai"]["timecode"]
        source_rates_by_path[reference.target_url] = Fraction(
            *reference.metadata["montage_ai"]["fps"]
        )


def local_path(url: str) -> str:
    if url.startswith("file:"):
        return unquote(urlparse(url).path)
    return url


def assert_same_edit(
    read_back: otio.schema.Timeline,
    truth: otio.schema.Timeline,
    path_of: Any = None,
    timeline_grid: bool = False,
) -> None:
    """The read-back cut list is the rendered one, frame for frame.

    At every output frame outside transitions the same source is on screen, so
    record ins and outs are exact; at each cut the incoming shot's in point is the
    same source frame. Within a shot, a source at another rate than the
    timeline is exact to one frame: which of two source frames an editor shows
    between them is its own sampling choice, not the file's. timeline_grid: the
    format counts source positions in timeline frames (EDL, FCP 7 clip items), so a
    source with more frames per second than the timeline is exact to one frame.
    """
    rates = source_rates(truth)
    fps = float(timeline_rate(truth))
    expected = shown_frames(truth, rates, fps)
    got = shown_frames(read_back, rates, fps, path_of)
    mixed = transition_frames(truth)
    total = truth.metadata["montage_ai"]["total_frames"]
    assert len(expected) == total
    track = truth.video_tracks()[0]
    cuts = {
        round(track.range_of_child(clip).start_time.to_seconds() * fps)
        for clip in track.find_clips()
    }
    compared = 0
    for frame in range(total):
        path, number = expected[frame]
        got_path, got_number = got[frame]
        coarse = timeline_grid and rates[path] > fps
        if frame in cuts and not coarse:
            assert (got_path, got_number) == (path, number), f"in point at {frame}"
        if frame in mixed:
            continue
        assert got_path == path, f"output frame {frame}"
        if abs(rates[path] - fps) < 1e-9:
            assert got_number == number, f"output frame {frame}"
        else:
            assert abs(got_number - number) <= 1, f"output frame {frame}"
        compared += 1
    assert compared > total * 0.6


def song_range_sec(timeline: otio.schema.Timeline) -> tuple[float, float]:
    clip = next(iter(timeline.audio_tracks()[0].find_clips()))
    return clip.source_range.start_time.to_seconds(), clip.duration().to_seconds()


# The tests.


def test_every_format_is_written_beside_the_render(render: dict[str, Any]) -> None:
    outputs = render["outputs"]
    assert set(outputs) == {"video", "otio", *FORMATS}
    for path in outputs.values():
        assert Path(path).stat().st_size > 0
    folder = render["folder"]
    assert (folder / "my montage.reels.csv").is_file()
    assert not list(folder.glob(".*part"))


def test_the_timeline_counts_source_frames_from_the_start_timecode(
    render: dict[str, Any],
) -> None:
    clip_path = next(
        clip.media_reference.target_url
        for clip in render["timeline"].video_tracks()[0].find_clips()
        if "timecode" in clip.media_reference.target_url
    )
    assert probe_media(clip_path).timecode == TIMECODE
    for clip in render["timeline"].video_tracks()[0].find_clips():
        reference = clip.media_reference
        start = reference.available_range.start_time
        if reference.target_url == clip_path:
            assert otio.opentime.to_timecode(start, start.rate) == TIMECODE
            assert clip.source_range.start_time.value >= start.value
        else:
            assert start.value == 0


@pytest.mark.parametrize(
    ("name", "adapter"),
    [("otio", "otio_json"), ("fcp7", "fcp_xml"), ("fcpxml", "fcpx_xml")],
)
def test_read_back_gives_the_rendered_edit(
    render: dict[str, Any], name: str, adapter: str
) -> None:
    truth = render["timeline"]
    read_back = otio.adapters.read_from_file(
        render["outputs"][name], adapter_name=adapter
    )
    assert_same_edit(read_back, truth, timeline_grid=name != "otio")
    start_sec, length_sec = song_range_sec(read_back)
    true_start, true_length = song_range_sec(truth)
    # The FCPXML reader truncates times to whole frames; the file holds the sample.
    assert abs(start_sec - true_start) <= 1 / FPS
    assert round(length_sec * FPS) == round(true_length * FPS)


def test_edl_read_back_gives_the_rendered_edit_through_its_reels(
    render: dict[str, Any],
) -> None:
    edl_path = Path(render["outputs"]["edl"])
    text = edl_path.read_text(encoding="utf-8")
    assert "FROM CLIP:" not in text and "TO CLIP:" not in text
    with open(edl_path.with_suffix(".reels.csv"), encoding="utf-8") as stream:
        reels = {row["reel"]: row["path"] for row in csv.DictReader(stream)}
    assert all(len(reel) <= 8 for reel in reels)
    read_back = otio.adapters.read_from_string(text, "cmx_3600", rate=FPS)
    song = next(iter(read_back.audio_tracks()[0].find_clips()))
    assert reels[song.metadata["cmx_3600"]["reel"]].endswith("export song.wav")
    true_start, true_length = song_range_sec(render["timeline"])
    assert abs(song.source_range.start_time.to_seconds() - true_start) <= 0.5 / FPS
    assert round(song.source_range.duration.to_seconds() * FPS) == round(
        true_length * FPS
    )
    video = otio.schema.Timeline()
    video.tracks.append(read_back.video_tracks()[0].deepcopy())
    assert_same_edit(
        video,
        render["timeline"],
        path_of=lambda clip: reels[clip.metadata["cmx_3600"]["reel"]],
        timeline_grid=True,
    )


def test_beat_markers_survive_otio_fcp7_and_fcpxml(render: dict[str, Any]) -> None:
    truth = render["timeline"]
    expected = sorted(
        (round(m.marked_range.start_time.value), m.name) for m in truth.tracks.markers
    )
    assert any(name.startswith("downbeat") for _, name in expected)
    for name, adapter in (("otio", "otio_json"), ("fcp7", "fcp_xml")):
        back = otio.adapters.read_from_file(
            render["outputs"][name], adapter_name=adapter
        )
        got = sorted(
            (round(m.marked_range.start_time.rescaled_to(FPS).value), m.name)
            for m in back.tracks.markers
        )
        assert got == expected, name
    back = otio.adapters.read_from_file(render["outputs"]["fcpxml"], "fcpx_xml")
    song = next(iter(back.audio_tracks()[0].find_clips()))
    song_start = song.source_range.start_time
    got = sorted(
        (round((m.marked_range.start_time - song_start).rescaled_to(FPS).value), m.name)
        for m in song.markers
    )
    assert got == expected


def test_fcpxml_formats_and_timecode_come_from_our_probe(
    render: dict[str, Any],
) -> None:
    root = ET.parse(render["outputs"]["fcpxml"]).getroot()
    formats = {f.get("id"): f for f in root.iter("format")}
    rates = {
        Path(path).name: rate for path, rate in source_rates(render["timeline"]).items()
    }
    checked = 0
    for asset in root.iter("asset"):
        name = Path(local_path(asset.get("src", ""))).name
        if name not in rates:
            continue
        video_format = formats[asset.get("format")]
        numerator, denominator = (
            video_format.get("frameDuration", "").rstrip("s").split("/")
        )
        assert Fraction(int(denominator), int(numerator)) == rates[name]
        assert video_format.get("width") == "320"
        start = asset.get("start", "0s").rstrip("s")
        start_sec = float(Fraction(start))
        if "timecode" in name:
            assert start_sec == pytest.approx(3610 + 5 / 30)
        else:
            assert start_sec == 0
        checked += 1
    assert checked == len(rates)
    # In points on the frame grid of each clip's own format, as Final Cut wants.
    asset_formats = {a.get("id"): formats[a.get("format")] for a in root.iter("asset")}
    for asset_clip in root.iter("asset-clip"):
        frame_sec = Fraction(
            asset_formats[asset_clip.get("ref")].get("frameDuration", "").rstrip("s")
        )
        start_sec = Fraction(asset_clip.get("start", "0s").rstrip("s"))
        assert (start_sec / frame_sec).denominator == 1, asset_clip.get("name")
    sequence = root.find("./project/sequence")
    assert sequence is not None
    sequence_format = formats[sequence.get("format")]
    assert sequence_format.get("height") == "180"
    # A name is a Final Cut preset, which would override the size and rate given.
    assert "name" not in sequence_format.attrib


def test_fcp7_files_carry_size_and_rate(render: dict[str, Any]) -> None:
    root = ET.parse(render["outputs"]["fcp7"]).getroot()
    files = [f for f in root.iter("file") if f.find("media/video") is not None]
    assert files
    for file_element in files:
        assert file_element.findtext("pathurl", "").startswith("file:///")
        assert Path(local_path(file_element.findtext("pathurl", ""))).is_file()
        assert file_element.findtext("media/video/samplecharacteristics/width") == "320"
    width = root.findtext(".//sequence/media/video/format/samplecharacteristics/width")
    assert width == "320"


def test_cut_list_rows_match_the_timeline(render: dict[str, Any]) -> None:
    truth = render["timeline"]
    track = truth.video_tracks()[0]
    clips = list(track.find_clips())
    with open(render["outputs"]["csv"], encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(clips)
    for row, clip in zip(rows, clips, strict=True):
        record = track.range_of_child(clip)
        assert int(row["record_in_frame"]) == round(record.start_time.value)
        assert int(row["record_out_frame"]) == round(record.end_time_exclusive().value)
        assert row["source_path"] == clip.media_reference.target_url
        meta = clip.metadata["montage_ai"]
        assert float(row["source_in_sec"]) == pytest.approx(meta["in_sec"], abs=0.05)
        beat = meta["beat_index"]
        assert row["beat"] == ("" if beat is None else str(beat))
        if "timecode" in row["source_path"]:
            assert row["source_in_tc"] >= TIMECODE
    assert {row["transition_in"] for row in rows} >= {"cut", "crossfade"}


def test_what_a_format_cannot_say_is_a_warning(render: dict[str, Any]) -> None:
    warnings = [
        e.data["message"]
        for e in render["events"]
        if e.kind is EventKind.WARNING and e.data["code"] == "export_limit"
    ]
    assert any("FCPXML carries no transitions" in w for w in warnings)
    assert any("The EDL holds no markers" in w for w in warnings)
    assert any("one rate (30 fps)" in w and "(25 fps)" in w for w in warnings)


def test_dips_and_flashes_are_named_where_only_dissolves_exist(
    render: dict[str, Any], tmp_path: Path
) -> None:
    timeline = render["timeline"].deepcopy()
    for item in timeline.video_tracks()[0]:
        if isinstance(item, otio.schema.Transition):
            item.metadata["montage_ai"]["kind"] = "dip_black"
            item.transition_type = otio.schema.TransitionTypes.Custom
            break
    (export,) = build_exports(timeline, tmp_path / "dip", ["fcp7"])
    assert any("dip to black" in warning for warning in export.warnings)


def test_reel_names_stay_distinct_within_eight_characters() -> None:
    paths = [
        "/a/holiday clip one.mp4",
        "/b/holiday clip one.mp4",
        "/c/Holiday Clip Onè.mov",
        "/d/BL.mp4",
        "/e/日本.mp4",
    ]
    reels = reel_names(paths)
    assert len(set(reels.values())) == len(paths)
    assert all(len(reel) <= 8 and reel.isalnum() for reel in reels.values())
    assert reels["/a/holiday clip one.mp4"] == "HOLIDAYC"
    assert "BL" not in reels.values()


def test_export_command_writes_a_finished_job_elsewhere(
    render: dict[str, Any], tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.export",
            render["outputs"]["video"],
            "--format",
            "edl,csv",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    events = [parse_event(line) for line in result.stdout.splitlines()]
    assert events[-1].kind is EventKind.FINISHED
    outputs = events[-1].data["outputs"]
    assert outputs == {
        "edl": str(tmp_path / "my montage.edl"),
        "csv": str(tmp_path / "my montage.csv"),
    }
    assert (tmp_path / "my montage.reels.csv").is_file()
    assert any(e.kind is EventKind.WARNING for e in events)


def test_export_of_a_missing_timeline_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "export",
            str(tmp_path / "never rendered.mp4"),
            "--format",
            "fcp7",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "render the job first" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_29_97_render_is_drop_frame_and_frame_exact(
    ntsc_render: dict[str, Any],
) -> None:
    truth = ntsc_render["timeline"]
    rate = timeline_rate(truth)
    assert rate == Fraction(30000, 1001)
    total = truth.metadata["montage_ai"]["total_frames"]
    with av.open(ntsc_render["outputs"]["video"]) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == rate
        assert sum(1 for _ in container.decode(stream)) == total
    # Mid-shot frames show the source frame the timeline names.
    placements, _ = read_placements(truth)
    frames = dict(
        enumerate(rgb for _, rgb in decode_rgb_frames(ntsc_render["outputs"]["video"]))
    )
    checked = 0
    for placement in placements:
        if "vfr" in placement.path:
            continue
        middle = (placement.record_start + placement.record_end) // 2
        media_sec = placement.source_sec(middle, rate) - placement.start_sec
        expected = math.floor(media_sec * placement.rate + 0.5 + 1e-6)
        assert read_marker(frames[middle]) == expected, placement.path
        checked += 1
    assert checked >= 2
    # The EDL counts drop-frame, and reads back frame for frame.
    text = Path(ntsc_render["outputs"]["edl"]).read_text(encoding="utf-8")
    assert "FCM: DROP FRAME" in text
    events = [line for line in text.splitlines() if line[:3].isdigit()]
    assert all(";" in line.split()[-1] for line in events)
    with open(
        Path(ntsc_render["outputs"]["edl"]).with_suffix(".reels.csv"), encoding="utf-8"
    ) as stream:
        reels = {row["reel"]: row["path"] for row in csv.DictReader(stream)}
    read_back = otio.adapters.read_from_string(text, "cmx_3600", rate=float(rate))
    video = otio.schema.Timeline()
    video.tracks.append(read_back.video_tracks()[0].deepcopy())
    assert_same_edit(
        video,
        truth,
        path_of=lambda clip: reels[clip.metadata["cmx_3600"]["reel"]],
        timeline_grid=True,
    )
    for name, adapter in (("fcp7", "fcp_xml"), ("otio", "otio_json")):
        back = otio.adapters.read_from_file(
            ntsc_render["outputs"][name], adapter_name=adapter
        )
        assert_same_edit(back, truth, timeline_grid=name == "fcp7")


def test_a_format_that_fails_leaves_the_others_and_says_why(
    render: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.export import nle

    def broken(timeline: otio.schema.Timeline, stem: str) -> Any:
        raise ValueError("invalid predicate")

    monkeypatch.setattr(nle, "write_fcpxml", broken)
    exports = build_exports(render["timeline"], tmp_path / "m", ["fcpxml", "csv"])
    failed, written = exports
    assert failed.error is not None and "invalid predicate" in failed.error
    assert "FCPXML" in failed.error and failed.files == {}
    assert written.error is None and written.files


@pytest.mark.parametrize("fps", [15, 12, 120])
def test_a_rate_timecode_cannot_count_is_refused_before_the_render(fps: int) -> None:
    job = {"clips": ["a.mp4"], "music": "song.wav", "output": "m.mp4", "fps": fps}
    assert JobSpec.from_dict(job | {"export": ["otio", "mlt", "csv"]}).fps == fps
    with pytest.raises(JobSpecError) as refused:
        JobSpec.from_dict(job | {"export": ["otio", "fcp7", "edl"]})
    message = str(refused.value)
    assert message.startswith("FCP 7 XML and CMX 3600 EDL count in SMPTE timecode")
    assert f"no {fps} fps" in message and "25, 29.97, 30" in message


def test_a_finished_timeline_at_such_a_rate_exports_what_it_can(
    render: dict[str, Any], tmp_path: Path
) -> None:
    timeline = render["timeline"].deepcopy()
    timeline.metadata["montage_ai"]["rate"] = [15, 1]
    formats = ["fcpxml", "edl", "mlt", "csv"]
    exports = {e.format: e for e in build_exports(timeline, tmp_path / "m", formats)}
    for name in ("fcpxml", "edl"):
        error = exports[name].error
        assert error is not None and "no 15 fps" in error and not exports[name].files
    assert exports["mlt"].files and exports["csv"].files


def test_all_formats_may_be_named_with_all() -> None:
    assert parse_export_formats("all,edl") == parse_export_formats("all")
    assert parse_export_formats("edl, csv") == ["edl", "csv"]
    with pytest.raises(ValueError, match="unknown export format foo"):
        parse_export_formats("all,foo")


def test_exporting_a_job_whose_source_is_gone_says_so(
    render: dict[str, Any], tmp_path: Path
) -> None:
    timeline = render["timeline"].deepcopy()
    clip = next(iter(timeline.video_tracks()[0].find_clips()))
    gone = str(tmp_path / "unplugged drive" / "clip.mp4")
    clip.media_reference.target_url = gone
    otio_path = tmp_path / "moved.otio"
    otio.adapters.write_to_file(timeline, str(otio_path))
    result = subprocess.run(
        [sys.executable, "-m", "engine.export", str(otio_path), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    events = [parse_event(line) for line in result.stdout.splitlines()]
    missing = [e for e in events if e.data.get("code") == "source_missing"]
    assert [e.data["path"] for e in missing] == [gone]
    assert "relink" in missing[0].data["message"]


@pytest.mark.parametrize(
    ("source", "message"),
    [("", "An empty name: not a file"), ("{tmp}", "{tmp}: not a file")],
    ids=["empty", "folder"],
)
def test_export_of_no_file_says_what_to_name(
    tmp_path: Path, source: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "export", source.format(tmp=tmp_path),
         "--format", "edl"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc")
def test_export_into_a_folder_that_takes_no_files_says_so(
    render: dict[str, Any],
) -> None:
    """/proc refuses files even to root, as a read-only disk does."""
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "export", render["outputs"]["video"],
         "--format", "edl", "--output-dir", "/proc"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EXIT_CODES[ErrorCode.OUTPUT_UNWRITABLE]
    assert "cannot write in the output folder /proc" in result.stderr
    assert "Choose another output folder" in result.stderr


def test_a_file_that_cannot_be_written_or_removed_is_named_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only disk the temporary file cannot be written, and removing what
    is not there fails with the same error: the message still names the file."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "write_text", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(OutputError, match=r"Could not write base\.edl in .*Read-only"):
        StagedFiles().stage(tmp_path / "base.edl", "TITLE: base\n")
