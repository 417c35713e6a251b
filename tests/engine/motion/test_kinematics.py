"""Chain forward/inverse kinematics and retargeting of the HumanML3D reference skeleton."""

import numpy as np
import pytest
import torch

from engine.errors import MotionError
from engine.motion.kinematics import (
    bone_lengths,
    chain_forward_kinematics,
    chain_inverse_kinematics,
    facing_direction,
    offsets_from_joints,
    uniform_skeleton,
)
from engine.motion.quaternion import axis_angle_to_quat, qrot
from engine.motion.skeleton import (
    BONE_LENGTHS,
    CANONICAL_OFFSETS,
    FACE_JOINTS,
    PARENTS,
    RAW_OFFSETS,
)

Y = np.array([0.0, 1.0, 0.0])


def random_quats(shape: tuple[int, ...], seed: int, scale: float = 0.5) -> np.ndarray:
    """Random rotations of moderate size (angles up to about ``scale`` * 1.7 rad)."""
    rotvec = np.random.default_rng(seed).uniform(-scale, scale, size=shape + (3,))
    angle = np.linalg.norm(rotvec, axis=-1)
    return axis_angle_to_quat(rotvec / angle[..., None], angle)


def rest_pose(offsets: np.ndarray = CANONICAL_OFFSETS) -> np.ndarray:
    """(22, 3): each joint at its parent plus its offset, root at the origin."""
    joints = np.zeros((22, 3))
    for i in range(1, 22):
        joints[i] = joints[PARENTS[i]] + offsets[i]
    return joints


def test_identity_rotations_give_the_rest_pose():
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (3, 22, 1))
    root = np.array([[0.0, 0.9, 0.0], [1.0, 0.9, 0.0], [1.0, 0.9, 2.0]])
    joints = chain_forward_kinematics(quats, root, CANONICAL_OFFSETS)
    np.testing.assert_allclose(joints, rest_pose()[None] + root[:, None], atol=1e-12)


def test_root_rotation_turns_the_whole_body():
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (1, 22, 1))
    quats[:, 0] = axis_angle_to_quat(Y, np.array(np.pi))  # facing -Z
    joints = chain_forward_kinematics(quats, np.zeros((1, 3)), CANONICAL_OFFSETS)[0]
    np.testing.assert_allclose(joints, rest_pose() * [-1, 1, -1], atol=1e-12)


def test_arm_chains_restart_from_the_root_rotation():
    # The reference multiplies the root rotation, not spine3's, into the arm chains: a bend
    # of spine3 moves the neck and head but only carries the arms along, unrotated.
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (1, 22, 1))
    quats[:, 9] = axis_angle_to_quat(np.array([1.0, 0.0, 0.0]), np.array(0.7))
    bent = chain_forward_kinematics(quats, np.zeros((1, 3)), CANONICAL_OFFSETS)[0]
    rest = rest_pose()
    neck = qrot(quats[0, 9], CANONICAL_OFFSETS[12])
    np.testing.assert_allclose(bent[12] - bent[9], neck, atol=1e-12)
    for arm in (13, 14, 16, 17, 18, 19, 20, 21):
        np.testing.assert_allclose(bent[arm] - bent[9], rest[arm] - rest[9], atol=1e-12)


def test_bone_lengths_and_offsets_of_the_rest_pose():
    np.testing.assert_allclose(bone_lengths(rest_pose()), BONE_LENGTHS, atol=1e-12)
    np.testing.assert_allclose(offsets_from_joints(rest_pose()), CANONICAL_OFFSETS, atol=1e-12)
    scaled = offsets_from_joints(2.0 * rest_pose())
    np.testing.assert_allclose(scaled, RAW_OFFSETS * 2.0 * BONE_LENGTHS[:, None], atol=1e-12)


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("heading", [0.0, np.pi, 2.0])
def test_ik_then_fk_rebuilds_the_joints(smooth, heading):
    # heading pi: a character facing -Z, whose hips point exactly against their rest
    # directions (the reference's qbetween returned a zero quaternion there).
    quats = random_quats((40, 22), seed=1)
    quats[:, 0] = axis_angle_to_quat(Y, np.full(40, heading))
    root = np.random.default_rng(2).normal(size=(40, 3))
    joints = chain_forward_kinematics(quats, root, CANONICAL_OFFSETS)
    ik = chain_inverse_kinematics(joints, smooth_forward=smooth)
    assert np.isfinite(ik).all()
    np.testing.assert_allclose(np.linalg.norm(ik, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(ik[0, 0], [1, 0, 0, 0])  # the reference's frame-0 convention
    rebuilt = chain_forward_kinematics(ik, root, CANONICAL_OFFSETS)
    np.testing.assert_allclose(rebuilt, joints, atol=1e-10)


def test_ik_root_rotation_turns_the_facing_direction_to_plus_z():
    quats = random_quats((30, 22), seed=3, scale=0.2)
    quats[:, 0] = axis_angle_to_quat(Y, np.linspace(0.0, 3.0, 30))
    joints = chain_forward_kinematics(quats, np.zeros((30, 3)), CANONICAL_OFFSETS)
    root = chain_inverse_kinematics(joints, smooth_forward=False)[:, 0]
    # The reference's IK across vector: (left hip - right hip) + (right sh. - left sh.).
    forward = facing_direction(joints, (1, 2, 17, 16))
    np.testing.assert_allclose(
        qrot(root[1:], forward[1:]), np.tile([0, 0, 1.0], (29, 1)), atol=1e-12
    )
    # Its heading agrees with the proper one (hips and shoulders both right minus left).
    proper = facing_direction(joints, FACE_JOINTS)
    assert ((forward * proper).sum(-1) > 0.5).all()


def test_uniform_skeleton_keeps_directions_and_takes_target_lengths():
    quats = random_quats((20, 22), seed=4)
    root = np.cumsum(np.full((20, 3), 0.05), axis=0)
    source_offsets = CANONICAL_OFFSETS * np.random.default_rng(5).uniform(1.1, 1.4, (22, 1))
    joints = chain_forward_kinematics(quats, root, source_offsets)
    out = uniform_skeleton(joints)
    np.testing.assert_allclose(bone_lengths(out), np.tile(BONE_LENGTHS, (20, 1)), atol=1e-12)
    bones_in = joints[:, 1:] - joints[:, list(PARENTS[1:])]
    bones_out = out[:, 1:] - out[:, list(PARENTS[1:])]
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(bones_out), unit(bones_in), atol=1e-12)
    leg = lambda off: np.abs(off[5]).max() + np.abs(off[8]).max()  # noqa: E731
    ratio = leg(CANONICAL_OFFSETS) / leg(source_offsets)
    np.testing.assert_allclose(out[:, 0], root * ratio, atol=1e-12)


def test_uniform_skeleton_rejects_a_collapsed_leg():
    joints = np.zeros((3, 22, 3))
    with pytest.raises(MotionError, match="right leg"):
        uniform_skeleton(joints)


def test_forward_kinematics_numpy_torch_and_batches_agree():
    quats = random_quats((2, 5, 22), seed=6)
    root = np.random.default_rng(7).normal(size=(2, 5, 3))
    expected = chain_forward_kinematics(quats, root, CANONICAL_OFFSETS)
    assert expected.shape == (2, 5, 22, 3)
    np.testing.assert_allclose(
        expected[1], chain_forward_kinematics(quats[1], root[1], CANONICAL_OFFSETS), atol=1e-12
    )
    got = chain_forward_kinematics(
        torch.from_numpy(quats), torch.from_numpy(root), CANONICAL_OFFSETS
    )
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(bone_lengths(got).numpy(), bone_lengths(expected), atol=1e-12)
