"""The render queue: order, renders at once, cancel, retry and memory, with the stub."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from app import memory
from app.engine_process import EngineCommand
from app.job_records import JobStatus
from app.job_store import JobStore
from app.render_queue import PROGRESS_WRITE_INTERVAL_SEC, RenderQueue
from tests.app.conftest import FIXTURES
from tests.app.queue_helpers import job_spec, status_is, statuses

WAITING, RUNNING = JobStatus.WAITING, JobStatus.RUNNING
FINISHED, FAILED, CANCELLED = JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED


@pytest.fixture
def make_queue(
    qtbot, tmp_path: Path, store: JobStore
) -> Iterator[Callable[..., RenderQueue]]:
    made: list[RenderQueue] = []

    def make(command: EngineCommand, **options: int) -> RenderQueue:
        queue = RenderQueue(store, tmp_path / "jobs", command, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.shutdown()


def test_jobs_run_one_at_a_time_in_order(
    qtbot, make_queue, store, stub_command, tmp_path
):
    queue = make_queue(stub_command("normal_run.jsonl", "--delay", "0.001"))
    most_running = [0]
    queue.job_changed.connect(
        lambda _: most_running.__setitem__(
            0, max(most_running[0], queue.running_count())
        )
    )

    ids = [queue.add(job_spec(tmp_path, name)) for name in ("one", "two", "three")]
    assert statuses(store) == {ids[0]: RUNNING, ids[1]: WAITING, ids[2]: WAITING}
    qtbot.waitUntil(status_is(store, ids[2], FINISHED), timeout=15_000)

    records = [store.get(job_id) for job_id in ids]
    assert [record.status for record in records] == [FINISHED] * 3
    assert most_running[0] == 1
    for earlier, later in itertools.pairwise(records):
        assert later.started_at is not None
        assert later.started_at >= earlier.updated_at
    assert records[0].outputs["video"].endswith("montage-20261203-171858.mp4")
    assert "shots" in queue.summary(ids[0])


def test_two_renders_at_once_and_the_third_waits(
    qtbot, make_queue, store, stub_command, tmp_path
):
    queue = make_queue(stub_command("hangs_in_render.jsonl"), renders_at_once=2)

    ids = [queue.add(job_spec(tmp_path, name)) for name in ("a", "b", "c")]
    qtbot.waitUntil(lambda: "Rendering" in queue.record(ids[1]).stage, timeout=10_000)

    assert statuses(store) == {ids[0]: RUNNING, ids[1]: RUNNING, ids[2]: WAITING}
    assert queue.running_count() == 2
    queue.cancel(ids[0])
    qtbot.waitUntil(status_is(store, ids[2], RUNNING), timeout=5000)
    assert store.get(ids[0]).status is CANCELLED


def test_cancel_a_waiting_job_then_the_running_one(
    qtbot, make_queue, store, stub_command, tmp_path
):
    queue = make_queue(stub_command("hangs_in_render.jsonl", "--ignore-sigterm"))
    running, waiting = (queue.add(job_spec(tmp_path, name)) for name in "ab")
    qtbot.waitUntil(lambda: "Encoding" in queue.stderr_tail(running), timeout=10_000)

    queue.cancel(waiting)
    assert store.get(waiting).status is CANCELLED
    assert store.get(running).status is RUNNING

    engine_pid = queue.engine_process_id(running)
    queue.cancel(running)
    # The stub ignores SIGTERM: the kill after two seconds ends it.
    qtbot.waitUntil(status_is(store, running, CANCELLED), timeout=4000)
    assert queue.running_count() == 0
    assert engine_pid is not None and not _alive(engine_pid)
    assert statuses(store) == {running: CANCELLED, waiting: CANCELLED}


def test_a_failed_job_keeps_its_error_and_log_and_can_be_retried(
    qtbot, make_queue, store, stub_command, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    stream = tmp_path / "stream.jsonl"
    shutil.copy(FIXTURES / "dies_halfway.jsonl", stream)
    queue = make_queue(stub_command(str(stream), "--delay", "0.001"))

    job_id = queue.add(job_spec(tmp_path, "flaky"))
    qtbot.waitUntil(status_is(store, job_id, FAILED), timeout=10_000)
    failed = store.get(job_id)
    assert "stopped unexpectedly (exit status 1)" in (failed.error_message or "")
    assert "libgomp: Thread creation failed" in failed.log_tail

    shutil.copy(FIXTURES / "normal_run.jsonl", stream)
    queue.retry(job_id)
    qtbot.waitUntil(status_is(store, job_id, FINISHED), timeout=10_000)
    finished = store.get(job_id)
    assert finished.attempts == 2
    assert finished.error_message is None and finished.log_tail == ""


def test_a_job_waits_for_memory_and_says_why(
    qtbot, make_queue, store, stub_command, tmp_path, monkeypatch
):
    monkeypatch.setattr(memory, "available_mb", lambda: 120.0)
    queue = make_queue(stub_command("normal_run.jsonl", "--delay", "0.001"))

    job_id = queue.add(job_spec(tmp_path, "big"))

    assert store.get(job_id).status is WAITING
    assert queue.running_count() == 0
    stage = queue.record(job_id).stage
    assert stage.startswith("Waiting for memory: this render needs about 350 MB")
    assert "120 MB are free" in stage

    monkeypatch.setattr(memory, "available_mb", lambda: 8000.0)
    queue.start_waiting_jobs()
    qtbot.waitUntil(status_is(store, job_id, FINISHED), timeout=10_000)


def test_a_preview_needs_less_memory_than_a_final_render(tmp_path):
    preview = memory.estimate_job_mb(job_spec(tmp_path, "p", quality="preview"))
    final = memory.estimate_job_mb(job_spec(tmp_path, "f", quality="final"))
    assert 180 < preview < 220 < 330 < final < 370


def test_an_engine_over_the_memory_limit_is_stopped(
    qtbot, make_queue, store, stub_command, tmp_path, monkeypatch, allowed_errors
):
    allowed_errors.append("Render failed")
    monkeypatch.setattr(memory, "process_tree_rss_mb", lambda pid: 1623.0)
    queue = make_queue(stub_command("hangs_in_render.jsonl"), memory_limit_mb=1500)

    job_id = queue.add(job_spec(tmp_path, "greedy"))
    qtbot.waitUntil(status_is(store, job_id, FAILED), timeout=5000)

    failed = store.get(job_id)
    assert failed.error_code == "out_of_memory"
    assert "used more than the 1500 MB limit set in Settings" in (
        failed.error_message or ""
    )
    assert "choose preview quality" in (failed.error_message or "").lower()
    assert queue.running_count() == 0


def test_a_job_that_needs_more_than_the_limit_fails_before_it_starts(
    qtbot, make_queue, store, stub_command, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed")
    queue = make_queue(stub_command("normal_run.jsonl"), memory_limit_mb=300)

    job_id = queue.add(job_spec(tmp_path, "final", quality="final"))
    small = queue.add(job_spec(tmp_path, "preview", quality="preview"))

    failed = store.get(job_id)
    assert failed.status is FAILED and failed.error_code == "out_of_memory"
    assert failed.error_message.startswith("This render needs about 35")
    assert "more than the 300 MB limit per render" in failed.error_message
    qtbot.waitUntil(status_is(store, small, FINISHED), timeout=10_000)


def test_progress_reaches_the_store_at_a_limited_rate(
    qtbot, make_queue, store, stub_command, tmp_path, monkeypatch
):
    writes: list[float] = []
    update_progress = store.update_progress
    monkeypatch.setattr(
        store,
        "update_progress",
        lambda *args: writes.append(args[2]) or update_progress(*args),
    )
    events = []
    queue = make_queue(stub_command("normal_run.jsonl", "--delay", "0.001"))
    queue.job_changed.connect(events.append)

    job_id = queue.add(job_spec(tmp_path, "busy"))
    qtbot.waitUntil(status_is(store, job_id, FINISHED), timeout=10_000)

    # One write per stage change, and progress at most every 0.25 s in between.
    assert PROGRESS_WRITE_INTERVAL_SEC == 0.25
    assert 0 < len(writes) < len(events) / 2


def test_remove_takes_a_job_off_the_list(
    qtbot, make_queue, store, stub_command, tmp_path
):
    queue = make_queue(stub_command("normal_run.jsonl", "--delay", "0.001"))
    job_id = queue.add(job_spec(tmp_path, "gone"))
    qtbot.waitUntil(status_is(store, job_id, FINISHED), timeout=10_000)

    queue.remove(job_id)

    assert store.list_jobs() == []


def test_remove_sweeps_what_a_killed_engine_left(
    qtbot, make_queue, store, stub_command, tmp_path
):
    """An engine killed outright (the out-of-memory killer) cannot remove its hidden
    files; removing its job does, and nothing of a live render or another job."""
    queue = make_queue(stub_command("normal_run.jsonl", "--delay", "0.001"))
    job_id = queue.add(job_spec(tmp_path, "killed"))
    qtbot.waitUntil(status_is(store, job_id, FINISHED), timeout=10_000)
    folder = tmp_path / "out"
    folder.mkdir(exist_ok=True)
    dead_pid = psutil.Popen(["true"])
    dead_pid.wait()
    live = psutil.Popen(["sleep", "30"])  # another render still writing
    left = [f".killed.mp4.{dead_pid.pid}.part", f".killed.edl.{dead_pid.pid}.part"]
    kept = [f".killed.mp4.{live.pid}.part", f".other.mp4.{dead_pid.pid}.part"]
    for name in left + kept:
        (folder / name).write_bytes(b"partial")

    try:
        queue.remove(job_id)
    finally:
        live.kill()
        live.wait()

    assert sorted(path.name for path in folder.glob(".*.part")) == sorted(kept)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
