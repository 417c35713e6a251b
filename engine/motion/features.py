"""The 263-dim HumanML3D motion features: layout, extraction, recovery, mirroring.

This module is the one place that knows the layout (``FEATURE_GROUPS``). Extraction follows
the reference's ``process_file`` (Guo et al. 2022) step for step so that our features of a
clip agree with the published data set, with one deliberate fix (see
``_heading_velocity``). ``recover_from_ric`` and ``mirror_features`` run batched on numpy
arrays or torch tensors (any device); ``Normalizer`` holds the per-dimension statistics.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import MotionError
from .kinematics import chain_inverse_kinematics, facing_direction, uniform_skeleton
from .quaternion import Array, _is_torch, _like, qbetween, qinv, qmul, qrot, quat_to_cont6d
from .skeleton import FACE_JOINTS, FOOT_LEFT, FOOT_RIGHT, MIRROR_INDEX, NUM_JOINTS

_J = NUM_JOINTS
ROOT_ROT_VEL = slice(0, 1)
"""Heading change to the next frame: half the angle about +Y (radians), as the reference."""
ROOT_LIN_VEL = slice(1, 3)
"""Root displacement to the next frame in XZ, in the next frame's heading (metres/frame)."""
ROOT_Y = slice(3, 4)
"""Root height above the floor (metres)."""
RIC = slice(4, 4 + (_J - 1) * 3)
"""Joints 1..21 relative to the root's XZ, heading removed (21 x 3)."""
ROT6D = slice(RIC.stop, RIC.stop + (_J - 1) * 6)
"""Per-chain local rotations of joints 1..21 as the first two matrix columns (21 x 6)."""
LOCAL_VEL = slice(ROT6D.stop, ROT6D.stop + _J * 3)
"""All 22 joints' displacement to the next frame, in this frame's heading (22 x 3)."""
FOOT_CONTACT = slice(LOCAL_VEL.stop, LOCAL_VEL.stop + 4)
"""1 where a foot joint is still: left ankle, left foot, right ankle, right foot."""
FEATURE_DIM = FOOT_CONTACT.stop

FEATURE_GROUPS: dict[str, slice] = {
    "root_rot_vel": ROOT_ROT_VEL,
    "root_lin_vel": ROOT_LIN_VEL,
    "root_y": ROOT_Y,
    "ric": RIC,
    "rot6d": ROT6D,
    "local_vel": LOCAL_VEL,
    "foot_contact": FOOT_CONTACT,
}
"""Name -> slice of each group; normalisation shares one std within each group."""

FEET_THRESHOLD = 0.002
"""Squared per-frame displacement (m^2) below which a foot joint counts as in contact."""

_UP_Z = np.array([0.0, 0.0, 1.0])


def _check_joints(joints: np.ndarray) -> np.ndarray:
    """Validate (..., T, 22, 3) joints and return them as float64; MotionError names the
    problem."""
    arr = np.asarray(joints)
    if arr.ndim < 3 or arr.shape[-2:] != (NUM_JOINTS, 3):
        raise MotionError(f"joints must have shape (T, {NUM_JOINTS}, 3), got {arr.shape}")
    if arr.shape[-3] < 2:
        raise MotionError(f"joints need at least 2 frames to give features, got {arr.shape[-3]}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=(-2, -1)).reshape(-1, arr.shape[-3]).all(axis=0)
    if bad.any():
        raise MotionError(f"joints hold NaN or infinite values at frames {np.flatnonzero(bad)[:5]}")
    return arr


def canonicalize_joints(joints: np.ndarray) -> np.ndarray:
    """Retarget, floor, centre and turn a clip (T, 22, 3) the way HumanML3D stores it.

    Canonical bone lengths; lowest joint of the clip on y = 0; frame 0's root at the XZ
    origin; frame 0 facing +Z (hips and shoulders, FACE_JOINTS). Returns (T, 22, 3) float64.
    Clips of one length can come as a batch (..., T, 22, 3): each is treated on its own.
    """
    positions = uniform_skeleton(_check_joints(joints))  # (..., T, 22, 3)
    positions[..., 1] -= positions[..., 1].min(axis=(-2, -1))[..., None, None]
    positions -= positions[..., :1, :1, :] * np.array([1.0, 0.0, 1.0])
    forward_init = facing_direction(positions[..., 0, :, :], FACE_JOINTS, normalize=False)
    if np.any(np.linalg.norm(forward_init, axis=-1) < 1e-6):  # sine of the lines' tilt
        raise MotionError(
            "frame 0 gives no facing direction: its hip and shoulder lines add up to a "
            "vertical or zero vector"
        )
    return qrot(qbetween(forward_init, _UP_Z)[..., None, None, :], positions)


def _foot_contacts(positions: np.ndarray, threshold: float) -> np.ndarray:
    """(..., T, 22, 3) -> (..., T-1, 4): squared displacement to the next frame below
    ``threshold``."""
    feet = list(FOOT_LEFT) + list(FOOT_RIGHT)
    step = positions[..., 1:, feet, :] - positions[..., :-1, feet, :]  # (..., T-1, 4, 3)
    return ((step**2).sum(-1) < threshold).astype(np.float64)


def _heading_velocity(r_rot: np.ndarray) -> np.ndarray:
    """Per-frame heading change (T-1,) as half-angles about +Y, from root rotations (T, 4).

    The reference takes arcsin of the y component of r_rot[t+1] * inv(r_rot[t]); where the
    heading crosses +-180 degrees that product lands in the w < 0 hemisphere and the
    reference's value has the wrong sign. Choosing the w >= 0 representative first gives the
    same numbers everywhere else and keeps ``recover_from_ric`` exact through such turns.
    """
    r_vel = qmul(r_rot[..., 1:, :], qinv(r_rot[..., :-1, :]))  # (..., T-1, 4)
    r_vel = np.where(r_vel[..., :1] < 0, -r_vel, r_vel)
    return np.arcsin(np.clip(r_vel[..., 2], -1.0, 1.0))


def joints_to_features(
    joints: np.ndarray, feet_threshold: float = FEET_THRESHOLD, *, canonical: bool = False
) -> np.ndarray:
    """HumanML3D features (T-1, 263) float64 of joints (T, 22, 3), metres, Y up.

    Follows the reference's ``process_file``; the last joint frame only supplies velocities.
    A batch of clips of one length (..., T, 22, 3) gives (..., T-1, 263), each clip as if
    alone, in one pass of array operations (generated clips are cleaned in batches).
    ``canonical=True``: the joints are already ``canonicalize_joints`` output (a data set's
    ``new_joints``) and are used as they are; canonicalising is not idempotent (its
    retargeting moves joints by millimetres), so doing it twice would drift.
    """
    positions = _check_joints(joints) if canonical else canonicalize_joints(joints)
    contacts = _foot_contacts(positions, feet_threshold)  # (..., T-1, 4)
    quats = chain_inverse_kinematics(positions, smooth_forward=True)  # (..., T, 22, 4)
    cont6d = quat_to_cont6d(quats)  # (..., T, 22, 6)
    r_rot = quats[..., 0, :]  # (..., T, 4): takes each frame's heading to +Z
    step = positions[..., 1:, 0, :] - positions[..., :-1, 0, :]
    root_step = qrot(r_rot[..., 1:, :], step)  # (..., T-1, 3)
    ric = positions - positions[..., :1, :] * np.array([1.0, 0.0, 1.0])
    ric = qrot(r_rot[..., None, :], ric)  # (..., T, 22, 3)
    moved = positions[..., 1:, :, :] - positions[..., :-1, :, :]
    local_vel = qrot(r_rot[..., :-1, None, :], moved)  # (..., T-1, 22, 3)
    flat = positions.shape[:-3] + (positions.shape[-3] - 1, -1)
    return np.concatenate(
        [
            _heading_velocity(r_rot)[..., None],
            root_step[..., [0, 2]],
            ric[..., :-1, 0, 1:2],
            ric[..., :-1, 1:, :].reshape(flat),
            cont6d[..., :-1, 1:, :].reshape(flat),
            local_vel.reshape(flat),
            contacts,
        ],
        axis=-1,
    )


def _check_features(features: Array, min_ndim: int = 2) -> None:
    if features.ndim < min_ndim or features.shape[-1] != FEATURE_DIM:
        shape = tuple(features.shape)
        raise MotionError(f"features must have shape (..., T, {FEATURE_DIM}), got {shape}")


def _cumsum_from_zero(x: Array) -> Array:
    """(..., N, C) -> (..., N+1, C): out[0] = 0, out[t] = x[0] + ... + x[t-1]."""
    if _is_torch(x):
        import torch

        return torch.cat([torch.zeros_like(x[..., :1, :]), torch.cumsum(x, dim=-2)], dim=-2)
    return np.concatenate([np.zeros_like(x[..., :1, :]), np.cumsum(x, axis=-2)], axis=-2)


def _stack(xs: list, like: Array) -> Array:
    if _is_torch(like):
        import torch

        return torch.stack(xs, dim=-1)
    return np.stack(xs, axis=-1)


def _trig(angle: Array) -> tuple[Array, Array]:
    if _is_torch(angle):
        import torch

        return torch.cos(angle), torch.sin(angle)
    return np.cos(angle), np.sin(angle)


def recover_root(features: Array) -> tuple[Array, Array]:
    """Root heading quaternions (..., T, 4) and root positions (..., T, 3) from features.

    Heading half-angle[t] = sum of [0] over frames before t; root XZ[t] = sum of the steps
    [1:3] before t, each turned back by the heading of the frame it arrives at; root y = [3].
    Batched; numpy arrays or torch tensors, the result is of the same kind.
    """
    _check_features(features)
    angle = _cumsum_from_zero(features[..., :-1, ROOT_ROT_VEL])[..., 0]  # (..., T)
    cos, sin = _trig(angle)
    zero = 0 * angle
    r_rot = _stack([cos, zero, sin, zero], angle)  # (..., T, 4)
    vel = features[..., :-1, ROOT_LIN_VEL]  # (..., T-1, 2): step from frame t to t+1
    step = _stack([vel[..., 0], zero[..., 1:], vel[..., 1]], vel)  # (..., T-1, 3)
    r_xz = _cumsum_from_zero(qrot(qinv(r_rot[..., 1:, :]), step))  # (..., T, 3)
    r_pos = _stack([r_xz[..., 0], features[..., ROOT_Y.start], r_xz[..., 2]], angle)
    return r_rot, r_pos


def recover_from_ric(features: Array) -> Array:
    """Joint positions (..., T, 22, 3) from features (..., T, 263), numpy or torch.

    Reads only [0:67] (root and ric): each frame's ric turned back by the recovered heading
    and moved to the recovered root XZ; joint 0 is the root itself.
    """
    r_rot, r_pos = recover_root(features)
    ric = features[..., RIC].reshape(*features.shape[:-1], NUM_JOINTS - 1, 3)  # (..., T, 21, 3)
    body = qrot(qinv(r_rot[..., None, :]), ric)
    body = body + (r_pos * _like([1.0, 0.0, 1.0], r_pos))[..., None, :]
    if _is_torch(features):
        import torch

        return torch.cat([r_pos[..., None, :], body], dim=-2)
    return np.concatenate([r_pos[..., None, :], body], axis=-2)


def mirror_joints(joints: Array) -> Array:
    """Left/right mirror of joints (..., 22, 3): swap sides (MIRROR_INDEX) and negate x."""
    return joints[..., list(MIRROR_INDEX), :] * _like([-1.0, 1.0, 1.0], joints)


def _mirror_table() -> tuple[np.ndarray, np.ndarray]:
    """Source index and sign of every feature dimension of the mirrored clip, (263,) each.

    Mirroring is the reflection M = diag(-1, 1, 1) with sides swapped. Heading angles and
    x components change sign; a rotation R becomes M R M, whose first column is
    (c0x, -c0y, -c0z) and second (-c1x, c1y, c1z) in terms of R's columns c0, c1.
    """
    source, sign = np.arange(FEATURE_DIM), np.ones(FEATURE_DIM)
    sign[ROOT_ROT_VEL] = -1.0
    sign[ROOT_LIN_VEL.start] = -1.0
    groups = (
        (RIC, 3, 1, (-1, 1, 1)),
        (ROT6D, 6, 1, (1, -1, -1, -1, 1, 1)),
        (LOCAL_VEL, 3, 0, (-1, 1, 1)),
    )
    for part, width, first_joint, part_sign in groups:
        for joint in range(first_joint, NUM_JOINTS):
            dst = part.start + (joint - first_joint) * width
            src = part.start + (MIRROR_INDEX[joint] - first_joint) * width
            source[dst : dst + width] = np.arange(src, src + width)
            sign[dst : dst + width] = part_sign
    source[FOOT_CONTACT] = FOOT_CONTACT.start + np.array([2, 3, 0, 1])
    return source, sign


_MIRROR_SOURCE, _MIRROR_SIGN = _mirror_table()


def mirror_features(features: Array) -> Array:
    """Features (..., T, 263) of the left/right mirrored clip, numpy or torch.

    Exact on the layout: recover_from_ric of the result equals mirror_joints of
    recover_from_ric of the input. Bone lengths swap sides with the joints (HumanML3D's "M"
    copies were re-extracted, so theirs keep the canonical, slightly asymmetric, lengths).
    """
    _check_features(features)
    return features[..., _MIRROR_SOURCE.tolist()] * _like(_MIRROR_SIGN, features)


@dataclasses.dataclass
class Normalizer:
    """Per-dimension feature statistics: ``(x - mean) / std`` and back.

    ``fit`` shares one std within each feature group (the HumanML3D way) so that groups with
    many dimensions do not drown the root. The reference notebook also divides some groups
    by a ``feat_bias`` of 5; the released HumanML3D Std.npy does not (its contact std 0.356
    could not exceed 0.5 / 5 otherwise), and neither do we, so our statistics are
    interchangeable with the released ones.
    """

    mean: np.ndarray  # (263,)
    std: np.ndarray  # (263,)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean)
        self.std = np.asarray(self.std)
        for name, value in (("mean", self.mean), ("std", self.std)):
            if value.shape != (FEATURE_DIM,):
                wanted = f"({FEATURE_DIM},)"
                raise MotionError(f"Normalizer {name} must have shape {wanted}, got {value.shape}")
        if not (self.std > 0).all():
            raise MotionError("Normalizer std must be positive everywhere")

    def normalize(self, x: Array) -> Array:
        """(..., 263) features -> normalised, same kind, dtype and device as x."""
        _check_features(x, min_ndim=1)
        return (x - _like(self.mean, x)) / _like(self.std, x)

    def denormalize(self, x: Array) -> Array:
        """Inverse of ``normalize``: x * std + mean."""
        _check_features(x, min_ndim=1)
        return x * _like(self.std, x) + _like(self.mean, x)

    @classmethod
    def fit(cls, clips: list[np.ndarray], min_std: float = 1e-3) -> Normalizer:
        """Statistics of a list of (T, 263) clips: per-dimension mean, group-averaged std.

        ``min_std`` floors each group's std so a group that never varies (a data set with no
        foot contacts) maps to 0 instead of dividing by zero.
        """
        if not clips:
            raise MotionError("Normalizer.fit needs at least one clip")
        for i, clip in enumerate(clips):
            if np.ndim(clip) != 2 or np.shape(clip)[1] != FEATURE_DIM:
                wanted = f"(T, {FEATURE_DIM})"
                raise MotionError(f"clip {i} must have shape {wanted}, got {np.shape(clip)}")
        data = np.concatenate([np.asarray(c, dtype=np.float64) for c in clips], axis=0)
        std = data.std(axis=0)
        for part in FEATURE_GROUPS.values():
            std[part] = max(std[part].mean(), min_std)
        return cls(mean=data.mean(axis=0), std=std)

    def save(self, folder: str | Path) -> None:
        """Write Mean.npy and Std.npy (float32, the HumanML3D file format) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "Mean.npy", self.mean.astype(np.float32))
        np.save(folder / "Std.npy", self.std.astype(np.float32))

    @classmethod
    def load(cls, folder: str | Path) -> Normalizer:
        """Read Mean.npy and Std.npy from ``folder`` (ours or HumanML3D's)."""
        arrays = []
        for name in ("Mean.npy", "Std.npy"):
            path = Path(folder) / name
            if not path.is_file():
                raise MotionError(f"{path}: normalisation file not found")
            arrays.append(np.load(path))
        return cls(mean=arrays[0], std=arrays[1])
