"""The 272-dim representation decoded to joints and local rotations, on clips whose answer
is known by construction (a walker turning at a constant rate, a pose with known rotations)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import MotionError
from engine.motion.representation_272 import (
    HEADING_CHANGE,
    POSITIONS,
    ROOT_VELOCITY,
    ROTATIONS,
    joints_from_272,
    rotation_6d_to_matrix,
    rotations_from_272,
)


def yaw(angle: float) -> torch.Tensor:
    """Rotation about +Y (up) by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def six_d(matrix: torch.Tensor) -> torch.Tensor:
    """The 6D form the representation stores: the first two rows."""
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)


def clip(frames: int, turn: float = 0.0, velocity=(0.0, 0.0)) -> torch.Tensor:
    """(frames, 272): heading turning by ``turn`` per frame, a constant root velocity in the
    heading frame, a fixed pose (joint j at (0.1 j, 1 + 0.01 j, -0.05 j)), identity rotations."""
    x = torch.zeros(frames, 272, dtype=torch.float64)
    x[:, ROOT_VELOCITY] = torch.tensor(velocity, dtype=torch.float64)
    x[:, HEADING_CHANGE] = six_d(yaw(turn))
    j = torch.arange(22, dtype=torch.float64)
    pose = torch.stack([0.1 * j, 1.0 + 0.01 * j, -0.05 * j], dim=-1)
    x[:, POSITIONS] = pose.reshape(-1)
    x[:, ROTATIONS] = six_d(torch.eye(3, dtype=torch.float64)).repeat(22)
    return x


def test_still_clip_gives_its_positions_back() -> None:
    x = clip(5)
    joints = joints_from_272(x)
    expected = x[:, POSITIONS].reshape(5, 22, 3)
    torch.testing.assert_close(joints, expected)


def test_constant_turn_accumulates_the_heading() -> None:
    turn = 0.1
    x = clip(6, turn=turn)
    joints = joints_from_272(x)
    pose = x[0, POSITIONS].reshape(22, 3)
    for t in range(6):
        heading = yaw(turn * (t + 1))  # H_t = dH^(t+1)
        torch.testing.assert_close(joints[t], pose @ heading)  # rows: H^T p for each joint


def test_root_velocity_is_summed_in_the_previous_frames_heading() -> None:
    turn, step = math.pi / 2, (0.2, 0.0)  # a quarter turn per frame, 0.2 m forward along x
    x = clip(4, turn=turn, velocity=step)
    headings = torch.stack([yaw(turn * (t + 1)) for t in range(4)])
    turned_root = (x[:, POSITIONS].reshape(4, 22, 3)[:, :1] @ headings)[:, 0]
    track = joints_from_272(x)[:, 0] - turned_root  # what was added to the turned pose
    expected = torch.zeros(4, 3, dtype=torch.float64)
    position = torch.tensor([0.2, 0.0, 0.0], dtype=torch.float64)  # frame 0: as it is
    expected[0] = position
    for t in range(1, 4):
        position = position + yaw(turn * t).T @ torch.tensor([0.2, 0.0, 0.0], dtype=torch.float64)
        expected[t] = position
    torch.testing.assert_close(track, expected)
    assert torch.all(track[:, 1] == 0)  # heights come from the positions alone


def test_rotations_put_the_heading_back_on_the_root_only() -> None:
    x = clip(3, turn=0.3, velocity=(0.1, 0.05))
    g = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(3, 22, 3, 3, generator=g, dtype=torch.float64)).Q
    q = q * torch.linalg.det(q)[..., None, None]  # proper rotations
    x[:, ROTATIONS] = six_d(q).reshape(3, -1)
    rotations, translation = rotations_from_272(x)
    torch.testing.assert_close(rotations[:, 1:], q[:, 1:])
    for t in range(3):
        torch.testing.assert_close(rotations[t, 0], yaw(0.3 * (t + 1)).T @ q[t, 0])
    torch.testing.assert_close(translation[:, 1], x[:, POSITIONS][:, 1])
    headings = torch.stack([yaw(0.3 * (t + 1)) for t in range(3)])
    turned_root = (x[:, POSITIONS].reshape(3, 22, 3)[:, :1] @ headings)[:, 0]
    track = joints_from_272(x)[:, 0] - turned_root  # the ground track the joints were moved by
    torch.testing.assert_close(translation[:, [0, 2]], track[:, [0, 2]])


def test_6d_keeps_a_rotation_and_repairs_a_noisy_one() -> None:
    r = yaw(0.7) @ torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(rotation_6d_to_matrix(six_d(r)), r)
    noisy = rotation_6d_to_matrix(six_d(r) * 1.3 + 0.01)
    torch.testing.assert_close(noisy @ noisy.T, torch.eye(3, dtype=torch.float64))


def test_batches_and_wrong_width() -> None:
    x = torch.stack([clip(4, turn=0.2, velocity=(0.1, 0.0)), clip(4)])
    torch.testing.assert_close(joints_from_272(x)[0], joints_from_272(x[0]))
    with pytest.raises(MotionError, match="272"):
        joints_from_272(torch.zeros(4, 263))
