"""Faults: an engine killed mid-render, out of memory, a crash mid-write of the job
list, and garbage on the engine's pipe. Each leaves nothing that looks finished."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine_process import LineBuffer
from app.job_records import JobStatus
from app.job_store import JobStore
from engine.protocol import (
    EXIT_CODES,
    ErrorCode,
    EventKind,
    JobSpec,
    ProtocolError,
    parse_event,
)
from tests.audio_media import write_click_track
from tests.engine_runs import read_until, rendering_past, run_engine, start_engine
from tests.media import write_marker_clip

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def media(media_dir: Path) -> dict[str, Path]:
    clip, song = media_dir / "fault clip.mp4", media_dir / "fault song.wav"
    if not clip.exists():
        write_marker_clip(clip, frames=240, fps=30, size=(640, 360), cuts=[100])
    if not song.exists():
        write_click_track(song, bpm=120, duration_sec=12)
    return {"clip": clip, "song": song}


def job_for(media: dict[str, Path], output: Path) -> dict[str, Any]:
    return {
        "clips": [str(media["clip"])],
        "music": str(media["song"]),
        "output": str(output),
        "duration_sec": 8,
        "quality": "final",
        "size": [640, 360],
        "seed": 3,
        "export": ["edl"],
    }


def finished_looking(folder: Path) -> list[str]:
    """Files a user could take for a result: anything not hidden."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_sigkill_mid_render_leaves_nothing_finished_and_the_rerun_cleans_up(
    media: dict[str, Path], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job = job_for(media, out_dir / "killed.mp4")
    engine = start_engine(job, tmp_path)
    read_until(engine, rendering_past(0.2))
    engine.kill()
    engine.wait(timeout=10)
    assert engine.stdout is not None
    engine.stdout.close()

    # Hidden temporary files may remain; nothing that looks finished does.
    assert finished_looking(out_dir) == []
    # The timeline and the asked exports are staged before the render.
    assert list(out_dir.glob(".killed.mp4.*.part"))
    assert list(out_dir.glob(".killed.edl.*.part"))
    # The next run to that output removes what the killed one left, and
    # finishes, even when it asks for other formats.
    status, _, stderr = run_engine(job | {"export": ["otio", "csv"]}, tmp_path)
    assert status == 0, stderr[-2000:]
    assert finished_looking(out_dir) == ["killed.csv", "killed.mp4", "killed.otio"]
    assert not list(out_dir.glob(".*"))


def test_out_of_memory_fails_with_its_code_and_leaves_nothing(
    media: dict[str, Path], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job = job_for(media, out_dir / "oom.mp4") | {"size": [1920, 1080]}
    limit = 700 * 2**20  # enough to start and analyse, not to encode 1080p

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    status, events, stderr = run_engine(job, tmp_path, limit_memory)
    assert status == EXIT_CODES[ErrorCode.OUT_OF_MEMORY], stderr[-800:]
    assert events[-1].kind is EventKind.FAILED
    assert "ran out of memory" in events[-1].data["message"]
    assert list(out_dir.iterdir()) == []


WRITER = """
import sys
from pathlib import Path
from app.job_store import JobStore
from engine.protocol import JobSpec
store = JobStore(Path(sys.argv[1]))
number = 0
while True:
    spec = JobSpec(clips=[f"/c/{number}.mp4"], music="/s.mp3", output=f"/o/{number}.mp4")
    job_id = store.add(spec)
    store.mark_running(job_id, 4242)
    store.update_progress(job_id, "render", 0.5, 3.0)
    store.mark_failed(job_id, "internal", "x" * 2000, "log\\n" * 200)
    print(number, flush=True)
    number += 1
"""


def test_a_job_list_killed_mid_write_opens_whole(tmp_path: Path) -> None:
    store_path = tmp_path / "jobs.sqlite3"
    JobStore(store_path).close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    done = [line for _, line in zip(range(40), writer.stdout, strict=False)]
    time.sleep(0.05)  # in the middle of some later transaction
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    writer.stdout.close()

    with JobStore(store_path) as store:
        assert store.recovered_from is None
        jobs = store.list_jobs()
        # Every job the writer finished is there, whole; a job cut short is
        # either absent or in one of its committed states.
        assert len(jobs) >= len(done)
        assert {job.status for job in jobs[-len(done) :]} <= {JobStatus.FAILED}
        assert {job.status for job in jobs} <= {JobStatus.WAITING, JobStatus.RUNNING,
                                                JobStatus.FAILED}  # fmt: skip
        store.add(JobSpec(clips=["/c.mp4"], music="/s.mp3", output="/o.mp4"))


@settings(max_examples=400, deadline=None)
@given(
    st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
)
def test_any_line_is_an_event_or_a_protocol_error(line: str) -> None:
    try:
        event = parse_event(line)
    except ProtocolError:
        return
    assert isinstance(event.data, dict)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    st.sampled_from([kind.value for kind in EventKind] + ["nonsense"]),
)
def test_json_objects_of_any_shape_are_events_or_protocol_errors(
    payload: Any, kind: str
) -> None:
    data = payload if isinstance(payload, dict) else {"value": payload}
    line = json.dumps({"event": kind, "time": 1.0, **data}, allow_nan=True)
    try:
        event = parse_event(line)
    except ProtocolError:
        return
    assert event.kind.value == kind


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_the_pipe_reader_splits_any_bytes_into_lines(chunks: list[bytes]) -> None:
    buffer = LineBuffer()
    lines = [line for chunk in chunks for line in buffer.feed(chunk)]
    lines += buffer.flush()
    assert all(isinstance(line, str) for line in lines)
    assert len(lines) >= b"".join(chunks).count(b"\n")
