"""Job files (.montage): saved from the form, opened into it, refused when broken."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import json
from pathlib import Path

import pytest

from app.job_file import read_job_file
from engine import protocol


@pytest.fixture
def job(tmp_path: Path) -> protocol.JobSpec:
    """A job naming empty stand-ins: nothing here decodes them."""
    clips = [tmp_path / "beach.mp4", tmp_path / "hike.mov"]
    song = tmp_path / "song.ogg"
    for path in (*clips, song):
        path.write_bytes(b"")
    return protocol.JobSpec(
        clips=[str(clip) for clip in clips],
        music=str(song),
        output=str(tmp_path / "out" / "trip.mp4"),
        style="mtv",
        prompt="warm, in order",
        duration_sec=20.0,
        aspect="9:16",
        fps=29.97,
        quality="preview",
        seed=42,
        lut="cool",
        transition="whip",
        downbeat_flash=True,
        slow_motion=0.5,
        stabilize=False,
        denoise=True,
        stabilize_clips=[str(clips[1])],
        clip_audio_db=-6.0,
        reframe="calm",
        upscale="auto",
    )


def test_a_job_file_fills_the_form_as_saved(make_window, job, tmp_path):
    path = tmp_path / "trip.montage"
    path.write_text(job.to_json(), encoding="utf-8")
    window = make_window()

    assert window.job_files.open(path)

    spec = window.form.build_job_spec()
    assert spec == job
    message = window.statusBar().currentMessage()
    assert "trip.montage" in message and "not kept" not in message
    assert window.form.clip_list.count() == 2


def test_what_the_form_cannot_show_is_named_not_dropped_silently(
    make_window, job, tmp_path
):
    odd = dataclasses.replace(job, slow_motion=0.75, lut="", fps=48, seed=2**40,
                              denoise_clips=[str(tmp_path / "elsewhere.mp4")])  # fmt: skip
    window = make_window()

    assert window.job_files.open(_written(odd, tmp_path / "odd.montage"))

    message = window.statusBar().currentMessage()
    assert "slow_motion=0.75" in message and "fps=48" in message
    assert f"seed={2**40}" in message
    assert f"denoise_clips={tmp_path / 'elsewhere.mp4'}" in message
    # The rest came in whole: the look after the seed and rate it could not show.
    assert window.form.build_job_spec().transition == "whip"


def test_the_form_saves_a_job_file_that_reads_back(make_window, job, tmp_path):
    window = make_window()
    window.job_files.open(_written(job, tmp_path / "first.montage"))

    written = window.job_files.save(tmp_path / "again")

    assert written == tmp_path / "again.montage"
    assert read_job_file(written) == job


def test_options_the_form_cannot_show_are_named(make_window, job, tmp_path):
    job.fit = "fit"
    job.reframe = "off"  # a window that follows the subject needs a crop
    job.export = ["otio", "edl"]
    window = make_window()

    window.job_files.open(_written(job, tmp_path / "fit.montage"))

    message = window.statusBar().currentMessage()
    assert "fit=fit" in message
    assert "export=['otio', 'edl']" in message
    assert window.form.build_job_spec().fit == "crop"


@pytest.mark.parametrize(
    "content, cause",
    [
        ("not json", "it is not a job file (damaged, or another kind of file)."),
        ("{'clips': 1}", "it is not a job file"),
        (json.dumps({"clips": ["a.mp4"], "music": "s.ogg"}), "incomplete"),
        (json.dumps({"clips": [], "music": "s.ogg", "output": "o.mp4"}), "no clips"),
    ],
)
def test_a_broken_job_file_is_explained_in_the_window(
    make_window, tmp_path, content, cause
):
    path = tmp_path / "broken.montage"
    path.write_text(content, encoding="utf-8")
    window = make_window()

    assert not window.job_files.open(path)

    assert window.error_label.isVisible()
    assert str(path) in window.error_label.text()
    assert cause in window.error_label.text()
    assert "Expecting" not in window.error_label.text()
    assert window.form.clip_list.count() == 0


def test_a_failed_open_clears_the_note_of_the_last_one(make_window, tmp_path):
    window = make_window()
    window.show_status("Opened myjob.montage: press Create montage to render it.")
    (tmp_path / "bad.montage").write_text("{", encoding="utf-8")

    assert not window.job_files.open(tmp_path / "bad.montage")

    assert window.statusBar().currentMessage() == ""


def test_a_missing_job_file_is_explained(make_window, tmp_path):
    window = make_window()
    assert not window.job_files.open(tmp_path / "gone.montage")
    assert "gone.montage" in window.error_label.text()


def _written(job: protocol.JobSpec, path: Path) -> Path:
    path.write_text(job.to_json(), encoding="utf-8")
    return path
