"""The clips' own sound under the music: its level, its timing, no click at joins.

The clips carry sweeping tones above the music's band, so the tone's frequency at
any output moment tells which source time is heard, and its level is measured
apart from the music.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from engine.clip_audio import JOIN_FADE_SEC, ShotSound, ShotSoundReader, shot_sounds
from engine.placements import ClipPlacement, Join, read_placements
from engine.protocol import JobSpec, JobSpecError
from engine.timeline import timeline_rate
from tests.audio_media import decode_audio
from tests.engine_runs import run_engine
from tests.input_media import write_truncated_copy
from tests.media import ClipTruth, write_marker_clip

SAMPLE_RATE = 48000
TONE_AMPLITUDE = 0.1  # what write_marker_clip writes
LEVEL_DB = -12.0
# The clip tones sweep inside this band; the music has nothing in it.
TONE_BAND_HZ = (2800.0, 6500.0)
# A join clicks when the waveform jumps: energy above the tones and the music.
CLICK_BAND_HZ = (7000.0, 20000.0)
CLICK_WINDOW_SEC = 0.01
CLICK_THRESHOLD_DB = -75.0
SPECS: dict[str, dict[str, Any]] = {
    "a.mp4": {"frames": 100, "fps": 25, "tone_hz": (3000.0, 4000.0)},
    # Its picture starts 0.5 s after its sound, as some cameras write.
    "b.mp4": {"frames": 120, "fps": 30, "tone_hz": (5000.0, 6000.0), "start_sec": 0.5},
    "silent.mp4": {"frames": 100, "fps": 25},
}


def write_soft_song(path: Path, *, bpm: float, duration_sec: float) -> None:
    """Beats of an 800 Hz tone with a 2 ms rise: no energy in the click band."""
    samples = np.zeros(round(duration_sec * SAMPLE_RATE), dtype=np.float32)
    t_sec = np.arange(round(0.06 * SAMPLE_RATE)) / SAMPLE_RATE
    rise = np.clip(t_sec / 0.002, 0.0, 1.0)
    burst = 0.6 * rise * np.exp(-t_sec / 0.015) * np.sin(2 * np.pi * 800 * t_sec)
    for onset_sec in np.arange(0.0, duration_sec, 60 / bpm):
        onset = round(onset_sec * SAMPLE_RATE)
        end = min(samples.size, onset + burst.size)
        samples[onset:end] += burst[: end - onset]
    write_stereo(path, samples)


def write_stereo(path: Path, samples: np.ndarray) -> None:
    codec = "aac" if path.suffix == ".mp4" else "pcm_s16le"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=SAMPLE_RATE, layout="stereo")
        if codec == "aac":
            stream.bit_rate = 192_000
        for start in range(0, samples.size, 1024):
            chunk = np.tile(samples[start : start + 1024], (2, 1))
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk, dtype=np.float32),
                format="fltp",
                layout="stereo",
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def media(media_dir: Path) -> dict[str, ClipTruth]:
    folder = media_dir / "clip sound"
    folder.mkdir(exist_ok=True)
    write_soft_song(folder / "song.wav", bpm=120, duration_sec=7.0)
    return {
        name: write_marker_clip(
            folder / name, size=(160, 90), audio="tone_hz" in spec, **spec
        )
        for name, spec in SPECS.items()
    }


def render(
    media: dict[str, ClipTruth], folder: Path, level_db: float | None, prompt: str
) -> tuple[np.ndarray, otio.schema.Timeline, list[Any]]:
    """Render with or without the clips' sound: (mono samples, timeline, events)."""
    output = folder / f"montage {level_db} {prompt}.mp4"
    job = {
        "clips": [str(truth.path) for truth in media.values()],
        "music": str(next(iter(media.values())).path.parent / "song.wav"),
        "output": str(output),
        "quality": "preview",
        "size": [160, 90],
        "seed": 5,
        "prompt": prompt,
        "clip_audio_db": level_db,
        "export": ["edl"],
    }
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr
    samples, rate, _ = decode_audio(output)
    assert rate == SAMPLE_RATE
    timeline = otio.adapters.read_from_file(str(output.with_suffix(".otio")))
    return samples, timeline, events


@pytest.fixture(scope="module", params=["", "smooth"], ids=["cuts", "crossfades"])
def renders(
    request: pytest.FixtureRequest,
    media: dict[str, ClipTruth],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("clip sound renders")
    on = render(media, folder, LEVEL_DB, request.param)
    off = render(media, folder, None, request.param)
    return {"on": on, "off": off}


def band(samples: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    spectrum = np.fft.rfft(samples)
    hz = np.fft.rfftfreq(samples.size, 1 / SAMPLE_RATE)
    spectrum[(hz < low_hz) | (hz > high_hz)] = 0
    return np.fft.irfft(spectrum, samples.size)


def level_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-12))


def shot_interiors(
    timeline: otio.schema.Timeline, margin_sec: float = 0.1
) -> list[tuple[ClipPlacement, slice]]:
    """Each shot's samples away from its joins and their transitions."""
    fps = timeline_rate(timeline)
    placements, _ = read_placements(timeline)
    interiors = []
    for placement in placements:
        first = float(placement.record_start / fps) + margin_sec
        last = float(placement.record_end / fps) - margin_sec
        if last - first >= 0.05:
            interiors.append(
                (
                    placement,
                    slice(round(first * SAMPLE_RATE), round(last * SAMPLE_RATE)),
                )
            )
    return interiors


def test_clip_sound_plays_at_its_level_under_the_music(
    renders: dict[str, Any],
) -> None:
    expected_db = level_db(np.full(1000, TONE_AMPLITUDE / np.sqrt(2))) + LEVEL_DB
    for which, (samples, timeline, _) in renders.items():
        tone = band(samples, *TONE_BAND_HZ)
        for placement, interior in shot_interiors(timeline):
            measured_db = level_db(tone[interior])
            if which == "off" or Path(placement.path).name == "silent.mp4":
                assert measured_db < -70, (which, placement.path, measured_db)
            else:
                assert abs(measured_db - expected_db) < 1.5, (
                    placement.path,
                    measured_db,
                )


def test_clip_sound_is_the_source_time_the_picture_shows(
    renders: dict[str, Any], media: dict[str, ClipTruth]
) -> None:
    samples, timeline, _ = renders["on"]
    fps = timeline_rate(timeline)
    window = np.hanning(4096)
    checked = 0
    for placement, interior in shot_interiors(timeline):
        truth = media[Path(placement.path).name]
        if not truth.has_audio:
            continue
        middle = (interior.start + interior.stop) // 2
        spectrum = np.abs(np.fft.rfft(samples[middle - 2048 : middle + 2048] * window))
        hz = np.fft.rfftfreq(4096, 1 / SAMPLE_RATE)
        in_band = (hz > TONE_BAND_HZ[0]) & (hz < TONE_BAND_HZ[1])
        heard_hz = float(hz[in_band][np.argmax(spectrum[in_band])])
        # The tone sweeps linearly from the file's 0 s to the picture's end.
        low_hz, high_hz = SPECS[truth.path.name]["tone_hz"]
        heard_sec = (heard_hz - low_hz) / (high_hz - low_hz) * truth.end_sec
        shown_sec = placement.source_sec(Fraction(middle, SAMPLE_RATE) * fps, fps)
        assert abs(heard_sec - shown_sec) < 0.05, (placement.path, heard_sec, shown_sec)
        checked += 1
    assert checked >= 3


def click_level_db(samples: np.ndarray, at_sec: float) -> float:
    high = band(samples, *CLICK_BAND_HZ)
    half = round(CLICK_WINDOW_SEC * SAMPLE_RATE)
    centre = round(at_sec * SAMPLE_RATE)
    return level_db(high[max(0, centre - half) : centre + half])


def test_no_click_at_any_join(renders: dict[str, Any], tmp_path: Path) -> None:
    # The detector hears a hard cut between the two tones at the same level.
    cut = round(0.5 * SAMPLE_RATE)
    gain = TONE_AMPLITUDE * 10 ** (LEVEL_DB / 20)
    t_sec = np.arange(2 * cut) / SAMPLE_RATE
    hard = np.where(
        t_sec < 0.5,
        gain * np.sin(2 * np.pi * 3300 * t_sec),
        gain * np.sin(2 * np.pi * 5500 * t_sec + 1.0),
    ).astype(np.float32)
    write_stereo(tmp_path / "hard cut.mp4", hard)
    control, _, _ = decode_audio(tmp_path / "hard cut.mp4")
    assert click_level_db(control, 0.5) > CLICK_THRESHOLD_DB + 5

    samples, timeline, _ = renders["on"]
    fps = timeline_rate(timeline)
    placements, _ = read_placements(timeline)
    for placement in placements[1:]:
        at_sec = float(placement.record_start / fps)
        assert click_level_db(samples, at_sec) < CLICK_THRESHOLD_DB, at_sec


def test_exports_say_the_clip_sound_is_not_in_them(renders: dict[str, Any]) -> None:
    def notes(events: list[Any]) -> list[str]:
        return [
            event.data["message"]
            for event in events
            if event.data.get("code") == "export_limit"
            and "clips' own sound" in event.data["message"]
        ]

    assert len(notes(renders["on"][2])) == 2  # the .otio and the .edl
    assert "12 dB under" in notes(renders["on"][2])[0]
    assert notes(renders["off"][2]) == []
    assert renders["on"][1].metadata["montage_ai"]["clip_audio_db"] == LEVEL_DB


def placement(record_start: int, record_end: int) -> ClipPlacement:
    return ClipPlacement(
        path="/clip.mp4",
        record_start=record_start,
        record_end=record_end,
        source_in_sec=1.0,
        rate=Fraction(25),
        start_sec=0.0,
        rotation=0,
        sample_aspect=(1, 1),
    )


def test_fades_follow_each_kind_of_join() -> None:
    fps = Fraction(25)
    placements = [placement(0, 50), placement(50, 100), placement(100, 150)]
    joins = [Join(0, 50, "crossfade", 5, 5), Join(1, 100, "dip_black", 4, 6)]
    first, second, third = shot_sounds(placements, joins, fps, SAMPLE_RATE)
    per_frame = SAMPLE_RATE // 25
    shortest = round(JOIN_FADE_SEC * SAMPLE_RATE)
    assert (first.start_sample, first.fade_in_samples) == (0, shortest)
    # A crossfade: both sounds play through its whole window, fading across it.
    assert first.end_sample == 55 * per_frame
    assert first.fade_out_samples == second.fade_in_samples == 10 * per_frame
    assert second.start_sample == 45 * per_frame
    assert second.source_start_sec == pytest.approx(1.0 - 5 / 25)
    # A dip: each sound fades with its own picture, out to the colour and back.
    assert second.end_sample == third.start_sample == 100 * per_frame
    assert (second.fade_out_samples, third.fade_in_samples) == (
        4 * per_frame,
        6 * per_frame,
    )


@pytest.mark.parametrize("bad", [3.0, -61.0, "loud", True])
def test_a_level_out_of_range_is_refused(bad: Any) -> None:
    with pytest.raises(JobSpecError, match="clip"):
        JobSpec(clips=["/a.mp4"], music="/s.wav", output="/o.mp4", clip_audio_db=bad)


def test_the_level_is_stored_in_the_job_and_set_by_the_cli() -> None:
    from engine.cli import build_parser

    args = build_parser().parse_args(
        ["render", "a.mp4", "--music", "s.wav", "-o", "o.mp4", "--clip-audio"]
    )
    assert args.clip_audio == -12.0
    args = build_parser().parse_args(
        ["render", "a.mp4", "--music", "s.wav", "-o", "o.mp4", "--clip-audio", "18"]
    )
    spec = JobSpec(clips=["/a.mp4"], music="/s.wav", output="/o.mp4")
    spec.clip_audio_db = args.clip_audio
    assert JobSpec.from_json(spec.to_json()).clip_audio_db == -18.0


def test_a_clip_after_the_clip_sound_option_is_a_clip_not_its_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import parse_arguments

    clip = tmp_path / "a.mp4"
    clip.touch()
    rest = ["--music", "s.wav", "-o", "o.mp4"]
    args = parse_arguments(["render", "--clip-audio", str(clip), "b.mp4", *rest])
    assert args.clip_audio == -12.0 and args.clips == [str(clip), "b.mp4"]
    args = parse_arguments(["render", "--clip-audio", "-6", str(clip), *rest])
    assert args.clip_audio == -6.0 and args.clips == [str(clip)]
    # A mistyped level is no file: it stays the level, and is refused as one.
    with pytest.raises(SystemExit):
        parse_arguments(["render", "--clip-audio", "6db", str(clip), *rest])
    assert "'6db' is not a level in dB" in capsys.readouterr().err


def test_a_clip_cut_short_goes_quiet_where_its_sound_ends(tmp_path: Path) -> None:
    write_marker_clip(tmp_path / "whole.mkv", frames=100, fps=25, audio=True)
    size = (tmp_path / "whole.mkv").stat().st_size
    write_truncated_copy(
        tmp_path / "whole.mkv", tmp_path / "short.mkv", keep_bytes=size // 2
    )
    sound = ShotSound(str(tmp_path / "short.mkv"), 0, 4 * SAMPLE_RATE, 720, 720, 0.0)
    reader = ShotSoundReader(sound, SAMPLE_RATE)

    blocks = [reader.read(start, start + 4800) for start in range(0, 192_000, 4800)]
    reader.close()

    tone_db = level_db(np.full(10, TONE_AMPLITUDE / np.sqrt(2)))
    assert level_db(blocks[5][0]) == pytest.approx(tone_db, abs=1)
    assert level_db(blocks[-1][0]) < -100
