"""Songs in the formats people choose, for issue #5: codecs, layouts, tempo
changes, cover art; long songs and drum loops, cheap to write."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.audio_media import (
    add_at,
    as_sample_format,
    beat_samples,
    click,
    hihat,
    kick,
    mux_samples,
    pad,
    snare,
)
from tests.media import draw_marker_frame

# Encoder and sample format by suffix. Ogg holds Vorbis (FFmpeg's own encoder),
# as music players write it; .aac is raw ADTS, with no room for a priming count.
_SONG_CODECS = {
    ".mp3": ("libmp3lame", "fltp"),
    ".m4a": ("aac", "fltp"),
    ".aac": ("aac", "fltp"),
    ".flac": ("flac", "s16"),
    ".wav": ("pcm_s16le", "s16"),
    ".ogg": ("vorbis", "fltp"),
    ".opus": ("libopus", "flt"),
}
_SONG_LAYOUTS = {"mono": 1, "stereo": 2, "5.1": 6}
_LFE_CHANNEL = 3
_COVER_SIZE = (96, 96)
_LONG_SONG_CHUNK_SAMPLES = 16384


def write_clicks(
    path: str | Path,
    *,
    tempos: Sequence[tuple[float, float]],
    silent_intro_sec: float = 0.0,
    silent_outro_sec: float = 0.5,
    sample_rate: int = 44100,
    layout: str = "stereo",
    cover_art: bool = False,
    gapless_header: bool = True,
) -> list[float]:
    """Write clicks at each (bpm, seconds) in turn, encoded as the suffix says
    (.mp3 .m4a .aac .flac .wav .ogg .opus); returns the click onset times.

    Every fourth click, from the first, is accented. A 5.1 layout holds the
    clicks in every channel but the LFE. cover_art adds a JPEG as an attached
    picture (MP3, M4A, FLAC), as tagged songs hold. gapless_header=False leaves
    out an MP3's Xing/LAME header, as old encoders do: decoders then cannot skip
    the encoder's priming samples. Opus files are always 48 kHz.
    """
    if Path(path).suffix.lower() == ".opus":
        sample_rate = 48000
    total_sec = silent_intro_sec + sum(sec for _, sec in tempos) + silent_outro_sec
    samples = np.zeros(round(total_sec * sample_rate), dtype=np.float32)
    onsets: list[int] = []
    start_sec = silent_intro_sec
    for bpm, seconds in tempos:
        start, stop = (
            round(start_sec * sample_rate),
            round((start_sec + seconds) * sample_rate),
        )
        onsets += beat_samples(60 * sample_rate / bpm, start, stop)
        start_sec += seconds
    for number, onset in enumerate(onsets):
        add_at(samples, onset, click(sample_rate, number % 4 == 0))

    _write_song_file(
        path,
        samples,
        sample_rate,
        layout,
        cover_art=cover_art,
        gapless_header=gapless_header,
    )
    return [onset / sample_rate for onset in onsets]


def write_long_song(path: str | Path, *, bpm: float, minutes: float) -> list[float]:
    """Write kick, snare and hi-hat for minutes, cheaply: one bar repeated,
    mono at 22.05 kHz (the analysis rate), FLAC or WAV. Returns the kick times."""
    sample_rate = 22050
    bar_samples = round(4 * 60 * sample_rate / bpm)
    bar = np.zeros(bar_samples, dtype=np.float32)
    for beat in range(4):
        onset = round(beat * 60 * sample_rate / bpm)
        add_at(bar, onset, kick(sample_rate))
        add_at(bar, onset + round(30 * sample_rate / bpm), hihat(sample_rate))
        if beat % 2:
            add_at(bar, onset, snare(sample_rate))
    bars = max(1, round(minutes * 60 * sample_rate / bar_samples))

    codec, sample_format = _SONG_CODECS[Path(path).suffix.lower()]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        stream.time_base = Fraction(1, sample_rate)
        song = np.tile(bar, bars)[None, :]
        for start in range(0, song.shape[1], _LONG_SONG_CHUNK_SAMPLES):
            chunk = song[:, start : start + _LONG_SONG_CHUNK_SAMPLES]
            frame = av.AudioFrame.from_ndarray(
                as_sample_format(chunk, sample_format),
                format=sample_format,
                layout="mono",
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return [
        (number * bar_samples + round(beat * 60 * sample_rate / bpm)) / sample_rate
        for number in range(bars)
        for beat in range(4)
    ]


def _write_song_file(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    layout: str,
    *,
    cover_art: bool,
    gapless_header: bool,
) -> None:
    suffix = Path(path).suffix.lower()
    codec, sample_format = _SONG_CODECS[suffix]
    planes = np.tile(samples, (_SONG_LAYOUTS[layout], 1))
    if layout == "5.1":
        planes[_LFE_CHANNEL] = 0
    muxer_options = {} if gapless_header else {"write_xing": "0"}
    encoder_options = {"strict": "experimental"} if codec == "vorbis" else {}
    # FFmpeg's ipod muxer (its pick for .m4a) refuses a picture; mp4 takes it.
    muxer = "mp4" if cover_art and suffix == ".m4a" else None
    with av.open(str(path), "w", format=muxer, options=muxer_options) as container:
        stream = container.add_stream(
            codec, rate=sample_rate, layout=layout, options=encoder_options
        )
        stream.time_base = Fraction(1, sample_rate)
        # NOTE: every stream is added before the first mux (see write_marker_clip).
        cover = _add_cover_stream(container) if cover_art else None
        if cover is not None:
            _mux_cover(container, cover)
        mux_samples(container, stream, planes, sample_format)


def _add_cover_stream(
    container: av.container.OutputContainer,
) -> av.video.stream.VideoStream:
    stream = container.add_stream("mjpeg", rate=1)
    stream.width, stream.height = _COVER_SIZE
    stream.pix_fmt = "yuvj420p"
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _mux_cover(
    container: av.container.OutputContainer, stream: av.video.stream.VideoStream
) -> None:
    picture = av.VideoFrame.from_ndarray(
        draw_marker_frame(0, size=_COVER_SIZE), format="rgb24"
    ).reformat(format="yuvj420p")
    picture.pts = 0
    container.mux(stream.encode(picture))
    container.mux(stream.encode(None))


def write_drums(
    path: str | Path, *, tempos: Sequence[tuple[float, float]], sample_rate: int = 44100
) -> list[float]:
    """Write kick and snare on the beats, hi-hats between and a pad, at each
    (bpm, seconds) in turn, encoded as the suffix says. Returns the kick times."""
    total_samples = round(sum(seconds for _, seconds in tempos) * sample_rate)
    samples = 0.5 * pad(total_samples, sample_rate)
    kicks: list[int] = []
    start_sec = 0.0
    for bpm, seconds in tempos:
        interval = 60 * sample_rate / bpm
        start = round(start_sec * sample_rate)
        stop = round((start_sec + seconds) * sample_rate)
        kicks += beat_samples(interval, start, stop)
        start_sec += seconds
    for number, onset in enumerate(kicks):
        add_at(samples, onset, kick(sample_rate))
        if number % 2:
            add_at(samples, onset, snare(sample_rate))
        following = kicks[number + 1] if number + 1 < len(kicks) else total_samples
        add_at(samples, (onset + following) // 2, hihat(sample_rate))

    np.clip(samples, -0.99, 0.99, out=samples)
    _write_song_file(
        path, samples, sample_rate, "stereo", cover_art=False, gapless_header=True
    )
    return [onset / sample_rate for onset in kicks]
