"""The look of a job: colour (a LUT), transitions, flashes, slow motion, clean-up.

Every choice starts at "As the style", which leaves the style's own in place. A
clip's own stabilize and denoise are set from the clip list's context menu.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QWidget,
)

from app.drop_widgets import PATH_ROLE
from app.form_layout import ChoiceBox

log = logging.getLogger(__name__)

AS_STYLE = "As the style"
LUT_FILTER = "3D LUTs (*.cube)"
TRANSITION_LABELS = {
    "cut": "Cut",
    "crossfade": "Crossfade",
    "dip_black": "Dip to black",
    "dip_white": "Dip to white",
    "whip": "Whip pan",
}
SLOW_MOTION_LABELS = {1.0: "Off", 0.5: "Half speed", 0.25: "Quarter speed"}
CLEANUP_LABELS = {"stabilize": "Stabilize", "denoise": "Denoise"}
# Which clean-up a clip item gets, and its name before the marks were added.
CLEANUP_ROLE = Qt.ItemDataRole.UserRole + 10
NAME_ROLE = Qt.ItemDataRole.UserRole + 11


@dataclass(frozen=True)
class LookChoice:
    name: str
    title: str


def load_look_choices() -> list[LookChoice]:
    """The shipped LUTs (resources/luts), by title, from their TITLE lines."""
    choices = []
    for entry in files("resources").joinpath("luts").iterdir():
        if not entry.name.endswith(".cube"):
            continue
        name = entry.name.removesuffix(".cube")
        try:
            first = entry.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError) as error:
            log.warning("Skipped the look %s: %s", entry.name, error)
            continue
        title = first.removeprefix("TITLE").strip().strip('"') or name
        choices.append(LookChoice(name, title))
    return sorted(choices, key=lambda choice: choice.title)


class LookOptions:
    """The choices for a job's look, for the form to lay out, and the job fields
    they stand for."""

    def __init__(self, parent: QWidget, clip_list: QListWidget) -> None:
        self.parent = parent
        self.clip_list = clip_list
        self.lut_combo = ChoiceBox(parent)
        self.lut_combo.addItem(AS_STYLE, "")
        self.lut_combo.addItem("None (the style's grade only)", "none")
        for choice in load_look_choices():
            self.lut_combo.addItem(choice.title, choice.name)
        self.load_lut_button = QPushButton("Load .cube…", parent)
        self.load_lut_button.clicked.connect(self._choose_lut)
        self.transition_combo = _combo(parent, TRANSITION_LABELS, "")
        self.flash_combo = _combo(parent, {True: "On", False: "Off"}, None)
        self.flash_combo.setToolTip("A white flash on each downbeat of the song.")
        self.slow_motion_combo = _combo(parent, SLOW_MOTION_LABELS, None)
        self.slow_motion_combo.setToolTip(
            "Shots in the song's quiet parts play slower; cuts stay on the beat."
        )
        self.stabilize_combo = _combo(parent, {True: "Every clip", False: "Off"}, None)
        self.denoise_combo = _combo(parent, {True: "Every clip", False: "Off"}, None)
        for combo in (self.stabilize_combo, self.denoise_combo):
            combo.setToolTip(
                "Off unless the style says. Right-click a clip to choose it alone."
            )
        self.clip_menu = ClipCleanupMenu(clip_list)

    def job_fields(self) -> dict[str, Any]:
        """The JobSpec fields for what is chosen (protocol.JobSpec)."""
        return {
            "lut": self.lut_combo.currentData() or "",
            "transition": self.transition_combo.currentData() or "",
            "downbeat_flash": self.flash_combo.currentData(),
            "slow_motion": self.slow_motion_combo.currentData(),
            "stabilize": self.stabilize_combo.currentData(),
            "denoise": self.denoise_combo.currentData(),
            "stabilize_clips": cleanup_paths(self.clip_list, "stabilize"),
            "denoise_clips": cleanup_paths(self.clip_list, "denoise"),
        }

    def show_job_fields(self, fields: dict[str, Any]) -> list[str]:
        """Choose what job fields (as job_fields gives them) say; returns, as
        "name=value", those the choices cannot show."""
        left_out = []
        lut = str(fields.get("lut") or "")
        if self.lut_combo.findData(lut) < 0 and lut.lower().endswith(".cube"):
            self.use_lut_file(lut)
        combos = {
            "lut": self.lut_combo,
            "transition": self.transition_combo,
            "downbeat_flash": self.flash_combo,
            "slow_motion": self.slow_motion_combo,
            "stabilize": self.stabilize_combo,
            "denoise": self.denoise_combo,
        }
        for name, combo in combos.items():
            if not select_data(combo, fields.get(name)):
                left_out.append(f"{name}={fields.get(name)!r}")
        for kind in CLEANUP_LABELS:
            chosen = {os.path.abspath(path) for path in fields.get(f"{kind}_clips", [])}
            for row in range(self.clip_list.count()):
                item = self.clip_list.item(row)
                path = os.path.abspath(str(item.data(PATH_ROLE)))
                if path in chosen:
                    set_cleanup(item, kind, True)
                    chosen.discard(path)
            left_out += [f"{kind}_clips={path}" for path in sorted(chosen)]
        return left_out

    def use_lut_file(self, path: str) -> None:
        """Offer a user's .cube in the look menu, and choose it."""
        index = self.lut_combo.findData(path)
        if index < 0:
            self.lut_combo.addItem(f"{Path(path).name} (your LUT)", path)
            index = self.lut_combo.count() - 1
            self.lut_combo.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
        self.lut_combo.setCurrentIndex(index)

    def _choose_lut(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self.parent, "Load a LUT", "", f"{LUT_FILTER};;All files (*)"
        )
        if name:
            self.use_lut_file(name)


def _combo(parent: QWidget, labels: dict[Any, str], style_value: Any) -> QComboBox:
    combo = ChoiceBox(parent)
    combo.addItem(AS_STYLE, style_value)
    for value, label in labels.items():
        combo.addItem(label, value)
    return combo


class ClipCleanupMenu:
    """A clip's context menu: stabilize it, denoise it; the marks show in its name."""

    def __init__(self, clip_list: QListWidget) -> None:
        self.clip_list = clip_list
        clip_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        clip_list.customContextMenuRequested.connect(self._show_menu)

    def _show_menu(self, position: QPoint) -> None:
        item = self.clip_list.itemAt(position)
        if item is None:
            return
        menu = QMenu(self.clip_list)
        for kind, label in CLEANUP_LABELS.items():
            action = menu.addAction(f"{label} this clip")
            action.setCheckable(True)
            action.setChecked(kind in (item.data(CLEANUP_ROLE) or []))
            action.toggled.connect(lambda on, kind=kind: set_cleanup(item, kind, on))
        menu.exec(self.clip_list.viewport().mapToGlobal(position))


def set_cleanup(item: QListWidgetItem, kind: str, on: bool) -> None:
    """Mark a clip for stabilize or denoise (or clear it), named in its row."""
    kinds = [k for k in (item.data(CLEANUP_ROLE) or []) if k != kind]
    if on:
        kinds.append(kind)
    if item.data(NAME_ROLE) is None:
        item.setData(NAME_ROLE, item.text())
    item.setData(CLEANUP_ROLE, kinds)
    marks = ", ".join(CLEANUP_LABELS[k].lower() for k in CLEANUP_LABELS if k in kinds)
    item.setText(item.data(NAME_ROLE) + (f"  ({marks})" if marks else ""))


def select_data(combo: QComboBox, value: object) -> bool:
    """Choose the combo's item whose data is value; False if it has none."""
    for index in range(combo.count()):
        if combo.itemData(index) == value:
            combo.setCurrentIndex(index)
            return True
    return False


def cleanup_paths(clip_list: QListWidget, kind: str) -> list[str]:
    """Paths of the clips marked for one clean-up."""
    paths = []
    for row in range(clip_list.count()):
        item = clip_list.item(row)
        if kind in (item.data(CLEANUP_ROLE) or []):
            paths.append(str(item.data(PATH_ROLE)))
    return paths
