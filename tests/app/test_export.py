"""Export menus of a finished job: one entry per editor, run through a stand-in
exporter that keeps `python -m engine.export`'s contract."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QGuiApplication

from app import export_menu
from app.engine_process import EngineCommand
from app.export_menu import (
    EXPORTING_TIP,
    MISSING_TIMELINE_TIP,
    NO_JOB_TIP,
    UNFINISHED_TIP,
    ExportMenu,
)
from app.timeline_export import ExportOutcome, ExportProcess
from engine import protocol
from tests.app.export_helpers import (
    choose,
    choose_from_button,
    entries,
    finish_job,
    hover_tooltip,
    selected_window,
    shown_states,
    wait_for_dialog,
)
from tests.app.queue_helpers import heartbeat_gaps, job_spec

WARNINGS = (
    "FCP 7 XML has no place for the colour grade of the style 'mtv'; the footage "
    "appears ungraded in your editor.",
    "FCP 7 XML has no audio fades: add the song's 2 s fade-out at the end yourself.",
)


def test_the_menus_name_the_editors_of_each_format(make_window):
    window = make_window()

    titles = [action.text() for action in window.menuBar().actions()]
    assert titles == ["&File", "&Export", "&Help"]
    button_menu = window.queue_panel.export_button.menu()
    assert isinstance(button_menu, ExportMenu)
    for menu in (window.export_menu, button_menu):
        texts = entries(menu)
        assert len(texts) == len(protocol.EXPORT_FORMATS)
        for text, name in zip(texts, protocol.EXPORT_FORMATS, strict=True):
            assert text.startswith(protocol.EXPORT_LABELS[name])
        assert texts[0].endswith("show the .otio in its folder")
    listed = " ".join(entries(window.export_menu))
    for editor in ("Premiere Pro", "DaVinci Resolve", "Final Cut Pro", "Avid"):
        assert editor in listed
    assert "Shotcut" in listed and "Kdenlive" in listed and "spreadsheet" in listed


def test_without_a_finished_job_every_entry_is_disabled_and_says_why(
    qtbot, make_window, stub_command, store, tmp_path
):
    window = make_window(stub_command("hangs_in_render.jsonl"))
    panel = window.queue_panel
    assert set(shown_states(qtbot, window.export_menu).values()) == {
        (False, NO_JOB_TIP, NO_JOB_TIP)
    }
    assert hover_tooltip(qtbot, window.export_menu, "fcp7") == NO_JOB_TIP
    assert not panel.export_button.isEnabled()

    window.queue.add(job_spec(tmp_path, "busy"))
    panel.select_job(store.list_jobs()[0].id)
    assert set(shown_states(qtbot, window.export_menu).values()) == {
        (False, UNFINISHED_TIP, UNFINISHED_TIP)
    }
    assert not panel.export_button.isEnabled()


def test_a_finished_job_whose_timeline_is_gone_says_so(
    qtbot, make_window, store, tmp_path
):
    otio_path = finish_job(store, tmp_path)
    otio_path.unlink()
    window = selected_window(make_window, store)

    gone = MISSING_TIMELINE_TIP.format(path=otio_path)
    assert set(shown_states(qtbot, window.export_menu).values()) == {
        (False, gone, gone)
    }
    assert window.queue_panel.export_button.isEnabled()


def test_an_export_shows_the_file_its_folder_and_every_warning(
    qtbot, make_window, store, tmp_path, stub_exporter, monkeypatch
):
    opened: list[str] = []
    monkeypatch.setattr(export_menu, "show_in_folder", opened.append)
    otio_path = finish_job(store, tmp_path)
    warnings = [option for text in WARNINGS for option in ("--warning", text)]
    command = stub_exporter(*warnings, "--delay", "0.5")
    window = selected_window(make_window, store, export_command=command)
    states = shown_states(qtbot, window.export_menu)
    assert all(enabled for enabled, _, _ in states.values())
    assert (
        states["fcp7"][1]
        == f"Write montage.xml beside the timeline, in {tmp_path}/out."
    )
    gaps = heartbeat_gaps(window)

    choose_from_button(qtbot, window.queue_panel.export_button, "fcp7")

    # Running: that entry waits, the others still work.
    fcp7, edl = (window.export_menu.format_actions[name] for name in ("fcp7", "edl"))
    assert not fcp7.isEnabled() and fcp7.toolTip() == EXPORTING_TIP
    assert edl.isEnabled()
    dialog = wait_for_dialog(qtbot, window, "Timeline exported")
    written = otio_path.with_suffix(".xml")
    assert written.read_text(encoding="utf-8") == "fcp7 of montage.otio\n"
    text = dialog.text()
    assert "Saved montage.xml for FCP 7 XML (Premiere Pro, DaVinci Resolve)" in text
    assert f"In {written.parent}" in text
    for warning in WARNINGS:
        assert warning in text
    status = window.statusBar().currentMessage()
    assert status == f"Exported montage.xml to {written.parent}, with 2 warnings."
    # The event loop kept turning while the exporter ran.
    assert max(gaps) < 0.5
    assert fcp7.isEnabled()

    job = store.list_jobs()[0]
    assert job.outputs["fcp7"] == str(written)
    assert f"fcp7: {written}" in window.queue_panel.log_view.toPlainText()
    next(b for b in dialog.buttons.buttons() if b.text() == "Show in folder").click()
    assert opened == [str(written)]


def test_an_edl_names_its_reel_table(
    qtbot, make_window, store, tmp_path, stub_exporter
):
    finish_job(store, tmp_path)
    window = selected_window(make_window, store, export_command=stub_exporter())

    window.export_menu.popup(QPoint(20, 20))
    choose(qtbot, window.export_menu, "edl")

    text = wait_for_dialog(qtbot, window, "Timeline exported").text()
    assert "Saved montage.edl for CMX 3600 EDL (Avid, any editor)" in text
    assert "Also written: montage.reels.csv" in text
    assert "no warnings" in text


def test_the_otio_entry_shows_the_timeline_without_exporting(
    qtbot, make_window, store, tmp_path, stub_exporter, monkeypatch
):
    opened: list[str] = []
    monkeypatch.setattr(export_menu, "show_in_folder", opened.append)
    otio_path = finish_job(store, tmp_path)
    window = selected_window(make_window, store, export_command=stub_exporter())

    window.export_menu.popup(QPoint(20, 20))
    choose(qtbot, window.export_menu, "otio")

    assert opened == [str(otio_path)]
    assert QGuiApplication.clipboard().text() == str(otio_path)
    assert window.exports.running_count() == 0
    assert "its path is copied" in window.statusBar().currentMessage()


def test_a_failed_export_shows_its_message_and_the_app_stays_usable(
    qtbot, make_window, store, tmp_path, stub_exporter, allowed_errors
):
    allowed_errors.append("Export failed (output_unwritable)")
    otio_path = finish_job(store, tmp_path)
    command = stub_exporter("--fail-format", "mlt")
    window = selected_window(make_window, store, export_command=command)

    choose_from_button(qtbot, window.queue_panel.export_button, "mlt")

    dialog = wait_for_dialog(qtbot, window, "Export failed")
    assert dialog.text().startswith(
        "Could not export montage.otio as MLT project (Shotcut, Kdenlive)\n"
        f"Could not write montage.mlt in {otio_path.parent}: Permission denied."
    )
    assert "Could not export" in window.statusBar().currentMessage()
    assert "mlt" not in store.list_jobs()[0].outputs
    assert window.export_menu.format_actions["mlt"].isEnabled()

    choose_from_button(qtbot, window.queue_panel.export_button, "csv")
    wait_for_dialog(qtbot, window, "Timeline exported")
    assert store.list_jobs()[0].outputs["csv"] == str(otio_path.with_suffix(".csv"))
    assert window.create_button.isEnabled()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--exit-silently", "70"),
            "The exporter stopped unexpectedly (exit status 70). Its last log line "
            'was "Segmentation fault in the XML writer".',
        ),
        (None, "The exporter could not be started"),
    ],
)
def test_an_exporter_that_crashes_or_is_missing_is_explained(
    qtbot, make_window, store, tmp_path, stub_exporter, allowed_errors, options, message
):
    allowed_errors.append("Export failed (internal)")
    finish_job(store, tmp_path)
    if options is None:
        command = EngineCommand(str(tmp_path / "no-such-exporter"))
    else:
        command = stub_exporter(*options)
    window = selected_window(make_window, store, export_command=command)

    window.export_menu.popup(QPoint(20, 20))
    choose(qtbot, window.export_menu, "fcpxml")

    assert message in wait_for_dialog(qtbot, window, "Export failed").text()
    assert window.export_menu.format_actions["fcpxml"].isEnabled()


def test_an_exporter_that_hangs_is_stopped_after_its_time(
    qtbot, tmp_path, stub_exporter, allowed_errors
):
    allowed_errors.append("Export failed (internal)")
    process = ExportProcess(stub_exporter("--hang"), timeout_ms=300)
    failures: list[tuple[str, str]] = []
    process.export_failed.connect(lambda *args: failures.append(args))

    process.start(str(tmp_path / "montage.otio"), "csv")
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)

    [(code, message)] = failures
    assert code == "internal"
    assert message.startswith("The export took longer than 0.3 s and was stopped.")


def test_closing_the_window_stops_a_running_export(
    qtbot, make_window, store, tmp_path, stub_exporter
):
    finish_job(store, tmp_path)
    window = selected_window(make_window, store, export_command=stub_exporter("--hang"))
    window.export_menu.popup(QPoint(20, 20))
    choose(qtbot, window.export_menu, "csv")
    assert window.exports.running_count() == 1

    window.close()

    # The autouse fixture fails the test if the exporter outlived the window.
    assert window.exports.running_count() == 0
    assert window.export_controller.last_dialog is None


def test_the_outcome_names_the_file_of_its_format():
    outcome = ExportOutcome(
        1, "edl", "/v/m.otio", {"csv": "/v/m.reels.csv", "edl": "/v/m.edl"}
    )
    assert outcome.path == "/v/m.edl"
    assert ExportOutcome(1, "edl", "/v/m.otio").path == ""
