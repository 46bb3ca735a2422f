"""Run one job: probe, analyse the music and the clips, plan, render, export."""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import opentimelineio as otio

from engine.analysis import ClipAnalysis, analyze_clip
from engine.cancel import allow_cancel, too_late_to_cancel
from engine.director import start_director
from engine.errors import (
    DiskFullError,
    EngineError,
    InvalidJobError,
    MediaError,
    NoUsableClipsError,
    OutputError,
)
from engine.export import (
    StagedFiles,
    build_exports,
    export_paths,
    report_export_warnings,
    stage_exports,
)
from engine.frames import CLEAN_STARTS
from engine.job_warnings import (
    warn_about_changed_options,
    warn_about_false_keyframes,
    warn_about_short_clips,
)
from engine.looks import apply_look_options, mark_cleanup, unmatched_cleanup
from engine.music import MusicAnalysis, analyze_music, cached_analysis
from engine.plan import (
    PlanOptions,
    Source,
    output_size,
    plan_montage,
)
from engine.probe import MediaInfo, probe_media, scan_inputs
from engine.protocol import (
    Event,
    JobSpec,
    frame_rate,
    make_finished,
    make_progress,
    make_stage,
    make_warning,
)
from engine.render import (
    DISK_FULL_ERRNOS,
    check_output_folder,
    render_to_temp,
)
from engine.styles import Style, load_style
from engine.temp_files import remove_stale_temp_files, temp_path
from engine.timeline import META, timeline_rate

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]

CLEANUP_DONE = {"stabilize": "stabilized", "denoise": "denoised"}
# A clip decoding this much less than its header says is named in a warning.
SHORTENED_WARNING_SEC = 0.5

# Share of the whole job each stage takes, for one overall progress figure.
STAGE_WEIGHTS = {
    "probe": 0.02,
    "music": 0.08,
    "clips": 0.18,
    "plan": 0.01,
    "render": 0.69,
    "export": 0.02,
}


class StageReporter:
    """Turns a stage's own fraction into progress events with an overall figure."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.stage = ""
        self.started = time.monotonic()

    def begin(self, stage: str, message: str) -> None:
        if self.stage:
            log.info(
                "Stage %s done in %.1f s", self.stage, time.monotonic() - self.started
            )
        self.stage = stage
        self.started = time.monotonic()
        self.emit(make_stage(stage, message))
        self.progress(0.0)

    def progress(self, fraction: float, eta_sec: float | None = None) -> None:
        event = make_progress(self.stage, fraction, eta_sec)
        event.data["overall"] = round(self._overall(fraction), 4)
        self.emit(event)

    def _overall(self, fraction: float) -> float:
        done = 0.0
        for stage, weight in STAGE_WEIGHTS.items():
            if stage == self.stage:
                return done + weight * fraction
            done += weight
        return done


def run_job(spec: JobSpec, emit: Emit) -> dict[str, Any]:
    """Run the job to its outputs; return the finished event's data.

    Raises:
        EngineError: a subclass naming what failed and what to do.
    """
    allow_cancel()
    output = Path(spec.output).expanduser().absolute()
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
    reporter = StageReporter(emit)
    # Mistakes in the job are reported before any long analysis.
    # The look options are checked (a .cube parsed) before any long analysis.
    apply_look_options(spec, load_style(spec.style))
    director = start_director(spec, load_style(spec.style))
    check_output_folder(output)
    # Every format's: a killed render may have been asked for others than this one.
    remove_stale_temp_files(output)
    infos = probe_stage(spec, output, reporter)
    music = music_stage(spec, reporter)
    sources = clips_stage(infos, reporter)
    chosen = director.outcome(reporter.emit)
    style = apply_look_options(spec, chosen.style)
    timeline = plan_stage(spec, sources, music, style, seed, reporter)
    mark_cleanup(timeline, spec, style)
    outputs = render_stage(timeline, output, spec.export, reporter)
    summary = _summary(timeline, seed, chosen.style, len(sources))
    summary.update(prompt_interpreter=chosen.interpreter, prompt_note=chosen.note)
    event = make_finished(outputs, summary)
    emit(event)
    return event.data


def probe_stage(
    spec: JobSpec, output: Path, reporter: StageReporter
) -> list[MediaInfo]:
    paths, renders = scan_inputs(spec.clips)
    reporter.begin("probe", f"Checking {_clips(len(paths))}")
    _warn_about_renders_left_out(renders, output, reporter)
    for kind, chosen in unmatched_cleanup(spec, paths):
        reporter.emit(make_warning("cleanup", (
            f"{chosen} was chosen to {kind}, but it is none of the clips, nor a "
            f"folder holding one, so nothing is {CLEANUP_DONE[kind]} for it. Check "
            "the path, or add the clip."
        ), chosen))  # fmt: skip
    if not paths:
        folders = [name for name in spec.clips if Path(name).expanduser().is_dir()]
        raise NoUsableClipsError(
            f"{', '.join(folders) or 'The clips'}: no video files or pictures in "
            "there. Add the folder that holds your clips, or the files themselves."
        )
    sources = [*paths, Path(spec.music).expanduser()]
    written_paths = [output, *export_paths(output, spec.export)]
    _check_name_lengths(output, written_paths)
    for written in written_paths:
        if written.is_dir():
            raise OutputError(
                f"{written} is a folder, and the montage writes a file of that name. "
                "Choose another output name, or move the folder.",
                str(written),
            )
        if any(_same_file(written, source) for source in sources):
            raise InvalidJobError(
                f"Writing {written.name} would replace one of the clips or the song; "
                "the engine never overwrites a source. Choose another output name.",
                str(written),
            )
    infos = []
    for number, path in enumerate(paths, start=1):
        try:
            infos.append(probe_media(path))
        except MediaError as error:
            _skip(reporter, error)
        reporter.progress(number / len(paths))
    if not infos:
        raise NoUsableClipsError(
            "None of the clips could be used (see the warnings for each file). "
            "Add video files that play in a video player.",
        )
    return infos


def _warn_about_renders_left_out(
    renders: list[Path], output: Path, reporter: StageReporter
) -> None:
    replaced = [path for path in renders if _same_file(path, output)]
    earlier = [path for path in renders if path not in replaced]
    if earlier:
        names = ", ".join(path.name for path in earlier)
        reporter.emit(make_warning("clip_skipped", (
            f"Left out {names}: a montage rendered here before (its timeline is "
            "beside it), not footage. Name the file on its own to use it as a clip."
        )))  # fmt: skip
    if replaced:
        reporter.emit(make_warning("clip_skipped", (
            f"Left out {output.name}: the montage this job renders again (its "
            "timeline is beside it), not footage; the new render replaces it."
        ), str(output)))  # fmt: skip


def _clips(count: int) -> str:
    return f"{count} clip{'' if count == 1 else 's'}"


def _check_name_lengths(output: Path, written_paths: list[Path]) -> None:
    """Refuse, before any analysis, an output name the folder cannot hold: each
    file is written under a longer hidden name first, then renamed."""
    try:
        limit = os.pathconf(output.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = max(
        len(name.encode())
        for path in written_paths
        for name in (path.name, temp_path(path).name)
    )
    if longest > limit:
        raise OutputError(
            f"The output name {output.name} is too long for its folder: with the "
            f"timeline and the temporary files written beside it, the longest name "
            f"is {longest} bytes, and names there may have at most {limit}. Choose "
            f"a name at least {longest - limit} bytes shorter (an accented letter "
            "takes 2).",
            str(output),
        )


def _same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file, through symlinks and `..` alike."""
    try:
        if first.exists() and second.exists():
            return os.path.samefile(first, second)
        return first.resolve() == second.resolve()
    except OSError:
        return False


def _skip(reporter: StageReporter, error: MediaError) -> None:
    log.warning("Skipping %s: %s", error.path, error.message)
    reporter.emit(make_warning("clip_skipped", error.message, error.path))


def music_stage(spec: JobSpec, reporter: StageReporter) -> MusicAnalysis:
    reporter.begin("music", f"Finding the beat of {Path(spec.music).name}")
    music = analyze_music_isolated(Path(spec.music).expanduser())
    reporter.progress(1.0)
    log.info(
        "Music: %.1f BPM, %d beats, %d downbeats",
        music.tempo_bpm,
        len(music.beats_sec),
        len(music.downbeats_sec),
    )
    return music


def analyze_music_isolated(path: Path) -> MusicAnalysis:
    """Analyse the song in a short-lived child process.

    librosa and numba cost about 220 MB once imported, memory the render should not
    carry: in a child it is returned to the system before rendering starts.
    """
    cached = cached_analysis(path)
    if cached is not None:
        return cached
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        music: MusicAnalysis = pool.apply(analyze_music, (path,))
    return music


def clips_stage(infos: list[MediaInfo], reporter: StageReporter) -> list[Source]:
    reporter.begin("clips", f"Finding the best shots in {_clips(len(infos))}")
    total_sec = sum(info.duration_sec for info in infos) or 1.0
    done_sec = 0.0
    sources = []
    for info in infos:

        def clip_progress(
            fraction: float, base: float = done_sec, info: MediaInfo = info
        ) -> None:
            reporter.progress((base + fraction * info.duration_sec) / total_sec)

        try:
            analysis = analyze_clip(info, progress=clip_progress)
        except MediaError as error:
            _skip(reporter, error)
        else:
            sources.append(Source(_decoded_part(info, analysis, reporter), analysis))
        done_sec += info.duration_sec
    if not sources:
        raise NoUsableClipsError(
            "None of the clips could be decoded (see the warnings for each file). "
            "Add video files that play in a video player."
        )
    return sources


def _decoded_part(
    info: MediaInfo, analysis: ClipAnalysis, reporter: StageReporter
) -> MediaInfo:
    """A clip whose picture stops early (cut short, damaged) is used up to there."""
    if analysis.duration_sec >= info.duration_sec:
        return info
    if info.duration_sec - analysis.duration_sec >= SHORTENED_WARNING_SEC:
        message = (
            f"{Path(info.path).name}: only the first {analysis.duration_sec:.1f} s "
            f"of its {info.duration_sec:.1f} s decode (the file is cut short or "
            "damaged, perhaps a copy that stopped early); the montage uses that "
            "part. Copy it again from the camera or phone to use all of it."
        )
        reporter.emit(make_warning("clip_shortened", message, info.path))
    return replace(info, duration_sec=analysis.duration_sec)


def _still_there(sources: list[Source], reporter: StageReporter) -> list[Source]:
    """The clips still in place; one moved, deleted or unplugged since it was
    analysed is left out with a warning, and the edit is planned without it."""
    present = []
    for source in sources:
        if Path(source.info.path).exists():
            present.append(source)
            continue
        _skip(
            reporter,
            MediaError(
                f"{source.info.path}: the file went away after it was checked "
                "(moved, deleted, or on a drive that was unplugged); the montage is "
                "made without it. Reconnect it and render again to use it.",
                source.info.path,
            ),
        )
    if not present:
        raise NoUsableClipsError(
            "None of the clips is there any more (see the warnings for each file). "
            "Reconnect the drive that holds them, or add them again."
        )
    return present


def plan_stage(
    spec: JobSpec,
    sources: list[Source],
    music: MusicAnalysis,
    style: Style,
    seed: int,
    reporter: StageReporter,
) -> otio.schema.Timeline:
    message = f"Planning the edit ({style.label}, seed {seed})"
    if spec.prompt:
        said = (
            "; ".join(style.changes) or "nothing it recognised; the style is unchanged"
        )
        message += f". The prompt changed: {said}"
    reporter.begin("plan", message)
    warn_about_changed_options(spec, music, reporter.emit)
    if spec.chronological:
        style.chronological = True
    options = PlanOptions(
        fps=frame_rate(spec.fps),
        size=output_size(spec.aspect, spec.quality, spec.size),
        aspect=spec.aspect,
        fit=spec.fit,
        seed=seed,
        duration_sec=spec.duration_sec,
        prompt=spec.prompt,
        quality=spec.quality,
    )
    present = _still_there(sources, reporter)
    timeline = plan_montage(present, music, style, options)
    warn_about_short_clips(present, timeline, reporter.emit)
    timeline.metadata[META]["clip_audio_db"] = spec.clip_audio_db
    _enhance(spec, timeline, reporter)
    reporter.progress(1.0)
    return timeline


def _enhance(
    spec: JobSpec, timeline: otio.schema.Timeline, reporter: StageReporter
) -> None:
    """Reframing and upscaling (engine.reframe, engine.upscale), when asked for."""
    if spec.reframe != "off":
        from engine.reframe import add_follow_paths

        if not any(
            add_follow_paths(timeline, spec.reframe, reporter.progress).values()
        ):
            message = (
                f"Reframe {spec.reframe!r} changed nothing: every shot in the edit "
                f"comes from a clip of the output's {spec.aspect} shape (or a still "
                "picture), so there is no room to move the crop window. It follows "
                "the subject in clips of another shape than the montage's."
            )
            reporter.emit(make_warning("reframe", message))
    if spec.upscale != "off":
        from engine.upscale_plan import prepare_upscale, slow_upscale_warning

        def warn(message: str) -> None:
            reporter.emit(make_warning("upscaler_unavailable", message))

        plan = prepare_upscale(timeline, spec.upscale, warn)
        slow = slow_upscale_warning(plan)
        if slow:
            reporter.emit(make_warning("upscale_time", slow))


def render_stage(
    timeline: otio.schema.Timeline,
    output: Path,
    formats: list[str],
    reporter: StageReporter,
) -> dict[str, str]:
    """Render the MP4, then put the timeline and its exports beside it.

    The exports are written to temporary files first, so that a folder that takes
    the video but not them fails before the long render, and none of the files
    appears unless all are complete.
    """
    exports = build_exports(timeline, output.with_suffix(""), ["otio", *formats])
    report_export_warnings(exports, reporter.emit)
    exports = [export for export in exports if export.error is None]
    staged = StagedFiles()
    try:
        try:
            stage_exports(exports, staged)
        except OutputError as error:
            raise _as_disk_full(error, output) from error
        reporter.begin("render", f"Rendering {output.name}")
        # Staged before it exists: whatever stops the render, even a cancel between
        # two lines here, discard() removes the video's temporary file.
        staged.adopt(temp_path(output), output)
        render_to_temp(timeline, output, reporter.progress)
        warn_about_false_keyframes(CLEAN_STARTS.files(), timeline, reporter.emit)
        # The video and every timeline go into place together, or none does; a
        # cancel from here on lets them.
        too_late_to_cancel()
        names = ", ".join(export.main_path.name for export in exports)
        reporter.begin("export", f"Writing {names}")
        staged.commit()
    finally:
        staged.discard()
    reporter.progress(1.0)
    outputs = {"video": str(output)}
    outputs.update({export.format: str(export.main_path) for export in exports})
    return outputs


def _as_disk_full(error: OutputError, output: Path) -> OutputError:
    """A timeline file that failed for want of space is a full disk, as the video."""
    cause = error.__cause__
    if isinstance(error, DiskFullError) or not (
        isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS
    ):
        return error
    return DiskFullError(
        f"The disk holding {output.parent} is full (or a file size limit was "
        f"reached) while writing {Path(error.path or output).name}. Free some space "
        "or choose another output folder, then render again.",
        error.path,
    )


def _summary(
    timeline: otio.schema.Timeline, seed: int, style: Style, source_count: int
) -> dict[str, Any]:
    meta = timeline.metadata["montage_ai"]
    clips = list(timeline.video_tracks()[0].find_clips())
    return {
        "seed": seed,
        "style": style.name,
        "prompt_changes": list(style.changes),
        "shots": len(clips),
        "sources_used": len({clip.media_reference.target_url for clip in clips}),
        "sources": source_count,
        "duration_sec": float(meta["total_frames"] / timeline_rate(timeline)),
        "tempo_bpm": meta["music"]["tempo_bpm"],
    }


__all__ = ["EngineError", "run_job"]
