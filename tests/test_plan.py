"""Planning: the same inputs and seed give the same edit; styles differ measurably."""

from __future__ import annotations

import statistics
from pathlib import Path

import opentimelineio as otio
import pytest

from engine.analysis import analyze_clip
from engine.music import MusicAnalysis, analyze_music
from engine.plan import PlanOptions, Source, music_window, plan_montage
from engine.probe import probe_media
from engine.prompt import interpret_prompt
from engine.styles import load_style, style_names
from tests.audio_media import write_click_track, write_song
from tests.media import write_marker_clip

FPS = 30


@pytest.fixture(scope="module")
def sources(media_dir: Path) -> list[Source]:
    folder = media_dir / "plan clips"
    folder.mkdir(exist_ok=True)
    found = []
    for number in range(4):
        truth = write_marker_clip(
            folder / f"clip{number}.mp4",
            frames=200,
            fps=25 + 5 * (number % 2),
            cuts=[40 + 10 * number, 120],
        )
        info = probe_media(truth.path)
        found.append(Source(info, analyze_clip(info)))
    return found


@pytest.fixture(scope="module")
def song(media_dir: Path) -> MusicAnalysis:
    path = media_dir / "sections.wav"
    write_song(
        path, bpm=120, sections=[("quiet", 10.0), ("build", 10.0), ("peak", 10.0)]
    )
    return analyze_music(path)


def options(seed: int = 5, duration_sec: float | None = None) -> PlanOptions:
    return PlanOptions(
        fps=FPS, size=(640, 360), aspect="16:9", fit="crop", seed=seed,
        duration_sec=duration_sec,
    )  # fmt: skip


def shot_lengths(timeline: otio.schema.Timeline) -> list[float]:
    return [
        clip.duration().to_seconds() for clip in timeline.video_tracks()[0].find_clips()
    ]


def test_same_inputs_and_seed_give_the_same_timeline(
    sources: list[Source], song: MusicAnalysis
) -> None:
    style = load_style("dynamic")
    first = otio.adapters.write_to_string(
        plan_montage(sources, song, style, options(5))
    )
    again = otio.adapters.write_to_string(
        plan_montage(sources, song, style, options(5))
    )
    other = otio.adapters.write_to_string(
        plan_montage(sources, song, style, options(6))
    )
    assert first == again
    assert first != other


def test_styles_give_measurably_different_edits(
    sources: list[Source], song: MusicAnalysis
) -> None:
    signatures = {}
    for name in style_names():
        timeline = plan_montage(sources, song, load_style(name), options())
        lengths = shot_lengths(timeline)
        transitions = sorted(
            {
                t.name
                for t in timeline.video_tracks()[0]
                if isinstance(t, otio.schema.Transition)
            }
        )
        grade = tuple(sorted(timeline.metadata["montage_ai"]["grade"].items()))
        signatures[name] = (len(lengths), round(statistics.mean(lengths), 2),
                            tuple(transitions), grade)  # fmt: skip
    assert len(set(signatures.values())) == len(signatures)
    assert signatures["mtv"][0] > 2 * signatures["minimalist"][0]
    assert signatures["action"][1] < signatures["documentary"][1]


def test_cutting_follows_the_energy(sources: list[Source], song: MusicAnalysis) -> None:
    timeline = plan_montage(sources, song, load_style("dynamic"), options())
    track = timeline.video_tracks()[0]
    quiet, peak = [], []
    for clip in track.find_clips():
        section = clip.metadata["montage_ai"]["section"]
        length = clip.duration().to_seconds()
        {"quiet": quiet, "peak": peak}.get(section, []).append(length)
    assert quiet and peak
    assert statistics.mean(quiet) > 2 * statistics.mean(peak)


def test_shots_spread_across_sources_without_reuse(
    sources: list[Source], song: MusicAnalysis
) -> None:
    timeline = plan_montage(sources, song, load_style("mtv"), options())
    clips = list(timeline.video_tracks()[0].find_clips())
    picks = [
        (c.media_reference.target_url, c.metadata["montage_ai"]["shot_index"])
        for c in clips
    ]
    total_shots = sum(len(s.analysis.shots) for s in sources)
    first_round = picks[: min(len(picks), total_shots)]
    assert len(set(first_round)) == len(first_round)
    assert len({url for url, _ in picks}) == len(sources)


def test_silent_intro_gets_no_cut(sources: list[Source], media_dir: Path) -> None:
    path = media_dir / "intro.wav"
    clicks = write_click_track(path, bpm=128, duration_sec=14.0, silent_intro_sec=5.0)
    music = analyze_music(path)
    assert music.beats_sec[0] >= 5.0 - 0.02
    timeline = plan_montage(sources, music, load_style("mtv"), options())
    track = timeline.video_tracks()[0]
    starts = [
        track.range_of_child(c).start_time.to_seconds() for c in track.find_clips()
    ]
    assert all(start == 0 or start >= clicks[0] - 1 / FPS for start in starts)


def test_shorter_duration_is_exact_and_ends_on_a_downbeat(song: MusicAnalysis) -> None:
    start_sec, total_frames = music_window(song, FPS, 12.0)
    assert total_frames == 12 * FPS
    end_sec = start_sec + total_frames / FPS
    assert min(abs(end_sec - d) for d in song.downbeats_sec) < 1e-6
    assert 0 <= start_sec < 4 * 60 / song.tempo_bpm + 0.1


def test_prompt_changes_are_reported_in_words() -> None:
    style = interpret_prompt(
        "A slow, warm and vintage trip, in order", load_style("mtv")
    )
    said = " ".join(style.changes)
    assert "holds shots twice as long" in said
    assert "warmer colour" in said
    assert style.chronological
    assert style.beats_per_cut["peak"] == 2
    assert interpret_prompt("", load_style("mtv")).changes == []
    assert interpret_prompt("like hitchcock", load_style("mtv")).name == "hitchcock"


def test_chronological_order_never_replays_footage(
    sources: list[Source], song: MusicAnalysis
) -> None:
    style = load_style("dynamic")
    style.chronological = True
    # 15 s of the song, from 29 s of footage: it never has to run out.
    timeline = plan_montage(sources, song, style, options(duration_sec=15))
    ends: dict[str, float] = {}
    for clip in timeline.video_tracks()[0].find_clips():
        url = clip.media_reference.target_url
        in_sec = clip.metadata["montage_ai"]["in_sec"]
        assert in_sec >= ends.get(url, 0.0) - 1e-6, f"{clip.name} goes back in time"
        ends[url] = in_sec + clip.duration().to_seconds()


@pytest.mark.parametrize("name", ["minimalist", "documentary", "hitchcock"])
def test_long_shots_cut_on_downbeats(
    name: str, sources: list[Source], song: MusicAnalysis
) -> None:
    timeline = plan_montage(sources, song, load_style(name), options())
    track = timeline.video_tracks()[0]
    downbeat_frames = {round(d * FPS) for d in song.downbeats_sec}
    clips = list(track.find_clips())
    for clip in clips[1:]:
        section = clip.metadata["montage_ai"]["section"]
        previous = clips[clips.index(clip) - 1].metadata["montage_ai"]["section"]
        if load_style(name).beats_per_cut[previous] >= 4:
            start = round(track.range_of_child(clip).start_time.rescaled_to(FPS).value)
            assert start in downbeat_frames, f"{clip.name} ({section}) off the downbeat"


def test_no_clip_fills_three_cuts_in_a_row(
    sources: list[Source], song: MusicAnalysis
) -> None:
    # Filming order (documentary) rightly tells one clip's shots together.
    for name in [n for n in style_names() if not load_style(n).chronological]:
        timeline = plan_montage(sources, song, load_style(name), options())
        urls = [
            c.media_reference.target_url
            for c in timeline.video_tracks()[0].find_clips()
        ]
        runs = [urls[i : i + 3] for i in range(len(urls) - 2)]
        assert all(len(set(run)) > 1 for run in runs), name


def source_end_sec(clip: otio.schema.Clip) -> float:
    """Where a clip's range ends in its source, at the speed it plays."""
    speed = next(
        (
            e.time_scalar
            for e in clip.effects
            if isinstance(e, otio.schema.LinearTimeWarp)
        ),
        1.0,
    )
    start = clip.source_range.start_time
    return start.to_seconds() + clip.source_range.duration.to_seconds() * speed


@pytest.fixture(scope="module")
def short_sources(media_dir: Path) -> dict[str, Source]:
    folder = media_dir / "short plan clips"
    folder.mkdir(exist_ok=True)
    found = {}
    for name, frames in (("short", 10), ("one", 1), ("three", 75)):
        truth = write_marker_clip(folder / f"{name}.mp4", frames=frames, fps=25)
        info = probe_media(truth.path)
        found[name] = Source(info, analyze_clip(info))
    return found


def beat_frames(song: MusicAnalysis, timeline: otio.schema.Timeline) -> set[int]:
    start_sec = timeline.metadata["montage_ai"]["music"]["start_sec"]
    return {round((beat - start_sec) * FPS) for beat in song.beats_sec}


def cut_frames(timeline: otio.schema.Timeline) -> list[int]:
    track = timeline.video_tracks()[0]
    return [
        round(track.range_of_child(clip).start_time.rescaled_to(FPS).value)
        for clip in list(track.find_clips())[1:]
    ]


def test_long_shots_cut_on_an_earlier_beat_rather_than_outrun_the_clips(
    short_sources: dict[str, Source], song: MusicAnalysis
) -> None:
    """The documentary style holds shots for bars; with a 3-second clip the
    longest, each shot ends on a beat within it, and none runs past its end."""
    sources = [short_sources[name] for name in ("short", "one", "three")]
    timeline = plan_montage(sources, song, load_style("documentary"), options())
    clips = list(timeline.video_tracks()[0].find_clips())
    assert len(clips) >= 10
    for clip in clips:
        duration_sec = next(
            s.info.duration_sec for s in sources
            if s.info.path == clip.media_reference.target_url
        )  # fmt: skip
        assert source_end_sec(clip) <= duration_sec + 1e-6, clip.name
        assert "filled_slower" not in clip.metadata["montage_ai"], clip.name
    assert set(cut_frames(timeline)) <= beat_frames(song, timeline)


def test_a_clip_shorter_than_a_beat_plays_slower_to_fill_it(
    short_sources: dict[str, Source], song: MusicAnalysis
) -> None:
    source = short_sources["short"]
    timeline = plan_montage([source], song, load_style("documentary"), options())
    clips = list(timeline.video_tracks()[0].find_clips())
    for clip in clips:
        assert source_end_sec(clip) <= source.info.duration_sec + 1e-6, clip.name
        assert clip.metadata["montage_ai"]["filled_slower"], clip.name
    assert set(cut_frames(timeline)) <= beat_frames(song, timeline)
