"""The render's plumbing: frames decoded ahead in a thread, sources kept open
between shots so that each is decoded on rather than sought again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from engine import frames
from engine.compose import compose_frames
from engine.frames import FrameTransform
from engine.placements import ClipPlacement
from engine.prefetch import Prefetcher
from tests.media import ClipTruth, read_marker, write_marker_clip

FPS = Fraction(25)


def _numbers(count: int, fail_at: int | None, cleaned: list[str]) -> Iterator[int]:
    try:
        for number in range(count):
            if number == fail_at:
                raise ValueError(f"broken at {number}")
            yield number
    finally:
        cleaned.append(threading.current_thread().name)


def test_prefetcher_hands_out_every_item_in_order() -> None:
    cleaned: list[str] = []
    with Prefetcher(_numbers(50, None, cleaned), depth=4, name="worker") as items:
        assert list(items) == list(range(50))
    assert cleaned == ["worker"]


def test_prefetcher_raises_the_source_error_where_it_happened() -> None:
    cleaned: list[str] = []
    received = []
    with (
        pytest.raises(ValueError, match="broken at 7"),
        Prefetcher(_numbers(50, 7, cleaned), depth=4, name="worker") as items,
    ):
        for item in items:
            received.append(item)
    assert received == list(range(7))
    assert cleaned == ["worker"]


def test_prefetcher_closed_early_stops_its_thread_and_cleans_up() -> None:
    cleaned: list[str] = []
    before = threading.active_count()
    with Prefetcher(_numbers(10_000, None, cleaned), depth=2, name="worker") as items:
        assert next(items) == 0
    # The generator's cleanup ran in the worker, which has ended.
    assert cleaned == ["worker"]
    assert threading.active_count() == before


@pytest.fixture(scope="module")
def long_clip(media_dir: Path) -> ClipTruth:
    return write_marker_clip(
        media_dir / "pipeline long.mp4", frames=250, fps=25, gop=250
    )


def _placement(path: Path, record: tuple[int, int], in_sec: float) -> ClipPlacement:
    return ClipPlacement(
        path=str(path),
        record_start=record[0],
        record_end=record[1],
        source_in_sec=in_sec,
        rate=FPS,
        start_sec=0.0,
        rotation=0,
        sample_aspect=(1, 1),
    )


def _render_markers(placements: list[ClipPlacement], total: int) -> list[int | None]:
    transform = FrameTransform(320, 180, "crop", {}, fps=FPS)
    markers = []
    for frame in compose_frames(placements, [], transform, FPS, total):
        markers.append(read_marker(frame.to_ndarray(format="rgb24")))
    return markers


def test_a_source_shown_again_further_on_is_decoded_on_not_reopened(
    long_clip: ClipTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shots A1, B, A2 with A2 just after A1 in the source: A is opened once and
    its frames after A1 are decoded once, though the GOP is the whole clip."""
    other = long_clip.path.with_name("pipeline other.mp4")
    write_marker_clip(other, frames=50, fps=25)
    opened: list[str] = []
    decoded: list[float] = []
    real_open = av.open

    def counting_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(Path(path).name)
        container = real_open(path, *args, **kwargs)
        return container

    real_decode_from = frames.SourceReader._decode_from

    def counting_decode_from(
        reader: frames.SourceReader, time_sec: float
    ) -> Iterator[av.VideoFrame]:
        for frame in real_decode_from(reader, time_sec):
            if reader.path == str(long_clip.path):
                decoded.append(frame.time)
            yield frame

    monkeypatch.setattr(frames.av, "open", counting_open)
    monkeypatch.setattr(frames.SourceReader, "_decode_from", counting_decode_from)
    placements = [
        _placement(long_clip.path, (0, 25), 4.0),  # source frames 100-124
        _placement(other, (25, 50), 0.0),
        _placement(long_clip.path, (50, 75), 5.2),  # source frames 130-154
    ]

    markers = _render_markers(placements, 75)

    assert markers[:25] == list(range(100, 125))
    assert markers[25:50] == list(range(25))
    assert markers[50:] == list(range(130, 155))
    assert opened.count(long_clip.path.name) == 1
    # One decode from the start (the only keyframe) to frame 155, none twice.
    assert len(decoded) == len(set(decoded))
    assert len(decoded) <= 157


def test_a_source_shown_again_earlier_is_sought_and_right(
    long_clip: ClipTruth,
) -> None:
    placements = [
        _placement(long_clip.path, (0, 10), 6.0),
        _placement(long_clip.path, (10, 20), 1.0),
    ]
    markers = _render_markers(placements, 20)
    assert markers == list(range(150, 160)) + list(range(25, 35))
