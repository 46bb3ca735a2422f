"""The main window: drops, the form as a job, and a render through the stub engine."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.engine_process import EngineCommand
from app.main_window import MainWindow, describe_summary, format_eta


@pytest.fixture
def make_window(qtbot, tmp_path: Path):
    def make(command: EngineCommand | None = None) -> MainWindow:
        window = MainWindow(
            engine_command=command,
            jobs_dir=tmp_path / "jobs",
            output_dir=tmp_path / "out",
        )
        qtbot.addWidget(window)
        window.show()
        return window

    return make


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
    assert "folder" in window.form.clip_list.item(1).text()
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

    spec = window.form.build_job_spec()

    assert spec.clips == [str(media["clip"]), str(media["folder"])]
    assert spec.music == str(media["song"])
    assert (spec.style, spec.prompt, spec.seed) == ("dynamic", "slow and dreamy", 42)
    assert (spec.duration_sec, spec.aspect, spec.quality) == (30.0, "9:16", "preview")
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


def test_create_without_clips_explains_in_the_window(make_window):
    window = make_window()

    window.create_button.click()

    assert window.error_label.isVisible()
    assert "no clips" in window.error_label.text()
    assert not window.engine.is_running()
    assert window.create_button.isEnabled()


def test_render_shows_progress_and_stays_responsive(
    qtbot, make_window, media, stub_command
):
    window = make_window(stub_command("normal_run.jsonl", "--delay", "0.03"))
    fill_form(window, media)
    gaps = heartbeat_gaps(window)

    qtbot.mouseClick(window.create_button, Qt.MouseButton.LeftButton)
    assert not window.create_button.isEnabled() and window.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: window.open_button.isVisible(), timeout=10_000)

    # The event loop kept turning while the engine ran: no gap near a second.
    assert len(gaps) > 20 and max(gaps) < 0.5
    assert window.progress_bar.value() == window.progress_bar.maximum()
    assert window.stage_label.text().startswith("Done")
    assert window.show_folder_button.isVisible()
    log_text = window.log_view.toPlainText()
    assert "Warning: node-opencv.copyright: not a video" in log_text
    assert "9 shots from 1 of 1 clips" in log_text
    assert window.create_button.isEnabled() and not window.cancel_button.isEnabled()


def test_cancel_from_the_window(qtbot, make_window, media, stub_command):
    window = make_window(stub_command("hangs_in_render.jsonl", "--ignore-sigterm"))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(
        lambda: "Encoding with libx264" in window.engine.stderr_tail(), timeout=10_000
    )

    started = time.monotonic()
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.stage_label.text() == "Cancelled", timeout=3500)

    assert time.monotonic() - started < 3.0
    assert not window.engine.is_running()
    assert window.create_button.isEnabled()
    assert not window.error_label.isVisible()


def test_engine_crash_is_shown_in_the_window(
    qtbot, make_window, media, stub_command, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    window = make_window(stub_command("dies_halfway.jsonl"))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: window.stage_label.text() == "Failed", timeout=10_000)

    assert window.error_label.isVisible()
    assert "stopped unexpectedly (exit status 1)" in window.error_label.text()
    assert "libgomp" in window.log_view.toPlainText()
    assert not window.open_button.isVisible()
    assert window.create_button.isEnabled()


def test_engine_failure_message_is_shown_as_sent(
    qtbot, make_window, media, stub_command, allowed_errors
):
    allowed_errors.append("Render failed (no_usable_clips)")
    window = make_window(stub_command("no_usable_clips.jsonl"))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: window.stage_label.text() == "Failed", timeout=10_000)

    assert window.error_label.text().startswith("None of the clips could be used")


def test_missing_engine_is_shown_in_the_window(
    qtbot, make_window, media, tmp_path, allowed_errors
):
    allowed_errors.append("Render failed (internal)")
    window = make_window(EngineCommand(str(tmp_path / "no-such-engine")))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: window.error_label.isVisible(), timeout=5000)

    assert "could not be started" in window.error_label.text()
    assert window.create_button.isEnabled() and not window.cancel_button.isEnabled()


def test_closing_the_window_stops_the_engine(qtbot, make_window, media, stub_command):
    window = make_window(stub_command("hangs_in_render.jsonl"))
    fill_form(window, media)
    window.create_button.click()
    qtbot.waitUntil(lambda: window.engine.is_running(), timeout=5000)

    window.close()

    assert not window.engine.is_running()


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


def heartbeat_gaps(window: MainWindow) -> list[float]:
    """Seconds between ticks of a 10 ms timer, collected while the test waits."""
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(window)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    return gaps
