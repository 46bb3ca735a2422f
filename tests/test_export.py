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
from tests.export_checks import (
    FORMATS,
    TIMECODE,
    assert_same_edit,
    local_path,
    render_job,
    source_rates,
)
from tests.media import decode_rgb_frames, read_marker

FPS = 30


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


def test_all_at_such_a_rate_writes_every_format_it_can(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--export all` at 15 fps leaves out the formats that count in timecode and
    says so; naming one of them at that rate is still refused."""
    from engine.cli import _formats_the_rate_allows, export_formats

    every = export_formats("all")
    assert _formats_the_rate_allows(every, 15) == ["otio", "mlt", "csv"]
    assert "not written: FCP 7 XML, FCPXML and CMX 3600 EDL" in capsys.readouterr().err
    assert _formats_the_rate_allows(every, 30) == every
    one_by_one = export_formats("otio,fcp7,fcpxml,edl,mlt,csv")
    assert _formats_the_rate_allows(one_by_one, 15) == one_by_one  # refused later
    assert _formats_the_rate_allows(["edl", "csv"], 15) == ["edl", "csv"]


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
