"""What a job says in words, in its row and in the details under the list: its
stage, the engine's summary, its warnings and files. No widgets: the panel and the
export dialog show these strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.job_records import JobRecord, JobStatus, JobWarning

INTERRUPTED_STAGE = "The app stopped during this render; press Retry to run it again"
# A warnings line names at most this many files, then counts the others.
MAX_NAMED_FILES = 3
ERROR_STYLE = (
    "QLabel { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0;"
    " border-radius: 4px; padding: 6px; }"
)
NOTE_STYLE = (
    "QLabel { background: #eef4fb; color: #1d3b5c; border: 1px solid #c5d8ee;"
    " border-radius: 4px; padding: 6px; }"
)


def format_eta(eta_sec: float | None) -> str:
    """'about 40 s left', 'about 3 min left', or '' when unknown."""
    if eta_sec is None:
        return ""
    if eta_sec < 60:
        return f"about {max(1, round(eta_sec))} s left"
    return f"about {round(eta_sec / 60)} min left"


def describe_summary(summary: dict[str, Any]) -> str:
    """One sentence from the finished event's summary; tolerant of missing fields.

    '21 shots from 9 of 9 clips, 10.0 s at 150 BPM (style dynamic, seed 7).'
    """
    shots = f"{summary['shots']} shots" if "shots" in summary else ""
    if "sources_used" in summary and "sources" in summary:
        shots += f" from {summary['sources_used']} of {summary['sources']} clips"
    length = ""
    if isinstance(summary.get("duration_sec"), (int, float)):
        length = f"{summary['duration_sec']:.1f} s"
    if isinstance(summary.get("tempo_bpm"), (int, float)):
        length += f" at {summary['tempo_bpm']:.0f} BPM"
    text = (
        ", ".join(part.strip() for part in (shots, length) if part) or "Render complete"
    )
    extras = [f"{key} {summary[key]}" for key in ("style", "seed") if key in summary]
    if summary.get("prompt_interpreter") == "ai":
        extras.append("prompt read by the AI director")
    elif summary.get("prompt_note"):
        extras.append("prompt read offline")
    return f"{text} ({', '.join(extras)})." if extras else f"{text}."


def count_warnings(warnings: Sequence[JobWarning]) -> str:
    """'1 warning', '3 warnings'."""
    return f"{len(warnings)} warning{'' if len(warnings) == 1 else 's'}"


def describe_warnings(warnings: Sequence[JobWarning]) -> str:
    """'2 warnings, about diver.mov and song.ogg.'; '' when there are none."""
    if not warnings:
        return ""
    paths = [warning.path for warning in warnings if warning.path]
    names = list(dict.fromkeys(Path(path).name for path in paths))
    if len(names) > MAX_NAMED_FILES:
        others = len(names) - MAX_NAMED_FILES + 1
        names = [*names[: MAX_NAMED_FILES - 1], f"{others} other files"]
    if not names:
        return f"{count_warnings(warnings)}."
    return f"{count_warnings(warnings)}, about {join_words(names)}."


def join_words(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def warning_line(warning: JobWarning) -> str:
    """The warning's message, led by its file's name unless the message names it."""
    name = Path(warning.path).name
    if name and name not in warning.message:
        return f"{name}: {warning.message}"
    return warning.message


def stage_text(record: JobRecord) -> str:
    """What the Stage column says for a job in its current status."""
    if record.status is JobStatus.WAITING:
        return record.stage or "Waiting for its turn"
    if record.status is JobStatus.RUNNING:
        return record.stage or "Starting the engine…"
    if record.status is JobStatus.FINISHED:
        summary = describe_summary(record.summary) if record.summary else ""
        if record.warnings:
            done = f"Done with {count_warnings(record.warnings)}"
            return f"{done}: {summary}" if summary else done
        return summary or "Done"
    if record.status is JobStatus.FAILED:
        return (record.error_message or "Failed").split(". ")[0]
    if record.status is JobStatus.INTERRUPTED:
        return INTERRUPTED_STAGE
    return ""


@dataclass(frozen=True)
class JobDetail:
    """What the detail area shows for a job: a message in view, and a text
    (warnings, files, engine log) behind the Show toggle."""

    message: str = ""
    style: str = ""
    text: str = ""
    # What the text holds, for the toggle: 'warnings and log'.
    contents: str = ""


def detail_for(record: JobRecord | None) -> JobDetail:
    """The detail area's message and text for the selected job."""
    if record is None:
        return JobDetail()
    message, style = detail_message(record)
    sections = {
        "warnings": "\n".join(f"• {warning_line(one)}" for one in record.warnings),
        "files": outputs_text(record),
        "log": "\n".join(record.log_tail.splitlines()[-30:]),
    }
    headings = {
        "warnings": "Warnings:",
        "files": "Files:",
        "log": "Engine log, last lines:",
    }
    shown = [name for name, text in sections.items() if text]
    text = "\n\n".join(f"{headings[name]}\n{sections[name]}" for name in shown)
    return JobDetail(message, style, text, join_words(shown))


def detail_message(record: JobRecord) -> tuple[str, str]:
    """The message for the job's status, then a line on its warnings; its style."""
    message, style = status_message(record)
    message = f"{message} {describe_warnings(record.warnings)}".strip()
    note = record.summary.get("prompt_note")
    if record.status is JobStatus.FINISHED and note:
        message += f"\n{note}"
    return message, style


def status_message(record: JobRecord) -> tuple[str, str]:
    if record.status is JobStatus.FAILED:
        return record.error_message or "The render failed.", ERROR_STYLE
    if record.status is JobStatus.INTERRUPTED:
        return record.error_message or INTERRUPTED_STAGE, NOTE_STYLE
    if record.status is JobStatus.FINISHED:
        summary = record.summary
        return f"Done: {describe_summary(summary)}" if summary else "Done.", ""
    if record.status is JobStatus.WAITING and record.stage:
        return record.stage, NOTE_STYLE
    return "", ""


def outputs_text(record: JobRecord) -> str:
    """A finished job's files, the video first: 'video: /path/montage.mp4'."""
    if record.status is not JobStatus.FINISHED:
        return ""
    kinds = sorted(record.outputs, key=lambda kind: (kind != "video", kind))
    return "\n".join(f"{kind}: {record.outputs[kind]}" for kind in kinds)
