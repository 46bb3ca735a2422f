"""Music analysis against click tracks and songs whose beats and sections we wrote."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import MusicError
from engine.music import MusicAnalysis, analyze_music, decode_audio_mono
from tests.audio_media import decode_audio, write_click_track, write_song
from tests.input_media import write_empty
from tests.media import write_marker_clip

log = logging.getLogger(__name__)

# A beat counts as on a click within this much.
BEAT_TOLERANCE_SEC = 0.010
MIN_CLICKS_FOUND = 0.9
CLICK_TRACK_SEC = 20.0
EDGE_SILENCE_SEC = 1.0

# bpm -> how the click track is written: each format and channel count once.
CLICK_TRACKS = {
    62: {"suffix": ".wav", "channels": 2, "bed": False},
    90: {"suffix": ".m4a", "channels": 2, "bed": False},
    128: {"suffix": ".flac", "channels": 2, "bed": True},
    174: {"suffix": ".ogg", "channels": 2, "bed": False},
}


@dataclass(frozen=True)
class AnalysedClicks:
    bpm: float
    clicks_sec: list[float]
    analysis: MusicAnalysis


@pytest.fixture(scope="module", params=sorted(CLICK_TRACKS))
def clicks(request: pytest.FixtureRequest, media_dir: Path) -> AnalysedClicks:
    bpm = request.param
    spec = CLICK_TRACKS[bpm]
    path = media_dir / f"clicks-{bpm}{spec['suffix']}"
    clicks_sec = write_click_track(
        path,
        bpm=bpm,
        duration_sec=CLICK_TRACK_SEC,
        silent_intro_sec=EDGE_SILENCE_SEC,
        silent_outro_sec=EDGE_SILENCE_SEC,
        channels=spec["channels"],
        bed=spec["bed"],
    )
    return AnalysedClicks(bpm, clicks_sec, analyze_music(path, use_cache=False))


@pytest.fixture(scope="module")
def song(media_dir: Path) -> MusicAnalysis:
    path = media_dir / "song-quiet-build-peak.m4a"
    write_song(path, bpm=120, sections=[("quiet", 8.0), ("build", 8.0), ("peak", 8.0)])
    return analyze_music(path, use_cache=False)


def _nearest_gaps_sec(times_sec: list[float], targets_sec: list[float]) -> np.ndarray:
    """For each time, the distance to the nearest target."""
    targets = np.asarray(targets_sec)
    return np.array([np.min(np.abs(targets - t)) for t in times_sec])


def _expected_clicks(clicks: AnalysedClicks) -> list[float]:
    """The clicks the beats should land on: every other one at half tempo."""
    if clicks.analysis.tempo_bpm < 0.75 * clicks.bpm:
        offsets = _nearest_gaps_sec(clicks.clicks_sec[:2], clicks.analysis.beats_sec)
        return clicks.clicks_sec[int(np.argmin(offsets)) :: 2]
    return clicks.clicks_sec


# Click tracks.


def test_click_track_tempo_is_the_tapped_one(clicks: AnalysedClicks) -> None:
    tempo_bpm = clicks.analysis.tempo_bpm
    log.info("%s BPM clicks: %.2f BPM", clicks.bpm, tempo_bpm)
    if clicks.bpm == 174:
        assert tempo_bpm == pytest.approx(174, abs=1) or tempo_bpm == pytest.approx(
            87, abs=0.5
        )
    else:
        assert tempo_bpm == pytest.approx(clicks.bpm, abs=1)


def test_every_beat_is_on_a_click(clicks: AnalysedClicks) -> None:
    gaps_sec = _nearest_gaps_sec(clicks.analysis.beats_sec, clicks.clicks_sec)
    log.info("%s BPM clicks: worst beat %.2f ms", clicks.bpm, 1000 * gaps_sec.max())
    assert gaps_sec.max() <= BEAT_TOLERANCE_SEC


def test_beats_find_the_clicks(clicks: AnalysedClicks) -> None:
    expected_sec = _expected_clicks(clicks)
    gaps_sec = _nearest_gaps_sec(expected_sec, clicks.analysis.beats_sec)
    found = float(np.mean(gaps_sec <= BEAT_TOLERANCE_SEC))
    log.info("%s BPM clicks: %.1f%% found", clicks.bpm, 100 * found)
    assert found >= MIN_CLICKS_FOUND


def test_beats_are_sorted_and_inside_the_sound(clicks: AnalysedClicks) -> None:
    analysis = clicks.analysis
    assert analysis.beats_sec == sorted(set(analysis.beats_sec))
    assert analysis.first_sound_sec == pytest.approx(EDGE_SILENCE_SEC, abs=0.03)
    # The bed hums to the outro; a last click rings about 20 ms above silence.
    if CLICK_TRACKS[clicks.bpm]["bed"]:
        last_sound_sec = CLICK_TRACK_SEC - EDGE_SILENCE_SEC
    else:
        last_sound_sec = clicks.clicks_sec[-1]
    assert -0.03 < analysis.last_sound_sec - last_sound_sec < 0.1
    assert analysis.first_sound_sec - 0.01 <= analysis.beats_sec[0]
    assert analysis.beats_sec[-1] <= analysis.last_sound_sec + 0.05


def test_downbeats_fall_on_the_accented_clicks(clicks: AnalysedClicks) -> None:
    analysis = clicks.analysis
    accents_sec = clicks.clicks_sec[::4]
    assert set(analysis.downbeats_sec) <= set(analysis.beats_sec)
    assert len(analysis.downbeats_sec) >= len(analysis.beats_sec) // 4
    gaps_sec = _nearest_gaps_sec(analysis.downbeats_sec, accents_sec)
    assert gaps_sec.max() <= BEAT_TOLERANCE_SEC


def test_silent_intro_has_no_beats(media_dir: Path) -> None:
    path = media_dir / "clicks-silent-intro.wav"
    clicks_sec = write_click_track(
        path, bpm=100, duration_sec=16.0, silent_intro_sec=6.0, silent_outro_sec=3.0
    )
    analysis = analyze_music(path, use_cache=False)

    assert analysis.beats_sec[0] >= 6.0 - 0.010
    assert analysis.beats_sec[-1] <= clicks_sec[-1] + 0.010
    assert analysis.first_sound_sec == pytest.approx(6.0, abs=0.03)
    assert analysis.duration_sec == pytest.approx(16.0, abs=0.01)


@pytest.mark.parametrize("channels", [1, 6])
def test_mono_and_surround_songs(media_dir: Path, channels: int) -> None:
    mono = media_dir / "clicks-mono.wav"
    clicks_sec = write_click_track(mono, bpm=110, duration_sec=12.0, channels=1)
    path = mono
    if channels == 6:
        path = media_dir / "clicks-5.1.wav"
        _write_surround(path, *decode_audio(mono)[:2])
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.channels == channels

    analysis = analyze_music(path, use_cache=False)
    assert analysis.tempo_bpm == pytest.approx(110, abs=1)
    gaps_sec = _nearest_gaps_sec(analysis.beats_sec, clicks_sec)
    assert gaps_sec.max() <= BEAT_TOLERANCE_SEC


def _write_surround(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """A 5.1 WAV with the same sound in every channel but the LFE."""
    planes = np.tile(samples, (6, 1))
    planes[3] = 0
    pcm = np.round(np.clip(planes.T, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate, layout="5.1")
        stream.time_base = Fraction(1, sample_rate)
        for start in range(0, pcm.shape[0], 1024):
            chunk = np.ascontiguousarray(pcm[start : start + 1024].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="5.1")
            frame.sample_rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# Decoding.


@pytest.mark.parametrize("suffix", [".wav", ".m4a", ".ogg"])
def test_decoded_samples_start_at_time_zero(media_dir: Path, suffix: str) -> None:
    path = media_dir / f"clicks-decode{suffix}"
    clicks_sec = write_click_track(
        path, bpm=120, duration_sec=4.0, silent_intro_sec=1.0, channels=1
    )
    samples = decode_audio_mono(path)

    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert len(samples) / 22050 == pytest.approx(4.0, abs=0.03)
    first_loud = int(np.flatnonzero(np.abs(samples) > 0.05)[0])
    assert first_loud / 22050 == pytest.approx(clicks_sec[0], abs=0.002)


def test_damaged_packets_are_skipped(
    media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = media_dir / "clicks-damaged.m4a"
    write_click_track(path, bpm=120, duration_sec=10.0)
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8)
    for fraction in (0.3, 0.4, 0.5, 0.6, 0.7):
        offset = int(len(data) * fraction)
        data[offset : offset + 400] = noise.tobytes()
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="engine.music"):
        samples = decode_audio_mono(path)
    assert len(samples) / 22050 > 7.0
    assert "damaged audio packets" in caplog.text


# Songs: energy and sections.


def test_song_sections_follow_the_loudness(song: MusicAnalysis) -> None:
    kinds = [section.kind for section in song.sections]
    assert kinds == ["quiet", "build", "peak"]
    assert song.sections[1].start_sec == pytest.approx(8.0, abs=1.5)
    assert song.sections[2].start_sec == pytest.approx(16.0, abs=1.5)
    assert song.section_at(2.0) == "quiet"
    assert song.section_at(12.0) == "build"
    assert song.section_at(22.0) == "peak"


def test_sections_cover_the_song(song: MusicAnalysis) -> None:
    assert song.sections[0].start_sec == 0.0
    assert song.sections[-1].end_sec == pytest.approx(song.duration_sec)
    for before, after in zip(song.sections, song.sections[1:], strict=False):
        assert before.end_sec == after.start_sec


def test_energy_is_normalised_and_rises(song: MusicAnalysis) -> None:
    assert len(song.energy) == len(song.energy_times_sec)
    assert song.energy_times_sec == sorted(song.energy_times_sec)
    assert min(song.energy) >= 0.0
    assert max(song.energy) <= 1.0
    assert song.energy_at(3.0) < 0.2 < song.energy_at(12.0) < 0.8 < song.energy_at(20.0)


def test_song_beats_land_on_the_kicks(media_dir: Path, song: MusicAnalysis) -> None:
    kicks_sec = write_song(media_dir / "song-beats.wav", bpm=120)
    gaps_sec = _nearest_gaps_sec(song.beats_sec, kicks_sec)
    assert song.tempo_bpm == pytest.approx(120, abs=1)
    assert gaps_sec.max() <= BEAT_TOLERANCE_SEC


# Cache, progress and the result's round trip.


def test_cache_hit_returns_the_same_result(media_dir: Path) -> None:
    path = media_dir / "clicks-cached.flac"
    write_click_track(path, bpm=96, duration_sec=8.0)
    started = time.perf_counter()
    first = analyze_music(path)
    analysed_sec = time.perf_counter() - started
    started = time.perf_counter()
    second = analyze_music(path)
    cached_sec = time.perf_counter() - started
    log.info("Analysis %.3f s, cache hit %.4f s", analysed_sec, cached_sec)
    assert second == first


def test_cache_hit_does_not_import_librosa(media_dir: Path) -> None:
    path = media_dir / "clicks-cached-subprocess.wav"
    write_click_track(path, bpm=96, duration_sec=6.0)
    analyze_music(path)
    script = (
        "import sys, time; from engine.music import analyze_music; "
        "started = time.perf_counter(); analyze_music(sys.argv[1]); "
        "print(time.perf_counter() - started, 'librosa' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
        timeout=60,
    )
    hit_sec, librosa_imported = result.stdout.split()
    log.info("Cache hit in a new process: %s s", hit_sec)
    assert librosa_imported == "False"


def test_progress_rises_to_one(media_dir: Path) -> None:
    path = media_dir / "clicks-progress.wav"
    write_click_track(path, bpm=120, duration_sec=4.0)
    fractions: list[float] = []
    analyze_music(path, progress=fractions.append, use_cache=False)
    assert len(fractions) >= 3
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_result_round_trips_through_json(song: MusicAnalysis) -> None:
    data = json.loads(json.dumps(song.to_dict()))
    assert MusicAnalysis.from_dict(data) == song


# Files that are not songs.


def _refusal(path: Path) -> str:
    """The message of the MusicError that analysing path raises."""
    with pytest.raises(MusicError) as caught:
        analyze_music(path)
    assert caught.value.path == str(path)
    return caught.value.message


def test_text_file_named_mp3_is_refused(media_dir: Path) -> None:
    path = media_dir / "not-a-song.mp3"
    path.write_text("These are lyrics, not audio.\n", encoding="utf-8")
    message = _refusal(path)
    assert message.startswith("not-a-song.mp3: not audio")
    assert "Choose another song" in message


def test_video_without_sound_is_refused(media_dir: Path) -> None:
    path = media_dir / "silent-video.mp4"
    write_marker_clip(path, frames=10)
    message = _refusal(path)
    assert message.startswith("silent-video.mp4: has no sound")


def test_empty_and_missing_files_are_refused(media_dir: Path) -> None:
    empty = media_dir / "empty.m4a"
    write_empty(empty)
    assert _refusal(empty).startswith("empty.m4a: the file is empty")
    assert "gone.mp3: the song is not there" in _refusal(media_dir / "gone.mp3")


def test_too_short_song_is_refused(media_dir: Path) -> None:
    path = media_dir / "blip.wav"
    write_click_track(path, bpm=120, duration_sec=0.5)
    assert "too short to find a beat" in _refusal(path)


def test_silent_song_is_refused(media_dir: Path) -> None:
    path = media_dir / "silence.wav"
    write_click_track(path, bpm=120, duration_sec=3.0, silent_intro_sec=3.0)
    assert _refusal(path).startswith("silence.wav: is silent")
