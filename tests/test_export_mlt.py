"""The MLT project of a render, played by the real melt, shows what we rendered.

One real render (25 and 30 fps, variable rate, a late start, a phone clip turned a
quarter, in a folder named with a space and an accent, crossfades and a grade) is
written as MLT XML and rendered again by melt: at the middle of every shot both
show the same source frame, the picture matches, and the song plays to the frame.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from engine.export.mlt import write_mlt
from engine.placements import read_placements
from tests.audio_media import decode_audio, find_onsets_sec, write_song
from tests.engine_runs import run_engine
from tests.media import decode_rgb_frames, read_marker, write_marker_clip

FPS = 30
MELT = shutil.which("melt")
# Frames that differ only by encoding (our render is H.264 at CRF 28); a wrong
# crop, scale or rotation scores far lower.
SAME_PICTURE_DB = 30.0
SAME_FRAME_DB = 35.0
# Onsets of the loudest hits only, well clear of the pad and the hi-hats.
BEAT_LEVEL = 0.08


@pytest.fixture(scope="module")
def renders(
    media_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Our render, its timeline, the MLT project written from it and melt's render."""
    if MELT is None:
        pytest.skip(
            "melt is not installed: `bash packaging/system-deps.sh --test` (or "
            "`apt-get install melt`) installs MLT's command-line player"
        )
    folder = media_dir / "mlt clips é"
    folder.mkdir(exist_ok=True)
    specs: dict[str, dict[str, Any]] = {
        "a25.mp4": {"frames": 150, "fps": 25, "cuts": [60, 110]},
        "b30.mp4": {"frames": 180, "fps": 30, "cuts": [90]},
        "vfr.mp4": {"frames": 150, "fps": 30, "vfr": True, "cuts": [70]},
        "late.mov": {"frames": 125, "fps": 25, "start_sec": 1.5},
        "phone.mp4": {"frames": 150, "fps": 30, "rotation": 90},
    }
    for name, spec in specs.items():
        write_marker_clip(folder / name, **spec)
    song = media_dir / "mlt song.wav"
    write_song(song, bpm=120, sections=(("quiet", 6.0), ("peak", 6.0)))
    out_dir = tmp_path_factory.mktemp("mlt render")
    video = out_dir / "montage.mp4"
    job = {
        "clips": [str(folder / name) for name in specs],
        "music": str(song),
        "output": str(video),
        "style": "dynamic",
        "duration_sec": 10,
        "quality": "preview",
        "size": [320, 180],
        "fps": FPS,
        "seed": 3,
    }
    status, _, stderr = run_engine(job, out_dir)
    assert status == 0, stderr[-2000:]
    timeline = otio.adapters.read_from_file(str(video.with_suffix(".otio")))
    text, warnings = write_mlt(timeline)
    project = out_dir / "montage.mlt"
    project.write_text(text, encoding="utf-8")
    melted = out_dir / "melt.mkv"
    run_melt(project, melted)
    return {"timeline": timeline, "text": text, "warnings": warnings,
            "video": video, "melted": melted}  # fmt: skip


def run_melt(project: Path, output: Path) -> None:
    """Render project losslessly with melt, headless (no SDL window or sound)."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    result = subprocess.run(
        [str(MELT), "-silent", str(project), "-consumer", f"avformat:{output}",
         "vcodec=ffv1", "acodec=pcm_s16le", "frequency=48000", "channels=2",
         "real_time=-1"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and output.is_file(), result.stderr[-2000:]


def psnr_db(first: np.ndarray, second: np.ndarray) -> float:
    error = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return 99.0 if error == 0 else float(10 * np.log10(255**2 / error))


def test_every_shot_shows_the_rendered_source_frame(renders: dict[str, Any]) -> None:
    ours = [rgb for _, rgb in decode_rgb_frames(renders["video"])]
    theirs = [rgb for _, rgb in decode_rgb_frames(renders["melted"])]
    placements, joins = read_placements(renders["timeline"])
    used = len({placement.path for placement in placements})
    assert used == 5, f"the edit uses {used} of the 5 clips: choose another seed"
    assert joins, "the edit has no transition to check: choose another seed"
    windows = [range(j.frame - j.before, j.frame + j.after) for j in joins]
    for placement in placements:
        name = Path(placement.path).name
        middle = (placement.record_start + placement.record_end) // 2
        want, got = read_marker(ours[middle]), read_marker(theirs[middle])
        picture_db = psnr_db(ours[middle], theirs[middle])
        assert picture_db > SAME_PICTURE_DB, f"{name} at {middle}: {picture_db:.1f} dB"
        if any(middle in window for window in windows) and None in (want, got):
            assert picture_db > SAME_FRAME_DB, f"{name} at {middle} (transition)"
            continue
        assert want is not None, f"{name} at {middle}: no marker in our render"
        assert got == want, f"{name} at frame {middle}: melt shows {got}, we {want}"


def tie_frames(timeline: Any) -> set[int]:
    """Output frames exactly halfway between two frames of a constant-rate source.

    Either neighbour is as near; which one a player shows there is down to its float
    rounding (MLT's goes either way), so both count as the same frame.
    """
    placements, _ = read_placements(timeline)
    fps = Fraction(timeline.metadata["montage_ai"]["fps"])
    ties = set()
    for placement in placements:
        if "vfr" in placement.path:
            continue
        for number in range(placement.record_start, placement.record_end):
            offset = Fraction(placement.source_in_sec).limit_denominator(10**6)
            position = offset + Fraction(number - placement.record_start) / fps
            if (position * placement.rate) % 1 == Fraction(1, 2):
                ties.add(number)
    return ties


def test_the_whole_edit_matches_frame_for_frame(renders: dict[str, Any]) -> None:
    """Outside transitions every frame shows the same source frame, not only the
    middles: mixed rates, the late start and the variable rate stay in step (at an
    exact tie between two source frames, either)."""
    ours = [read_marker(rgb) for _, rgb in decode_rgb_frames(renders["video"])]
    theirs = [read_marker(rgb) for _, rgb in decode_rgb_frames(renders["melted"])]
    total = renders["timeline"].metadata["montage_ai"]["total_frames"]
    assert len(ours) == len(theirs) == total
    _, joins = read_placements(renders["timeline"])
    inside = {n for j in joins for n in range(j.frame - j.before, j.frame + j.after)}
    ties = tie_frames(renders["timeline"])
    differ = [
        (number, want, got)
        for number, (want, got) in enumerate(zip(ours, theirs, strict=True))
        if number not in inside
        and want != got
        and not (number in ties and want is not None and got is not None
                 and abs(want - got) == 1)
    ]  # fmt: skip
    assert len(ties) > 5, "no ties in this edit: the test would not see them"
    assert not differ, f"frames that differ (frame, ours, melt): {differ[:10]}"


def test_the_song_plays_to_the_frame(renders: dict[str, Any]) -> None:
    total = renders["timeline"].metadata["montage_ai"]["total_frames"]
    with av.open(str(renders["melted"])) as container:
        audio = container.streams.audio[0]
        assert audio.rate == 48000
    samples, rate, _ = decode_audio(renders["melted"])
    assert abs(samples.size - total * rate / FPS) <= rate / FPS
    assert float(np.sqrt(np.mean(samples**2))) > 0.01
    # The beats sound where ours do, within half a frame (our render fades the
    # song in over 10 ms where it enters mid-song; MLT cuts in at once).
    ours_samples, ours_rate, ours_start = decode_audio(renders["video"])
    ours_onsets = find_onsets_sec(ours_samples, ours_rate, threshold=BEAT_LEVEL)
    theirs_onsets = find_onsets_sec(samples, rate, threshold=BEAT_LEVEL)
    assert len(theirs_onsets) >= 6
    for onset in theirs_onsets:
        nearest = min(abs(onset - ours_start - other) for other in ours_onsets)
        assert nearest < 0.5 / FPS, f"a beat at {onset:.3f} s is {nearest:.3f} s off"


def test_the_project_names_its_sources_and_limits(renders: dict[str, Any]) -> None:
    root = ET.fromstring(renders["text"])
    profile = root.find("profile")
    assert profile is not None
    assert (profile.get("width"), profile.get("height")) == ("320", "180")
    assert profile.get("frame_rate_num") == str(FPS)
    resources = {
        prop.text
        for prop in root.iter("property")
        if prop.get("name") == "resource" and Path(prop.text or "").is_absolute()
    }
    placements, _ = read_placements(renders["timeline"])
    assert {placement.path for placement in placements} <= resources
    assert any("clips é" in path for path in resources)
    warnings = " ".join(renders["warnings"])
    assert "vfr.mp4" in warnings and "marker" in warnings
    assert "grade" not in warnings and "transition" not in warnings
