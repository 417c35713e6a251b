"""Stick-figure previews of joint clips: a contact sheet (PNG) and an animation (GIF or MP4).

The figures are drawn by projecting the 3D joints through a fixed orthographic camera onto
plain 2D matplotlib axes rather than through ``mplot3d``: the projection is a 3x3 matrix,
limits stay exactly equal on both screen axes, and an animation only swaps the segments of
three line collections per frame, so a 200-frame GIF renders in a few seconds. Everything
uses the Agg canvas directly (no pyplot, no display, no global backend switch), so it runs
headless and inside Blender's Python alike.

Data are HumanML3D-style joints: (T, 22, 3), Y up, floor at y = 0. Limits are fixed for a
whole clip (and shared by every variation of a sheet) so that motion is comparable between
panels. Files are written to a temporary name beside the target and moved into place, so a
failed render never leaves a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MotionError
from ..motion.skeleton import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS
from .files import atomic_output

LEFT_COLOUR = "#1f6fd1"
RIGHT_COLOUR = "#d1361f"
SPINE_COLOUR = "#2b2b2b"
FLOOR_COLOUR = "#c8c8c8"
TRAJECTORY_COLOUR = "#e09b1a"
SEGMENT_COLOUR = "#9b30d9"  # a timeline segment's first frame (no bone is this colour)


@dataclass(frozen=True)
class Camera:
    """An orthographic camera orbiting the Y axis.

    ``azimuth`` is measured from +Z (the direction frame 0 faces) towards +X, so 0 looks at
    the character's front; ``elevation`` raises the camera above the floor. Both in degrees.
    """

    azimuth: float = 40.0
    elevation: float = 18.0

    def basis(self) -> np.ndarray:
        """(3, 3) rows: screen right, screen up, towards the camera (world coordinates)."""
        az, el = np.radians(self.azimuth), np.radians(self.elevation)
        towards = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
        right = np.cross(-towards, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, -towards)
        return np.stack([right, up, towards])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) screen coordinates (metres)."""
        return points @ self.basis()[:2].T


# ----------------------------------------------------------------------------- geometry


def _bone_groups() -> dict[str, np.ndarray]:
    """Bone (child joint) indices per colour: a bone takes the side of its child joint."""
    groups: dict[str, list[int]] = {LEFT_COLOUR: [], RIGHT_COLOUR: [], SPINE_COLOUR: []}
    for child in range(1, NUM_JOINTS):
        name = JOINT_NAMES[child]
        key = LEFT_COLOUR if name.startswith("left_") else SPINE_COLOUR
        key = RIGHT_COLOUR if name.startswith("right_") else key
        groups[key].append(child)
    return {colour: np.array(ids) for colour, ids in groups.items()}


_GROUPS = _bone_groups()
_PARENT_INDEX = np.array(PARENTS)


def _segments(screen: np.ndarray, children: np.ndarray) -> np.ndarray:
    """(22, 2) screen joints -> (B, 2, 2) bone segments parent -> child."""
    return np.stack([screen[_PARENT_INDEX[children]], screen[children]], axis=1)


def _nice_step(extent: float) -> float:
    """A round grid spacing (0.25, 0.5, 1, 2, 5 x 10^k) giving about eight cells."""
    raw = max(extent / 8.0, 1e-6)
    power = 10.0 ** np.floor(np.log10(raw))
    for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= mult * power:
            return float(mult * power)
    return float(10.0 * power)


def _floor_lines(joints: np.ndarray) -> np.ndarray:
    """(L, 2, 3) world segments of a floor grid (y = 0) under every joint of the clip."""
    xz = joints[..., [0, 2]].reshape(-1, 2)
    lo, hi = xz.min(0), xz.max(0)
    margin = 0.25 * max(float((hi - lo).max()), 1.0)
    lo, hi = lo - margin, hi + margin
    step = _nice_step(float((hi - lo).max()))
    lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step
    lines = []
    for x in np.arange(lo[0], hi[0] + step / 2, step):
        lines.append([[x, 0.0, lo[1]], [x, 0.0, hi[1]]])
    for z in np.arange(lo[1], hi[1] + step / 2, step):
        lines.append([[lo[0], 0.0, z], [hi[0], 0.0, z]])
    return np.array(lines)


def _square_limits(screen_points: np.ndarray, pad: float = 0.05) -> tuple[tuple, tuple]:
    """Equal x and y limits (a square window) holding every (..., 2) screen point."""
    pts = screen_points.reshape(-1, 2)
    lo, hi = pts.min(0), pts.max(0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * (1 + pad) + 1e-3
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def check_joints(joints: np.ndarray, *, batched: bool = False, what: str = "joints") -> np.ndarray:
    """Validate a (T, 22, 3) clip, or (N, T, 22, 3) when ``batched``; return it as float64."""
    arr = np.asarray(joints, dtype=np.float64)
    want = 4 if batched else 3
    if arr.ndim != want or arr.shape[-2:] != (NUM_JOINTS, 3) or arr.shape[-3] < 1:
        shape = "(N, T, 22, 3)" if batched else "(T, 22, 3)"
        raise MotionError(f"{what}: expected a {shape} joint array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MotionError(f"{what}: contains NaN or infinite values")
    return arr


def _new_figure(width_px: int, height_px: int, dpi: int):
    """A figure on its own Agg canvas (no pyplot state), exactly width x height pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


class _StickPanel:
    """One axes showing a skeleton, its floor grid and root path; ``show(t)`` moves it."""

    def __init__(self, ax, screen: np.ndarray, floor: np.ndarray, limits, linewidth: float):
        from matplotlib.collections import LineCollection

        self.screen = screen  # (T, 22, 2)
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
        ax.add_collection(LineCollection(floor, colors=FLOOR_COLOUR, linewidths=0.6, zorder=0))
        self.bones = {}
        for colour, children in _GROUPS.items():
            coll = LineCollection(_segments(screen[0], children), colors=colour, zorder=3)
            coll.set_linewidth(linewidth)
            coll.set_capstyle("round")
            ax.add_collection(coll)
            self.bones[colour] = (coll, children)
        self.head = ax.scatter(*screen[0, 15], s=(2.2 * linewidth) ** 2, c=SPINE_COLOUR, zorder=4)

    def show(self, t: int) -> None:
        for coll, children in self.bones.values():
            coll.set_segments(_segments(self.screen[t], children))
        self.head.set_offsets(self.screen[t, 15][None])


def _trajectory(ax, root_floor: np.ndarray, linewidth: float) -> None:
    """Draw the (T, 2) screen path of the root's floor shadow."""
    ax.plot(*root_floor.T, color=TRAJECTORY_COLOUR, lw=linewidth, alpha=0.8, zorder=1)


def _prepare(clips: np.ndarray, camera: Camera):
    """(N, T, 22, 3) -> screen joints (N, T, 22, 2), floor segments, root paths, limits."""
    floor_world = _floor_lines(clips)
    root_floor = clips[:, :, 0].copy()  # (N, T, 3)
    root_floor[..., 1] = 0.0
    screen = camera.project(clips)
    floor = camera.project(floor_world)
    limits = _square_limits(np.concatenate([screen.reshape(-1, 2), floor.reshape(-1, 2)]))
    return screen, floor, camera.project(root_floor), limits


# ----------------------------------------------------------------------------- contact sheet


def render_contact_sheet(
    joints: np.ndarray,
    path: str | os.PathLike,
    *,
    frames: int = 8,
    title: str | None = None,
    fps: float = FPS,
    panel_px: int = 200,
    camera: Camera | None = None,
    segments: Sequence[tuple[int, str]] | None = None,
) -> Path:
    """Write a PNG grid of stick figures: one column per sampled frame, one row per clip.

    ``joints`` is (T, 22, 3) or (N, T, 22, 3) (N variations, one row each, same limits).
    ``frames`` evenly spaced frames (first and last included) are shown, labelled with their
    time at ``fps``. The image is ``frames * panel_px`` wide and ``N * panel_px`` (plus a
    ``panel_px // 6`` band when ``title`` is given) high. ``segments``: (first frame, label)
    of each part of a timeline; their first and middle frames are shown too, each first
    frame's panel marked by a purple bar on its left and the segment's label.
    """
    arr = np.asarray(joints)
    clips = check_joints(arr, batched=arr.ndim == 4, what=str(path))
    clips = clips if clips.ndim == 4 else clips[None]
    n, t_len = clips.shape[:2]
    if frames < 1:
        raise MotionError(f"contact sheet needs at least one frame, got frames={frames}")
    picks = np.linspace(0, t_len - 1, min(frames, t_len)).round().astype(int)
    starts = _segment_starts(segments, t_len)
    if starts:
        ends = [*list(starts)[1:], t_len]
        middles = [(a + b) // 2 for a, b in zip(starts, ends, strict=True)]
        picks = np.concatenate([picks, list(starts), middles])
    picks = np.unique(picks)
    cols = len(picks)
    header = panel_px // 6 if title else 0
    width, height = cols * panel_px, n * panel_px + header
    dpi = 100
    fig = _new_figure(width, height, dpi)
    screen, floor, root_path, _ = _prepare(clips, camera or Camera())
    # Each panel follows the body (a window of one size for the whole sheet, centred on the
    # figure at that frame) so that a clip travelling metres still shows a readable figure.
    centre = (screen.max(axis=2) + screen.min(axis=2)) / 2  # (N, T, 2)
    half = float(np.abs(screen - centre[:, :, None]).max()) * 1.15 + 1e-3
    linewidth = max(1.0, panel_px / 110)
    font = max(6.0, panel_px / 22)
    for row in range(n):
        for col, frame in enumerate(picks):
            top = 1 - (header + (row + 1) * panel_px) / height
            rect = (col / cols, top, 1 / cols, panel_px / height)
            ax = fig.add_axes(rect)
            cx, cy = centre[row, frame]
            limits = ((cx - half, cx + half), (cy - half, cy + half))
            panel = _StickPanel(ax, screen[row], floor, limits, linewidth)
            panel.show(int(frame))
            _trajectory(ax, root_path[row], linewidth * 0.6)
            label = f"{frame / fps:.2f} s" if n == 1 or col else f"#{row + 1}  {frame / fps:.2f} s"
            ax.text(0.03, 0.97, label, transform=ax.transAxes, va="top", fontsize=font)
            if int(frame) in starts:
                _mark_segment(ax, starts[int(frame)], linewidth, font)
    if title:
        fig.text(0.5, 1 - header / 2 / height, title, ha="center", va="center", fontsize=font * 1.3)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def _segment_starts(segments: Sequence[tuple[int, str]] | None, t_len: int) -> dict[int, str]:
    """{first frame: label} of a timeline's segments inside the clip (ordered by frame)."""
    if not segments:
        return {}
    return {int(f): str(label) for f, label in sorted(segments) if 0 <= int(f) < t_len}


def _mark_segment(ax, label: str, linewidth: float, font: float) -> None:
    """A segment's first frame: a purple bar down the panel's left edge and its label."""
    ax.axvline(ax.get_xlim()[0], color=SEGMENT_COLOUR, linewidth=linewidth * 3)
    text = label if len(label) <= 28 else label[:27] + "..."
    ax.text(0.03, 0.03, text, transform=ax.transAxes, va="bottom", fontsize=font * 0.8,
            color=SEGMENT_COLOUR)  # fmt: skip


def segment_at(segments: Sequence[tuple[int, str]], frame: int) -> str:
    """The label of the segment that frame ``frame`` belongs to ("" before the first)."""
    label = ""
    for first, name in sorted(segments):
        if first <= frame:
            label = name
    return label


# ----------------------------------------------------------------------------- animation


def _ffmpeg_available() -> bool:
    """Whether matplotlib can find an ffmpeg binary (rcParams['animation.ffmpeg_path'])."""
    from matplotlib import animation

    return animation.writers.is_available("ffmpeg")


def render_animation(
    joints: np.ndarray,
    path: str | os.PathLike,
    *,
    fps: float = FPS,
    title: str | None = None,
    size_px: int = 320,
    camera: Camera | None = None,
    segments: Sequence[tuple[int, str]] | None = None,
) -> Path:
    """Write a (T, 22, 3) clip as a looping ``.gif`` (Pillow) or an ``.mp4`` (needs ffmpeg).

    The picture is ``size_px`` square with the clip's root path on the floor and a time
    label; one image per joint frame, shown at ``fps``. ``segments``: (first frame, label)
    of a timeline's parts; the label of the part playing replaces ``title``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise MotionError(f"{target}: animations are written as .gif or .mp4, not '{suffix}'")
    if suffix == ".mp4" and not _ffmpeg_available():
        raise MotionError(f"{target}: writing MP4 needs ffmpeg on the PATH; .gif works without")
    clip = check_joints(joints, what=str(target))
    dpi = 100
    fig = _new_figure(size_px, size_px, dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    screen, floor, root_path, limits = _prepare(clip[None], camera or Camera())
    linewidth = max(1.0, size_px / 130)
    panel = _StickPanel(ax, screen[0], floor, limits, linewidth)
    _trajectory(ax, root_path[0], linewidth * 0.6)
    font = max(6.0, size_px / 30)
    clock = ax.text(0.03, 0.97, "", transform=ax.transAxes, va="top", fontsize=font)
    caption = None
    if title or segments:
        caption = ax.text(0.5, 0.03, title or "", transform=ax.transAxes, ha="center",
                          fontsize=font)  # fmt: skip

    def draw(t: int) -> None:
        panel.show(t)
        clock.set_text(f"{t / fps:.2f} s")
        if segments and caption is not None:
            caption.set_text(segment_at(segments, t))

    with atomic_output(target) as tmp:
        if suffix == ".gif":
            _write_gif(fig, draw, len(clip), fps, tmp)
        else:
            _write_mp4(fig, draw, len(clip), fps, tmp, dpi)
    return target


def _write_gif(fig, draw, n_frames: int, fps: float, out: Path) -> None:
    """Render each frame on the Agg canvas and let Pillow write them with one palette."""
    from PIL import Image

    images = []
    palette = None
    for t in range(n_frames):
        draw(t)
        fig.canvas.draw()
        rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
        if palette is None:  # colours never change between frames: one palette serves all
            palette = rgb.quantize(colors=64, dither=Image.Dither.NONE)
        images.append(rgb.quantize(palette=palette, dither=Image.Dither.NONE))
    duration = max(20, int(round(1000.0 / fps)))
    images[0].save(
        out, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
    )


def _write_mp4(fig, draw, n_frames: int, fps: float, out: Path, dpi: int) -> None:
    """Stream frames to ffmpeg through matplotlib's writer (H.264, yuv420p for players)."""
    from matplotlib import animation

    writer = animation.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    with writer.saving(fig, str(out), dpi):
        for t in range(n_frames):
            draw(t)
            writer.grab_frame()
