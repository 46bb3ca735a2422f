"""Contract: the Export menu drives the real `python -m engine.export` on the
timeline of a real render of generated media."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint

from app.job_store import JobStore
from engine import protocol
from tests.app.export_helpers import choose, wait_for_dialog
from tests.audio_media import write_click_track
from tests.media import write_marker_clip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[protocol.JobSpec, dict]:
    """A 4 s preview render through `python -m engine`: its spec and outputs."""
    folder = tmp_path_factory.mktemp("real render")
    clip = write_marker_clip(folder / "clip.mp4", frames=75, cuts=(25, 50)).path
    song = folder / "clicks.wav"
    write_click_track(song, bpm=120, duration_sec=6.0)
    (folder / "out").mkdir()
    spec = protocol.JobSpec(
        clips=[str(clip)],
        music=str(song),
        output=str(folder / "out" / "montage.mp4"),
        quality="preview",
        duration_sec=4.0,
        size=(160, 90),
        seed=1,
    )
    job_path = folder / "job.json"
    job_path.write_text(spec.to_json(), encoding="utf-8")

    # A cold numba cache costs up to a minute on the first engine run.
    result = subprocess.run(
        [sys.executable, "-m", "engine", str(job_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["event"] == "finished", last
    return spec, last["outputs"]


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["fcp7", "fcpxml", "edl", "mlt", "csv"])
def test_the_real_exporter_writes_each_format_beside_the_timeline(
    qtbot, make_window, store: JobStore, rendered, export_format: str
):
    spec, outputs = rendered
    job_id = store.add(spec)
    store.mark_running(job_id, os.getpid())
    store.mark_finished(job_id, outputs)
    window = make_window()
    window.queue_panel.select_job(job_id)

    window.export_menu.popup(QPoint(20, 20))
    choose(qtbot, window.export_menu, export_format)
    dialog = wait_for_dialog(qtbot, window, "Timeline exported")

    otio_path = Path(outputs["otio"])
    suffix = protocol.EXPORT_SUFFIXES[export_format]
    written = otio_path.with_suffix(suffix)
    assert written.stat().st_size > 0
    assert store.get(job_id).outputs[export_format] == str(written)
    text = dialog.text()
    assert f"Saved {written.name} for {protocol.EXPORT_LABELS[export_format]}" in text
    assert f"In {written.parent}" in text
    for warning in dialog.outcome.warnings:
        assert warning in text
    if export_format == "edl":
        # A 25 fps clip in a 30 fps timeline: the EDL says what it cannot hold.
        assert dialog.outcome.warnings
        assert "Also written: montage.reels.csv" in text
