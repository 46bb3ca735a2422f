"""Helpers for export tests: a finished job on disk, and the menus used as a user
would, by popping them up and clicking an entry."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QPushButton, QToolTip

from app.export_dialog import ExportResultDialog
from app.export_menu import ExportMenu
from app.job_store import JobStore
from app.main_window import MainWindow
from tests.app.queue_helpers import job_spec


def finish_job(store: JobStore, tmp_path: Path, name: str = "montage") -> Path:
    """A finished job with its video and .otio on disk; returns the .otio."""
    spec = job_spec(tmp_path, name)
    video = Path(spec.output)
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"")
    otio_path = video.with_suffix(".otio")
    otio_path.write_text(json.dumps({"OTIO_SCHEMA": "Timeline.1"}), encoding="utf-8")
    job_id = store.add(spec)
    store.mark_running(job_id, os.getpid())
    store.mark_finished(job_id, {"video": str(video), "otio": str(otio_path)})
    return otio_path


def selected_window(make_window, store: JobStore, **options) -> MainWindow:
    """A window with the newest job selected."""
    window = make_window(**options)
    window.queue_panel.select_job(store.list_jobs()[0].id)
    return window


def entries(menu: ExportMenu) -> list[str]:
    return [action.text() for action in menu.actions() if not action.isSeparator()]


def shown_states(qtbot, menu: ExportMenu) -> dict[str, tuple[bool, str, str]]:
    """Pop the menu up as a user would; each entry's (enabled, tooltip, status tip)."""
    menu.popup(QPoint(20, 20))
    qtbot.waitUntil(menu.isVisible)
    states = {
        name: (action.isEnabled(), action.toolTip(), action.statusTip())
        for name, action in menu.format_actions.items()
    }
    menu.hide()
    return states


def hover_tooltip(qtbot, menu: ExportMenu, export_format: str) -> str:
    """The tooltip the menu shows over an entry (disabled ones too), from its popup."""
    menu.popup(QPoint(20, 20))
    qtbot.waitUntil(menu.isVisible)
    centre = menu.actionGeometry(menu.format_actions[export_format]).center()
    event = QHelpEvent(QEvent.Type.ToolTip, centre, menu.mapToGlobal(centre))
    QApplication.sendEvent(menu, event)
    text = QToolTip.text() if QToolTip.isVisible() else ""
    QToolTip.hideText()
    menu.hide()
    return text


def choose(qtbot, menu: ExportMenu, export_format: str) -> None:
    """Click an entry of a menu that is open."""
    qtbot.waitUntil(menu.isVisible)
    action = menu.format_actions[export_format]
    assert action.isEnabled(), action.toolTip()
    qtbot.mouseClick(
        menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(action).center()
    )


def choose_from_button(qtbot, button: QPushButton, export_format: str) -> None:
    """Press the Export button, then the entry in the menu it pops up."""
    menu = button.menu()
    assert isinstance(menu, ExportMenu)
    chosen: list[bool] = []

    def pick() -> None:
        try:
            choose(qtbot, menu, export_format)
        finally:
            menu.hide()
            chosen.append(True)

    # Some Qt versions run the button's menu in an event loop of its own.
    QTimer.singleShot(0, pick)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(chosen))


def wait_for_dialog(qtbot, window: MainWindow, title: str) -> ExportResultDialog:
    """The message of the next export to end; it must carry title and not block."""
    controller = window.export_controller
    qtbot.waitUntil(lambda: controller.last_dialog is not None, timeout=10_000)
    dialog = controller.last_dialog
    assert dialog is not None
    controller.last_dialog = None
    assert dialog.windowTitle() == title, dialog.text()
    assert dialog.isVisible() and not dialog.isModal()
    return dialog
