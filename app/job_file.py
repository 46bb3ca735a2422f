"""Job files (.montage): a job's clips, song and options, as the engine's JobSpec JSON.

File > Save job as… writes the form to one; File > Open job…, a double-click on
one (the desktop entry) or `montage-ai-gui FILE.montage` fills the form from it,
ready to check and queue with Create montage.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from app.job_form import JobFormWidget
from app.look_options import select_data
from engine import protocol

log = logging.getLogger(__name__)

JOB_FILE_SUFFIX = ".montage"
JOB_FILE_FILTER = f"Montage AI job (*{JOB_FILE_SUFFIX})"
# Job fields the form has no control for: kept out of it, and named when set.
FIELDS_NOT_IN_FORM = ("fit", "size", "chronological", "export")
# The form's combo box for each of these job fields.
COMBO_OF_FIELD = {
    "style": "style_combo",
    "aspect": "aspect_combo",
    "fps": "fps_combo",
    "quality": "quality_combo",
    "clip_audio_db": "clip_audio_combo",
    "reframe": "reframe_combo",
    "upscale": "upscale_combo",
}


class JobFileError(Exception):
    """A job file that cannot be read or written; the message names it."""


def read_job_file(path: Path) -> protocol.JobSpec:
    """The job in a .montage (or engine job.json) file."""
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except OSError as error:
        raise _unreadable(path, error.strerror or str(error)) from error
    except ValueError as error:
        # Not UTF-8 text, or not JSON: the parser's position means nothing here.
        cause = "it is not a job file (damaged, or another kind of file)"
        raise _unreadable(path, cause) from error
    try:
        return protocol.JobSpec.from_json(text)
    except protocol.JobSpecError as error:
        raise _unreadable(path, str(error).rstrip(".")) from error


def _unreadable(path: Path, cause: str) -> JobFileError:
    return JobFileError(
        f"Could not open the job file {path}: {cause}. Choose a .montage file saved "
        "by Montage AI."
    )


def write_job_file(spec: protocol.JobSpec, path: Path) -> Path:
    """Write spec to path (with the .montage suffix added if missing)."""
    if path.suffix.lower() != JOB_FILE_SUFFIX:
        path = path.with_name(path.name + JOB_FILE_SUFFIX)
    try:
        path.write_text(spec.to_json() + "\n", encoding="utf-8")
    except OSError as error:
        raise JobFileError(
            f"Could not save the job file {path}: {error.strerror or error}. "
            "Choose a folder you can write to."
        ) from error
    return path


def fill_form(form: JobFormWidget, spec: protocol.JobSpec) -> list[str]:
    """Show spec in the form; returns, as "name=value", the set fields the form
    cannot hold (the form keeps its own choice for those)."""
    form.clip_list.clear_clips()
    form.clip_list.add_paths(Path(clip) for clip in spec.clips)
    form.song_edit.setText(spec.music)
    form.prompt_edit.setText(spec.prompt)
    form.duration_spin.setValue(round(spec.duration_sec or 0))
    left_out = []
    if spec.seed is not None and spec.seed <= form.seed_spin.maximum():
        form.seed_spin.setValue(spec.seed)
    elif spec.seed is not None:
        left_out.append(f"seed={spec.seed}")
    # A name that differs from the generated one is kept as the user's choice.
    form.output_edit.setText(spec.output)
    for name, combo_name in COMBO_OF_FIELD.items():
        if not select_data(getattr(form, combo_name), getattr(spec, name)):
            left_out.append(f"{name}={getattr(spec, name)!r}")
    left_out += form.looks.show_job_fields(dataclasses.asdict(spec))
    defaults = protocol.JobSpec(clips=["-"], music="-", output="-.mp4")
    return left_out + [
        f"{name}={getattr(spec, name)}"
        for name in FIELDS_NOT_IN_FORM
        if getattr(spec, name) != getattr(defaults, name)
    ]


class JobFileActions(QObject):
    """File > Open job…, Save job as…, and job files named on the command line."""

    def __init__(
        self,
        form: JobFormWidget,
        show_error: Callable[[str], None],
        show_message: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._form = form
        self._show_error = show_error
        self._show_message = show_message
        self.open_action = QAction("&Open job…", self)
        self.open_action.triggered.connect(self._choose_and_open)
        self.save_action = QAction("Save job &as…", self)
        self.save_action.triggered.connect(self._choose_and_save)

    def actions(self) -> list[QAction]:
        return [self.open_action, self.save_action]

    def open(self, path: Path) -> bool:
        """Fill the form from a job file; say what went wrong if it cannot."""
        try:
            spec = read_job_file(path)
        except JobFileError as error:
            log.warning("%s", error)
            self._show_error(str(error))
            self._show_message("")  # an earlier "Opened ..." is no longer true
            return False
        left_out = fill_form(self._form, spec)
        message = f"Opened {path.name}: press Create montage to render it."
        if left_out:
            message += f" Not in the form, so not kept: {', '.join(left_out)}."
        log.info("Opened the job file %s", path)
        self._show_message(message)
        return True

    def save(self, path: Path) -> Path | None:
        try:
            written = write_job_file(self._form.build_job_spec(), path)
        except (protocol.JobSpecError, JobFileError) as error:
            self._show_error(str(error))
            return None
        self._show_message(f"Saved the job as {written}")
        return written

    def _choose_and_open(self) -> None:
        name, _ = QFileDialog.getOpenFileName(None, "Open a job", "", JOB_FILE_FILTER)
        if name:
            self.open(Path(name))

    def _choose_and_save(self) -> None:
        name, _ = QFileDialog.getSaveFileName(None, "Save the job as", "",
                                              JOB_FILE_FILTER)  # fmt: skip
        if name:
            self.save(Path(name))
