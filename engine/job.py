"""Run one job: probe, analyse the music and the clips, plan, render, export."""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import opentimelineio as otio

from engine.analysis import analyze_clip
from engine.errors import (
    EngineError,
    InvalidJobError,
    MediaError,
    NoUsableClipsError,
    OutputError,
)
from engine.export import (
    EXPORT_LIMIT,
    StagedFiles,
    build_exports,
    export_paths,
    stage_exports,
)
from engine.music import MusicAnalysis, analyze_music, cached_analysis
from engine.plan import (
    PlanOptions,
    Source,
    output_size,
    plan_montage,
    timeline_rate,
)
from engine.probe import MediaInfo, expand_inputs, probe_media
from engine.prompt import interpret_prompt
from engine.protocol import (
    Event,
    JobSpec,
    frame_rate,
    make_finished,
    make_progress,
    make_stage,
    make_warning,
)
from engine.render import check_output_folder, render_timeline
from engine.styles import Style, load_style

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]

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
    output = Path(spec.output).expanduser().absolute()
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
    reporter = StageReporter(emit)
    # Mistakes in the job are reported before any long analysis.
    style = interpret_prompt(spec.prompt, load_style(spec.style))
    check_output_folder(output)
    infos = probe_stage(spec, output, reporter)
    music = music_stage(spec, reporter)
    sources = clips_stage(infos, reporter)
    timeline = plan_stage(spec, sources, music, style, seed, reporter)
    outputs = render_stage(timeline, output, spec.export, reporter)
    summary = _summary(timeline, seed, style, len(sources))
    event = make_finished(outputs, summary)
    emit(event)
    return event.data


def probe_stage(
    spec: JobSpec, output: Path, reporter: StageReporter
) -> list[MediaInfo]:
    paths = expand_inputs(spec.clips)
    reporter.begin("probe", f"Checking {len(paths)} clip(s)")
    sources = [*paths, Path(spec.music).expanduser()]
    for written in (output, *export_paths(output, spec.export)):
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
    reporter.begin("clips", f"Finding the best shots in {len(infos)} clip(s)")
    total_sec = sum(info.duration_sec for info in infos) or 1.0
    done_sec = 0.0
    sources = []
    for info in infos:

        def clip_progress(
            fraction: float, base: float = done_sec, info: MediaInfo = info
        ) -> None:
            reporter.progress((base + fraction * info.duration_sec) / total_sec)

        try:
            sources.append(Source(info, analyze_clip(info, progress=clip_progress)))
        except MediaError as error:
            _skip(reporter, error)
        done_sec += info.duration_sec
    if not sources:
        raise NoUsableClipsError(
            "None of the clips could be decoded (see the warnings for each file). "
            "Add video files that play in a video player."
        )
    return sources


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
    _warn_about_changed_options(spec, music, reporter)
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
    timeline = plan_montage(sources, music, style, options)
    reporter.progress(1.0)
    return timeline


def _warn_about_changed_options(
    spec: JobSpec, music: MusicAnalysis, reporter: StageReporter
) -> None:
    """Say so when the job cannot be done exactly as asked."""
    if spec.duration_sec is not None and spec.duration_sec > music.duration_sec + 0.05:
        reporter.emit(
            make_warning(
                "duration",
                f"The song lasts {music.duration_sec:.1f} s, less than the "
                f"{spec.duration_sec:g} s asked: the montage ends with the song.",
            )
        )  # TODO(#5) offer to loop the song instead.
    if spec.size is None:
        return
    width, height = spec.size
    shape = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}[spec.aspect]
    if abs(width / height - shape) > 0.01 * shape:
        reporter.emit(
            make_warning(
                "size",
                f"The size {width}x{height} is not {spec.aspect}: the size was used "
                "and the aspect ignored.",
            )
        )
    if width % 2 or height % 2:
        reporter.emit(
            make_warning(
                "size",
                f"H.264 needs even sizes: {width}x{height} became "
                f"{width // 2 * 2}x{height // 2 * 2}.",
            )
        )


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
    for export in exports:
        for warning in export.warnings:
            reporter.emit(make_warning(EXPORT_LIMIT, warning, str(export.main_path)))
    staged = StagedFiles()
    try:
        stage_exports(exports, staged)
        reporter.begin("render", f"Rendering {output.name}")
        render_timeline(timeline, output, reporter.progress)
        names = ", ".join(export.main_path.name for export in exports)
        reporter.begin("export", f"Writing {names}")
        try:
            staged.commit()
        except OutputError:
            output.unlink(missing_ok=True)
            raise
    finally:
        staged.discard()
    reporter.progress(1.0)
    outputs = {"video": str(output)}
    outputs.update({export.format: str(export.main_path) for export in exports})
    return outputs


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
