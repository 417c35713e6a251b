"""Skeleton maths of the HumanML3D reference: chain forward/inverse kinematics and retargeting.

Rotations are per kinematic chain, the reference's own definition: every chain in
``KINEMATIC_CHAINS`` starts again from the root rotation (the arm chains too, although they
hang off spine3), so ``chain_forward_kinematics(chain_inverse_kinematics(j), ...)`` rebuilds
the bone *directions* of ``j`` exactly while the offsets decide the bone lengths. That is all
the feature extraction needs; these rotations hold no twist and are not SMPL rotations.

Forward kinematics takes numpy arrays or torch tensors (it only calls the quaternion module);
inverse kinematics is numpy (float64), because its forward-direction smoothing is scipy's.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..errors import MotionError
from .quaternion import Array, _is_torch, _like, qbetween, qinv, qmul, qrot
from .skeleton import (
    CANONICAL_OFFSETS,
    FACE_JOINTS,
    KINEMATIC_CHAINS,
    LEG_SCALE_JOINTS,
    NUM_JOINTS,
    PARENTS,
    RAW_OFFSETS,
)

FORWARD_SMOOTHING_SIGMA = 20.0
"""Gaussian sigma (frames) the reference smooths the facing direction with before IK."""

_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])


def chain_forward_kinematics(quats: Array, root_pos: Array, offsets: Array) -> Array:
    """Joint positions from per-chain local rotations (the reference FK).

    quats: (..., T, 22, 4) local rotations, quats[..., 0, :] the root rotation;
    root_pos: (..., T, 3); offsets: (22, 3) rest offsets from each joint's parent.
    Returns (..., T, 22, 3), same kind (numpy or torch) as ``quats``.
    """
    offsets = _like(offsets, quats)  # (22, 3) on the quaternions' device and dtype
    joints: list = [None] * NUM_JOINTS
    joints[0] = root_pos
    for chain in KINEMATIC_CHAINS:
        rot = quats[..., 0, :]  # (..., T, 4): every chain restarts from the root rotation
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            rot = qmul(rot, quats[..., child, :])
            joints[child] = qrot(rot, offsets[child]) + joints[parent]
    if _is_torch(quats):
        import torch

        return torch.stack(joints, dim=-2)
    return np.stack(joints, axis=-2)


def facing_direction(
    joints: np.ndarray, face_joints: tuple[int, int, int, int], normalize: bool = True
) -> np.ndarray:
    """Horizontal facing direction (..., 3) of joints (..., 22, 3).

    forward = up x across with across = (j[a] - j[b]) + (j[c] - j[d]) for face_joints
    (a, b, c, d), normalised: a body whose left is +X faces +Z. With ``normalize=False`` the
    length is left at that of across's horizontal part, as the reference smooths it. Zero
    where across is zero or vertical (no facing direction).
    """
    a, b, c, d = face_joints
    across = (joints[..., a, :] - joints[..., b, :]) + (joints[..., c, :] - joints[..., d, :])
    forward = np.cross(_UP, _unit(across))
    return _unit(forward) if normalize else forward


def _unit(v: np.ndarray) -> np.ndarray:
    """v / |v| over the last axis; zero vectors stay zero."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


IK_FACE_JOINTS = (FACE_JOINTS[1], FACE_JOINTS[0], FACE_JOINTS[2], FACE_JOINTS[3])
"""The across vector of the reference IK: (left hip - right hip) + (right sh. - left sh.).

The reference unpacks FACE_JOINTS (r_hip, l_hip, r_sdr, l_sdr) as (l_hip, r_hip, ...) inside
its IK only, so the hip term has the opposite sign to the one used to put frame 0 on +Z;
the shoulders, being wider, still make it point the right way. Reproducing HumanML3D's root
rotations (and so every heading-relative feature) needs this exact vector; the real-clip test
shows the features match with it and not with the symmetric one.
"""


def chain_inverse_kinematics(joints: np.ndarray, smooth_forward: bool) -> np.ndarray:
    """Per-chain local rotations (..., T, 22, 4) of joints (..., T, 22, 3) (the reference IK).

    The root rotation takes the facing direction to +Z (smoothed over time with a Gaussian,
    sigma 20 frames, when ``smooth_forward``); the reference forces frame 0's to identity.
    Each bone's local rotation is the shortest arc from its rest direction (RAW_OFFSETS) to
    its direction in ``joints``, relative to the accumulated rotation of its chain.
    """
    joints = np.asarray(joints, dtype=np.float64)
    forward = facing_direction(joints, IK_FACE_JOINTS, normalize=False)  # (..., T, 3)
    if smooth_forward:
        forward = gaussian_filter1d(forward, FORWARD_SMOOTHING_SIGMA, axis=-2, mode="nearest")
    # qbetween treats a zero forward (no facing direction) as already facing +Z.
    root_quat = qbetween(forward, np.broadcast_to(_FORWARD, forward.shape))  # (..., T, 4)
    root_quat[..., 0, :] = (1.0, 0.0, 0.0, 0.0)
    quats = np.zeros(joints.shape[:-1] + (4,))  # (..., T, 22, 4)
    quats[..., 0, :] = root_quat
    for chain in KINEMATIC_CHAINS:
        rot = root_quat
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            bone = joints[..., child, :] - joints[..., parent, :]  # (..., T, 3)
            rest = np.broadcast_to(RAW_OFFSETS[child], bone.shape)
            local = qmul(qinv(rot), qbetween(rest, bone))
            quats[..., child, :] = local
            rot = qmul(rot, local)
    return quats


def bone_lengths(joints: Array) -> Array:
    """(..., 22, 3) -> (..., 22): length of the bone from each joint's parent (0 for the root)."""
    parents = [0] + list(PARENTS[1:])
    bones = joints - joints[..., parents, :]
    return (bones * bones).sum(-1) ** 0.5


def offsets_from_joints(joints: np.ndarray) -> np.ndarray:
    """Rest offsets (..., 22, 3) with the bone lengths of one frame (..., 22, 3) along
    RAW_OFFSETS."""
    return RAW_OFFSETS * bone_lengths(np.asarray(joints, dtype=np.float64))[..., None]


def leg_length(offsets: np.ndarray) -> float:
    """The reference's retargeting scale: |offset[5]|.max() + |offset[8]|.max() (metres)."""
    return float(leg_lengths(offsets))


def leg_lengths(offsets: np.ndarray) -> np.ndarray:
    """``leg_length`` of offsets (..., 22, 3) -> (...)."""
    return sum(np.abs(offsets[..., j, :]).max(axis=-1) for j in LEG_SCALE_JOINTS)


def uniform_skeleton(
    joints: np.ndarray, target_offsets: np.ndarray = CANONICAL_OFFSETS
) -> np.ndarray:
    """Retarget joints (..., T, 22, 3) to the bone lengths of ``target_offsets`` (22, 3).

    The root path is scaled by the ratio of leg lengths (frame 0), every bone keeps its
    direction and takes the target length: IK without smoothing, then FK from the scaled root.
    """
    joints = np.asarray(joints, dtype=np.float64)
    source_leg = leg_lengths(offsets_from_joints(joints[..., 0, :, :]))  # (...) per clip
    if not np.all(source_leg > 0):
        low = np.min(source_leg)
        raise MotionError(f"cannot retarget: the right leg of frame 0 has length {low}")
    scale = leg_length(target_offsets) / source_leg
    quats = chain_inverse_kinematics(joints, smooth_forward=False)
    root = joints[..., 0, :] * np.asarray(scale)[..., None, None]  # (..., T, 3)
    return chain_forward_kinematics(quats, root, target_offsets)
