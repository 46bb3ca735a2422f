"""The job form: clips, song, style, prompt and options, read back as a JobSpec.

It knows the engine only through protocol.JobSpec, so a render queue can take its
jobs from here later. Clips and the song are described as they are added, by the
media inspector's subprocess.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

import platformdirs
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.drop_widgets import ClipListWidget, SongLineEdit, file_state
from app.engine_process import EngineCommand
from app.form_layout import (
    ChoiceBox,
    OptionGrid,
    OptionSection,
    align_label_columns,
    side_by_side,
)
from app.look_options import LookOptions
from app.media_inspector import MediaInspector
from app.path_edit import PathLineEdit
from app.style_catalog import DEFAULT_STYLE, load_style_choices
from app.upscale_estimate import (
    DEFAULT_DURATION_SEC,
    EstimateRequest,
    UpscaleEstimateLabel,
)
from app.waveform_view import WaveformView
from engine import protocol

log = logging.getLogger(__name__)

# A combo box too narrow for a label shows it without its brackets (ChoiceBox).
ASPECT_LABELS = {
    "16:9": "16:9 (landscape)",
    "9:16": "9:16 (vertical)",
    "1:1": "1:1 (square)",
}
# Frame rates offered, by what they are for; NTSC rates make drop-frame timelines.
FRAME_RATE_LABELS: dict[int | float, str] = {
    30: "30 fps",
    25: "25 fps (PAL, Europe)",
    24: "24 fps (film)",
    29.97: "29.97 fps (NTSC, phones and US cameras)",
    23.976: "23.976 fps (NTSC film)",
    60: "60 fps",
    50: "50 fps",
    59.94: "59.94 fps (NTSC)",
}
QUALITY_LABELS = {"preview": "Preview (fast, smaller)", "final": "Final (full quality)"}
# The clips' own sound under the music, in dB below as recorded (None: off).
CLIP_AUDIO_LABELS: dict[float | None, str] = {
    None: "Off (music only)",
    -18.0: "Quiet (-18 dB, far under the music)",
    -12.0: "Under the music (-12 dB)",
    -6.0: "Loud (-6 dB, close to the music)",
}
REFRAME_LABELS = {
    "off": "Off (crop in the centre)",
    "calm": "Follow the subject, calm",
    "normal": "Follow the subject",
    "fast": "Follow the subject, fast",
}
UPSCALE_LABELS = {
    "off": "Off",
    "auto": "Clips smaller than the output (Real-ESRGAN)",
    "on": "Every clip (Real-ESRGAN)",
}
VIDEO_FILTER = "Videos (*.mp4 *.mov *.m4v *.mkv *.webm *.avi *.mts *.m2ts *.mpg *.ogv)"
AUDIO_FILTER = "Audio (*.mp3 *.m4a *.aac *.wav *.flac *.ogg *.opus)"
MAX_SEED = 2**31 - 1
_TOOLTIP_ROLE = Qt.ItemDataRole.ToolTipRole
# Typing a path analyses it once the typing has paused this long.
SONG_SETTLE_MS = 400


def default_output_dir() -> Path:
    return Path(platformdirs.user_videos_dir()) / "Montage AI"


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


class JobFormWidget(QWidget):
    """Clips on the left; song, style, prompt and options on the right."""

    def __init__(
        self,
        output_dir: Path | None = None,
        parent: QWidget | None = None,
        inspect_command: EngineCommand | None = None,
    ) -> None:
        super().__init__(parent)
        self._output_dir = output_dir or default_output_dir()
        self._default_output = ""
        self._analysed_song = ""
        # Why the chosen song cannot be used, once the inspector has said so, and
        # the file's state then (drop_widgets.file_state).
        self._song_problem = ""
        self._song_judged: list[int] | None = None
        self._song_duration_sec = 0.0
        self._inspect_command = inspect_command
        self.inspector = MediaInspector(inspect_command, self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        # The options need the wider side for their two columns.
        layout.addWidget(self._build_clips_box(), 2)
        layout.addWidget(self._build_settings_box(), 3)
        self._connect_inspector()
        self.refresh_default_output()

    def _connect_inspector(self) -> None:
        self.clip_list.paths_added.connect(self.inspector.describe_clips)
        self.inspector.clip_described.connect(self.clip_list.show_clip_info)
        self.inspector.clip_described.connect(self._update_clip_count)
        self.inspector.clips_inspected.connect(self.clip_list.finish_folders)
        self.inspector.clips_inspected.connect(self._update_clip_count)
        self.inspector.inspection_failed.connect(self._on_inspection_failed)
        self.inspector.music_described.connect(self._on_music_described)

        self._song_timer = QTimer(self)
        self._song_timer.setSingleShot(True)
        self._song_timer.setInterval(SONG_SETTLE_MS)
        self._song_timer.timeout.connect(self.analyse_song)
        self.song_edit.textChanged.connect(self._song_timer.start)

    def _build_clips_box(self) -> QGroupBox:
        box = QGroupBox("Clips")
        self.clip_list = ClipListWidget(box)
        self.clip_list.clips_changed.connect(self._update_clip_count)
        self.add_clips_button = QPushButton("Add clips…")
        self.add_clips_button.clicked.connect(self._choose_clips)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.remove_clips_button = QPushButton("Remove")
        self.remove_clips_button.clicked.connect(self.clip_list.remove_selected)
        self.clear_clips_button = QPushButton("Clear")
        self.clear_clips_button.clicked.connect(self.clip_list.clear_clips)
        self.clip_count_label = QLabel()

        buttons = QHBoxLayout()
        for button in (self.add_clips_button, self.add_folder_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_clips_button)
        buttons.addWidget(self.clear_clips_button)

        layout = QVBoxLayout(box)
        layout.addWidget(self.clip_list, 1)
        layout.addWidget(self.clip_count_label)
        layout.addLayout(buttons)
        self._update_clip_count()
        return box

    def _build_settings_box(self) -> QGroupBox:
        """The song and the essential choices; the rest folded under More
        options. Only this side scrolls, when the window is too short for it."""
        box = QGroupBox("Song and style")
        grid = OptionGrid()
        self._add_song_rows(grid)
        self._add_style_rows(grid)
        self._add_output_rows(grid)
        self.more_options = OptionSection("More options")
        self._add_more_option_rows(self.more_options.grid)
        self.more_options.watch_choices()
        self.more_options.expanded_changed.connect(self._show_more_options)
        grid.add_span(self.more_options)
        align_label_columns(grid, self.more_options.grid)
        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addLayout(grid)
        page_layout.addStretch(1)

        self.settings_area = QScrollArea()
        self.settings_area.setWidget(page)
        self.settings_area.setWidgetResizable(True)
        self.settings_area.setFrameShape(QFrame.Shape.NoFrame)
        self.settings_area.setHorizontalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
        # As wide as the options need, folded or not: the clip list gives way
        # rather than a column being cut off.
        needed = max(
            page.minimumSizeHint().width(),
            self.more_options.body.minimumSizeHint().width(),
        )
        scroll_bar = self.settings_area.verticalScrollBar().sizeHint().width()
        self.settings_area.setMinimumWidth(needed + scroll_bar)
        layout = QVBoxLayout(box)
        layout.addWidget(self.settings_area)
        return box

    def _add_song_rows(self, grid: OptionGrid) -> None:
        self.song_edit = SongLineEdit()
        self.choose_song_button = QPushButton("Choose song…")
        self.choose_song_button.clicked.connect(self._choose_song)
        grid.add_row("Music", side_by_side(self.song_edit, self.choose_song_button))
        self.waveform_view = WaveformView()
        self.tempo_label = QLabel()
        self.tempo_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tempo_label.setMinimumWidth(64)
        song_view = QWidget()
        song_layout = QHBoxLayout(song_view)
        song_layout.setContentsMargins(0, 0, 0, 0)
        song_layout.addWidget(self.waveform_view, 1)
        song_layout.addWidget(self.tempo_label)
        grid.add_note(song_view)

    def _add_style_rows(self, grid: OptionGrid) -> None:
        self.style_combo = ChoiceBox()
        for choice in load_style_choices():
            self.style_combo.addItem(choice.label, choice.name)
            index = self.style_combo.count() - 1
            self.style_combo.setItemData(index, choice.description, _TOOLTIP_ROLE)
        self.style_description = QLabel()
        self.style_description.setWordWrap(True)
        self.style_description.setSizePolicy(
            QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred
        )
        self.style_description.setEnabled(False)
        self.style_combo.currentIndexChanged.connect(self._update_style_description)
        self.style_combo.setCurrentIndex(
            max(0, self.style_combo.findData(DEFAULT_STYLE))
        )
        self._update_style_description()
        grid.add_row("Style", self.style_combo)
        grid.add_note(self.style_description)

        self.prompt_edit = QLineEdit()
        self.prompt_edit.setPlaceholderText(
            "Optional, e.g. slow and dreamy, black and white"
        )
        grid.add_row("Prompt", self.prompt_edit)
        self.looks = LookOptions(self, self.clip_list)
        looks = self.looks
        grid.add_row("Look", side_by_side(looks.lut_combo, looks.load_lut_button))

    def _add_output_rows(self, grid: OptionGrid) -> None:
        self.duration_spin = QSpinBox()
        self.duration_spin.setRange(0, 7200)
        self.duration_spin.setSuffix(" s")
        self.duration_spin.setSpecialValueText("Whole song")
        self.aspect_combo = _choice_combo(ASPECT_LABELS)
        grid.add_pair(("Duration", self.duration_spin), ("Aspect", self.aspect_combo))

        self.fps_combo = ChoiceBox()
        for rate, label in FRAME_RATE_LABELS.items():
            self.fps_combo.addItem(label, rate)
        self.fps_combo.setToolTip(
            "Frames per second of the montage and of its timeline for your editor."
        )
        self.quality_combo = _choice_combo(QUALITY_LABELS)
        self.quality_combo.setCurrentIndex(self.quality_combo.findData("final"))
        grid.add_pair(("Frame rate", self.fps_combo), ("Quality", self.quality_combo))

        self.clip_audio_combo = ChoiceBox()
        for level_db, label in CLIP_AUDIO_LABELS.items():
            self.clip_audio_combo.addItem(label, level_db)
        self.clip_audio_combo.setToolTip(
            "Keep each shot's own sound under the song, faded at every cut."
        )
        grid.add_pair(
            ("Transitions", self.looks.transition_combo),
            ("Clip sound", self.clip_audio_combo),
        )

        self.output_edit = PathLineEdit()
        self.output_edit.textEdited.connect(self._forget_default_output)
        self.choose_output_button = QPushButton("Change…")
        self.choose_output_button.clicked.connect(self._choose_output)
        grid.add_row(
            "Save as", side_by_side(self.output_edit, self.choose_output_button)
        )

    def _add_more_option_rows(self, grid: OptionGrid) -> None:
        """Slow motion, clean-up, reframing and upscaling (with the upscaling time
        the engine estimates), and the seed."""
        looks = self.looks
        grid.add_pair(
            ("Slow motion", looks.slow_motion_combo),
            ("Flash on downbeats", looks.flash_combo),
        )
        grid.add_pair(
            ("Stabilize", looks.stabilize_combo), ("Denoise", looks.denoise_combo)
        )
        self.reframe_combo = _choice_combo(REFRAME_LABELS)
        self.reframe_combo.setToolTip(
            "For vertical and square montages: the crop follows faces, or else "
            "what moves, instead of staying in the centre."
        )
        self.upscale_combo = _choice_combo(UPSCALE_LABELS)
        self.upscale_combo.setToolTip(
            "Real-ESRGAN sharpens small clips as they are enlarged; on a CPU it "
            "takes seconds a frame."
        )
        grid.add_pair(("Reframe", self.reframe_combo), ("Upscale", self.upscale_combo))
        self.upscale_estimate = UpscaleEstimateLabel(self._inspect_command, self)
        grid.add_note(self.upscale_estimate)
        for combo in (self.upscale_combo, self.aspect_combo, self.quality_combo,
                      self.fps_combo):  # fmt: skip
            combo.currentIndexChanged.connect(self._refresh_upscale_estimate)
        self.duration_spin.valueChanged.connect(self._refresh_upscale_estimate)
        self.clip_list.clips_changed.connect(self._refresh_upscale_estimate)

        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, MAX_SEED)
        self.seed_spin.setToolTip(
            "The same seed with the same inputs gives the same edit."
        )
        self.shuffle_button = QPushButton("Shuffle")
        self.shuffle_button.clicked.connect(self.shuffle_seed)
        self.shuffle_seed()
        grid.add_row("Seed", side_by_side(self.seed_spin, self.shuffle_button))

    def _show_more_options(self, expanded: bool) -> None:
        if expanded:
            # Once the section has its height: scroll it into view.
            QTimer.singleShot(0, self._scroll_to_more_options)

    def _scroll_to_more_options(self) -> None:
        self.settings_area.ensureWidgetVisible(self.more_options, 0, 0)

    def _refresh_upscale_estimate(self) -> None:
        duration_sec = self.duration_spin.value() or self._song_duration_sec
        self.upscale_estimate.request(
            EstimateRequest(
                mode=self.upscale_combo.currentData(),
                aspect=self.aspect_combo.currentData(),
                quality=self.quality_combo.currentData(),
                duration_sec=float(duration_sec or DEFAULT_DURATION_SEC),
                fps=float(self.fps_combo.currentData()),
                clips=tuple(self.clip_list.paths()),
            )
        )

    # Reading the form

    def shuffle_seed(self) -> None:
        self.seed_spin.setValue(secrets.randbelow(MAX_SEED + 1))

    def build_job_spec(self) -> protocol.JobSpec:
        """The form as a job; raises protocol.JobSpecError naming what is missing."""
        duration_sec = self.duration_spin.value()
        return protocol.JobSpec(
            clips=self.clip_list.paths(),
            music=self.song_edit.text().strip(),
            output=self.output_edit.text().strip(),
            style=self.style_combo.currentData() or DEFAULT_STYLE,
            prompt=self.prompt_edit.text().strip(),
            duration_sec=float(duration_sec) if duration_sec else None,
            aspect=self.aspect_combo.currentData(),
            fps=self.fps_combo.currentData(),
            quality=self.quality_combo.currentData(),
            seed=self.seed_spin.value(),
            clip_audio_db=self.clip_audio_combo.currentData(),
            reframe=self.reframe_combo.currentData(),
            upscale=self.upscale_combo.currentData(),
            **self.looks.job_fields(),
        )

    def known_problem(self) -> str:
        """Why the job would fail at once, as far as the inspector has told: no
        usable clip among those all checked, or a song it could not read; "" when
        none is known (the engine checks again). Only a verdict on a file that has
        not changed since counts; a song that has changed is looked at again."""
        clips = self.clip_list
        if (
            clips.count()
            and clips.all_checked()
            and not clips.usable_count()
            and clips.verdicts_hold()
        ):
            return (
                "None of the clips can be used (the list says why for each). "
                "Add video files or pictures that open in a player."
            )
        song = self.song_edit.text().strip()
        if self._song_problem and song and os.path.abspath(song) == self._analysed_song:
            if self._song_judged == file_state(self._analysed_song):
                return f"The song cannot be used: {self._song_problem}"
            self._analysed_song = ""  # changed since: look at it again
            self.analyse_song()
        return ""

    def analyse_song(self) -> None:
        """Describe the song in the music field, unless it already is."""
        self._song_timer.stop()
        song = self.song_edit.text().strip()
        song_path = os.path.abspath(song) if song else ""
        if song_path == self._analysed_song:
            return
        self._analysed_song = ""
        self._song_problem = ""
        self.tempo_label.clear()
        if not song or not os.path.isfile(song_path):
            self.waveform_view.clear()
            return
        self._analysed_song = song_path
        self.waveform_view.show_analysing()
        self.inspector.describe_music(song_path)

    def shutdown(self) -> None:
        """Stop describing media: for closing the window."""
        self._song_timer.stop()
        self.inspector.shutdown()
        self.upscale_estimate.shutdown()

    def output_is_default(self) -> bool:
        """True while the output is the generated name, untouched by the user."""
        return self.output_edit.text() == self._default_output

    def set_output_dir(self, folder: Path) -> None:
        """Save into folder from now on; a name the user chose is kept."""
        keep = not self.output_is_default()
        self._output_dir = folder
        if not keep:
            self.refresh_default_output()

    def refresh_default_output(self) -> None:
        """A new timestamped name, so the next render keeps the last one."""
        self._default_output = str(self._output_dir / f"montage-{timestamp()}.mp4")
        self.output_edit.setText(self._default_output)

    # Media facts

    def _on_music_described(self, info: dict) -> None:
        if info["path"] != self._analysed_song:
            return  # a song the user has since replaced
        self.waveform_view.show_music(info)
        if not info.get("ok"):
            self._song_problem = str(info.get("message") or "it holds no music")
            self._song_judged = file_state(self._analysed_song)
        if isinstance(info.get("duration_sec"), (int, float)):
            self._song_duration_sec = float(info["duration_sec"])
            self._refresh_upscale_estimate()
        tempo_bpm = info.get("tempo_bpm")
        if info.get("ok") and isinstance(tempo_bpm, (int, float)):
            self.tempo_label.setText(f"<b>{tempo_bpm:.0f}</b> BPM")
            self.tempo_label.setToolTip(
                f"{len(info.get('beats_sec') or [])} beats, "
                f"{len(info.get('downbeats_sec') or [])} bars"
            )

    def _on_inspection_failed(self, path: str, message: str) -> None:
        if path == self._analysed_song:
            # The inspector failed, not the file: shown, but the engine decides.
            self.waveform_view.show_error(message)
        self.clip_list.show_inspection_failed(path, message)
        self._update_clip_count()

    # Helpers

    def _update_clip_count(self) -> None:
        count = self.clip_list.count()
        text = (
            "No clips yet" if not count else f"{count} item{'s' if count != 1 else ''}"
        )
        usable = self.clip_list.usable_count()
        if usable:
            text += f", {usable} usable clip{'s' if usable != 1 else ''}"
        elif count and self.clip_list.all_checked():
            text += ", none usable"
        self.clip_count_label.setText(text)

    def _update_style_description(self) -> None:
        self.style_description.setText(
            self.style_combo.currentData(_TOOLTIP_ROLE) or ""
        )

    def _forget_default_output(self) -> None:
        self._default_output = ""

    def _choose_clips(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Add clips", "", f"{VIDEO_FILTER};;All files (*)"
        )
        self.clip_list.add_paths(Path(name) for name in names)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of clips")
        if folder:
            self.clip_list.add_paths([Path(folder)])

    def _choose_song(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Choose a song", "", f"{AUDIO_FILTER};;All files (*)"
        )
        if name:
            self.song_edit.setText(name)

    def _choose_output(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Save the montage as", self.output_edit.text(), "MP4 video (*.mp4)"
        )
        if name:
            self.output_edit.setText(name)
            self._forget_default_output()


def _choice_combo(labels: dict[str, str]) -> ChoiceBox:
    combo = ChoiceBox()
    for value, label in labels.items():
        combo.addItem(label, value)
    return combo
