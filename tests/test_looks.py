"""Colour looks: each shipped LUT moves hue, saturation or contrast the way its name
says, measured on a drawn colour chart through the render's own filter graph; a
user's .cube is checked, named when broken, and read from any path."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from engine.errors import InvalidJobError
from engine.frames import FrameTransform
from engine.looks import (
    apply_look_options,
    cleanup_filters,
    cleanup_of,
    mark_cleanup,
    unmatched_cleanup,
)
from engine.luts import check_lut, lut_names, lut_path, read_cube
from engine.protocol import JobSpec
from engine.styles import load_style, style_names
from tests.looks_media import write_cube

WIDTH, HEIGHT = 192, 108
LUTS = Path(__file__).parents[1] / "resources" / "luts"


def colour_chart() -> np.ndarray:
    """Greys from black to white along x over six hues along y, and a grey strip."""
    ramp = np.linspace(0.0, 1.0, WIDTH)
    hues = [(1, 0.2, 0.2), (1, 0.7, 0.2), (0.3, 1, 0.3), (0.2, 0.8, 1),
            (0.3, 0.3, 1), (1, 0.3, 0.9)]  # fmt: skip
    rows = []
    for hue in [(1.0, 1.0, 1.0), *hues]:
        band = ramp[:, None] * np.array(hue)[None, :]
        rows.append(np.repeat(band[None], HEIGHT // 7 + 1, axis=0))
    chart = np.concatenate(rows)[:HEIGHT]
    return np.rint(chart * 255).astype(np.uint8)


def graded(grade: dict[str, Any], rgb: np.ndarray | None = None) -> np.ndarray:
    """The chart (or rgb) through the render's graph with this grade, as RGB."""
    rgb = colour_chart() if rgb is None else rgb
    transform = FrameTransform(WIDTH, HEIGHT, "crop", grade, Fraction(30))
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    graph = transform.graph_for(frame, 0, (1, 1), Fraction(1, 30))
    graph.push(frame)
    shaped = graph.pull()
    assert shaped.format.name == "yuv420p", "the encoder needs YUV back"
    return np.asarray(shaped.to_ndarray(format="rgb24"), dtype=np.float64)


def chroma(rgb: np.ndarray) -> np.ndarray:
    """Distance from grey of each pixel, 0..255."""
    return np.asarray(rgb.max(axis=-1) - rgb.min(axis=-1))


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb @ np.array([0.2126, 0.7152, 0.0722]))


GREYS = slice(2, HEIGHT // 7 - 2)  # rows of the grey band, clear of chroma bleed


@pytest.fixture(scope="module")
def plain() -> np.ndarray:
    return graded({})


@pytest.fixture(scope="module")
def looks() -> dict[str, np.ndarray]:
    return {name: graded({"lut": name}) for name in lut_names()}


def test_black_and_white_has_no_colour(
    plain: np.ndarray, looks: dict[str, np.ndarray]
) -> None:
    assert chroma(plain).mean() > 60
    assert chroma(looks["black_white"]).max() <= 4


def test_warm_turns_greys_orange_and_cool_turns_them_blue(
    plain: np.ndarray, looks: dict[str, np.ndarray]
) -> None:
    def red_minus_blue(rgb: np.ndarray) -> float:
        mid = rgb[GREYS, WIDTH // 4 : 3 * WIDTH // 4]
        return float((mid[..., 0] - mid[..., 2]).mean())

    assert abs(red_minus_blue(plain)) < 3
    warm, cool = looks["warm"][GREYS], looks["cool"][GREYS]
    assert red_minus_blue(looks["warm"]) > 15
    # Orange: red above green above blue.
    assert warm[..., 0].mean() > warm[..., 1].mean() > warm[..., 2].mean()
    assert red_minus_blue(looks["cool"]) < -10
    assert cool[..., 2].mean() > cool[..., 0].mean()


def test_teal_and_orange_splits_shadows_from_highlights(
    looks: dict[str, np.ndarray],
) -> None:
    greys = looks["teal_orange"][GREYS]
    shadows, highlights = greys[:, WIDTH // 8 : WIDTH // 4], greys[:, -WIDTH // 4 :]
    assert (shadows[..., 2] - shadows[..., 0]).mean() > 8, "shadows are teal"
    assert (highlights[..., 0] - highlights[..., 2]).mean() > 8, "highlights orange"


def test_contrast_and_saturation_move_as_named(
    plain: np.ndarray, looks: dict[str, np.ndarray]
) -> None:
    spread = {name: float(luma(rgb).std()) for name, rgb in looks.items()}
    colour = {name: float(chroma(rgb).mean()) for name, rgb in looks.items()}
    base_spread, base_colour = float(luma(plain).std()), float(chroma(plain).mean())
    assert spread["high_contrast"] > 1.08 * base_spread
    assert colour["vivid"] > 1.2 * base_colour
    assert colour["pastel"] < 0.75 * base_colour
    assert colour["faded"] < 0.85 * base_colour
    for name in ("pastel", "faded"):
        blacks = luma(looks[name][GREYS, :4]).mean()
        assert blacks > 15, f"{name} lifts its blacks ({blacks:.0f})"
    assert np.abs(looks["natural"] - plain).mean() < 12, "natural stays near"


def test_every_look_changes_the_picture(
    plain: np.ndarray, looks: dict[str, np.ndarray]
) -> None:
    for name, rgb in looks.items():
        assert np.abs(rgb - plain).mean() > 2, f"{name} leaves the picture alone"


def test_the_shipped_cubes_are_what_the_script_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_luts", LUTS / "make_luts.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    written = script.write_all(tmp_path)
    assert sorted(path.stem for path in written) == lut_names()
    for path in written:
        shipped = LUTS / path.name
        assert shipped.read_text() == path.read_text(), f"run make_luts.py: {path}"
        cube = read_cube(shipped)
        assert cube.points == 17 and cube.table.shape == (17**3, 3)


def test_every_style_names_a_shipped_look() -> None:
    for name in style_names():
        assert load_style(name).grade.lut in lut_names(), name


def test_a_users_cube_at_an_awkward_path_is_applied(tmp_path: Path) -> None:
    folder = tmp_path / "looks: 'mine', [v2]=ü\\"
    folder.mkdir()
    cube = write_cube(
        folder / "negativ'e ü.cube", lambda r, g, b: (1 - r, 1 - g, 1 - b)
    )
    value = check_lut(str(cube))
    assert value == str(cube)
    flat = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    out = graded({"lut": value}, flat)
    assert abs(out.mean() - 215) < 6, "the inverting LUT was not applied"


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ("LUT_1D_SIZE 4\n0 0 0\n", "1D LUT"),
        ("LUT_3D_SIZE 2\n0 0 0\n1 1 1\n", "has 2 colours where a 2-point cube needs 8"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 zero 0\n", "line 9 is not three"),
        ("0 0 0\n" * 8, "no LUT_3D_SIZE"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 4 + "foo bar baz\n", "line 6 is not three"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 9, "needs 8 (too many"),
        ("LUT_3D_SIZE 999\n", "LUT_3D_SIZE must be 2 to 256"),
    ],
)
def test_a_broken_cube_is_named_with_its_cause(
    tmp_path: Path, content: str, cause: str
) -> None:
    path = tmp_path / "broken look.cube"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidJobError) as raised:
        check_lut(str(path))
    assert "broken look.cube" in raised.value.message
    assert cause in raised.value.message


def test_an_unknown_look_or_a_missing_file_says_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError, match=r"Unknown look 'sepia'.*teal_orange"):
        check_lut("sepia")
    with pytest.raises(InvalidJobError, match=r"gone\.cube.*not there"):
        check_lut(str(tmp_path / "gone.cube"))


def test_the_job_overrides_the_styles_look() -> None:
    def job(**looks: Any) -> JobSpec:
        return JobSpec(clips=["a.mp4"], music="song.wav", output="out.mp4", **looks)

    style = apply_look_options(job(), load_style("mtv"))
    assert style.grade.lut == "high_contrast" and style.speed == {"quiet": 0.5}
    style = apply_look_options(
        job(lut="none", slow_motion=1, transition="whip", downbeat_flash=False,
            stabilize=True),
        load_style("mtv"),
    )  # fmt: skip
    assert style.grade.lut == "" and style.speed == {} and style.stabilize
    assert {rule.kind for rule in style.transitions.values()} == {"whip"}
    assert all(rule.beats > 0 for rule in style.transitions.values())
    assert not style.downbeat_flash
    assert lut_path("warm").is_file()


def test_clean_up_is_named_on_every_clip_or_on_the_chosen_ones(tmp_path: Path) -> None:
    folder = tmp_path / "shaky ones"
    folder.mkdir()
    paths = [folder / "a.mp4", tmp_path / "b.mp4"]
    timeline = otio.schema.Timeline()
    track = otio.schema.Track()
    timeline.tracks.append(track)
    for path in paths:
        reference = otio.schema.ExternalReference(target_url=str(path))
        reference.metadata["montage_ai"] = {"still": False}
        clip = otio.schema.Clip(name=path.name, media_reference=reference)
        clip.metadata["montage_ai"] = {}
        track.append(clip)
    spec = JobSpec(clips=[str(tmp_path)], music="s.wav", output="o.mp4",
                   denoise=True, stabilize_clips=[str(folder) + "/"])  # fmt: skip
    mark_cleanup(timeline, spec, apply_look_options(spec, load_style("dynamic")))
    kinds = [cleanup_of(clip) for clip in track.find_clips()]
    assert kinds == [("stabilize", "denoise"), ("denoise",)]
    assert cleanup_filters(kinds[0])[0][0] == "nlmeans", "denoise before deshake"


def test_a_clip_chosen_for_clean_up_that_is_no_clip_is_named(tmp_path: Path) -> None:
    trip = tmp_path / "trip"
    trip.mkdir()
    clips = [trip / "a.mp4", trip / "b.mp4"]
    for clip in clips:
        clip.touch()
    spec = JobSpec(
        clips=[str(trip)], music="song.wav", output=str(tmp_path / "out.mp4"),
        stabilize_clips=[str(trip / "a.mp4"), str(tmp_path / "typo.mp4")],
        denoise_clips=[str(trip), str(tmp_path / "elsewhere")],
    )  # fmt: skip
    assert unmatched_cleanup(spec, clips) == [
        ("stabilize", str(tmp_path / "typo.mp4")),
        ("denoise", str(tmp_path / "elsewhere")),
    ]
