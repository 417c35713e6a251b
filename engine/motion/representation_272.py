"""MotionStreamer's 272-dim HumanML3D representation (30 fps), which MoLingo's 272 release
generates: features -> joint positions and -> per-joint local rotations.

Per frame (22 SMPL joints, Y up, metres):

- ``[0:2]`` root velocity (x, z) in the previous frame's heading frame;
- ``[2:8]`` the heading's change since the previous frame, 6D (two matrix rows);
- ``[8:74]`` joint positions in the heading frame (x, z relative to the root's ground
  point, y the height above the ground);
- ``[74:140]`` joint velocities (not needed to decode);
- ``[140:272]`` each joint's local rotation, 6D (the root's relative to the heading).

The heading is accumulated ``H_t = dH_t H_{t-1}``; world positions are ``H_t^T p`` plus
the root's ground track, the sum of the velocities turned by ``H_{t-1}^T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import MotionError

FEATURE_DIM = 272
FPS = 30
JOINTS = 22
ROOT_VELOCITY = slice(0, 2)
HEADING_CHANGE = slice(2, 8)
POSITIONS = slice(8, 8 + 3 * JOINTS)
ROTATIONS = slice(8 + 6 * JOINTS, 8 + 12 * JOINTS)


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two rows, the third their cross product."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack((b1, b2, torch.linalg.cross(b1, b2, dim=-1)), dim=-2)


def _check(features: Tensor) -> Tensor:
    if features.dim() < 2 or features.shape[-1] != FEATURE_DIM:
        raise MotionError(
            f"272-dim features must be (..., frames, {FEATURE_DIM}), got {tuple(features.shape)}"
        )
    return features


def headings(features: Tensor) -> Tensor:
    """(..., T, 272) -> (..., T, 3, 3): each frame's accumulated heading ``H_t``."""
    change = rotation_6d_to_matrix(_check(features)[..., HEADING_CHANGE])
    out = [change[..., 0, :, :]]
    for t in range(1, change.shape[-3]):
        out.append(change[..., t, :, :] @ out[-1])
    return torch.stack(out, dim=-3)


def root_track(features: Tensor, heading: Tensor) -> Tensor:
    """(..., T, 3) the root's ground point: velocities turned to the world and summed
    (the first frame's velocity as it is, every later one by the previous heading)."""
    v = features[..., ROOT_VELOCITY]
    v = torch.stack([v[..., 0], torch.zeros_like(v[..., 0]), v[..., 1]], dim=-1)  # (..., T, 3)
    turned = (heading[..., :-1, :, :].transpose(-1, -2) @ v[..., 1:, :, None])[..., 0]
    return torch.cat([v[..., :1, :], turned], dim=-2).cumsum(dim=-2)


def joints_from_272(features: Tensor) -> Tensor:
    """(..., T, 272) -> world joint positions (..., T, 22, 3), metres, Y up."""
    heading = headings(features)
    local = features[..., POSITIONS].unflatten(-1, (JOINTS, 3))  # (..., T, J, 3)
    world = (heading.transpose(-1, -2)[..., None, :, :] @ local[..., None])[..., 0]
    track = root_track(features, heading)
    return world + (track * track.new_tensor([1.0, 0.0, 1.0]))[..., None, :]


def rotations_from_272(features: Tensor) -> tuple[Tensor, Tensor]:
    """(..., T, 272) -> (local rotation matrices (..., T, 22, 3, 3), root translation
    (..., T, 3)): SMPL's parent-relative rotations, the root's in the world (its heading
    put back), and the root's ground track with the pelvis height as y."""
    heading = headings(features)
    rotations = rotation_6d_to_matrix(features[..., ROTATIONS].unflatten(-1, (JOINTS, 6)))
    root = heading.transpose(-1, -2) @ rotations[..., 0, :, :]
    rotations = torch.cat([root[..., None, :, :], rotations[..., 1:, :, :]], dim=-3)
    track = root_track(features, heading)
    height = features[..., POSITIONS][..., 1]  # the root's y
    translation = torch.stack([track[..., 0], height, track[..., 2]], dim=-1)
    return rotations, translation
