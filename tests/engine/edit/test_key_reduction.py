"""Key reduction: fewer keys, and every frame played from them within the tolerance."""

import numpy as np
import pytest

from engine.edit.key_reduction import (
    distance_cm,
    euler_degrees,
    quaternion_degrees,
    reduce_keys,
)
from engine.errors import MotionError
from engine.motion.quaternion import axis_angle_to_quat, qmul, quat_to_euler


def played(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """What linear keys at ``kept`` play on every frame (numpy's interp per channel)."""
    t = np.arange(len(values))
    return np.stack([np.interp(t, kept, values[kept, c]) for c in range(values.shape[1])], 1)


def test_a_straight_line_needs_only_its_ends():
    values = np.stack([np.linspace(0, 1, 50), np.linspace(3, -2, 50)], axis=1)
    kept = reduce_keys(values, distance_cm(0.01), 0.01)
    assert kept.tolist() == [0, 49]


def test_a_wobbling_rotation_keeps_every_frame_within_the_angle():
    rng = np.random.default_rng(0)
    t = np.arange(200) / 20.0
    axis = np.array([0.3, 0.9, 0.3]) / np.linalg.norm([0.3, 0.9, 0.3])
    angle = 0.8 * np.sin(2.1 * t) + 0.2 * np.sin(7.0 * t) + rng.normal(0, 0.001, 200)
    quats = axis_angle_to_quat(axis, angle)
    for tolerance in (0.1, 0.5, 2.0):
        kept = reduce_keys(quats, quaternion_degrees, tolerance)
        assert kept[0] == 0 and kept[-1] == 199 and len(kept) < 200
        assert quaternion_degrees(played(quats, kept), quats).max() <= tolerance
    assert len(reduce_keys(quats, quaternion_degrees, 2.0)) < len(
        reduce_keys(quats, quaternion_degrees, 0.1)
    )


@pytest.mark.parametrize("order", ["XYZ", "ZXY", "YZX"])
def test_euler_error_is_the_angle_between_the_rotations(order):
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(30, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    a = axis_angle_to_quat(axes, rng.uniform(0, 2, 30))
    b = qmul(a, axis_angle_to_quat(axes, np.full(30, np.radians(3.0))))  # 3 degrees more

    def slots(q):  # Blender's x, y, z slots of its ``order`` mode (applied first to last)
        angles = quat_to_euler(q, order[::-1], degrees=False)
        return angles[:, [order[::-1].index(c) for c in "XYZ"]]

    np.testing.assert_allclose(euler_degrees(order)(slots(a), slots(b)), 3.0, atol=1e-6)


def test_location_error_is_in_centimetres_of_the_units():
    err = distance_cm(0.01)(np.zeros((1, 3)), np.array([[3.0, 4.0, 0.0]]))  # 5 units of 1 cm
    assert err.tolist() == pytest.approx([5.0])


def test_bad_tolerance_is_refused():
    with pytest.raises(MotionError, match="positive"):
        reduce_keys(np.zeros((4, 3)), distance_cm(1.0), 0.0)
