"""Songs of every kind people choose (issue #5): formats, layouts, rates, priming,
tempo changes, silent intros, short and very long songs.

Each test writes its song, then checks what the user gets: beats on the clicks, a
render whose cuts land on the clicks it plays, or a message that says what
happened.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from engine.music import MusicAnalysis, analyze_music, decode_audio_mono
from engine.plan import music_window
from engine.protocol import EventKind
from tests.audio_media import decode_audio, find_onsets_sec
from tests.engine_runs import run_engine
from tests.media import ClipTruth, decode_rgb_frames, read_marker, write_marker_clip
from tests.song_media import write_clicks, write_drums, write_long_song

log = logging.getLogger(__name__)

ANALYSIS_SR = 22050
# A beat counts as on a click within this much; decoded samples within less.
BEAT_TOLERANCE_SEC = 0.010
DECODE_TOLERANCE_SEC = 0.001
# Rendered audio against the beats the cuts were planned on (AAC round trip).
SYNC_TOLERANCE_SEC = 0.003
MIN_CLICKS_FOUND = 0.95
FPS = 30
# The music analysis child of the engine, for a 20-minute song: its samples
# (106 MB at 22.05 kHz) and the mel spectrogram with its onset temporaries
# (about 150 MB) over what a one-minute song needs. The time limit is a guard
# against a hang, not a speed target.
LONG_SONG_MINUTES = 20
MAX_ANALYSIS_GROWTH_MB = 350
MAX_ANALYSIS_SEC = 300


def _nearest_gaps_sec(times_sec: list[float], targets_sec: list[float]) -> np.ndarray:
    """For each time, the distance to the nearest target."""
    targets = np.asarray(targets_sec)
    return np.array([np.min(np.abs(targets - t)) for t in times_sec])


def _decoded_clicks_sec(path: Path) -> list[float]:
    """Click onsets in the samples the analysis decodes."""
    return find_onsets_sec(decode_audio_mono(path), ANALYSIS_SR, threshold=0.05)


def _assert_beats_on_clicks(analysis: MusicAnalysis, clicks_sec: list[float]) -> None:
    gaps_sec = _nearest_gaps_sec(analysis.beats_sec, clicks_sec)
    assert gaps_sec.max() <= BEAT_TOLERANCE_SEC, f"a beat {gaps_sec.max():.3f} s off"
    found = _nearest_gaps_sec(clicks_sec, analysis.beats_sec) <= BEAT_TOLERANCE_SEC
    assert found.mean() >= MIN_CLICKS_FOUND, f"{found.mean():.0%} of clicks found"


# Formats, layouts and sample rates.

# name -> write_clicks options: every codec, mono, stereo and 5.1, 44.1 and 48 kHz.
SONG_FORMATS: dict[str, dict[str, Any]] = {
    "cover.mp3": {"cover_art": True, "sample_rate": 44100},
    "mono.mp3": {"layout": "mono", "sample_rate": 48000},
    "song.m4a": {"sample_rate": 48000},
    "surround.m4a": {"layout": "5.1", "sample_rate": 44100},
    "cover.m4a": {"cover_art": True, "sample_rate": 44100},
    "surround.flac": {"layout": "5.1", "sample_rate": 48000},
    "mono.wav": {"layout": "mono", "sample_rate": 48000},
    "vorbis.ogg": {"sample_rate": 44100},
    "surround.opus": {"layout": "5.1"},
    "adts.aac": {"sample_rate": 44100},
}


@pytest.mark.parametrize("name", sorted(SONG_FORMATS))
def test_every_format_gives_beats_on_its_clicks(media_dir: Path, name: str) -> None:
    path = media_dir / f"format-{name}"
    options = SONG_FORMATS[name]
    clicks_sec = write_clicks(
        path, tempos=[(110, 8.0)], silent_intro_sec=0.5, **options
    )
    with av.open(str(path)) as container:
        channels = {"mono": 1, "stereo": 2, "5.1": 6}[options.get("layout", "stereo")]
        assert container.streams.audio[0].codec_context.channels == channels
        assert bool(container.streams.video) == options.get("cover_art", False)

    analysis = analyze_music(path, use_cache=False)
    assert analysis.tempo_bpm == pytest.approx(110, abs=1)
    assert analysis.duration_sec == pytest.approx(9.0, abs=0.05)
    # Where the file declares no priming (raw AAC) its clicks play late in every
    # player, and in our render alike: beats belong on the clicks as decoded.
    decoded_sec = _decoded_clicks_sec(path)
    assert len(decoded_sec) == len(clicks_sec)
    _assert_beats_on_clicks(analysis, decoded_sec)


@pytest.mark.parametrize(
    ("name", "sample_rate"),
    [
        ("gapless.mp3", 44100),
        ("gapless.mp3", 48000),
        ("priming.m4a", 44100),
        ("priming.m4a", 48000),
        ("vorbis.ogg", 48000),
        ("preskip.opus", 48000),
    ],
)
def test_encoder_priming_does_not_shift_the_clicks(
    media_dir: Path, name: str, sample_rate: int
) -> None:
    """MP3 (LAME header), AAC in MP4 (edit list), Vorbis and Opus (pre-skip)
    declare their priming samples: every click decodes where it was written."""
    path = media_dir / f"{sample_rate}-{name}"
    clicks_sec = write_clicks(
        path, tempos=[(120, 6.0)], silent_intro_sec=1.0, sample_rate=sample_rate
    )
    decoded_sec = _decoded_clicks_sec(path)

    assert len(decoded_sec) == len(clicks_sec)
    offsets_sec = np.asarray(decoded_sec) - np.asarray(clicks_sec)
    assert np.abs(offsets_sec).max() <= DECODE_TOLERANCE_SEC


# Tempo changes.


@pytest.mark.parametrize(
    ("name", "tempos"),
    [
        ("clicks-100-140.wav", [(100, 10.0), (140, 10.0)]),
        ("clicks-140-100.m4a", [(140, 10.0), (100, 10.0)]),
        ("drums-100-140.flac", [(100, 12.0), (140, 12.0)]),
    ],
)
def test_beats_follow_a_tempo_change(
    media_dir: Path, name: str, tempos: list[tuple[float, float]]
) -> None:
    path = media_dir / name
    if name.startswith("drums"):
        hits_sec = write_drums(path, tempos=tempos)
    else:
        hits_sec = write_clicks(path, tempos=tempos, silent_intro_sec=1.0)
    analysis = analyze_music(path, use_cache=False)

    _assert_beats_on_clicks(analysis, hits_sec)
    change_sec = hits_sec[0] + tempos[0][1]
    beats_sec = np.asarray(analysis.beats_sec)
    for part, (bpm, _) in enumerate(tempos):
        inside = beats_sec[(beats_sec < change_sec) == (part == 0)]
        period_sec = float(np.median(np.diff(inside)))
        assert period_sec == pytest.approx(60 / bpm, rel=0.02), f"part {part}"


# What a render does with the song: cuts on the clicks it plays, in sync.


@pytest.fixture(scope="module")
def clips(media_dir: Path) -> list[ClipTruth]:
    folder = media_dir / "music input clips"
    folder.mkdir(exist_ok=True)
    return [
        write_marker_clip(
            folder / f"clip{number}.mp4", frames=150, fps=FPS, cuts=[40 + 20 * number]
        )
        for number in range(2)
    ]


@dataclass(frozen=True)
class Render:
    """What one engine run gave: its events, timeline, and rendered sound."""

    events: list[Any]
    timeline: otio.schema.Timeline
    duration_sec: float
    clicks_sec: list[float]
    markers: list[int | None]

    @property
    def start_sec(self) -> float:
        return float(self.timeline.metadata["montage_ai"]["music"]["start_sec"])

    @property
    def cut_frames(self) -> list[int]:
        track = self.timeline.video_tracks()[0]
        starts = [
            round(track.range_of_child(clip).start_time.rescaled_to(FPS).value)
            for clip in track.find_clips()
        ]
        return starts[1:]

    @property
    def beats_sec(self) -> list[float]:
        """The song times of the beats the edit was planned on."""
        markers = self.timeline.tracks.markers
        return [float(marker.metadata["montage_ai"]["sec"]) for marker in markers]

    def named_index(self, frame: int) -> int:
        """The source frame the timeline shows at output frame `frame` (the
        clips run at FPS from 0, at normal speed)."""
        track = self.timeline.video_tracks()[0]
        for clip in track.find_clips():
            span = track.range_of_child(clip)
            start = round(span.start_time.rescaled_to(FPS).value)
            if start <= frame < start + round(span.duration.rescaled_to(FPS).value):
                return round(clip.source_range.start_time.rescaled_to(FPS).value) + (
                    frame - start
                )
        raise AssertionError(f"no clip at output frame {frame}")

    def warnings(self, code: str) -> list[str]:
        return [
            event.data["message"]
            for event in self.events
            if event.kind is EventKind.WARNING and event.data["code"] == code
        ]


def _render(song: Path, clips: list[ClipTruth], folder: Path, **options: Any) -> Render:
    out = folder / "montage.mp4"
    job = {
        "clips": [str(truth.path) for truth in clips],
        "music": str(song),
        "output": str(out),
        "style": "action",
        "quality": "preview",
        "size": [160, 90],
        "fps": FPS,
        "seed": 2,
        **options,
    }
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr
    samples, sample_rate, _ = decode_audio(out)
    return Render(
        events=events,
        timeline=otio.adapters.read_from_file(str(out.with_suffix(".otio"))),
        duration_sec=len(samples) / sample_rate,
        clicks_sec=find_onsets_sec(samples, sample_rate, threshold=0.1),
        markers=[read_marker(rgb) for _, rgb in decode_rgb_frames(out)],
    )


def _assert_cuts_on_heard_clicks(render: Render) -> None:
    """Every cut is within a frame of a click the render plays, the frames on
    either side are those the timeline names, and every click plays where the
    beats were found."""
    assert len(render.cut_frames) >= 3
    for frame in render.cut_frames:
        gap_sec = min(abs(frame / FPS - click) for click in render.clicks_sec)
        assert gap_sec <= 1 / FPS, f"cut at frame {frame} is {gap_sec:.3f} s off"
        shown = render.markers[frame - 1], render.markers[frame]
        named = render.named_index(frame - 1), render.named_index(frame)
        assert shown == named, f"at the cut at frame {frame}"
    song_clicks_sec = [click + render.start_sec for click in render.clicks_sec]
    gaps_sec = _nearest_gaps_sec(song_clicks_sec, render.beats_sec)
    assert gaps_sec.max() <= SYNC_TOLERANCE_SEC, f"sound {gaps_sec.max():.3f} s off"


def test_mp3_with_cover_art_and_a_long_silent_intro(
    clips: list[ClipTruth], tmp_path: Path
) -> None:
    """The picture stream of the cover is not the song; the 32 s of silence
    before the first click are left out, so the montage opens on the music."""
    song = tmp_path / "cover and intro.mp3"
    clicks_sec = write_clicks(
        song, tempos=[(120, 8.0)], silent_intro_sec=32.0, cover_art=True
    )
    render = _render(song, clips, tmp_path)

    assert render.start_sec == pytest.approx(clicks_sec[0], abs=0.03)
    assert render.clicks_sec[0] < 0.05
    assert len(render.clicks_sec) == len(clicks_sec)
    assert render.duration_sec == pytest.approx(8.5, abs=0.05)
    assert render.warnings("duration") == []
    assert render.warnings("song_from_video") == []
    _assert_cuts_on_heard_clicks(render)


def _as_music_video(song: Path, video: Path, seconds: float) -> None:
    """The song's own packets beside a moving picture, as a downloaded music
    video holds them."""
    with av.open(str(song)) as source, av.open(str(video), "w") as target:
        picture = target.add_stream("libx264", rate=10)
        picture.width, picture.height, picture.pix_fmt = 64, 36, "yuv420p"
        sound = target.add_stream_from_template(source.streams.audio[0])
        for index in range(round(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(
                np.full((36, 64, 3), index * 3 % 256, dtype=np.uint8), format="rgb24"
            )
            frame.pts = index
            target.mux(picture.encode(frame))
        target.mux(picture.encode(None))
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = sound
                target.mux(packet)


def test_a_video_chosen_as_the_song_gives_its_sound_and_says_so(
    clips: list[ClipTruth], tmp_path: Path
) -> None:
    song = tmp_path / "clicks.m4a"
    write_clicks(song, tempos=[(120, 6.0)])
    video = tmp_path / "music video.mp4"
    _as_music_video(song, video, seconds=6.5)
    render = _render(video, clips, tmp_path)

    [message] = render.warnings("song_from_video")
    assert message.startswith("music video.mp4 is a video: its sound is the montage")
    assert "add it to the clips" in message
    assert render.duration_sec == pytest.approx(6.5, abs=0.06)
    _assert_cuts_on_heard_clicks(render)


def test_a_loud_surround_song_folds_down_without_clipping(
    clips: list[ClipTruth], tmp_path: Path
) -> None:
    """FFmpeg's fold-down adds the centre and surrounds to each side: clicks in
    five channels reached 2.4 times full scale before it was scaled."""
    song = tmp_path / "surround.flac"
    write_clicks(song, tempos=[(120, 6.0)], layout="5.1", sample_rate=48000)
    render = _render(song, clips, tmp_path)

    samples, _, _ = decode_audio(tmp_path / "montage.mp4")
    assert 0.2 < float(np.abs(samples).max()) <= 1.0
    _assert_cuts_on_heard_clicks(render)


def test_mp3_without_a_gapless_header_stays_in_sync(
    clips: list[ClipTruth], tmp_path: Path
) -> None:
    """An MP3 without its LAME header decodes with the encoder's priming (25 ms)
    in front, in every player: the beats, the cuts and the sound all keep it."""
    song = tmp_path / "old encoder.mp3"
    write_clicks(
        song, tempos=[(128, 7.0)], layout="mono", sample_rate=48000,
        gapless_header=False,
    )  # fmt: skip
    render = _render(song, clips, tmp_path)

    assert render.duration_sec == pytest.approx(7.5, abs=0.06)
    _assert_cuts_on_heard_clicks(render)


def test_song_shorter_than_asked_ends_the_montage_and_says_so(
    clips: list[ClipTruth], tmp_path: Path
) -> None:
    """A 15-second song for a 30-second montage: the montage is 15 s, and the
    warning names the song, both lengths and what to do."""
    song = tmp_path / "short song.m4a"
    write_clicks(song, tempos=[(120, 14.5)])
    render = _render(song, clips, tmp_path, duration_sec=30)

    assert render.duration_sec == pytest.approx(15.0, abs=0.05)
    [message] = render.warnings("duration")
    assert message.startswith("short song.m4a has 15.0 s of music")
    assert "less than the 30 s asked" in message
    assert "the montage ends with the song and lasts 15.0 s" in message
    assert "not looped" in message
    assert "Choose a longer song" in message
    _assert_cuts_on_heard_clicks(render)


@pytest.mark.slow
def test_sound_and_picture_stay_in_sync_to_the_end_of_a_long_render(
    tmp_path: Path,
) -> None:
    """Five minutes of AAC song under 9000 frames: the last cuts still fall on
    the clicks heard with them, and sound and picture end together."""
    long_clips = [
        # Shots at other frames in each, so that no two clips look alike.
        write_marker_clip(
            tmp_path / f"long{number}.mp4",
            frames=1200 + 60 * number,
            fps=FPS,
            cuts=[200 + 97 * number, 650 + 61 * number],
        )
        for number in range(4)
    ]
    song = tmp_path / "five minutes.m4a"
    write_clicks(song, tempos=[(120, 300.0)])
    render = _render(song, long_clips, tmp_path)

    frames = len(render.markers)
    assert frames >= 295 * FPS
    assert abs(render.duration_sec - frames / FPS) <= 1 / FPS
    assert render.cut_frames[-1] / FPS > 280, "no cut near the end to measure"
    _assert_cuts_on_heard_clicks(render)


def test_shorter_montage_of_a_song_with_a_silent_intro_starts_on_its_music(
    media_dir: Path,
) -> None:
    path = media_dir / "intro-then-clicks.flac"
    clicks_sec = write_clicks(path, tempos=[(120, 12.0)], silent_intro_sec=31.0)
    music = analyze_music(path, use_cache=False)

    start_sec, total_frames = music_window(music, FPS, 6.0)
    assert total_frames == 6 * FPS
    assert clicks_sec[0] - 0.03 <= start_sec <= clicks_sec[0] + 2.0 + 1e-6
    end_sec = start_sec + total_frames / FPS
    assert min(abs(end_sec - d) for d in music.downbeats_sec) < 1e-6

    whole_start_sec, whole_frames = music_window(music, FPS, None)
    assert whole_start_sec == pytest.approx(clicks_sec[0], abs=0.03)
    assert whole_frames == pytest.approx((music.duration_sec - 31.0) * FPS, abs=2)


# A very long song: bounded memory.


@pytest.mark.slow
def test_twenty_minute_song_is_analysed_in_bounded_memory(media_dir: Path) -> None:
    short_path = media_dir / "one minute.flac"
    write_long_song(short_path, bpm=120, minutes=1)
    path = media_dir / "twenty minutes.flac"
    kicks_sec = write_long_song(path, bpm=120, minutes=LONG_SONG_MINUTES)
    # The engine analyses the song in a child process, as here. The one-minute
    # song first loads librosa and its libraries, a fixed cost of about 300 MB.
    script = (
        "import resource, sys; from engine.music import analyze_music; "
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "analyze_music(sys.argv[1], use_cache=False); before = peak(); "
        "music = analyze_music(sys.argv[2], use_cache=False); "
        "print(before, peak(), music.tempo_bpm, len(music.beats_sec))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(short_path), str(path)],
        capture_output=True,
        text=True,
        timeout=MAX_ANALYSIS_SEC,
    )
    assert result.returncode == 0, result.stderr
    before_kb, peak_kb, tempo_bpm, beat_count = result.stdout.split()
    growth_mb = (int(peak_kb) - int(before_kb)) / 1024
    log.info("20-minute song: peak RSS %.0f MB over a 1-minute one", growth_mb)

    assert growth_mb < MAX_ANALYSIS_GROWTH_MB
    assert float(tempo_bpm) == pytest.approx(120, abs=0.5)
    assert int(beat_count) == pytest.approx(len(kicks_sec), rel=0.01)
