"""The rendered edit for editors: .otio, FCP 7 XML, FCPXML, CMX 3600 EDL, MLT, CSV.

Every format is written from the one timeline the render used (the .otio beside the
MP4), so what an editor opens is the edit that was rendered. Each writer returns its
files as text and a warning for everything the format cannot say; nothing is
dropped silently. Files are written to hidden temporary names and renamed into place
together, so a failed export leaves no file that looks complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import opentimelineio as otio

from engine.clip_audio import clip_sound_warnings
from engine.errors import EngineError, InvalidJobError, OutputError
from engine.export.common import missing_sources
from engine.protocol import (
    EXIT_CODES,
    EXPORT_FORMATS,
    EXPORT_LABELS,
    EXPORT_SUFFIXES,
    Event,
    JobSpec,
    JobSpecError,
    make_failed,
    make_finished,
    make_warning,
    timecode_rate_problem,
)
from engine.render import check_writable_folder
from engine.temp_files import remove_quietly, temp_path
from engine.timeline import META, timeline_rate

log = logging.getLogger(__name__)

EXPORT_LIMIT = "export_limit"
EXPORT_FAILED = "export_failed"
REELS_SUFFIX = ".reels.csv"

Writer = Callable[[otio.schema.Timeline, str], tuple[dict[str, str], list[str]]]


@dataclass
class Export:
    """One format's files (path -> text), its main file and what it could not say."""

    format: str
    files: dict[Path, str]
    main_path: Path
    warnings: list[str] = field(default_factory=list)
    # Why the format could not be written (its files are then empty), or None.
    error: str | None = None


def _writers() -> dict[str, Writer]:
    # Imported here: the adapters are only needed when exporting.
    from engine.export import cutlist, nle

    return {
        "otio": nle.write_otio,
        "fcp7": nle.write_fcp7,
        "fcpxml": nle.write_fcpxml,
        "edl": nle.write_edl,
        "mlt": _write_mlt,
        "csv": cutlist.write_cut_list,
    }


def _write_mlt(
    timeline: otio.schema.Timeline, stem: str
) -> tuple[dict[str, str], list[str]]:
    from engine.export.mlt import write_mlt

    text, warnings = write_mlt(timeline)
    return {".mlt": text}, warnings


def build_exports(
    timeline: otio.schema.Timeline, base: Path, formats: Iterable[str]
) -> list[Export]:
    """Every asked format of the timeline, in memory, named after base (no suffix).

    A format whose writer fails (an adapter's own limits) comes back with its error
    and no files, so that the others and the render still go ahead.
    """
    writers = _writers()
    exports = []
    for name in dict.fromkeys(formats):
        if name not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {name!r}")
        main_path = base.with_name(base.name + EXPORT_SUFFIXES[name])
        problem = timecode_rate_problem(timeline_rate(timeline), [name])
        if problem:
            exports.append(Export(name, {}, main_path, [], problem))
            continue
        try:
            texts, warnings = writers[name](timeline, base.name)
        except Exception as error:  # An adapter's own failure, reported in words.
            if name == "otio":
                raise
            log.exception("export %s failed", name)
            message = (
                f"The {EXPORT_LABELS[name]} file could not be written ({error}); "
                "the other files are fine. Report this with the .otio attached."
            )
            exports.append(Export(name, {}, main_path, [], message))
            continue
        files = {
            base.with_name(base.name + suffix): text for suffix, text in texts.items()
        }
        warnings += clip_sound_warnings(timeline, name)
        exports.append(Export(name, files, main_path, warnings))
    return exports


def export_paths(output: Path, formats: Iterable[str]) -> list[Path]:
    """Every file a render to output writes besides the video, for safety checks."""
    base = output.with_suffix("")
    suffixes = [EXPORT_SUFFIXES[name] for name in ("otio", *formats)]
    if "edl" in formats:
        suffixes.append(REELS_SUFFIX)
    return [base.with_name(base.name + suffix) for suffix in dict.fromkeys(suffixes)]


class StagedFiles:
    """Files written under hidden temporary names, renamed into place together."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, path: Path, text: str) -> None:
        temp = temp_path(path)
        try:
            temp.write_text(text, encoding="utf-8")
        except OSError as error:
            remove_quietly(temp)
            self.discard()
            raise OutputError(
                f"Could not write {path.name} in {path.parent}: "
                f"{error.strerror or error}. Choose another output folder.",
                str(path),
            ) from error
        self._staged.append((temp, path))

    def adopt(self, temp: Path, path: Path) -> None:
        """Take a file written under its temporary name by someone else (the
        video), from before it is written: discard() removes it whatever stops the
        writing."""
        self._staged.append((temp, path))

    def commit(self) -> None:
        done: list[Path] = []
        try:
            for temp, path in self._staged:
                os.replace(temp, path)
                done.append(path)
        except OSError as error:
            # All or none: a partial set would not match what was asked.
            for written in done:
                remove_quietly(written)
            self.discard()
            raise OutputError(
                f"Could not put {path.name} in {path.parent}: "
                f"{error.strerror or error}. Choose another output folder.",
                str(path),
            ) from error
        self._staged.clear()

    def discard(self) -> None:
        for temp, _ in self._staged:
            remove_quietly(temp)
        self._staged.clear()


def stage_exports(exports: Iterable[Export], staged: StagedFiles) -> None:
    for export in exports:
        for path, text in export.files.items():
            staged.stage(path, text)


def write_exports(exports: list[Export]) -> None:
    """Write every file of every export, all or none."""
    staged = StagedFiles()
    stage_exports(exports, staged)
    staged.commit()


def timeline_for(source: str | Path) -> Path:
    """The .otio of a finished job, given the .otio, the rendered MP4 or the job."""
    path = Path(source)
    if not str(source).strip() or path.is_dir():
        raise InvalidJobError(
            f"{str(source) or 'An empty name'}: not a file. Name the .otio that a "
            "finished render writes beside its video, the video itself or its job "
            "file.",
            str(source),
        )
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            spec = JobSpec.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, JobSpecError) as error:
            raise InvalidJobError(
                f"{path}: not a job file this engine can read ({error}).", str(path)
            ) from error
        path = Path(spec.output)
        suffix = path.suffix.lower()
    if suffix != ".otio":
        path = path.with_suffix(".otio")
    if not path.is_file():
        raise InvalidJobError(
            f"{path}: no timeline there. Export needs the .otio that a finished "
            "render writes beside its video; render the job first, or name the "
            ".otio itself.",
            str(path),
        )
    return path


def load_timeline(path: Path) -> otio.schema.Timeline:
    try:
        timeline = otio.adapters.read_from_file(str(path), adapter_name="otio_json")
    except Exception as error:  # OTIO raises many kinds for a damaged file.
        raise InvalidJobError(
            f"{path.name}: the timeline cannot be read ({error}). Render the job "
            "again to write a new one.",
            str(path),
        ) from error
    if not isinstance(timeline, otio.schema.Timeline) or META not in timeline.metadata:
        raise InvalidJobError(
            f"{path.name}: not a timeline written by Montage AI; only our own "
            "renders' timelines can be exported.",
            str(path),
        )
    return timeline


def report_export_warnings(
    exports: Iterable[Export], emit: Callable[[Event], None]
) -> None:
    """What each format cannot hold, and any format that could not be written."""
    for export in exports:
        if export.error is not None:
            emit(make_warning(EXPORT_FAILED, export.error, str(export.main_path)))
        for warning in export.warnings:
            emit(make_warning(EXPORT_LIMIT, warning, str(export.main_path)))


def run_export(
    source: str,
    formats: list[str],
    output_dir: str | None,
    emit: Callable[[Event], None],
) -> int:
    """Export a finished job's timeline; report warnings and paths as events."""
    try:
        otio_path = timeline_for(source)
        timeline = load_timeline(otio_path)
        folder = Path(output_dir) if output_dir else otio_path.parent
        check_writable_folder(folder)
        exports = build_exports(timeline, folder / otio_path.stem, formats)
        written = [export for export in exports if export.error is None]
        if not written:
            raise EngineError(" ".join(str(export.error) for export in exports))
        outputs = {}
        for export in written:
            if export.format == "otio" and export.main_path == otio_path:
                export.files.clear()
            outputs[export.format] = str(export.main_path.absolute())
        write_exports(written)
    except EngineError as error:
        emit(make_failed(error.code, error.message))
        return EXIT_CODES[error.code]
    for path in missing_sources(timeline):
        emit(
            make_warning(
                "source_missing",
                f"{path} is not there any more (moved, deleted or on a drive that is "
                "not connected): your editor will ask you to find it. Reconnect it "
                "or relink it by name.",
                path,
            )
        )
    report_export_warnings(exports, emit)
    warnings = sum(len(export.warnings) for export in exports)
    emit(make_finished(outputs, {"formats": len(exports), "warnings": warnings}))
    return 0


__all__ = [
    "Export",
    "StagedFiles",
    "build_exports",
    "export_paths",
    "report_export_warnings",
    "run_export",
    "stage_exports",
    "write_exports",
]
