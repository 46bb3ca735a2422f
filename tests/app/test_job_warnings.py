"""The engine's warnings and finished summary: kept in the job store per attempt,
read back after a restart or by a second window, and shown in the queue panel."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSize, Qt

from app import job_schema, job_store
from app.engine_process import EngineCommand
from app.job_records import JobStatus, JobWarning
from app.job_store import JobStore
from app.job_text import describe_warnings
from app.queue_panel import STAGE, STATUS, RenderQueuePanel
from app.render_queue import RenderQueue
from tests.app.queue_helpers import job_spec, status_is

CLIP = "/home/ana/clips/node-opencv.copyright"
SONG = "/home/ana/Musique/Sean Hawk - In Rome.ogg"
NOT_A_VIDEO = "node-opencv.copyright: not a video FFmpeg can read."
DEFAULT_SIZE = QSize(1040, 780)

Panel = Callable[..., RenderQueuePanel]


@pytest.fixture
def make_panel(qtbot, tmp_path: Path) -> Iterator[Panel]:
    """make_panel(store, command) -> a shown panel over its own RenderQueue."""
    queues: list[RenderQueue] = []

    def make(store: JobStore, command: EngineCommand | None = None) -> RenderQueuePanel:
        queue = RenderQueue(store, tmp_path / "jobs", command)
        queues.append(queue)
        panel = RenderQueuePanel(queue)
        qtbot.addWidget(panel)
        panel.resize(900, 400)
        panel.show()
        return panel

    yield make
    for queue in queues:
        queue.shutdown()
    # The engines are deleted later by the event loop; let it run first.
    qtbot.wait(100)


def running_job(store: JobStore, tmp_path: Path, name: str = "one") -> int:
    job_id = store.add(job_spec(tmp_path, name))
    store.mark_running(job_id, os.getpid())
    return job_id


def cell(panel: RenderQueuePanel, row: int, column: int, role=None) -> object:
    index = panel.model.index(row, column)
    return index.data(role if role is not None else Qt.ItemDataRole.DisplayRole)


# The store


def test_warnings_and_summary_survive_reopening_the_store(tmp_path: Path):
    path = tmp_path / "jobs.sqlite3"
    with JobStore(path) as store:
        job_id = running_job(store, tmp_path)
        assert store.add_warning(job_id, 1, NOT_A_VIDEO, CLIP)
        assert store.add_warning(job_id, 1, "The size 1001x720 is not 16:9.")
        assert store.add_summary(job_id, 1, {"shots": 5, "prompt_interpreter": "ai"})
        store.mark_finished(job_id, {"video": "/out/one.mp4"})

    with JobStore(path) as reopened:
        record = reopened.get(job_id)

    assert record.warnings == (
        JobWarning(NOT_A_VIDEO, CLIP),
        JobWarning("The size 1001x720 is not 16:9."),
    )
    assert record.summary == {"shots": 5, "prompt_interpreter": "ai"}


def test_a_retry_starts_with_no_warnings_and_no_summary(store: JobStore, tmp_path):
    job_id = running_job(store, tmp_path)
    store.add_warning(job_id, 1, NOT_A_VIDEO, CLIP)
    store.add_summary(job_id, 1, {"shots": 5})
    store.mark_failed(job_id, "internal", "The engine stopped.", "")

    store.retry(job_id)
    store.mark_running(job_id, os.getpid())

    assert store.get(job_id).warnings == ()
    assert store.get(job_id).summary == {}
    # A late warning of the first attempt's engine is refused.
    assert not store.add_warning(job_id, 1, "late", CLIP)
    assert store.add_warning(job_id, 2, "second try", SONG)
    assert store.get(job_id).warnings == (JobWarning("second try", SONG),)


def test_only_a_running_job_takes_warnings(store: JobStore, tmp_path):
    job_id = store.add(job_spec(tmp_path, "waits"))

    assert not store.add_warning(job_id, 1, NOT_A_VIDEO, CLIP)
    assert not store.add_summary(job_id, 1, {"shots": 5})
    assert store.get(job_id).warnings == ()


def test_warnings_stop_at_the_most_kept(store: JobStore, tmp_path, monkeypatch):
    monkeypatch.setattr(job_store, "MAX_WARNINGS", 3)
    job_id = running_job(store, tmp_path)

    kept = [store.add_warning(job_id, 1, f"clip {n}", f"/c/{n}.mp4") for n in range(5)]

    assert kept == [True, True, True, False, False]
    assert len(store.get(job_id).warnings) == 3


def test_a_database_from_before_warnings_opens_and_takes_them(tmp_path: Path):
    path = tmp_path / "jobs.sqlite3"
    connection = sqlite3.connect(path)
    for statement in job_schema.MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO jobs (created_at, updated_at, spec_json, status, queue_order)"
        " VALUES ('2026-12-01T10:00:00+00:00', '2026-12-01T10:05:00+00:00', ?,"
        " 'finished', 1)",
        (job_spec(tmp_path, "old").to_json(),),
    )
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()

    with JobStore(path) as store:
        [old] = store.list_jobs()
        new_id = running_job(store, tmp_path, "new")
        store.add_warning(new_id, 1, NOT_A_VIDEO, CLIP)
        new = store.get(new_id)

    assert (old.status, old.warnings, old.summary) == (JobStatus.FINISHED, (), {})
    assert new.warnings == (JobWarning(NOT_A_VIDEO, CLIP),)
    with sqlite3.connect(path) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert version == job_schema.SCHEMA_VERSION == 2


def test_a_damaged_warnings_value_reads_as_none(store: JobStore, tmp_path):
    job_id = running_job(store, tmp_path)
    store._connection.execute(
        "UPDATE jobs SET warnings_json = 'not json', summary_json = '[1]'"
    )

    record = store.get(job_id)

    assert (record.warnings, record.summary) == ((), {})


# The queue and the panel


def test_a_finished_render_keeps_its_warnings_for_the_next_window(
    qtbot, make_panel, stub_command, tmp_path: Path
):
    path = tmp_path / "jobs.sqlite3"
    first = JobStore(path)
    panel = make_panel(first, stub_command("normal_run.jsonl", "--delay", "0.001"))
    job_id = panel.queue.add(job_spec(tmp_path, "one"))
    qtbot.waitUntil(status_is(first, job_id, JobStatus.FINISHED), timeout=10_000)
    panel.queue.shutdown()
    first.close()

    # Another window, or the app started again.
    second = JobStore(path)
    panel = make_panel(second)
    panel.select_job(job_id)

    assert cell(panel, 0, STAGE).startswith("Done with 2 warnings: 9 shots")
    assert cell(panel, 0, STATUS, Qt.ItemDataRole.DecorationRole) is not None
    assert "node-opencv.copyright" in cell(panel, 0, STAGE, Qt.ItemDataRole.ToolTipRole)
    detail = panel.detail_label.text()
    assert detail.startswith("Done: 9 shots from 1 of 1 clips")
    assert "2 warnings, about node-opencv.copyright and Sean Hawk - In Rome.ogg" in (
        detail
    )
    assert panel.details_button.text() == "Show warnings and files"
    assert not panel.log_view.isVisible()

    panel.details_button.click()

    assert panel.log_view.isVisible()
    assert panel.details_button.text() == "Hide warnings and files"
    text = panel.log_view.toPlainText()
    assert text.startswith("Warnings:\n• node-opencv.copyright: not a video")
    assert "• Sean Hawk - In Rome.ogg has 4.0 s of music" in text
    assert "Files:\nvideo: /home/ana/Vidéos/Montage AI/" in text
    assert panel.queue.summary(job_id)["shots"] == 9
    second.close()


def test_a_failure_names_the_files_its_warnings_are_about(
    qtbot, make_panel, store, stub_command, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (no_usable_clips)")
    panel = make_panel(store, stub_command("no_usable_clips.jsonl"))
    job_id = panel.queue.add(job_spec(tmp_path, "one"))
    qtbot.waitUntil(status_is(store, job_id, JobStatus.FAILED), timeout=10_000)
    panel.select_job(job_id)

    detail = panel.detail_label.text()
    assert detail.startswith("None of the clips could be used (see the warnings")
    assert detail.endswith("1 warning, about node-opencv.copyright.")
    assert panel.details_button.text() == "Show warnings and log"
    panel.details_button.click()
    assert "• node-opencv.copyright: not a video" in panel.log_view.toPlainText()


def test_a_warning_without_its_file_in_the_message_gets_its_name(
    make_panel, store, tmp_path
):
    job_id = running_job(store, tmp_path)
    store.add_warning(job_id, 1, "Only the first 2.0 s decode.", "/c/diver.mov")
    panel = make_panel(store)
    panel.select_job(job_id)

    assert panel.detail_label.text() == "1 warning, about diver.mov."
    assert "• diver.mov: Only the first 2.0 s decode." in panel.log_view.toPlainText()


def test_describe_warnings_counts_the_files_it_does_not_name():
    warnings = [JobWarning("m", f"/c/clip-{n}.mp4") for n in range(5)]

    assert describe_warnings([]) == ""
    assert describe_warnings([JobWarning("m")]) == "1 warning."
    assert describe_warnings(warnings) == (
        "5 warnings, about clip-0.mp4, clip-1.mp4 and 3 other files."
    )


def test_waiting_jobs_are_listed_in_the_order_they_run(
    qtbot, make_panel, store, stub_command, tmp_path
):
    panel = make_panel(store, stub_command("hangs_in_render.jsonl"))
    queue = panel.queue
    first, second, third = (queue.add(job_spec(tmp_path, n)) for n in "abc")
    panel.select_job(second)

    queue.cancel(second)
    queue.retry(second)

    order = [panel.model.record_at(row).id for row in range(3)]
    assert order == [first, third, second]
    assert panel.selected_record().id == second
    queue.cancel(first)
    qtbot.waitUntil(status_is(store, third, JobStatus.RUNNING), timeout=5000)
    assert store.get(second).status is JobStatus.WAITING


def test_a_failed_job_leaves_the_queue_four_rows_at_the_default_size(
    qtbot, make_window, store, tmp_path
):
    for name in "abcd":
        job_id = running_job(store, tmp_path, name)
        store.add_warning(job_id, 1, NOT_A_VIDEO, CLIP)
        message = "The engine stopped unexpectedly (exit status 1). " * 3
        store.mark_failed(job_id, "internal", message, "libgomp: failed\n" * 40)
    window = make_window()
    window.resize(DEFAULT_SIZE)
    qtbot.waitUntil(lambda: window.size() == DEFAULT_SIZE)
    panel = window.queue_panel

    panel.select_job(job_id)
    qtbot.wait(20)  # the layouts' posted requests

    assert panel.detail_label.isVisible() and not panel.log_view.isVisible()
    view = panel.view
    assert view.viewport().height() >= 4 * view.rowHeight(0)
