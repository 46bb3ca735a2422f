"""A job never harms a source, and every malformed job fails as invalid_job."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import cache
from engine.music import analyze_music
from engine.protocol import (
    EXIT_CODES,
    MAX_SEED,
    ErrorCode,
    EventKind,
    JobSpec,
    JobSpecError,
    parse_event,
)
from tests.audio_media import write_click_track
from tests.media import write_marker_clip


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("safety")
    write_marker_clip(path / "a.mp4", frames=50, audio=True)
    write_marker_clip(path / "b.mp4", frames=50)
    (path / "sub").mkdir()
    (path / "link.mp4").symlink_to(path / "b.mp4")
    write_click_track(path / "song.wav", bpm=120, duration_sec=3.0)
    return path


def run(job: dict[str, Any] | bytes, folder: Path) -> tuple[int, list[Any]]:
    job_path = folder / "job.json"
    data = job if isinstance(job, bytes) else json.dumps(job).encode()
    job_path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "engine", str(job_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, [parse_event(line) for line in result.stdout.splitlines()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("clips", "music", "output"),
    [
        (["a.mp4", "b.mp4"], "song.wav", "sub/../b.mp4"),
        (["a.mp4", "link.mp4"], "song.wav", "b.mp4"),
        (["b.mp4"], "a.mp4", "a.mp4"),
    ],
    ids=["dot-dot", "symlink", "the song"],
)
def test_output_that_is_a_source_is_refused(
    folder: Path, clips: list[str], music: str, output: str
) -> None:
    before = {p.name: digest(p) for p in folder.glob("*.mp4") if not p.is_symlink()}
    job = {
        "clips": [str(folder / c) for c in clips],
        "music": str(folder / music),
        "output": str(folder / output),
    }
    status, events = run(job, folder)
    assert status == EXIT_CODES[ErrorCode.INVALID_JOB]
    assert "never overwrites a source" in events[-1].data["message"]
    after = {p.name: digest(p) for p in folder.glob("*.mp4") if not p.is_symlink()}
    assert after == before


@pytest.mark.parametrize(
    "change",
    [{"size": [1280]}, {"size": 1280}, {"clips": [5]}, {"fps": 29.5},
     {"seed": "abc"}, {"seed": 2**64}, {"seed": -1}, {"version": 2},
     {"output": "x.otio"}, {"unknown": 1}],
)  # fmt: skip
def test_malformed_jobs_fail_as_invalid(folder: Path, change: dict[str, Any]) -> None:
    job = {"clips": [str(folder / "a.mp4")], "music": str(folder / "song.wav"),
           "output": str(folder / "out.mp4")} | change  # fmt: skip
    status, events = run(job, folder)
    assert status == EXIT_CODES[ErrorCode.INVALID_JOB]
    assert [e.kind for e in events] == [EventKind.FAILED]


def test_a_seed_too_large_for_the_timeline_is_refused_with_its_range() -> None:
    with pytest.raises(
        JobSpecError, match=r"Seed 99999999999999999999 is out of range"
    ):
        JobSpec(clips=["a.mp4"], music="s.wav", output="o.mp4", seed=10**20 - 1)
    assert JobSpec(clips=["a.mp4"], music="s.wav", output="o.mp4", seed=MAX_SEED)


def test_a_job_file_that_is_not_text_fails_as_invalid(folder: Path) -> None:
    status, events = run(b"\xff\xfe\x00garbage", folder)
    assert status == EXIT_CODES[ErrorCode.INVALID_JOB]
    assert events[-1].data["code"] == "invalid_job"


def test_a_timeline_that_cannot_be_written_leaves_no_video(folder: Path) -> None:
    out = folder / "blocked.mp4"
    (folder / "blocked.otio").mkdir()
    job = {"clips": [str(folder / "a.mp4")], "music": str(folder / "song.wav"),
           "output": str(out), "quality": "preview"}  # fmt: skip
    status, events = run(job, folder)
    assert status == EXIT_CODES[ErrorCode.OUTPUT_UNWRITABLE]
    assert "blocked.otio" in events[-1].data["message"]
    assert not out.exists()
    assert not list(folder.glob(".blocked*"))


def test_an_unusable_cache_entry_is_a_miss(folder: Path) -> None:
    song = folder / "song.wav"
    key = f"{cache.content_hash(song)}-v1"
    cache.store("music", key, {"a": 1})
    assert analyze_music(song).beats_sec


def test_rendering_into_the_clips_folder_again_leaves_the_montages_out(
    folder: Path, tmp_path: Path
) -> None:
    clips = tmp_path / "trip"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (clips / name).write_bytes((folder / name).read_bytes())
    job = {"clips": [str(clips)], "music": str(folder / "song.wav"),
           "output": str(clips / "montage.mp4"), "quality": "preview",
           "size": [160, 90]}  # fmt: skip
    warnings = []
    for _ in range(2):
        status, events = run(job, tmp_path)
        assert status == 0, events[-1].data
        warnings.append([e.data for e in events if e.kind is EventKind.WARNING])
    assert warnings[0] == []
    [again] = warnings[1]
    assert again["message"].startswith(
        "Left out montage.mp4: the montage this job renders again"
    )
    assert again["path"] == str(clips / "montage.mp4")
    status, events = run(job | {"output": str(clips / "second.mp4")}, tmp_path)
    assert status == 0
    [warning] = [e.data["message"] for e in events if e.kind is EventKind.WARNING]
    assert warning.startswith("Left out montage.mp4: a montage rendered here before")
    timeline = (clips / "second.otio").read_text(encoding="utf-8")
    assert "montage.mp4" not in timeline


@pytest.mark.parametrize("beside", [None, "a.otio"], ids=["alone", "foreign otio"])
def test_an_output_named_as_a_clip_in_the_folder_is_refused(
    folder: Path, tmp_path: Path, beside: str | None
) -> None:
    """The folder's clip of that name is footage, not an earlier montage (no
    timeline of ours beside it, though another tool's may be): the job refuses
    before any work, and the clip is intact."""
    clips = tmp_path / "trip"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (clips / name).write_bytes((folder / name).read_bytes())
    if beside:
        (clips / beside).write_text('{"OTIO_SCHEMA": "Timeline.1", "metadata": {}}')
    before = (clips / "a.mp4").read_bytes()
    job = {"clips": [str(clips)], "music": str(folder / "song.wav"),
           "output": str(clips / "a.mp4"), "quality": "preview"}  # fmt: skip
    status, events = run(job, tmp_path)

    assert status == EXIT_CODES[ErrorCode.INVALID_JOB]
    assert (
        events[-1]
        .data["message"]
        .startswith("Writing a.mp4 would replace one of the clips or the song")
    )
    assert (clips / "a.mp4").read_bytes() == before
    assert sorted(p.name for p in clips.iterdir() if p.suffix == ".mp4") == [
        "a.mp4", "b.mp4"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "starts"),
    [
        ({"output": "a folder.mp4"}, "{tmp}/a folder.mp4 is a folder"),
        ({"music": "."}, "{tmp}: this is a folder; the song is one audio file"),
        ({"clips": ["empty"]}, "{tmp}/empty: no video files or pictures in there"),
    ],
    ids=["output", "song", "no clips"],
)
def test_folders_in_the_wrong_place_are_named_before_any_work(
    folder: Path, tmp_path: Path, change: dict[str, Any], starts: str
) -> None:
    (tmp_path / "a folder.mp4").mkdir()
    (tmp_path / "empty").mkdir()
    job = {"clips": [str(folder / "a.mp4")], "music": str(folder / "song.wav"),
           "output": str(tmp_path / "out.mp4")}  # fmt: skip
    job |= {
        key: [str(tmp_path / v) for v in value] if isinstance(value, list)
        else str(tmp_path / value)
        for key, value in change.items()
    }  # fmt: skip
    status, events = run(job, tmp_path)
    assert status != 0
    assert not any(e.kind is EventKind.STAGE and e.data["stage"] == "clips"
                   for e in events)  # fmt: skip
    message = events[-1].data["message"]
    assert message.startswith(starts.format(tmp=tmp_path))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc")
def test_an_output_folder_that_takes_no_files_is_refused_before_any_work(
    folder: Path, tmp_path: Path
) -> None:
    """/proc passes a permission check for root and takes no file: only making
    one tells, so the engine makes one before the analysis, not after it."""
    job = {"clips": [str(folder / "a.mp4")], "music": str(folder / "song.wav"),
           "output": "/proc/montage.mp4"}  # fmt: skip
    status, events = run(job, tmp_path)
    assert status == EXIT_CODES[ErrorCode.OUTPUT_UNWRITABLE]
    assert [e.data["stage"] for e in events if e.kind is EventKind.STAGE] == []
    assert events[-1].data["message"] == (
        "Montage AI cannot write in the output folder /proc (the system does not "
        "allow files there). Choose another output folder."
    )
