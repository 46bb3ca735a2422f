"""The media bin: clips and the song described by the real `engine.inspect`."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage

from app.drop_widgets import (
    DETAIL_ROLE,
    STATE_ROLE,
    ClipState,
    format_duration,
    format_size,
)
from app.engine_process import EngineCommand
from app.job_form import JobFormWidget
from app.media_inspector import MediaInspector
from app.waveform_view import WaveformView
from tests.app.test_main_window import drop_on, file_mime
from tests.audio_media import write_click_track
from tests.input_media import write_empty, write_text_as_video
from tests.media import write_marker_clip

CLIPS_TIMEOUT_MS = 30_000
# A cold numba cache costs up to a minute on the first analysis.
MUSIC_TIMEOUT_MS = 180_000


@pytest.fixture
def form(qtbot, tmp_path: Path) -> Iterator[JobFormWidget]:
    widget = JobFormWidget(output_dir=tmp_path / "out")
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    yield widget
    # The window's closeEvent does this in the app.
    widget.shutdown()


@pytest.fixture
def inspector(qtbot):
    made: list[MediaInspector] = []

    def make(command: EngineCommand | None = None) -> MediaInspector:
        made.append(MediaInspector(command))
        return made[-1]

    yield make
    for each in made:
        each.shutdown()


def test_durations_and_sizes_read_as_people_write_them():
    assert format_duration(0.4) == "0.4 s"
    assert format_duration(0.96) == "0:01"
    assert format_duration(2.0) == "0:02"
    assert format_duration(754.4) == "12:34"
    assert format_duration(3725) == "1:02:05"
    assert format_size(512) == "512 bytes"
    assert format_size(22_859) == "22.9 kB"
    assert format_size(12_400_000) == "12.4 MB"


def test_dropped_clips_show_their_facts_and_the_unusable_why(qtbot, form, tmp_path):
    clip = write_marker_clip(tmp_path / "marker.mp4", frames=50, cuts=(25,)).path
    text = tmp_path / "notes.mp4"
    empty = tmp_path / "empty.mov"
    write_text_as_video(text)
    write_empty(empty)
    folder = tmp_path / "holiday"
    folder.mkdir()
    write_marker_clip(folder / "a.mp4", frames=25)
    write_marker_clip(folder / "b.mp4", frames=25)
    clip_list = form.clip_list

    entered, dropped = drop_on(
        clip_list.viewport(), file_mime(clip, text, empty, folder)
    )
    assert entered and dropped
    assert form.inspector.is_busy()  # the drop returned before any facts
    qtbot.waitUntil(
        lambda: all(
            clip_list.item(row).data(STATE_ROLE) != ClipState.PENDING
            for row in range(clip_list.count())
        ),
        timeout=CLIPS_TIMEOUT_MS,
    )

    rows = [clip_list.item(row) for row in range(clip_list.count())]
    assert [row.data(STATE_ROLE) for row in rows] == [
        ClipState.USABLE,
        ClipState.UNUSABLE,
        ClipState.UNUSABLE,
        ClipState.USABLE,
    ]
    usable = rows[0]
    assert usable.text() == "marker.mp4"
    assert usable.data(DETAIL_ROLE).startswith(
        "0:02 · 320\N{MULTIPLICATION SIGN}180 · "
    )
    assert usable.data(DETAIL_ROLE).endswith(" kB")
    thumbnail = usable.icon().pixmap(clip_list.iconSize())
    assert not thumbnail.isNull() and thumbnail.width() >= 64

    for row, reason in ((rows[1], "not a video"), (rows[2], "empty")):
        assert reason in row.data(DETAIL_ROLE).lower()
        assert reason in row.toolTip()
    assert clip_list.paths() == [str(clip), str(text), str(empty), str(folder)]
    assert rows[3].data(DETAIL_ROLE) == "Folder · 2 clips"
    assert form.clip_count_label.text() == "4 items, 3 usable clips"
    qtbot.waitUntil(lambda: not form.inspector.is_busy())


def test_a_folder_without_videos_is_shown_as_unusable(qtbot, form, tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "readme.txt").write_text("no videos here", encoding="utf-8")

    form.clip_list.add_paths([folder])
    item = form.clip_list.item(0)
    qtbot.waitUntil(
        lambda: item.data(STATE_ROLE) != ClipState.PENDING, timeout=CLIPS_TIMEOUT_MS
    )

    assert item.data(STATE_ROLE) == ClipState.UNUSABLE
    assert "No usable clips" in item.data(DETAIL_ROLE)


def test_a_still_picture_counts_as_a_usable_clip(qtbot, form, tmp_path):
    clip = write_marker_clip(tmp_path / "short.mp4", frames=10).path
    picture = tmp_path / "poster.png"
    image = QImage(64, 36, QImage.Format.Format_RGB32)
    image.fill(QColor(200, 120, 40))
    assert image.save(str(picture))

    form.clip_list.add_paths([clip, picture])
    clip_list = form.clip_list
    qtbot.waitUntil(lambda: clip_list.usable_count() == 2, timeout=CLIPS_TIMEOUT_MS)

    # 10 frames at 25 fps: too short to read as 0:00.
    assert clip_list.item(0).data(DETAIL_ROLE).startswith("0.4 s · ")
    assert clip_list.item(1).data(DETAIL_ROLE).startswith("still, shown 0:05 · 64")
    assert form.clip_count_label.text() == "2 items, 2 usable clips"
    qtbot.waitUntil(lambda: not form.inspector.is_busy())


def test_files_added_while_one_runs_go_together_in_the_next(qtbot, inspector, tmp_path):
    paths = [tmp_path / f"clip{number}.mp4" for number in range(4)]
    for path in paths:
        write_marker_clip(path, frames=10)
    media = inspector()
    described: list[str] = []
    batches: list[list[str]] = []
    media.clip_described.connect(lambda info: described.append(info["path"]))
    media.clips_inspected.connect(batches.append)

    for path in paths:
        media.describe_clips([path])
    qtbot.waitUntil(lambda: not media.is_busy(), timeout=CLIPS_TIMEOUT_MS)

    assert described == [str(path) for path in paths]
    assert batches == [[str(paths[0])], [str(path) for path in paths[1:]]]


def test_an_inspector_that_dies_reports_every_file_it_left(qtbot, inspector, tmp_path):
    dies = EngineCommand(
        sys.executable, ["-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
    )
    media = inspector(dies)
    failed: list[tuple[str, str]] = []
    media.inspection_failed.connect(lambda *args: failed.append(args))

    media.describe_clips([tmp_path / "a.mp4", tmp_path / "b.mp4"])
    qtbot.waitUntil(lambda: len(failed) == 2, timeout=CLIPS_TIMEOUT_MS)

    assert [path for path, _ in failed] == [
        str(tmp_path / "a.mp4"),
        str(tmp_path / "b.mp4"),
    ]
    assert "exit status 3" in failed[0][1] and '"boom"' in failed[0][1]


def test_a_chosen_song_shows_its_waveform_beats_and_tempo(qtbot, form, tmp_path):
    song = tmp_path / "clicks.wav"
    write_click_track(song, bpm=150, duration_sec=8.0, bed=True)
    view = form.waveform_view

    entered, dropped = drop_on(form.song_edit, file_mime(song))
    assert entered and dropped
    qtbot.waitUntil(lambda: view.message() == "Analysing…", timeout=5000)
    qtbot.waitUntil(lambda: view.message() == "", timeout=MUSIC_TIMEOUT_MS)

    assert len(view.beats_sec()) >= 16
    assert 4 <= len(view.downbeats_sec()) <= len(view.beats_sec())
    assert form.tempo_label.text() == "<b>150</b> BPM"
    assert painted_colours(view) > 3


def test_a_song_that_is_not_audio_shows_why(qtbot, form, tmp_path):
    song = tmp_path / "lyrics.mp3"
    write_text_as_video(song)

    form.song_edit.setText(str(song))
    form.analyse_song()
    view = form.waveform_view
    qtbot.waitUntil(
        lambda: view.message() not in ("", "Analysing…"), timeout=MUSIC_TIMEOUT_MS
    )

    assert "lyrics.mp3" in view.message()
    assert form.tempo_label.text() == ""
    assert painted_colours(view) > 1
    assert form.known_problem().startswith("The song cannot be used: lyrics.mp3")
    # Copied again, whole: looked at anew rather than refused from memory.
    write_click_track(song.with_suffix(".wav"), bpm=120, duration_sec=3.0)
    song.write_bytes(song.with_suffix(".wav").read_bytes())
    assert form.known_problem() == ""
    assert view.message() == "Analysing…"


def test_clips_that_are_all_unusable_are_a_known_problem(qtbot, form, tmp_path):
    """Create montage can say so at once instead of queueing a job that fails."""
    write_empty(tmp_path / "empty.mp4")
    write_text_as_video(tmp_path / "notes.mp4")

    form.clip_list.add_paths([tmp_path / "empty.mp4", tmp_path / "notes.mp4"])
    assert form.known_problem() == ""  # not yet checked: the engine decides
    qtbot.waitUntil(form.clip_list.all_checked, timeout=CLIPS_TIMEOUT_MS)

    assert form.known_problem().startswith("None of the clips can be used")
    assert form.clip_count_label.text() == "2 items, none usable"
    # A file that was still copying is whole now: the verdict no longer holds.
    write_marker_clip(tmp_path / "empty.mp4", frames=5, fps=5)
    assert form.known_problem() == ""


def test_the_waveform_view_paints_every_state(qtbot):
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(400, 80)
    empty = painted_colours(view)

    view.show_music(
        {
            "ok": True,
            "duration_sec": 4.0,
            "tempo_bpm": 120.0,
            "beats_sec": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
            "downbeats_sec": [0.0, 2.0],
            "sections": [
                {"start_sec": 0.0, "end_sec": 2.0, "kind": "quiet"},
                {"start_sec": 2.0, "end_sec": 4.0, "kind": "peak"},
            ],
            "waveform": [0.1, 0.5, 1.0, 0.3] * 50,
        }
    )

    assert view.downbeats_sec() == [0.0, 2.0]
    assert painted_colours(view) > empty
    view.show_music({"ok": False, "message": "song.mp3: no audio stream."})
    assert view.message() == "song.mp3: no audio stream."


def painted_colours(widget) -> int:
    """How many distinct colours a grab of the widget holds."""
    image = widget.grab().toImage()
    background = QColor(widget.palette().base().color()).rgb()
    colours = {
        image.pixel(x, y)
        for x in range(0, image.width(), 2)
        for y in range(0, image.height(), 2)
    }
    colours.discard(background)
    return len(colours)
