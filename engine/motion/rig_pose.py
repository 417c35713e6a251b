"""Rotations that pose a rigid skeleton onto observed joint positions, and forward kinematics.

Joint positions (from a data set, a generator or a BVH of another rig) fix each bone's
direction but not its twist. ``rotations_from_joints`` picks, per frame and per joint, a
global rotation that turns the joint's rest child offsets towards the observed children:

- several children (pelvis, spine3): best-fit rotation of the rest child directions onto the
  observed ones (Kabsch / SVD), which fixes the twist as well;
- one child: shortest arc from the parent's frame (twist carried down); for the joints
  given a twist hint (hips, shoulders), then a twist about the bone so that the hinted rest
  axis lies along the normal of the bend plane (hip-knee-ankle, shoulder-elbow-wrist)
  where the limb is bent, bridged through time while it is straight. The joints below
  (knee, elbow) carry that twist down, so they turn as hinges;
- no child: the parent's rotation.

Everything works for any skeleton given ``parents`` (parents before children) and rest
offsets, so the Blender add-on bakes onto user rigs with the same code; the canonical 22-joint
skeleton is the default. Quaternions are (w, x, y, z); global means "rest to world".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .quaternion import axis_angle_to_quat, matrix_to_quat, qbetween, qfix, qinv, qmul, qrot
from .skeleton import CANONICAL_OFFSETS, PARENTS

CANONICAL_TWIST_HINTS: dict[int, tuple[float, float, float]] = {
    1: (1.0, 0.0, 0.0),  # left hip: the knee bends backwards, hip-knee-ankle normal is +X
    2: (1.0, 0.0, 0.0),  # right hip
    16: (-1.0, 0.0, 0.0),  # left shoulder: the elbow bends forwards, normal is -X
    17: (-1.0, 0.0, 0.0),  # right shoulder
}
"""Rest-frame axes that follow the bend-plane normal, for the canonical hips and shoulders.

The normal of joint j's plane is (child - j) x (grandchild - child), with its anatomical
sign: a knee bends backwards and an elbow forwards, never the other way by much.
"""

_BEND_FADE = (np.sin(np.radians(3.0)), np.sin(np.radians(15.0)))
"""Sine of the bend angle below which the bend plane is ignored, and above which it rules.

A nearly straight limb has a noisy plane normal; between the two the twist fades from the
one carried through time to the bend-plane one.
"""


def default_twist_hints(parents: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """The canonical hints for the canonical skeleton, none for any other skeleton."""
    return dict(CANONICAL_TWIST_HINTS) if tuple(parents) == PARENTS else {}


def global_from_local(local: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Chain local rotations (T, J, 4) down the hierarchy into global ones (T, J, 4)."""
    _check_parents(parents)
    out = np.empty_like(local)
    for j, p in enumerate(parents):
        out[:, j] = local[:, j] if p < 0 else qmul(out[:, p], local[:, j])
    return out


def local_from_global(global_quats: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Undo the chaining: local_j = inverse(global_parent) * global_j, (T, J, 4) -> (T, J, 4)."""
    _check_parents(parents)
    out = np.empty_like(global_quats)
    for j, p in enumerate(parents):
        g = global_quats[:, j]
        out[:, j] = g if p < 0 else qmul(qinv(global_quats[:, p]), g)
    return out


def forward_kinematics(
    local: np.ndarray, root_pos: np.ndarray, parents: Sequence[int], offsets: np.ndarray
) -> np.ndarray:
    """Joint positions (T, J, 3) from local rotations (T, J, 4) and the root path (T, 3).

    offsets: (J, 3) rest offsets, or (T, J, 3) per-frame ones (a BVH's position channels);
    the root's offset is replaced by ``root_pos``. Joint j sits at
    pos[parent] + qrot(global[parent], offsets[j]).
    """
    _check_parents(parents)
    offsets = np.broadcast_to(offsets, local.shape[:-1] + (3,))  # (T, J, 3)
    glob = global_from_local(local, parents)
    pos = np.empty(local.shape[:-1] + (3,), dtype=np.result_type(local, offsets))
    for j, p in enumerate(parents):
        pos[:, j] = root_pos if p < 0 else pos[:, p] + qrot(glob[:, p], offsets[:, j])
    return pos


def canonical_rest_joints() -> np.ndarray:
    """(22, 3) rest joints in metres, Y up, facing +Z, the lowest joint (a toe) on y = 0."""
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (1, len(PARENTS), 1))
    joints = forward_kinematics(identity, np.zeros((1, 3)), PARENTS, CANONICAL_OFFSETS)[0]
    joints[:, 1] -= joints[:, 1].min()
    return joints


def rotations_from_joints(
    joints: np.ndarray,
    parents: Sequence[int] = PARENTS,
    rest_offsets: np.ndarray = CANONICAL_OFFSETS,
    twist_hints: Mapping[int, Sequence[float]] | None = None,
) -> np.ndarray:
    """Global rotations (T, J, 4) that pose the rest skeleton onto joints (T, J, 3).

    rest_offsets: (J, 3) offset of each joint from its parent at rest (only directions
    matter). twist_hints: {joint: rest-frame axis} that follows the normal of the plane
    through the joint, its only child and that child's only child, for limbs whose bend
    direction is known (see CANONICAL_TWIST_HINTS); None = ``default_twist_hints``.
    Rigid input is reproduced exactly by ``forward_kinematics`` with the same offsets; for
    non-rigid input single-child bones still point exactly at their child.
    """
    joints = np.asarray(joints, dtype=np.float64)
    rest = np.asarray(rest_offsets, dtype=np.float64)
    _check_parents(parents)
    if joints.ndim != 3 or joints.shape[1:] != (len(parents), 3) or rest.shape != (len(parents), 3):
        raise ValueError(
            f"joints {joints.shape} and rest_offsets {rest.shape} must be (T, {len(parents)}, 3)"
            f" and ({len(parents)}, 3)"
        )
    hints = default_twist_hints(parents) if twist_hints is None else twist_hints
    children = _children(parents)
    num_frames = joints.shape[0]
    identity = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (num_frames, 1))
    out = np.empty((num_frames, len(parents), 4))
    for j, p in enumerate(parents):
        carried = identity if p < 0 else out[:, p]
        kids = [c for c in children[j] if np.linalg.norm(rest[c]) > 1e-9]
        if not kids:
            out[:, j] = carried
        elif len(kids) >= 2 and _spans_plane(rest[kids]):
            out[:, j] = _best_fit(rest[kids], joints[:, kids] - joints[:, j : j + 1])
        else:
            c = max(kids, key=lambda k: np.linalg.norm(rest[k]))
            out[:, j] = _single_child(j, c, carried, joints, rest, children, hints)
    return qfix(out)


def _single_child(j, c, carried, joints, rest, children, hints) -> np.ndarray:
    """Shortest arc from the carried frame onto the child, then any bend-plane twist."""
    bone = joints[:, c] - joints[:, j]  # (T, 3)
    swung = qmul(qbetween(qrot(carried, np.broadcast_to(rest[c], bone.shape)), bone), carried)
    grand = [g for g in children[c] if np.linalg.norm(rest[g]) > 1e-9]
    axis = _bend_axis(rest[c], hints.get(j))
    if len(grand) != 1 or axis is None:
        return swung
    return qmul(_bend_twist(qrot(swung, axis), bone, joints[:, grand[0]] - joints[:, c]), swung)


def _bend_axis(rest_child: np.ndarray, hint: Sequence[float] | None) -> np.ndarray | None:
    """The hint's part across the rest bone, as a unit rest-frame axis, or None."""
    if hint is None:
        return None
    bone = rest_child / np.linalg.norm(rest_child)
    axis = np.asarray(hint, dtype=np.float64)
    axis = axis - axis.dot(bone) * bone  # only the part across the bone can be twisted onto
    norm = np.linalg.norm(axis)
    return axis / norm if norm > 1e-6 else None


def _bend_twist(axis_now: np.ndarray, bone: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Twist (T, 4) about the bone turning axis_now (T, 3) onto the bend-plane normal.

    The normal (bone x lower) keeps its anatomical sign: a knee or elbow bends one way only,
    so the axis follows it however far the limb turns (an arm raised overhead turns the
    elbow's axis by more than 90 degrees). Where the limb is nearly straight the normal is
    noise, and the axis is instead carried through time from the bent frames on either side.
    """
    along = bone / (np.linalg.norm(bone, axis=-1, keepdims=True) + 1e-12)
    normal = np.cross(bone, lower)
    sin_bend = np.linalg.norm(normal, axis=-1) / (
        np.linalg.norm(bone, axis=-1) * np.linalg.norm(lower, axis=-1) + 1e-12
    )
    normal = normal / (np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12)
    weight = np.clip((sin_bend - _BEND_FADE[0]) / (_BEND_FADE[1] - _BEND_FADE[0]), 0.0, 1.0)
    target = _through_straight_runs(axis_now, along, normal, weight)
    return axis_angle_to_quat(along, _angle_about(axis_now, target, along))


def _through_straight_runs(start, along, normal, weight) -> np.ndarray:
    """Bend axis per frame (T, 3): the normal where bent, bridged across straight runs.

    Inside a run of nearly straight frames the axis held from before the run (forward pass)
    turns gradually into the one held from after it (backward pass), so the twist does not
    jump when the limb bends again. A run at the start of the clip takes the axis from
    after it, a run at the end the one from before it; a clip never bent keeps ``start``.
    """
    loose = weight < 1.0
    if not loose.any():
        return normal
    fwd = _held_axis(start, along, normal, weight)
    bwd = _held_axis(start[::-1], along[::-1], normal[::-1], weight[::-1])[::-1]
    mix = np.zeros(len(weight))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loose.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2] - 1, strict=True):  # runs a..b inclusive
        if a == 0 and b == len(weight) - 1:
            continue
        if a == 0:
            mix[a : b + 1] = 1.0
        elif b < len(weight) - 1:
            mix[a : b + 1] = (np.arange(a, b + 1) - a + 1) / (b - a + 2)
    return _turn(fwd, along, mix * _angle_about(fwd, bwd, along))


def _held_axis(start: np.ndarray, along: np.ndarray, normal: np.ndarray, weight: np.ndarray):
    """Per frame, the previous frame's axis turned ``weight`` of the way to the normal.

    All (T, 3) unit vectors across ``along``; weight (T,). Frames with weight 1 need no
    history, so only the nearly straight frames are walked one by one.
    """
    target = normal.copy()
    for t in np.flatnonzero(weight < 1.0):
        prev = start[t] if t == 0 else target[t - 1]
        prev = prev - prev.dot(along[t]) * along[t]  # onto the plane across this frame's bone
        norm = np.linalg.norm(prev)
        prev = prev / norm if norm > 1e-9 else start[t]
        turn = np.arctan2(np.cross(prev, normal[t]).dot(along[t]), prev.dot(normal[t]))
        target[t] = _turn(prev, along[t], weight[t] * turn)
    return target


def _angle_about(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Signed angle (...) turning a onto b about axis, all (..., 3) across the axis."""
    return np.arctan2((np.cross(a, b) * axis).sum(-1), (a * b).sum(-1))


def _turn(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate v (..., 3), which lies across the unit axis, by angle (...) about it."""
    angle = np.asarray(angle)[..., None]
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle)


def _best_fit(rest_dirs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Kabsch: rotation (T, 4) best turning unit rest directions (K, 3) onto observed (T, K, 3)."""
    src = rest_dirs / np.linalg.norm(rest_dirs, axis=-1, keepdims=True)
    dst = observed / (np.linalg.norm(observed, axis=-1, keepdims=True) + 1e-12)
    cov = np.einsum("tki,kj->tij", dst, src)  # (T, 3, 3): sum_k dst_k src_k^T
    u, _, vt = np.linalg.svd(cov)
    flip = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)  # a rotation, never a reflection
    u[..., :, 2] *= flip[:, None]
    return matrix_to_quat(u @ vt)


def _spans_plane(dirs: np.ndarray) -> bool:
    """Whether rest directions (K, 3) are not all on one line (so they fix the twist)."""
    unit = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    return bool(np.linalg.matrix_rank(unit, tol=1e-6) >= 2)


def _children(parents: Sequence[int]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            kids[p].append(j)
    return kids


def _check_parents(parents: Sequence[int]) -> None:
    for j, p in enumerate(parents):
        if p >= j or p < -1:
            raise ValueError(f"parents must list each parent before its child: joint {j} has {p}")
