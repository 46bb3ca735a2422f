"""Looks in the exports: MLT carries the LUT, slow motion and clean-up (melt shows
the rendered frames); the other formats say what they cannot hold."""

from __future__ import annotations

import csv
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
import pytest

from engine.luts import lut_path
from engine.placements import read_placements
from engine.protocol import EventKind
from tests.audio_media import write_song
from tests.engine_runs import run_engine
from tests.media import decode_rgb_frames, read_marker, write_marker_clip
from tests.test_export_mlt import SAME_PICTURE_DB, psnr_db, run_melt

FPS = 30
MELT = shutil.which("melt")


@pytest.fixture(scope="module")
def looks_render(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An MTV edit (LUT, whip pans, flashes) in slow motion, one clip stabilized,
    exported to every format."""
    folder = tmp_path_factory.mktemp("looks export")
    clips = [folder / "a30.mp4", folder / "b25.mp4"]
    write_marker_clip(clips[0], frames=240, fps=30, cuts=[100])
    write_marker_clip(clips[1], frames=200, fps=25, cuts=[90])
    song = folder / "song.wav"
    write_song(song, bpm=120, sections=(("quiet", 8.0), ("build", 8.0)))
    output = folder / "montage.mp4"
    job = {"clips": [str(c) for c in clips], "music": str(song), "output": str(output),
           "style": "mtv", "lut": "warm", "stabilize_clips": [str(clips[1])],
           "quality": "preview", "size": [320, 180], "fps": FPS, "seed": 2,
           "export": ["fcp7", "fcpxml", "edl", "mlt", "csv"]}  # fmt: skip
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr[-3000:]
    timeline = otio.adapters.read_from_file(str(output.with_suffix(".otio")))
    warnings = [e.data["message"] for e in events if e.kind is EventKind.WARNING]
    return {"folder": folder, "output": output, "timeline": timeline,
            "warnings": warnings}  # fmt: skip


def test_the_otio_holds_slow_motion_as_a_time_warp(looks_render: Any) -> None:
    clips = list(looks_render["timeline"].video_tracks()[0].find_clips())
    warped = [c for c in clips if c.metadata["montage_ai"]["section"] == "quiet"]
    assert warped and all([e.time_scalar for e in c.effects] == [0.5] for c in warped)
    assert all(not c.effects for c in clips if c not in warped)


def test_melt_shows_the_rendered_frames_of_the_slowed_and_graded_edit(
    looks_render: Any,
) -> None:
    if MELT is None:
        pytest.skip("melt is not installed: `bash packaging/system-deps.sh --test`")
    project = looks_render["output"].with_suffix(".mlt")
    text = project.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    services = [p.text for p in root.iter("property") if p.get("name") == "mlt_service"]
    # melt 7.12 crashes on avfilter.deshake: the project leaves it out and says so.
    assert "avfilter.lut3d" in services and "avfilter.deshake" not in services
    [unstabilized] = [w for w in looks_render["warnings"] if "not stabilize" in w]
    assert unstabilized.startswith("The MLT project does not stabilize")
    assert "b25.mp4 play as filmed there" in unstabilized
    files = {p.text for p in root.iter("property") if p.get("name") == "av.file"}
    assert files == {str(lut_path("warm"))}
    melted = looks_render["folder"] / "melt.mkv"
    run_melt(project, melted)
    ours = [rgb for _, rgb in decode_rgb_frames(looks_render["output"])]
    theirs = [rgb for _, rgb in decode_rgb_frames(melted)]
    placements, joins = read_placements(looks_render["timeline"])
    inside = {n for j in joins for n in range(j.frame - j.before, j.frame + j.after)}
    slowed = [p for p in placements if p.speed == 0.5 and not p.cleanup]
    assert slowed, "no slow-motion shot to compare"
    for placement in slowed:
        for number in range(placement.record_start, placement.record_end):
            if number in inside:
                continue
            want, got = read_marker(ours[number]), read_marker(theirs[number])
            # A half-speed frame can fall exactly between two source frames.
            assert want is not None and got is not None and abs(want - got) <= 1
        middle = (placement.record_start + placement.record_end) // 2
        assert psnr_db(ours[middle], theirs[middle]) > SAME_PICTURE_DB


def test_formats_without_speed_lut_or_stabilizer_say_so(looks_render: Any) -> None:
    warnings = " ".join(looks_render["warnings"])
    for name in ("FCP 7 XML", "FCPXML", "The EDL"):
        assert f"{name} cannot say the slow motion" in warnings
        assert f"{name} cannot say that the render stabilized b25.mp4" in warnings
    assert str(lut_path("warm")) in warnings
    assert "MLT has no whip pan" in warnings
    edl = looks_render["output"].with_suffix(".edl").read_text(encoding="utf-8")
    assert "M2 " not in edl, "the EDL adapter writes slowed source outs wrongly"


def test_the_cut_list_plays_through_half_the_source_when_slowed(
    looks_render: Any,
) -> None:
    with open(looks_render["output"].with_suffix(".csv"), encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    speeds = {row["speed"] for row in rows}
    assert speeds == {"0.5", "1"}
    for row in rows:
        source_sec = float(row["source_out_sec"]) - float(row["source_in_sec"])
        record_sec = (int(row["record_out_frame"]) - int(row["record_in_frame"])) / FPS
        assert np.isclose(source_sec, record_sec * float(row["speed"]), atol=1e-3)
