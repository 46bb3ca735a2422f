"""EngineProcess against a stub engine replaying recorded event streams."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import signal
import time
from pathlib import Path

import pytest

from app import memory
from app.engine_process import EngineCommand, EngineProcess, LineBuffer
from engine import protocol

STAGES = ["probe", "music", "clips", "plan", "render", "export"]
RECORDED_VIDEO = "/home/ana/Vidéos/Montage AI/montage-20261203-171858.mp4"


class SignalRecorder:
    """Every signal of one EngineProcess, in order, as (name, args)."""

    NAMES = (
        "started",
        "stage_changed",
        "progress_changed",
        "warning_raised",
        "render_finished",
        "render_failed",
    )

    def __init__(self, engine: EngineProcess) -> None:
        self.calls: list[tuple[str, tuple]] = []
        for name in self.NAMES:
            getattr(engine, name).connect(self._recorder(name))

    def _recorder(self, name: str):
        return lambda *args: self.calls.append((name, args))

    def args(self, name: str) -> list[tuple]:
        return [args for called, args in self.calls if called == name]

    def outcomes(self) -> list[tuple[str, tuple]]:
        ends = ("render_finished", "render_failed")
        return [(name, args) for name, args in self.calls if name in ends]


def make_spec(tmp_path: Path) -> protocol.JobSpec:
    return protocol.JobSpec(
        clips=[str(tmp_path / "clips")],
        music=str(tmp_path / "song.ogg"),
        output=str(tmp_path / "out.mp4"),
        quality="preview",
        duration_sec=10.0,
        seed=7,
    )


def run_to_outcome(
    qtbot, engine: EngineProcess, tmp_path: Path, timeout_ms: int = 10_000
) -> SignalRecorder:
    """Start a job and wait until the engine has sent its one outcome."""
    recorder = SignalRecorder(engine)
    engine.start(make_spec(tmp_path), tmp_path / "job")
    qtbot.waitUntil(lambda: bool(recorder.outcomes()), timeout=timeout_ms)
    assert not engine.is_running()
    return recorder


def wait_for_hang(qtbot, engine: EngineProcess, tmp_path: Path) -> SignalRecorder:
    """Start the stream that hangs in render and wait until it got there."""
    recorder = SignalRecorder(engine)
    engine.start(make_spec(tmp_path), tmp_path / "job")
    qtbot.waitUntil(
        lambda: "Encoding with libx264" in engine.stderr_tail(),
        timeout=10_000,
    )
    return recorder


def test_normal_run_reports_every_stage_then_finishes(
    qtbot, make_engine, stub_command, tmp_path
):
    engine = make_engine(stub_command("normal_run.jsonl"))
    recorder = run_to_outcome(qtbot, engine, tmp_path)

    assert recorder.calls[0] == ("started", ())
    assert [stage for stage, _ in recorder.args("stage_changed")] == STAGES
    overall = [fraction for fraction, _ in recorder.args("progress_changed")]
    assert overall == sorted(overall)
    assert overall[-1] == pytest.approx(1.0)
    etas = [eta for _, eta in recorder.args("progress_changed") if eta is not None]
    assert etas and all(isinstance(eta, float) for eta in etas)

    [(message, path), (_, song)] = recorder.args("warning_raised")
    assert "not a video FFmpeg can read" in message
    assert path == "/home/ana/clips/node-opencv.copyright"
    assert song.endswith("Sean Hawk - In Rome.ogg")
    # The finished line arrives cut inside the "é" of Vidéos.
    [(outputs, summary)] = recorder.args("render_finished")
    assert outputs["video"] == RECORDED_VIDEO
    assert summary["seed"] == 3 and summary["shots"] == 9
    assert recorder.outcomes()[0][0] == "render_finished"
    assert len(recorder.outcomes()) == 1


def test_job_file_holds_the_spec(qtbot, make_engine, stub_command, tmp_path):
    engine = make_engine(stub_command("normal_run.jsonl"))
    run_to_outcome(qtbot, engine, tmp_path)

    written = (tmp_path / "job" / "job.json").read_text(encoding="utf-8")
    assert protocol.JobSpec.from_json(written) == make_spec(tmp_path)


def test_garbage_lines_are_logged_and_skipped(
    qtbot, make_engine, stub_command, tmp_path, caplog
):
    engine = make_engine(stub_command("garbage_lines.jsonl"))
    with caplog.at_level(logging.WARNING, logger="app.engine_process"):
        recorder = run_to_outcome(qtbot, engine, tmp_path)

    skipped = [r for r in caplog.records if "not an event" in r.getMessage()]
    # Ten junk lines, of which two are blank and are not worth a warning.
    assert len(skipped) == 8
    assert all(r.levelno == logging.WARNING for r in skipped)
    assert [stage for stage, _ in recorder.args("stage_changed")] == STAGES
    assert [name for name, _ in recorder.outcomes()] == ["render_finished"]


def test_exit_without_failed_event_is_explained(
    qtbot, make_engine, stub_command, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    engine = make_engine(stub_command("dies_halfway.jsonl"))
    recorder = run_to_outcome(qtbot, engine, tmp_path)

    [(code, message)] = recorder.args("render_failed")
    assert code == "internal"
    assert "The engine stopped unexpectedly (exit status 1)" in message
    assert "libgomp: Thread creation failed" in message
    assert "Analysed bikes.mp4" in engine.stderr_tail()
    assert recorder.args("progress_changed")
    assert not recorder.args("render_finished")


def test_failed_event_is_sent_once_after_exit(
    qtbot, make_engine, stub_command, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (no_usable_clips)")
    engine = make_engine(stub_command("no_usable_clips.jsonl"))
    recorder = run_to_outcome(qtbot, engine, tmp_path)
    qtbot.wait(200)

    assert recorder.outcomes() == [
        (
            "render_failed",
            (
                "no_usable_clips",
                "None of the clips could be used (see the warnings for each file). "
                "Add video files that play in a video player.",
            ),
        )
    ]
    assert len(recorder.args("warning_raised")) == 1


def test_cancel_stops_a_hanging_engine_with_sigterm(
    qtbot, make_engine, stub_command, tmp_path
):
    engine = make_engine(stub_command("hangs_in_render.jsonl"))
    recorder = wait_for_hang(qtbot, engine, tmp_path)

    started = time.monotonic()
    engine.cancel()
    qtbot.waitUntil(lambda: bool(recorder.outcomes()), timeout=3000)

    assert time.monotonic() - started < 1.5
    assert recorder.outcomes() == [("render_failed", ("cancelled", "Cancelled"))]
    assert not engine.is_running()


def test_cancel_kills_an_engine_that_ignores_sigterm(
    qtbot, make_engine, stub_command, tmp_path
):
    engine = make_engine(stub_command("hangs_in_render.jsonl", "--ignore-sigterm"))
    recorder = wait_for_hang(qtbot, engine, tmp_path)
    pid = engine.process_id()

    started = time.monotonic()
    engine.cancel()
    qtbot.waitUntil(lambda: bool(recorder.outcomes()), timeout=3500)

    assert 1.8 < time.monotonic() - started < 3.0
    assert recorder.outcomes() == [("render_failed", ("cancelled", "Cancelled"))]
    assert not _alive(pid)


def test_engine_killed_by_a_signal_is_explained(
    qtbot, make_engine, stub_command, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    engine = make_engine(stub_command("hangs_in_render.jsonl"))
    recorder = wait_for_hang(qtbot, engine, tmp_path)

    os.kill(engine.process_id(), signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(recorder.outcomes()), timeout=3000)

    [(code, message)] = recorder.args("render_failed")
    assert code == "internal"
    assert message.startswith("The engine stopped unexpectedly (killed by signal 9")
    assert "Encoding with libx264" in message


@pytest.mark.parametrize(
    ("kills_before", "kills_after", "advice"),
    [
        (3, 4, "The system ran out of memory and its out-of-memory killer stopped"),
        (3, 3, "the kernel recorded no out-of-memory kill, so a user or another"),
        (None, None, "The system may have run out of memory, or another program"),
    ],
)
def test_a_kill_says_whether_the_system_ran_out_of_memory(
    qtbot, make_engine, stub_command, tmp_path, allowed_errors, monkeypatch,
    kills_before, kills_after, advice,
):  # fmt: skip
    """SIGKILL comes from the kernel's out-of-memory killer or from someone else;
    the kernel's count of its kills tells which, where it keeps one."""
    allowed_errors.append("Render failed (internal)")
    counts = iter([kills_before, kills_after])
    monkeypatch.setattr(memory, "oom_kills", lambda: next(counts))
    engine = make_engine(stub_command("hangs_in_render.jsonl"))
    recorder = wait_for_hang(qtbot, engine, tmp_path)

    os.kill(engine.process_id(), signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(recorder.outcomes()), timeout=3000)

    [(_, message)] = recorder.args("render_failed")
    assert advice in message


def test_the_kernel_count_of_out_of_memory_kills_is_read_where_there_is_one():
    vmstat = Path("/proc/vmstat")
    lines = vmstat.read_text().splitlines() if vmstat.exists() else []
    count = memory.oom_kills()
    if any(line.startswith("oom_kill ") for line in lines):
        assert isinstance(count, int) and count >= 0
    else:
        assert count is None


def test_missing_engine_program_fails_in_words(
    qtbot, make_engine, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    engine = make_engine(EngineCommand(str(tmp_path / "no-such-engine")))
    recorder = run_to_outcome(qtbot, engine, tmp_path, timeout_ms=3000)

    [(code, message)] = recorder.args("render_failed")
    assert code == "internal"
    assert "could not be started" in message and "no-such-engine" in message


def test_one_render_at_a_time(qtbot, make_engine, stub_command, tmp_path):
    engine = make_engine(stub_command("hangs_in_render.jsonl"))
    wait_for_hang(qtbot, engine, tmp_path)

    with pytest.raises(RuntimeError, match="already running"):
        engine.start(make_spec(tmp_path), tmp_path / "job2")
    engine.shutdown()
    assert not engine.is_running()


def test_line_buffer_keeps_partial_lines_and_split_characters():
    buffer = LineBuffer()
    data = '{"a": "Vidéos"}\n{"b": 1}\n{"c"'.encode()
    cut = data.index("é".encode()) + 1

    assert buffer.feed(data[:cut]) == []
    assert buffer.feed(data[cut:]) == ['{"a": "Vidéos"}', '{"b": 1}']
    assert buffer.feed(b": 2}\r\n") == ['{"c": 2}']
    assert buffer.feed(b"tail") == []
    assert buffer.flush() == ["tail"]
    assert buffer.flush() == []


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
