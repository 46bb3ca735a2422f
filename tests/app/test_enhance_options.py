"""The form's reframe and upscale choices reach the job, and the upscaling time
estimated by the real `engine.inspect` shows before the job starts."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.job_form import JobFormWidget
from tests.subject_media import write_detail_clip

ESTIMATE_TIMEOUT_MS = 60_000


@pytest.fixture
def form(qtbot, tmp_path: Path) -> Iterator[JobFormWidget]:
    widget = JobFormWidget(output_dir=tmp_path / "out")
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


def choose(combo, value: str) -> None:
    combo.setCurrentIndex(combo.findData(value))


def test_the_choices_reach_the_job(form: JobFormWidget, tmp_path: Path) -> None:
    clip = write_detail_clip(tmp_path / "small.mp4", seconds=1.0).path
    form.clip_list.add_paths([clip])
    form.song_edit.setText(str(tmp_path / "song.wav"))
    choose(form.reframe_combo, "calm")
    choose(form.upscale_combo, "auto")
    spec = form.build_job_spec()
    assert (spec.reframe, spec.upscale) == ("calm", "auto")


def test_the_upscaling_estimate_shows_before_the_job(
    qtbot, form: JobFormWidget, tmp_path: Path
) -> None:
    clip = write_detail_clip(tmp_path / "small.mp4", seconds=1.0).path
    form.clip_list.add_paths([clip])
    assert form.upscale_estimate.text() == ""
    choose(form.quality_combo, "preview")
    form.duration_spin.setValue(20)
    choose(form.upscale_combo, "auto")

    # 20 s at 30 fps from one 25 fps clip smaller than the output: 500 frames.
    qtbot.waitUntil(
        lambda: "500 frames" in form.upscale_estimate.text(),
        timeout=ESTIMATE_TIMEOUT_MS,
    )
    assert "Real-ESRGAN" in form.upscale_estimate.text()
    choose(form.upscale_combo, "off")
    assert form.upscale_estimate.text() == ""
