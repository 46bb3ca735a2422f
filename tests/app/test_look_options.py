"""The look rows of the form: LUT, transitions, flashes, slow motion and clean-up,
per job and per clip, become the job's fields, and the job file keeps them."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QTimer
from PySide6.QtWidgets import QFileDialog, QMenu

from app.look_options import load_look_choices, set_cleanup
from engine import protocol
from tests.app.test_main_window import fill_form


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    """Empty stand-ins: no engine opens them here."""
    clip, folder, song = (
        tmp_path / "beach.mp4",
        tmp_path / "holiday",
        tmp_path / "s.ogg",
    )
    folder.mkdir()
    clip.write_bytes(b"")
    song.write_bytes(b"")
    return {"clip": clip, "folder": folder, "song": song}


def choose(combo, value) -> None:
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


def test_as_the_style_leaves_every_look_to_the_style(make_window, media):
    window = make_window()
    fill_form(window, media)
    spec = window.form.build_job_spec()
    defaults = protocol.JobSpec(clips=["a"], music="m", output="o.mp4")
    for name in ("lut", "transition", "downbeat_flash", "slow_motion", "stabilize",
                 "denoise", "stabilize_clips", "denoise_clips"):  # fmt: skip
        assert getattr(spec, name) == getattr(defaults, name), name


def test_the_chosen_looks_become_the_job(make_window, media, tmp_path):
    window = make_window()
    fill_form(window, media)
    looks = window.form.looks
    titles = {choice.title for choice in load_look_choices()}
    assert {"Teal and orange", "Black and white", "Pastel", "Warm"} <= titles
    choose(looks.lut_combo, "teal_orange")
    choose(looks.transition_combo, "whip")
    choose(looks.flash_combo, False)
    choose(looks.slow_motion_combo, 0.5)
    choose(looks.denoise_combo, True)
    set_cleanup(window.form.clip_list.item(0), "stabilize", True)

    spec = window.form.build_job_spec()

    assert (spec.lut, spec.transition, spec.downbeat_flash) == (
        "teal_orange",
        "whip",
        False,
    )
    assert (spec.slow_motion, spec.denoise, spec.stabilize) == (0.5, True, None)
    assert spec.stabilize_clips == [str(media["clip"])]
    assert window.form.clip_list.item(0).text() == "beach.mp4  (stabilize)"
    again = protocol.JobSpec.from_json(spec.to_json())
    assert again == spec


def test_a_users_cube_is_loaded_into_the_look_menu(
    make_window,
    media,
    tmp_path,
    monkeypatch,
):
    cube = tmp_path / "my grade.cube"
    cube.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 8, encoding="utf-8")
    # The file dialog is the user's hand: it answers with the file they pick.
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(cube), "")
    )
    window = make_window()
    fill_form(window, media)
    window.form.looks.load_lut_button.click()
    assert window.form.looks.lut_combo.currentText() == "my grade.cube (your LUT)"
    assert window.form.build_job_spec().lut == str(cube)


def test_a_clips_context_menu_marks_it_for_clean_up(
    qtbot,
    make_window,
    media,
):
    window = make_window()
    fill_form(window, media)
    clip_list = window.form.clip_list
    window.show()
    qtbot.waitExposed(window)
    seen = []

    def pick_denoise() -> None:
        (menu,) = [m for m in clip_list.findChildren(QMenu) if m.isVisible()]
        seen.extend(action.text() for action in menu.actions())
        menu.actions()[1].trigger()
        menu.close()

    QTimer.singleShot(50, pick_denoise)
    position = clip_list.visualItemRect(clip_list.item(1)).center()
    assert clip_list.itemAt(position) is clip_list.item(1)
    clip_list.customContextMenuRequested.emit(QPoint(position))
    assert seen == ["Stabilize this clip", "Denoise this clip"]
    spec = window.form.build_job_spec()
    assert spec.denoise_clips == [str(media["folder"])] and not spec.stabilize_clips
    set_cleanup(clip_list.item(1), "denoise", False)
    assert window.form.build_job_spec().denoise_clips == []
    assert Path(clip_list.item(1).text()).name.startswith("holiday")
