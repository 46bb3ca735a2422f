"""The window's layout at its default and smallest sizes: the clip list and its
buttons stay in view, only the options scroll, the rarely changed ones fold away,
and long paths keep their file names in sight."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QPoint, QSize, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget

from app.drop_widgets import wrapped_lines
from app.form_layout import ChoiceBox
from app.main_window import MainWindow
from app.path_edit import elide_path

DEFAULT_SIZE = QSize(1040, 780)
SMALLEST_SIZE = QSize(880, 640)
SONG = "/home/someone/Music/Albums/Sean Hawk/Sean Hawk - In Rome.ogg"


def fully_shown(widget: QWidget) -> bool:
    """Visible, and no part of it clipped by a scroll area or the window."""
    shown = widget.visibleRegion().boundingRect()
    return widget.isVisible() and shown == widget.rect()


def left_edges_and_widths(window: MainWindow, widgets: list[QWidget]) -> set:
    return {
        (widget.mapTo(window, QPoint(0, 0)).x(), widget.width()) for widget in widgets
    }


def settle(qtbot, window: MainWindow, size: QSize) -> None:
    window.resize(size)
    qtbot.waitUntil(lambda: window.size() == size)
    qtbot.wait(20)  # the layouts' posted requests


@pytest.mark.parametrize("size", [DEFAULT_SIZE, SMALLEST_SIZE])
def test_the_clip_list_and_its_buttons_stay_in_view(qtbot, make_window, size):
    window = make_window()
    settle(qtbot, window, size)
    form = window.form

    for widget in (
        form.clip_list,
        form.clip_count_label,
        form.add_clips_button,
        form.add_folder_button,
        form.remove_clips_button,
        form.clear_clips_button,
        window.create_button,
    ):
        assert fully_shown(widget), widget
    # Only the options scroll, and only up and down, folded or not.
    assert form.settings_area.isAncestorOf(form.output_edit)
    parent = form.parentWidget()
    while parent is not None:
        assert not isinstance(parent, QScrollArea)
        parent = parent.parentWidget()
    for expanded in (False, True):
        form.more_options.set_expanded(expanded)
        qtbot.wait(20)
        page = form.settings_area.widget()
        assert page.width() <= form.settings_area.viewport().width()


def test_at_the_default_size_the_options_need_no_scrolling(qtbot, make_window):
    window = make_window()
    settle(qtbot, window, DEFAULT_SIZE)
    form = window.form

    assert not form.more_options.is_expanded()
    assert form.settings_area.verticalScrollBar().maximum() == 0
    for widget in (form.song_edit, form.output_edit, form.more_options.toggle_button):
        assert fully_shown(widget), widget
    # The queue keeps room for a few jobs.
    assert window.queue_panel.height() > 180


def test_more_options_unfold_into_view_and_name_changes_when_folded(qtbot, make_window):
    window = make_window()
    settle(qtbot, window, SMALLEST_SIZE)
    form = window.form
    section = form.more_options
    looks = form.looks
    folded = [
        looks.slow_motion_combo,
        looks.flash_combo,
        looks.stabilize_combo,
        looks.denoise_combo,
        form.reframe_combo,
        form.upscale_combo,
        form.seed_spin,
    ]
    assert not any(widget.isVisible() for widget in folded)
    assert section.summary_label.isHidden()

    form.reframe_combo.setCurrentIndex(form.reframe_combo.findData("calm"))
    assert section.summary_label.text() == "Reframe: Follow the subject, calm"
    assert not section.summary_label.isHidden()

    qtbot.mouseClick(section.toggle_button, Qt.MouseButton.LeftButton)
    assert all(widget.isVisible() for widget in folded)
    assert section.summary_label.isHidden()
    qtbot.waitUntil(lambda: fully_shown(form.seed_spin))


def test_the_option_columns_line_up(qtbot, make_window):
    window = make_window()
    settle(qtbot, window, DEFAULT_SIZE)
    form = window.form
    looks = form.looks
    form.more_options.set_expanded(True)
    qtbot.wait(20)

    left = [form.duration_spin, form.fps_combo, looks.transition_combo]
    left += [looks.slow_motion_combo, looks.stabilize_combo, form.reframe_combo]
    right = [form.aspect_combo, form.quality_combo, form.clip_audio_combo]
    right += [looks.flash_combo, looks.denoise_combo, form.upscale_combo]
    assert len(left_edges_and_widths(window, left)) == 1
    assert len(left_edges_and_widths(window, right)) == 1


def test_the_upscaling_estimate_takes_no_room_while_empty(qtbot, make_window):
    window = make_window()
    form = window.form
    form.more_options.set_expanded(True)
    assert form.upscale_estimate.isHidden()

    form.upscale_combo.setCurrentIndex(form.upscale_combo.findData("auto"))
    assert form.upscale_estimate.text() == "Add clips for an estimate."
    assert not form.upscale_estimate.isHidden()
    form.upscale_combo.setCurrentIndex(form.upscale_combo.findData("off"))
    assert form.upscale_estimate.isHidden()


def test_a_long_path_keeps_its_file_name_in_sight(qtbot):
    metrics = QFontMetrics(QApplication.font())
    width = metrics.horizontalAdvance("/home/some…/Sean Hawk - In Rome.ogg")

    shown = elide_path(SONG, metrics, width)

    assert shown.startswith("/h") and "…" in shown
    assert shown.endswith("/Sean Hawk - In Rome.ogg")
    assert metrics.horizontalAdvance(shown) <= width
    assert elide_path(SONG, metrics, 10_000) == SONG
    name_only = elide_path(SONG, metrics, metrics.horizontalAdvance("Sean H…e.ogg"))
    assert "/" not in name_only and name_only.endswith(".ogg")


def test_the_path_fields_show_the_whole_path_in_their_tooltip(make_window):
    window = make_window()
    form = window.form

    form.song_edit.setText(SONG)

    assert form.song_edit.toolTip() == SONG
    assert form.output_edit.toolTip() == form.output_edit.text()


def test_a_narrow_choice_shows_its_name_without_the_brackets(qtbot):
    box = ChoiceBox()
    qtbot.addWidget(box)
    metrics = box.fontMetrics()
    label = "Final (full quality)"
    # A pixel or two of room: elidedText counts fractional widths.
    wide = metrics.horizontalAdvance(label) + 2
    narrow = metrics.horizontalAdvance("Final") + 2
    assert box.shown_text(label, wide) == label
    assert box.shown_text(label, narrow) == "Final"
    assert box.shown_text("Follow the subject", narrow).endswith("…")


def test_a_reason_wraps_onto_two_lines_and_ends_elided(qtbot):
    metrics = QFontMetrics(QApplication.font())
    reason = (
        "The file is empty (0 bytes); it may not have finished copying. Copy it "
        "again from the camera."
    )
    width = metrics.horizontalAdvance("The file is empty (0 bytes); it may")
    lines = wrapped_lines(reason, metrics, width, 2)
    assert len(lines) == 2
    assert lines[0].startswith("The file is empty") and lines[1].endswith("…")
    assert all(metrics.horizontalAdvance(line) <= width for line in lines)
    assert wrapped_lines("Reading…", metrics, width, 2) == ["Reading…"]


def test_unfolded_details_take_room_from_the_form_not_the_queue(qtbot, make_window):
    window = make_window()
    settle(qtbot, window, DEFAULT_SIZE)
    before = window.splitter.sizes()

    window.queue_panel.details_button.setChecked(True)
    unfolded = window.splitter.sizes()
    window.queue_panel.details_button.setChecked(False)

    assert unfolded[1] > before[1] and unfolded[0] < before[0]
    assert window.splitter.sizes() == before
