"""The main window: drops, the form as a job, the queue, settings, with the stub."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import time
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.drop_widgets import DETAIL_ROLE
from app.engine_process import EngineCommand
from app.job_records import JobStatus
from app.job_store import JobStore
from app.main_window import MainWindow, describe_summary, format_eta
from app.queue_panel import NAME, PROGRESS, PROGRESS_STEPS, STAGE, STATUS
from app.settings import AppSettings, load_settings
from app.settings_dialog import SettingsDialog
from engine import protocol
from tests.app.queue_helpers import heartbeat_gaps


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    """Empty stand-ins: the stub engine never opens them."""
    clip = tmp_path / "beach.mp4"
    folder = tmp_path / "holiday"
    song = tmp_path / "song.ogg"
    folder.mkdir()
    for path in (clip, song):
        path.write_bytes(b"")
    return {"clip": clip, "folder": folder, "song": song}


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    return mime


def drop_on(target: QWidget, mime: QMimeData) -> tuple[bool, bool]:
    """Drag mime onto target's centre and drop it, as a file manager would."""
    centre = target.rect().center()
    actions = Qt.DropAction.CopyAction
    buttons = Qt.MouseButton.LeftButton
    # QDragEnterEvent takes a QPoint (QPointF only from PySide6 6.12), QDropEvent
    # a QPointF.
    enter = QDragEnterEvent(centre, actions, mime, buttons, Qt.KeyboardModifier(0))
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False, False
    drop = QDropEvent(QPointF(centre), actions, mime, buttons, Qt.KeyboardModifier(0))
    QApplication.sendEvent(target, drop)
    return True, drop.isAccepted()


def fill_form(window: MainWindow, media: dict[str, Path]) -> None:
    window.form.clip_list.add_paths([media["clip"], media["folder"]])
    window.form.song_edit.setText(str(media["song"]))


def test_dropped_files_and_folders_are_listed(make_window, media):
    window = make_window()
    viewport = window.form.clip_list.viewport()

    entered, dropped = drop_on(viewport, file_mime(media["clip"], media["folder"]))

    assert entered and dropped
    assert window.form.clip_list.paths() == [str(media["clip"]), str(media["folder"])]
    assert window.form.clip_list.item(0).text() == "beach.mp4"
    folder = window.form.clip_list.item(1)
    assert folder.text() == media["folder"].name
    assert folder.data(DETAIL_ROLE).startswith("Folder · ")
    assert window.form.clip_count_label.text() == "2 items"


def test_dropping_a_listed_clip_again_adds_nothing(make_window, media):
    window = make_window()
    drop_on(window.form.clip_list.viewport(), file_mime(media["clip"]))
    drop_on(window.form.clip_list.viewport(), file_mime(media["clip"], media["folder"]))

    assert window.form.clip_list.paths() == [str(media["clip"]), str(media["folder"])]


def test_a_drag_without_files_is_refused(make_window):
    window = make_window()
    mime = QMimeData()
    mime.setText("just some text")

    entered, _ = drop_on(window.form.clip_list.viewport(), mime)

    assert not entered
    assert window.form.clip_list.count() == 0


def test_a_dropped_song_fills_the_music_field(make_window, media):
    window = make_window()

    entered, dropped = drop_on(
        window.form.song_edit, file_mime(media["song"], media["clip"])
    )

    assert entered and dropped
    assert window.form.song_edit.text() == str(media["song"])


def test_styles_come_from_the_resources(make_window):
    window = make_window()
    names = [
        window.form.style_combo.itemData(i)
        for i in range(window.form.style_combo.count())
    ]

    assert names[0] == "dynamic"
    assert {"dynamic", "mtv", "documentary", "hitchcock"} <= set(names)
    assert "cut on every beat" in window.form.style_description.text()
    window.form.style_combo.setCurrentIndex(names.index("mtv"))
    assert window.form.style_description.text() != ""


def test_the_form_becomes_a_job(make_window, media, tmp_path):
    window = make_window()
    fill_form(window, media)
    window.form.prompt_edit.setText("slow and dreamy")
    window.form.duration_spin.setValue(30)
    window.form.aspect_combo.setCurrentIndex(window.form.aspect_combo.findData("9:16"))
    window.form.quality_combo.setCurrentIndex(
        window.form.quality_combo.findData("preview")
    )
    window.form.seed_spin.setValue(42)
    window.form.fps_combo.setCurrentIndex(window.form.fps_combo.findData(29.97))

    spec = window.form.build_job_spec()

    assert spec.clips == [str(media["clip"]), str(media["folder"])]
    assert spec.music == str(media["song"])
    assert (spec.style, spec.prompt, spec.seed) == ("dynamic", "slow and dreamy", 42)
    assert (spec.duration_sec, spec.aspect, spec.quality) == (30.0, "9:16", "preview")
    assert spec.fps == 29.97
    assert Path(spec.output).parent == tmp_path / "out"
    assert Path(spec.output).name.startswith("montage-")
    window.form.duration_spin.setValue(0)
    assert window.form.build_job_spec().duration_sec is None


def test_shuffle_changes_the_seed(make_window):
    window = make_window()
    seeds = set()
    for _ in range(5):
        window.form.shuffle_button.click()
        seeds.add(window.form.seed_spin.value())
    assert len(seeds) > 1


def test_create_without_clips_explains_in_the_window(make_window, store):
    window = make_window()

    window.create_button.click()

    assert window.error_label.isVisible()
    assert "no clips" in window.error_label.text()
    assert store.list_jobs() == []
    assert window.create_button.isEnabled()


def test_create_with_a_known_problem_explains_it_instead_of_queueing(
    make_window, media, store, monkeypatch
):
    window = make_window()
    fill_form(window, media)
    monkeypatch.setattr(
        window.form, "known_problem", lambda: "None of the clips can be used (...)."
    )

    assert window.create_job() is None

    assert window.error_label.text() == "None of the clips can be used (...)."
    assert store.list_jobs() == []


def test_render_shows_progress_and_stays_responsive(
    qtbot, make_window, media, stub_command, store
):
    window = make_window(stub_command("normal_run.jsonl", "--delay", "0.03"))
    fill_form(window, media)
    gaps = heartbeat_gaps(window)
    panel = window.queue_panel
    seen_progress: set[object] = set()
    window.queue.job_changed.connect(
        lambda job_id: seen_progress.add(cell(window, 0, PROGRESS))
    )

    qtbot.mouseClick(window.create_button, Qt.MouseButton.LeftButton)
    assert cell(window, 0, STATUS) == "Rendering"
    assert panel.cancel_button.isEnabled() and not panel.retry_button.isEnabled()
    qtbot.waitUntil(lambda: panel.open_button.isEnabled(), timeout=10_000)

    # The event loop kept turning while the engine ran: no gap near a second.
    assert len(gaps) > 20 and max(gaps) < 0.5
    assert len(seen_progress) > 5
    assert cell(window, 0, STATUS) == "Finished"
    assert cell(window, 0, PROGRESS) == PROGRESS_STEPS
    assert cell(window, 0, NAME).startswith("montage-")
    assert "9 shots from 1 of 1 clips" in cell(window, 0, STAGE)
    assert panel.detail_label.text().startswith("Done: 9 shots")
    assert panel.show_folder_button.isEnabled()
    assert not panel.cancel_button.isEnabled()
    assert store.list_jobs()[0].status is JobStatus.FINISHED


def test_two_creates_queue_two_jobs_with_their_own_files(
    qtbot, make_window, media, stub_command, store
):
    window = make_window(stub_command("hangs_in_render.jsonl"))
    fill_form(window, media)

    first, second = window.create_job(), window.create_job()

    assert first is not None and second is not None
    outputs = {record.spec.output for record in store.list_jobs()}
    assert len(outputs) == 2
    assert [cell(window, row, STATUS) for row in (0, 1)] == ["Rendering", "Waiting"]
    assert cell(window, 1, STAGE) == "Waiting for its turn"


def test_cancel_from_the_window(qtbot, make_window, media, stub_command, store):
    window = make_window(stub_command("hangs_in_render.jsonl", "--ignore-sigterm"))
    fill_form(window, media)
    job_id = window.create_job()
    assert job_id is not None
    qtbot.waitUntil(
        lambda: "Encoding with libx264" in window.queue.stderr_tail(job_id),
        timeout=10_000,
    )

    started = time.monotonic()
    qtbot.mouseClick(window.queue_panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cell(window, 0, STATUS) == "Cancelled", timeout=3500)

    assert time.monotonic() - started < 3.0
    assert window.queue.running_count() == 0
    assert window.queue_panel.retry_button.isEnabled()
    assert not window.queue_panel.detail_label.isVisible()


def test_engine_crash_is_shown_in_the_window(
    qtbot, make_window, media, stub_command, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    window = make_window(stub_command("dies_halfway.jsonl"))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: cell(window, 0, STATUS) == "Failed", timeout=10_000)

    panel = window.queue_panel
    assert panel.detail_label.isVisible()
    assert "stopped unexpectedly (exit status 1)" in panel.detail_label.text()
    assert "libgomp" in panel.log_view.toPlainText()
    assert not panel.open_button.isEnabled()
    assert panel.retry_button.isEnabled() and panel.remove_button.isEnabled()
    assert window.create_button.isEnabled()


def test_engine_failure_message_is_shown_as_sent(
    qtbot, make_window, media, stub_command, allowed_errors
):
    allowed_errors.append("Render failed (no_usable_clips)")
    window = make_window(stub_command("no_usable_clips.jsonl"))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: cell(window, 0, STATUS) == "Failed", timeout=10_000)

    detail = window.queue_panel.detail_label.text()
    assert detail.startswith("None of the clips could be used")
    assert cell(window, 0, STAGE) == "None of the clips could be used (see the " + (
        "warnings for each file)"
    )


def test_missing_engine_is_shown_in_the_window(
    qtbot, make_window, media, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    window = make_window(EngineCommand(str(tmp_path / "no-such-engine")))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: cell(window, 0, STATUS) == "Failed", timeout=5000)

    assert "could not be started" in window.queue_panel.detail_label.text()
    assert window.create_button.isEnabled()


def test_closing_the_window_stops_the_engine_and_keeps_the_job(
    qtbot, make_window, media, stub_command, store
):
    window = make_window(stub_command("hangs_in_render.jsonl"))
    fill_form(window, media)
    job_id = window.create_job()
    assert job_id is not None
    qtbot.waitUntil(
        lambda: window.queue.engine_process_id(job_id) is not None, timeout=5000
    )

    window.close()

    assert window.queue.running_count() == 0
    assert store.get(job_id).status is JobStatus.INTERRUPTED


def test_a_damaged_job_list_is_reported(qtbot, make_window, tmp_path):
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database" * 200)
    with JobStore(damaged) as fresh_store:
        window = make_window(store=fresh_store)

        assert window.banner_label.isVisible()
        assert "was damaged" in window.banner_label.text()
        assert str(fresh_store.recovered_from) in window.banner_label.text()
        window.close()


def test_settings_apply_to_the_queue_and_are_saved(make_window, tmp_path):
    window = make_window()
    assert window.banner_label.isHidden()
    new = dataclasses.replace(
        window.settings,
        renders_at_once=3,
        memory_limit_mb=2500,
        default_quality="preview",
        output_dir=str(tmp_path / "elsewhere"),
    )

    window.apply_settings(new)

    assert (window.queue.renders_at_once, window.queue.memory_limit_mb) == (3, 2500)
    assert window.form.quality_combo.currentData() == "preview"
    assert Path(window.form.output_edit.text()).parent == Path(new.output_dir)
    assert load_settings(tmp_path / "config" / "settings.json") == new


def test_other_settings_leave_the_quality_chosen_in_the_form(make_window):
    window = make_window()
    quality = window.form.quality_combo
    quality.setCurrentIndex(quality.findData("preview"))
    assert window.settings.default_quality == "final"

    window.apply_settings(dataclasses.replace(window.settings, renders_at_once=2))

    assert quality.currentData() == "preview"


def test_the_interrupted_banner_goes_once_its_job_is_retried(
    qtbot, make_window, store, stub_command, tmp_path
):
    job_id = store.add(protocol.JobSpec(clips=["a.mp4"], music="s.ogg",
                                        output=str(tmp_path / "out" / "a.mp4")))  # fmt: skip
    gone = psutil.Popen(["true"])
    gone.wait()
    store.mark_running(job_id, gone.pid)  # an engine that died with its app
    window = make_window(stub_command("normal_run.jsonl", "--delay", "0.001"))
    assert "1 render was interrupted" in window.banner_label.text()
    assert window.banner_label.isVisible()

    window.queue.retry(job_id)
    qtbot.waitUntil(lambda: store.get(job_id).status is JobStatus.FINISHED,
                    timeout=10_000)  # fmt: skip

    assert window.banner_label.isHidden()


def test_the_settings_dialog_reads_back_what_it_shows(qtbot):
    dialog = SettingsDialog(AppSettings(output_dir="/videos"))
    qtbot.addWidget(dialog)
    dialog.renders_spin.setValue(9)
    dialog.memory_spin.setValue(800)
    dialog.quality_combo.setCurrentIndex(dialog.quality_combo.findData("preview"))

    settings = dialog.settings()

    assert settings.renders_at_once == 4
    assert (settings.memory_limit_mb, settings.default_quality) == (800, "preview")
    assert settings.output_dir == "/videos"


def test_an_unreadable_settings_file_gives_the_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json", encoding="utf-8")
    assert load_settings(path) == AppSettings()
    path.write_text('{"renders_at_once": 0, "unknown": 1}', encoding="utf-8")
    assert load_settings(path).renders_at_once == 1


def cell(window: MainWindow, row: int, column: int) -> object:
    model = window.queue_panel.model
    return model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole)


@pytest.mark.parametrize(
    ("eta_sec", "text"),
    [
        (None, ""),
        (0.2, "about 1 s left"),
        (42.4, "about 42 s left"),
        (150, "about 2 min left"),
    ],
)
def test_format_eta(eta_sec, text):
    assert format_eta(eta_sec) == text


def test_describe_summary_tolerates_missing_fields():
    assert describe_summary({}) == "Render complete."
    summary = {"shots": 21, "sources_used": 9, "sources": 9, "duration_sec": 10.0}
    summary |= {"tempo_bpm": 149.9, "style": "dynamic", "seed": 7}
    assert describe_summary(summary) == (
        "21 shots from 9 of 9 clips, 10.0 s at 150 BPM (style dynamic, seed 7)."
    )
