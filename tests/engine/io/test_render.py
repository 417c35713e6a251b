"""Stick-figure previews: image sizes, frame counts, colours, camera, atomic writes, errors."""

import shutil

import numpy as np
import pytest
from PIL import Image

import engine.io.render as render
from engine.errors import MotionError
from engine.io.files import _umask, atomic_output
from engine.io.render import Camera, render_animation, render_contact_sheet
from engine.motion.demo_clip import walk_cycle


@pytest.fixture(scope="module")
def walk():
    return walk_cycle(seconds=1.5, turn_degrees=45.0)  # (30, 22, 3)


def _has_colour(image: Image.Image, hex_colour: str, min_pixels: int = 20) -> bool:
    rgb = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    want = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - want).sum(axis=1) < 30).sum()) >= min_pixels


def test_camera_front_view_keeps_handedness():
    """Looking at the front of a character (azimuth 0), its left (+X) is on screen right
    and up stays up; the basis is orthonormal (no squashing of any axis)."""
    basis = Camera(azimuth=0.0, elevation=0.0).basis()
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(Camera(0.0, 0.0).project(np.array([[1.0, 2.0, 3.0]])), [[1.0, 2.0]])
    side = Camera(azimuth=90.0, elevation=0.0).project(np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(side, [-1.0, 0.0], atol=1e-12)  # from +X, forward points left


def test_contact_sheet_size_rows_and_colours(walk, tmp_path):
    clips = np.stack([walk, walk + np.array([0.5, 0.0, 0.0])])  # two variations
    out = render_contact_sheet(clips, tmp_path / "sheet.png", frames=5, title="two", panel_px=120)
    image = Image.open(out)
    assert image.size == (5 * 120, 2 * 120 + 120 // 6)
    for colour in (render.LEFT_COLOUR, render.RIGHT_COLOUR, render.SPINE_COLOUR):
        assert _has_colour(image, colour), colour


def test_contact_sheet_of_a_short_clip_shows_each_frame_once(walk, tmp_path):
    out = render_contact_sheet(walk[:3], tmp_path / "short.png", frames=8, panel_px=100)
    assert Image.open(out).size == (3 * 100, 100)


def test_gif_has_one_image_per_frame_at_the_clip_rate(walk, tmp_path):
    out = render_animation(walk, tmp_path / "walk.gif", fps=20, size_px=160)
    image = Image.open(out)
    assert image.size == (160, 160)
    assert image.n_frames == len(walk)
    assert image.info["duration"] == 50


def test_mp4_without_ffmpeg_is_a_clear_error(walk, tmp_path, monkeypatch):
    monkeypatch.setattr(render, "_ffmpeg_available", lambda: False)
    with pytest.raises(MotionError, match="ffmpeg.*gif"):
        render_animation(walk, tmp_path / "walk.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_mp4_with_ffmpeg(walk, tmp_path):
    out = render_animation(walk[:10], tmp_path / "walk.mp4", size_px=160)
    assert out.stat().st_size > 0


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(MotionError, match="bad.png.*shape"):
        render_contact_sheet(np.zeros((10, 21, 3)), tmp_path / "bad.png")
    with pytest.raises(MotionError, match="NaN"):
        render_animation(np.full((4, 22, 3), np.nan), tmp_path / "nan.gif")
    with pytest.raises(MotionError, match=r"\.avi"):
        render_animation(np.zeros((4, 22, 3)), tmp_path / "clip.avi")
    with pytest.raises(MotionError, match="does not exist"):
        render_contact_sheet(np.zeros((4, 22, 3)), tmp_path / "no" / "such.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("renderer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_written_files_get_ordinary_permissions(walk, tmp_path):
    """As ``open`` would create them (0o666 less the umask), not mkstemp's owner-only 0o600."""
    out = render_contact_sheet(walk, tmp_path / "perm.png", frames=2, panel_px=60)
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_contact_sheet_marks_where_each_segment_starts(walk, tmp_path):
    plain = Image.open(render_contact_sheet(walk, tmp_path / "plain.png", frames=4, panel_px=100))
    segments = [(0, "a person walks"), (11, "a person waves"), (20, "a person jumps")]
    out = render_contact_sheet(walk, tmp_path / "timeline.png", frames=4, panel_px=100,
                               segments=segments)  # fmt: skip
    marked = Image.open(out)
    # the four even frames (0, 10, 19, 29) plus each segment's first and middle frame
    assert marked.size == (100 * 9, 100) and plain.size == (400, 100)
    assert _has_colour(marked, render.SEGMENT_COLOUR, 200)
    assert not _has_colour(plain, render.SEGMENT_COLOUR)
    assert render.segment_at(segments, 15) == "a person waves"
    assert render.segment_at(segments, 29) == "a person jumps"
