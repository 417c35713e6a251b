"""Posing a rigid skeleton onto joint positions: exact for rigid input, directions otherwise."""

import numpy as np

from engine.motion.quaternion import axis_angle_to_quat, qrot
from engine.motion.rig_pose import (
    CANONICAL_TWIST_HINTS,
    forward_kinematics,
    global_from_local,
    local_from_global,
    rotations_from_joints,
)
from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS


def random_quats(rng: np.random.Generator, *shape: int) -> np.ndarray:
    q = rng.normal(size=(*shape, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def rigid_clip(rng: np.random.Generator, num_frames: int = 16):
    local = random_quats(rng, num_frames, 22)
    root = np.cumsum(rng.normal(scale=0.1, size=(num_frames, 3)), axis=0)
    return forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)


def test_rigid_joints_are_reproduced_exactly():
    joints = rigid_clip(np.random.default_rng(0))
    local = local_from_global(rotations_from_joints(joints), PARENTS)
    again = forward_kinematics(local, joints[:, 0], PARENTS, CANONICAL_OFFSETS)
    np.testing.assert_allclose(again, joints, atol=1e-6)


def test_any_skeleton_round_trips():
    rng = np.random.default_rng(1)
    parents = [-1, 0, 1, 1, 0, 4, 5, 2, 2, 3]  # branch points with two and three children
    offsets = rng.normal(size=(10, 3))
    local = random_quats(rng, 9, 10)
    joints = forward_kinematics(local, rng.normal(size=(9, 3)), parents, offsets)
    hints = {5: (0.0, 0.0, 1.0)}
    posed = local_from_global(rotations_from_joints(joints, parents, offsets, hints), parents)
    np.testing.assert_allclose(
        forward_kinematics(posed, joints[:, 0], parents, offsets), joints, atol=1e-6
    )


def test_single_child_bones_point_at_noisy_children():
    rng = np.random.default_rng(2)
    joints = rigid_clip(rng) + rng.normal(scale=0.02, size=(16, 22, 3))  # bone lengths vary
    local = local_from_global(rotations_from_joints(joints), PARENTS)
    posed = forward_kinematics(local, joints[:, 0], PARENTS, CANONICAL_OFFSETS)
    for j in range(22):
        kids = [c for c, p in enumerate(PARENTS) if p == j]
        if len(kids) != 1:
            continue
        want = joints[:, kids[0]] - joints[:, j]
        got = posed[:, kids[0]] - posed[:, j]
        cos = (want * got).sum(-1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-9)


def test_local_and_global_are_inverse():
    rng = np.random.default_rng(3)
    local = random_quats(rng, 5, 22)
    back = local_from_global(global_from_local(local, PARENTS), PARENTS)
    np.testing.assert_allclose(np.abs((back * local).sum(-1)), 1.0, atol=1e-12)


def test_quaternion_signs_stay_continuous():
    # A full turn about Y: rotation matrices give w >= 0, which would flip sign at 180 degrees.
    pose = rigid_clip(np.random.default_rng(4), num_frames=1)[0]  # (22, 3)
    spin = axis_angle_to_quat(np.array([0.0, 1.0, 0.0]), np.radians(np.arange(0, 360, 10.0)))
    joints = qrot(spin[:, None], pose[None])  # (36, 22, 3)
    glob = rotations_from_joints(joints)
    assert ((glob[1:] * glob[:-1]).sum(-1) > 0.9).all()


def bent_arm(angles_deg: np.ndarray) -> np.ndarray:
    """Rest pose with the left elbow bent forwards by each angle (T,), upper arm hanging."""
    rest = forward_kinematics(
        np.tile([1.0, 0, 0, 0], (1, 22, 1)), np.zeros((1, 3)), PARENTS, CANONICAL_OFFSETS
    )
    joints = rest.repeat(len(angles_deg), axis=0)
    bend = axis_angle_to_quat(np.array([-1.0, 0, 0]), np.radians(angles_deg))  # (T, 4)
    forearm = np.broadcast_to(CANONICAL_OFFSETS[20], (len(angles_deg), 3))
    joints[:, 20] = joints[:, 18] + qrot(bend, forearm)
    return joints


def test_shoulder_twist_follows_the_elbow_bend_plane():
    rng = np.random.default_rng(5)
    joints = rigid_clip(rng, num_frames=40)
    glob = rotations_from_joints(joints)
    for shoulder, elbow, wrist in ((16, 18, 20), (17, 19, 21)):
        upper = joints[:, elbow] - joints[:, shoulder]
        lower = joints[:, wrist] - joints[:, elbow]
        normal = np.cross(upper, lower)
        sin_bend = (
            np.linalg.norm(normal, axis=-1)
            / np.linalg.norm(upper, axis=-1)
            / np.linalg.norm(lower, axis=-1)
        )
        bent = sin_bend > np.sin(np.radians(15))
        axis = qrot(glob[:, shoulder], np.array(CANONICAL_TWIST_HINTS[shoulder]))
        unit = normal / np.linalg.norm(normal, axis=-1, keepdims=True)
        np.testing.assert_allclose((axis * unit).sum(-1)[bent], 1.0, atol=1e-9)


def test_twist_is_held_while_the_arm_is_straight():
    # Bent 40 degrees, straightening, straight, bending again in the same plane: the elbow's
    # hinge axis must stay put through the straight frames instead of snapping back.
    angles = np.concatenate([np.linspace(40, 0, 8), np.zeros(6), np.linspace(0, 40, 8)])
    joints = bent_arm(angles)
    turn = axis_angle_to_quat(np.array([0.0, 1.0, 0.0]), np.array(2.0))  # twist about the arm
    joints[:, 20] = joints[:, 18] + qrot(turn, joints[:, 20] - joints[:, 18])
    glob = rotations_from_joints(joints)
    axis = qrot(glob[:, 16], np.array(CANONICAL_TWIST_HINTS[16]))
    expected = qrot(turn, np.array([-1.0, 0, 0]))  # the bend plane's normal, turned with it
    np.testing.assert_allclose(axis, np.broadcast_to(expected, axis.shape), atol=1e-9)
