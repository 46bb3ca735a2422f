"""A job's look options applied to its style, and the clean-up filters per clip.

Colour (a LUT), transitions, downbeat flashes, slow motion, stabilization and
denoising come from the style; a job can override each, and can ask for
stabilization or denoising for some clips only. Clean-up runs in each source's own
libavfilter graph, in the render pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import opentimelineio as otio

from engine.luts import check_lut
from engine.protocol import JobSpec
from engine.styles import SECTION_KINDS, Style, TransitionRule
from engine.timeline import META

CLEANUP_KINDS = ("stabilize", "denoise")
# The length of a transition a job asks for, where the style has none.
TRANSITION_BEATS = 0.5
# deshake compares each frame with the one before (so each clip keeps its own
# graph); nlmeans is spatial. Both give a frame for each frame pushed, where
# atadenoise and vidstab would hold frames back (and hqdn3d and vidstab are not in
# PyAV's FFmpeg).
CLEANUP_FILTERS: dict[str, tuple[str, str]] = {
    "stabilize": ("deshake", "edge=mirror"),
    "denoise": ("nlmeans", "s=4:p=3:r=5"),
}


def apply_look_options(spec: JobSpec, style: Style) -> Style:
    """The style with the job's look options in place of its own; the LUT checked.

    Raises:
        InvalidJobError: the LUT is not one of ours nor a readable 3D .cube.
    """
    style.grade.lut = check_lut(spec.lut or style.grade.lut)
    if spec.transition:
        beats = 0.0 if spec.transition == "cut" else TRANSITION_BEATS
        for kind in SECTION_KINDS:
            rule = style.transitions[kind]
            kept = rule.beats if rule.kind != "cut" and beats else beats
            style.transitions[kind] = TransitionRule(spec.transition, kept)
    if spec.downbeat_flash is not None:
        style.downbeat_flash = spec.downbeat_flash
    if spec.slow_motion is not None:
        style.speed = {} if spec.slow_motion == 1 else {"quiet": spec.slow_motion}
    if spec.stabilize is not None:
        style.stabilize = spec.stabilize
    if spec.denoise is not None:
        style.denoise = spec.denoise
    return style


def mark_cleanup(timeline: otio.schema.Timeline, spec: JobSpec, style: Style) -> None:
    """Name on each clip of the timeline the clean-up its source gets."""
    chosen = {
        "stabilize": _paths(spec.stabilize_clips),
        "denoise": _paths(spec.denoise_clips),
    }
    for_all = {"stabilize": style.stabilize, "denoise": style.denoise}
    for clip in timeline.video_tracks()[0].find_clips():
        if clip.media_reference.metadata.get(META, {}).get("still"):
            continue
        path = _normal(clip.media_reference.target_url)
        kinds = [
            kind
            for kind in CLEANUP_KINDS
            if for_all[kind] or any(_inside(path, c) for c in chosen[kind])
        ]
        if kinds:
            clip.metadata[META]["cleanup"] = kinds


def unmatched_cleanup(spec: JobSpec, clips: list[Path]) -> list[tuple[str, str]]:
    """The (kind, path) of each clip chosen for a clean-up that is none of the
    job's clips nor a folder holding one: a typo, or a file left out of the job."""
    inputs = [_normal(str(clip)) for clip in clips]
    chosen = {"stabilize": spec.stabilize_clips, "denoise": spec.denoise_clips}
    return [
        (kind, path)
        for kind, paths in chosen.items()
        for path in paths
        if not any(_inside(clip, _normal(path)) for clip in inputs)
    ]


def _paths(paths: list[str]) -> list[str]:
    return [_normal(path) for path in paths]


def _normal(path: str) -> str:
    return os.path.normcase(os.path.realpath(Path(path).expanduser()))


def _inside(path: str, chosen: str) -> bool:
    """Whether path is the chosen clip, or a file in the chosen folder."""
    return path == chosen or path.startswith(chosen.rstrip(os.sep) + os.sep)


def cleanup_of(clip: otio.schema.Clip) -> tuple[str, ...]:
    """The clean-up a timeline clip asks for, in filter order."""
    asked = clip.metadata.get(META, {}).get("cleanup") or []
    return tuple(kind for kind in CLEANUP_KINDS if kind in asked)


def cleanup_filters(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """libavfilter (name, arguments) for clean-up kinds: denoise, then stabilize."""
    order = ("denoise", "stabilize")
    return [CLEANUP_FILTERS[kind] for kind in order if kind in kinds]


def cleaned_clip_names(timeline: otio.schema.Timeline) -> dict[str, list[str]]:
    """File names of the clips that get each clean-up, for export warnings."""
    names: dict[str, list[str]] = {kind: [] for kind in CLEANUP_KINDS}
    for clip in timeline.video_tracks()[0].find_clips():
        name = os.path.basename(clip.media_reference.target_url)
        for kind in cleanup_of(clip):
            if name not in names[kind]:
                names[kind].append(name)
    return names
