"""Bones take the generated twist (a 272 clip's rotations) and keep the joints' directions.

The body here is in T-pose at rest (arms along +-X, as SMPL's rotations are relative to)
while the rig is the canonical skeleton with its arms down: the rest-pose difference the
alignment must absorb. The forearm turns about itself, which no joint position shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_rig import make_rig, play, rest_joints, z_up

from engine.errors import MotionError
from engine.motion.quaternion import axis_angle_to_quat, qbetween, quat_to_matrix
from engine.motion.rig_pose import rotations_from_joints
from engine.motion.skeleton import CANONICAL_OFFSETS, JOINT_NAMES, PARENTS
from engine.retarget.generated_twist import apply_generated_twist, generated_globals
from engine.retarget.rig import PRESETS, retarget

FRAMES = 12
ELBOW, WRIST, SHOULDER = 18, 20, 16


def rot(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    return quat_to_matrix(axis_angle_to_quat(axis / np.linalg.norm(axis), np.asarray(angle)))


def body_offsets() -> np.ndarray:
    """The generating body at rest: the canonical bones with the arms out (T-pose)."""
    out = CANONICAL_OFFSETS.copy()
    for joints, sign in (((16, 18, 20), 1.0), ((17, 19, 21), -1.0)):
        for j in joints:
            out[j] = np.array([sign * np.linalg.norm(CANONICAL_OFFSETS[j]), 0.0, 0.0])
    return out


def clip(twist: float) -> tuple[np.ndarray, np.ndarray]:
    """(local rotations (T, 22, 3, 3), joints (T, 22, 3)): the left arm swings forward while
    the forearm turns by ``twist`` x frame / T about itself and the wrist flexes."""
    t = np.arange(FRAMES) / (FRAMES - 1)
    local = np.tile(np.eye(3), (FRAMES, 22, 1, 1))
    local[:, SHOULDER] = rot([0, 1, 0], -0.8 * t)  # arm towards +Z (forward)
    local[:, ELBOW] = rot([1, 0, 0], twist * t)  # about the forearm's rest axis (+X)
    local[:, WRIST] = rot([0, 0, 1], 0.4 * t)
    offsets = body_offsets()
    glob = generated_globals(local)
    joints = np.zeros((FRAMES, 22, 3))
    joints[:, 0] = [0.0, 0.95, 0.0]
    for j, p in enumerate(PARENTS):
        if p >= 0:
            joints[:, j] = joints[:, p] + glob[:, p] @ offsets[j]
    return local, joints


def solve(twist: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    local, joints = clip(twist)
    glob = rotations_from_joints(joints, PARENTS, CANONICAL_OFFSETS)
    out = apply_generated_twist(glob, local, joints, range(22), PARENTS, CANONICAL_OFFSETS)
    return quat_to_matrix(glob), quat_to_matrix(out), generated_globals(local)


def test_positions_cannot_see_the_twist_but_the_bones_take_it() -> None:
    plain_0, twisted_0, _ = solve(0.0)
    plain, twisted, generated = solve(1.2)
    np.testing.assert_allclose(plain, plain_0, atol=1e-9)  # same joints, same solve
    # the rig's forearm = the generated one after the rest alignment (arm down -> arm out)
    align = quat_to_matrix(qbetween(CANONICAL_OFFSETS[WRIST], body_offsets()[WRIST]))
    np.testing.assert_allclose(twisted[:, ELBOW], generated[:, ELBOW] @ align, atol=1e-7)
    # ... which is the untwisted solution turned about the forearm by the generated angle
    forearm = np.swapaxes(twisted_0[:, ELBOW], -1, -2) @ twisted[:, ELBOW]
    axis = CANONICAL_OFFSETS[WRIST] / np.linalg.norm(CANONICAL_OFFSETS[WRIST])
    angles = 1.2 * np.arange(FRAMES) / (FRAMES - 1)
    np.testing.assert_allclose(forearm, np.stack([rot(axis, a) for a in angles]), atol=1e-7)
    # the wrist (a leaf) follows with its own generated rotation
    np.testing.assert_allclose(twisted[:, WRIST], generated[:, WRIST] @ align, atol=1e-7)


def test_every_bone_keeps_the_direction_the_joints_gave() -> None:
    _, joints = clip(0.9)
    _, twisted, _ = solve(0.9)
    for j in range(len(PARENTS)):
        kids = [c for c, q in enumerate(PARENTS) if q == j]
        if len(kids) != 1:
            continue
        c = kids[0]
        bone = joints[:, c] - joints[:, j]
        posed = twisted[:, j] @ CANONICAL_OFFSETS[c]
        cosine = (
            (bone * posed).sum(-1) / np.linalg.norm(bone, axis=-1) / np.linalg.norm(posed, axis=-1)
        )
        np.testing.assert_allclose(cosine, 1.0, atol=1e-9, err_msg=JOINT_NAMES[j])


def test_retarget_with_rotations_changes_twist_not_positions() -> None:
    local, joints = clip(1.0)
    rest = make_rig(rest_joints(), list(JOINT_NAMES))  # any rolls, arms down at rest
    plain = retarget(joints, rest, PRESETS["smplx"])
    twisted = retarget(joints, rest, PRESETS["smplx"], rotations=local)
    np.testing.assert_allclose(play(rest, twisted), play(rest, plain), atol=1e-7)
    np.testing.assert_allclose(play(rest, twisted), z_up(joints), atol=1e-7)
    elbow = twisted.bone_names.index(PRESETS["smplx"].bones[JOINT_NAMES[ELBOW]])
    assert not np.allclose(twisted.rotations[-1, elbow], plain.rotations[-1, elbow], atol=1e-3)
    with pytest.raises(MotionError, match="frames"):
        retarget(joints, rest, PRESETS["smplx"], rotations=local[:-1])
