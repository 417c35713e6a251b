"""Edits an animator makes to a generated clip before baking: mirror, loop, retime.

Each takes joints (T, 22, 3) in metres, Y up, and their foot contacts (T, 4) (left
ankle, left toe, right ankle, right toe; None when unknown) and returns the edited pair,
so every path that uses a clip (preview, bake, export) uses the edit unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MotionError
from ..motion.features import mirror_joints
from ..motion.kinematics import facing_direction
from ..motion.skeleton import FACE_JOINTS, NUM_JOINTS
from ..retarget.joint_map import resample

SPEED_RANGE = (0.1, 10.0)
"""Retime factors accepted: slower than a tenth or faster than ten times is not an edit."""


@dataclass
class ClipEdit:
    """An edited clip: joints (T', 22, 3), contacts (T', 4) or None, what was done."""

    joints: np.ndarray
    contacts: np.ndarray | None
    note: str


def mirror(joints: np.ndarray, contacts: np.ndarray | None) -> ClipEdit:
    """Left and right swapped (x negated): a wave with the right hand becomes the left's."""
    joints = _check(joints)
    swapped = None if contacts is None else _contacts(contacts, joints)[:, [2, 3, 0, 1]]
    return ClipEdit(mirror_joints(joints), swapped, "mirrored left/right")


def retime(joints: np.ndarray, contacts: np.ndarray | None, fps: float, factor: float) -> ClipEdit:
    """The clip played ``factor`` times as fast (2: half the frames), at the same ``fps``.

    Joints are interpolated linearly in time; contacts take the nearest source frame.
    """
    joints = _check(joints)
    low, high = SPEED_RANGE
    if not low <= factor <= high:
        raise MotionError(f"speed must be between {low:g} and {high:g}, got {factor:g}")
    out = resample(joints, fps * factor, fps)
    if len(out) < 2:
        raise MotionError(f"a {len(joints)}-frame clip at {factor:g}x has no motion left")
    picked = None
    if contacts is not None:
        nearest = np.minimum(np.rint(np.arange(len(out)) * factor), len(joints) - 1)
        picked = _contacts(contacts, joints)[nearest.astype(int)]
    return ClipEdit(out, picked, f"{factor:g}x speed")


def loop(
    joints: np.ndarray,
    contacts: np.ndarray | None,
    fps: float,
    min_seconds: float = 1.0,
    blend_seconds: float = 0.5,
) -> ClipEdit:
    """A cycle: cut where the body is closest to its first pose, then ease the end into it.

    The body pose is compared in each frame's own heading frame (pelvis over the origin,
    facing +Z), poses and their velocities, over cut frames at least ``min_seconds`` in.
    Over the last ``blend_seconds`` the pose is eased so that the last frame's equals the
    first's exactly; the pelvis path over the floor and the heading are kept, so the
    root motion of one cycle continues into the next (a walk walks on, a turn turns on).
    """
    joints = _check(joints)
    num_frames = len(joints)
    first = int(np.ceil(min_seconds * fps))
    if num_frames - 1 < max(first, 2):
        raise MotionError(
            f"a {num_frames / fps:.1f} s clip is too short to loop (needs over {min_seconds:g} s)"
        )
    local, place, turn = body_frames(joints)  # (T, 22, 3), (T, 3), (T, 3, 3)
    velocity = np.diff(local, axis=0, prepend=local[:1])
    cost = ((local - local[0]) ** 2).sum((1, 2)) + 4.0 * ((velocity - velocity[1]) ** 2).sum((1, 2))
    end = first + int(np.argmin(cost[first:]))  # the last frame, to meet frame 0
    blend = max(1, min(int(round(blend_seconds * fps)), end))
    ramp = np.clip((np.arange(end + 1) - (end - blend)) / blend, 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no jolt where the easing starts
    eased = local[: end + 1] + ramp[:, None, None] * (local[0] - local[end])
    out = np.einsum("tij,tkj->tki", turn[: end + 1], eased) + place[: end + 1, None]
    picked = None
    if contacts is not None:
        picked = _contacts(contacts, joints)[: end + 1].copy()
        picked[-1] = picked[0]
    return ClipEdit(out, picked, f"loop of {end / fps:.2f} s ({end} frames a cycle)")


def body_frames(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each frame's pose in its own heading frame: local (T, 22, 3), the pelvis over the
    floor (T, 3), and the heading rotation (T, 3, 3) with joints = turn @ local + place."""
    forward = facing_direction(joints, FACE_JOINTS)  # (T, 3), horizontal unit
    if not (np.linalg.norm(forward, axis=-1) > 0.5).all():
        raise MotionError("the clip has frames with no facing direction: cannot loop it")
    angle = np.arctan2(forward[:, 0], forward[:, 2])  # heading about +Y, 0 = facing +Z
    c, s = np.cos(angle), np.sin(angle)
    turn = np.zeros((len(joints), 3, 3))
    turn[:, 0, 0], turn[:, 0, 2], turn[:, 1, 1], turn[:, 2, 0], turn[:, 2, 2] = c, s, 1, -s, c
    place = joints[:, 0] * np.array([1.0, 0.0, 1.0])
    local = np.einsum("tji,tkj->tki", turn, joints - place[:, None])  # turn^T (j - place)
    return local, place, turn


def _check(joints: np.ndarray) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or len(arr) < 2:
        raise MotionError(f"a clip needs joints (T >= 2, {NUM_JOINTS}, 3), got {arr.shape}")
    return arr


def _contacts(contacts: np.ndarray, joints: np.ndarray) -> np.ndarray:
    arr = np.asarray(contacts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) not in (len(joints), len(joints) - 1):
        raise MotionError(f"foot contacts must be ({len(joints)}, 4), got {arr.shape}")
    return arr if len(arr) == len(joints) else np.concatenate([arr, arr[-1:]])
