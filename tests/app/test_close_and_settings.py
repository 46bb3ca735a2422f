"""Closing with renders running asks first; Settings refuses an output folder that
cannot be used and opens wide enough; the waveform keeps its names and beat lines
readable."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import errno
import itertools
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QFontMetricsF, QImage
from PySide6.QtWidgets import QMessageBox

from app.job_records import JobStatus
from app.main_window import MainWindow, quit_question
from app.settings import AppSettings, OutputDirError, prepare_output_dir
from app.settings_dialog import DIRECTOR_URL_HINT, TYPICAL_OUTPUT_DIR, SettingsDialog
from app.waveform_view import (
    MIN_BEAT_GAP_PX,
    MIN_DOWNBEAT_GAP_PX,
    WaveformView,
    beat_lines,
    section_name_boxes,
)

# The real question: conftest's quit_without_asking replaces it in every test.
ASK_BEFORE_QUITTING = MainWindow.confirm_quit


def song_at(bpm: float, duration_sec: float) -> dict:
    """A music_info event with a beat every 60/bpm s, a downbeat every 4 beats."""
    beat_sec = 60.0 / bpm
    beats_sec = [n * beat_sec for n in range(int(duration_sec / beat_sec))]
    return {
        "ok": True,
        "duration_sec": duration_sec,
        "tempo_bpm": bpm,
        "beats_sec": beats_sec,
        "downbeats_sec": beats_sec[::4],
        "sections": [],
        "waveform": [0.6, 0.9, 0.4, 0.7] * 300,
    }


# 1. Closing the window


def start_hanging_render(qtbot, make_window, stub_command, tmp_path):
    window = make_window(stub_command("hangs_in_render.jsonl"))
    for name in ("beach.mp4", "song.ogg"):
        (tmp_path / name).write_bytes(b"")
    window.form.clip_list.add_paths([tmp_path / "beach.mp4"])
    window.form.song_edit.setText(str(tmp_path / "song.ogg"))
    job_id = window.create_job()
    assert job_id is not None
    qtbot.waitUntil(
        lambda: window.queue.engine_process_id(job_id) is not None, timeout=5000
    )
    return window, job_id


def test_closing_with_a_render_running_asks_and_can_keep_rendering(
    qtbot, make_window, stub_command, store, tmp_path, monkeypatch
):
    window, job_id = start_hanging_render(qtbot, make_window, stub_command, tmp_path)
    asked: list[int] = []
    answer = False

    def confirm_quit(self: MainWindow, running_count: int) -> bool:
        asked.append(running_count)
        return answer

    monkeypatch.setattr(MainWindow, "confirm_quit", confirm_quit)

    assert not window.close()
    assert window.isVisible()
    assert window.queue.running_count() == 1
    assert store.get(job_id).status is JobStatus.RUNNING

    answer = True
    assert window.close()
    assert asked == [1, 1]
    assert window.queue.running_count() == 0
    assert store.get(job_id).status is JobStatus.INTERRUPTED


def test_closing_with_nothing_running_does_not_ask(make_window, monkeypatch):
    window = make_window()
    asked: list[int] = []
    monkeypatch.setattr(
        MainWindow, "confirm_quit", lambda self, count: asked.append(count) or False
    )

    assert window.close()
    assert asked == []


def test_the_quit_question_names_the_renders_and_keeps_rendering_by_default(qtbot):
    question = quit_question(1)
    qtbot.addWidget(question)

    assert question.text() == "1 render is running. Quit anyway?"
    assert question.informativeText() == (
        "It will be stopped and can be retried later."
    )
    assert {button.text() for button in question.buttons()} == {
        "Quit",
        "Keep rendering",
    }
    assert question.defaultButton().text() == "Keep rendering"
    assert question.escapeButton().text() == "Keep rendering"

    several = quit_question(3)
    qtbot.addWidget(several)
    assert several.text() == "3 renders are running. Quit anyway?"
    assert several.informativeText().startswith("They will be stopped")


@pytest.mark.parametrize(
    ("button", "quits"), [("Quit", True), ("Keep rendering", False)]
)
def test_confirm_quit_is_true_only_for_quit(make_window, monkeypatch, button, quits):
    window = make_window()

    def click(question: QMessageBox) -> int:
        [chosen] = [b for b in question.buttons() if b.text() == button]
        chosen.click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", click)

    assert ASK_BEFORE_QUITTING(window, 1) is quits


# 2. and 3. The settings dialog


def open_dialog(qtbot, output_dir: str) -> SettingsDialog:
    dialog = SettingsDialog(AppSettings(output_dir=output_dir))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_settings_refuse_a_file_as_the_output_folder(qtbot, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder", encoding="utf-8")
    dialog = open_dialog(qtbot, str(tmp_path))

    for chosen, cause in [
        (a_file, "it is a file, not a folder"),
        (a_file / "montages", f"{a_file} is a file, not a folder"),
    ]:
        dialog.output_dir_edit.setText(str(chosen))
        dialog.accept()

        assert dialog.isVisible()
        message = dialog.output_error_label.text()
        assert f"cannot save montages in {chosen}: {cause}." in message
        assert dialog.output_error_label.isVisible()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_settings_refuse_a_folder_the_system_does_not_allow(qtbot, tmp_path):
    dialog = open_dialog(qtbot, str(tmp_path))
    dialog.output_dir_edit.setText("/proc/x")

    dialog.accept()

    assert dialog.isVisible()
    assert "cannot save montages in /proc/x: " in dialog.output_error_label.text()
    assert not Path("/proc/x").exists()


def test_settings_create_a_missing_output_folder_and_close(qtbot, tmp_path):
    dialog = open_dialog(qtbot, str(tmp_path / "gone"))
    dialog.accept()
    assert dialog.isVisible() is False
    assert (tmp_path / "gone").is_dir()

    # The message of an earlier try goes once the folder is fine.
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"")
    dialog = open_dialog(qtbot, str(a_file))
    dialog.accept()
    assert dialog.output_error_label.isVisible()
    dialog.output_dir_edit.setText(str(tmp_path / "new" / "deeper"))
    dialog.accept()

    assert not dialog.isVisible()
    assert (tmp_path / "new" / "deeper").is_dir()
    assert dialog.settings().output_dir == str(tmp_path / "new" / "deeper")


def test_an_output_folder_without_permission_says_so(tmp_path, monkeypatch):
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)

    with pytest.raises(OutputDirError) as raised:
        prepare_output_dir(str(tmp_path / "montages"))

    assert str(raised.value).startswith(
        f"Montage AI cannot save montages in {tmp_path / 'montages'}: you have no "
        "permission to write there."
    )
    assert isinstance(raised.value.__cause__, PermissionError)


def test_the_settings_dialog_opens_with_nothing_cut(qtbot, tmp_path):
    dialog = open_dialog(qtbot, TYPICAL_OUTPUT_DIR)
    qtbot.waitExposed(dialog)
    metrics = dialog.fontMetrics()

    path_edit, url_edit = dialog.output_dir_edit, dialog.director_url_edit
    assert path_edit.width() > metrics.horizontalAdvance(TYPICAL_OUTPUT_DIR)
    assert url_edit.width() > metrics.horizontalAdvance(DIRECTOR_URL_HINT)
    note = dialog._director_note
    assert note.height() >= note.heightForWidth(note.width())
    assert dialog.height() >= dialog.minimumSizeHint().height()


def test_an_error_grows_the_dialog_so_nothing_is_cut(qtbot, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"")
    dialog = open_dialog(qtbot, str(a_file))
    qtbot.waitExposed(dialog)
    height_before = dialog.height()

    dialog.accept()
    qtbot.wait(10)

    label, note = dialog.output_error_label, dialog._director_note
    assert dialog.height() > height_before
    assert label.height() >= label.heightForWidth(label.width())
    assert note.height() >= note.heightForWidth(note.width())


# 4. The waveform


def test_short_sections_never_overlap_their_names(qtbot):
    view = WaveformView()
    qtbot.addWidget(view)
    metrics = QFontMetricsF(view.font())
    sections = [
        {"start_sec": 10.0, "end_sec": 11.0, "kind": "quiet"},
        {"start_sec": 11.0, "end_sec": 13.0, "kind": "build"},
        {"start_sec": 13.0, "end_sec": 13.5, "kind": "peak"},
        {"start_sec": 13.5, "end_sec": 30.0, "kind": "quiet"},
    ]

    for width_px in (120.0, 300.0, 900.0, 4000.0):
        area = QRectF(0, 0, width_px, 60)
        boxes = section_name_boxes(sections, area, 30.0, metrics)

        for (left, _), (right, _) in itertools.pairwise(boxes):
            assert left.right() <= right.left()
        for box, name in boxes:
            px_per_sec = width_px / 30.0
            [section] = [
                s
                for s in sections
                if s["start_sec"] * px_per_sec < box.left() < s["end_sec"] * px_per_sec
            ]
            assert box.right() <= section["end_sec"] * px_per_sec
            assert section["kind"].startswith(name.rstrip("…"))
            assert metrics.horizontalAdvance(name) <= box.width() + 0.01

    wide = section_name_boxes(sections, QRectF(0, 0, 4000, 60), 30.0, metrics)
    assert [name for _, name in wide] == ["quiet", "build", "peak", "quiet"]


def test_beat_lines_thin_out_when_they_would_crowd():
    song = song_at(bpm=150, duration_sec=180.0)
    beats_sec, downbeats_sec = song["beats_sec"], song["downbeats_sec"]

    narrow = beat_lines(beats_sec, downbeats_sec, 180.0, 600.0)
    assert narrow.beats_sec == []
    xs = [time_sec / 180.0 * 600.0 for time_sec in narrow.downbeats_sec]
    assert min(b - a for a, b in itertools.pairwise(xs)) >= MIN_DOWNBEAT_GAP_PX
    assert set(narrow.downbeats_sec) <= set(downbeats_sec)
    assert len(narrow.downbeats_sec) >= len(downbeats_sec) // 2

    # Wide enough: every downbeat, and the beats between, lighter while close.
    wide = beat_lines(beats_sec, downbeats_sec, 180.0, 1800.0)
    assert wide.downbeats_sec == downbeats_sec
    assert len(wide.beats_sec) == len(beats_sec) - len(downbeats_sec)
    # A beat every 4 px at 1800 px: drawn, lighter.
    assert MIN_BEAT_GAP_PX <= 60 / 150 * 1800 / 180
    assert 0 < wide.beat_opacity < 1
    roomy = beat_lines(beats_sec, downbeats_sec, 180.0, 6000.0)
    assert roomy.beat_opacity == 1.0


def test_a_fast_song_leaves_most_of_the_waveform_clear(qtbot):
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(400, 72)
    view.show_music(song_at(bpm=150, duration_sec=180.0))

    image = QImage(view.size(), QImage.Format.Format_ARGB32)
    image.fill(0)
    view.render(image)

    orange_columns = sum(
        1 for x in range(image.width()) if is_orange(image.pixelColor(x, 50))
    )
    # Every bar drawn would colour about 30% of the columns.
    assert orange_columns < image.width() * 0.22


def is_orange(colour: QColor) -> bool:
    return colour.red() > 170 and colour.red() - colour.blue() > 90


def test_a_relative_output_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputDirError) as raised:
        prepare_output_dir("relative/dir")
    assert "it is not a whole path" in str(raised.value)
    assert not (tmp_path / "relative").exists()
