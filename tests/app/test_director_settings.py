"""The AI director in the app: set in Settings, its URL and model in the job, its
key only in the engine's environment; the job says which interpreter was used.
And the clip sound choice of the form."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import json
import stat
import sys
from pathlib import Path

import pytest

from app.engine_process import EngineCommand
from app.job_text import describe_summary
from app.settings import AppSettings, load_settings, save_settings
from app.settings_dialog import SettingsDialog
from engine import protocol

SECRET = "sk-app-test-5b2e-never-in-a-file"
# Stands in for the engine: notes the key it was given, then finishes as if the
# AI director had read the prompt.
KEY_ENGINE = f"""
import json, os, sys, time
from pathlib import Path
job = Path(sys.argv[1])
(job.parent / "key seen").write_text(os.environ.get({protocol.DIRECTOR_KEY_ENV!r}, ""))
summary = {{"shots": 3, "prompt_interpreter": "ai",
           "prompt_note": "The AI director (llama3.2 at localhost:11434) read the prompt."}}
event = {{"event": "finished", "time": time.time(), "outputs": {{}}, "summary": summary}}
print(json.dumps(event), flush=True)
"""


def director_settings(window_settings: AppSettings) -> AppSettings:
    return dataclasses.replace(
        window_settings,
        director_url="http://localhost:11434/v1",
        director_model="llama3.2",
        director_key=SECRET,
    )


def test_the_key_reaches_the_engine_only_in_its_environment(
    make_window, tmp_path: Path, caplog: pytest.LogCaptureFixture, qtbot
) -> None:
    script = tmp_path / "key_engine.py"
    script.write_text(KEY_ENGINE, encoding="utf-8")
    window = make_window(EngineCommand(sys.executable, [str(script)]))
    window.apply_settings(director_settings(window.settings))
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "song.ogg").write_bytes(b"")
    window.form.clip_list.add_paths([tmp_path / "clip.mp4"])
    window.form.song_edit.setText(str(tmp_path / "song.ogg"))

    job_id = window.create_job()
    assert job_id is not None
    qtbot.waitUntil(lambda: window.queue.summary(job_id) != {}, timeout=10_000)

    (job_file,) = (tmp_path / "jobs").glob("job-*/job.json")
    assert (job_file.parent / "key seen").read_text() == SECRET
    job = json.loads(job_file.read_text(encoding="utf-8"))
    assert (job["director_url"], job["director_model"]) == (
        "http://localhost:11434/v1",
        "llama3.2",
    )
    for path in [job_file, *tmp_path.glob("data/**/*"), *tmp_path.glob("*.sqlite3*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text
    assert "prompt read by the AI director" in describe_summary(
        window.queue.summary(job_id)
    )


def test_the_settings_keep_the_key_private(tmp_path: Path) -> None:
    settings = director_settings(AppSettings(output_dir="/videos"))
    path = tmp_path / "settings.json"
    save_settings(settings, path)

    assert load_settings(path) == settings
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET not in repr(settings)


def test_the_settings_dialog_edits_the_director(qtbot) -> None:
    dialog = SettingsDialog(AppSettings(output_dir="/videos"))
    qtbot.addWidget(dialog)
    dialog.director_url_edit.setText(" http://localhost:1234/v1 ")
    dialog.director_model_edit.setText("qwen2.5")
    dialog.director_key_edit.setText(SECRET)

    settings = dialog.settings()

    assert (settings.director_url, settings.director_model) == (
        "http://localhost:1234/v1",
        "qwen2.5",
    )
    assert settings.director_key == SECRET
    assert (
        dialog.director_key_edit.echoMode()
        == dialog.director_key_edit.EchoMode.Password
    )


def test_the_settings_dialog_refuses_an_address_with_a_password(
    qtbot, tmp_path: Path
) -> None:
    # OK creates the output folder: one under tmp_path.
    dialog = SettingsDialog(AppSettings(output_dir=str(tmp_path / "videos")))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.director_url_edit.setText("http://me:secret@localhost:1234/v1")
    dialog.director_model_edit.setText("qwen2.5")

    dialog.accept()

    assert dialog.isVisible()
    assert "never in the URL" in dialog.director_error_label.text()
    dialog.director_url_edit.setText("http://localhost:1234/v1")
    dialog.accept()
    assert not dialog.isVisible()


def test_a_fallback_shows_on_the_finished_job() -> None:
    note = "The AI director at h did not answer within 20 s; the prompt was read..."
    summary = {"shots": 3, "prompt_interpreter": "offline", "prompt_note": note}
    assert "prompt read offline" in describe_summary(summary)
    assert "AI director" not in describe_summary({"shots": 3})


def test_the_form_sets_the_clip_sound(make_window, tmp_path: Path) -> None:
    window = make_window()
    window.form.clip_list.add_paths([tmp_path / "clip.mp4"])
    window.form.song_edit.setText(str(tmp_path / "song.ogg"))
    assert window.form.build_job_spec().clip_audio_db is None

    combo = window.form.clip_audio_combo
    combo.setCurrentIndex(combo.findData(-12.0))

    assert window.form.build_job_spec().clip_audio_db == -12.0
