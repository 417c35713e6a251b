"""Quaternion maths against rotation matrices, known rotations and round trips."""

import itertools

import numpy as np
import pytest
import torch

from engine.motion.quaternion import (
    axis_angle_to_quat,
    cont6d_to_matrix,
    euler_to_quat,
    matrix_to_quat,
    qbetween,
    qfix,
    qinv,
    qmul,
    qnormalize,
    qrot,
    quat_to_cont6d,
    quat_to_euler,
    quat_to_matrix,
)

ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]


def random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def axis_matrix(axis: str, angle: float) -> np.ndarray:
    """Right-handed rotation about a principal axis, radians."""
    c, s = np.cos(angle), np.sin(angle)
    i = "XYZ".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    m = np.eye(3)
    m[j, j], m[j, k], m[k, j], m[k, k] = c, -s, s, c
    return m


def same_rotation(q1: np.ndarray, q2: np.ndarray, atol: float = 1e-10) -> None:
    """q and -q are the same rotation."""
    sign = np.where((q1 * q2).sum(-1, keepdims=True) < 0, -1.0, 1.0)
    np.testing.assert_allclose(q1, sign * q2, atol=atol)


def test_known_rotations():
    quarter_z = axis_angle_to_quat(np.array([0.0, 0.0, 1.0]), np.array(np.pi / 2))
    np.testing.assert_allclose(
        qrot(quarter_z, np.array([1.0, 0.0, 0.0])), [0, 1, 0], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        quat_to_matrix(quarter_z), axis_matrix("Z", np.pi / 2), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(qmul(quarter_z, quarter_z), [0, 0, 0, 1], rtol=0, atol=1e-12)


def test_rotation_matches_matrix_and_products_compose():
    q, p = random_quats(50, 1), random_quats(50, 2)
    v = np.random.default_rng(3).normal(size=(50, 3))
    m = quat_to_matrix(q)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", m, v), qrot(q, v), rtol=0, atol=1e-12)
    eye = np.broadcast_to(np.eye(3), m.shape)
    np.testing.assert_allclose(np.swapaxes(m, -1, -2) @ m, eye, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        quat_to_matrix(qmul(q, p)), m @ quat_to_matrix(p), rtol=0, atol=1e-12
    )
    same_rotation(qmul(q, qinv(q)), np.tile([1.0, 0, 0, 0], (50, 1)))


def test_matrix_quat_round_trip_including_half_turns():
    q = random_quats(200, 4)
    half_turns = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0.6, 0.8, 0]], float)
    q = np.concatenate([q, half_turns, [[1.0, 0, 0, 0]]])
    back = matrix_to_quat(quat_to_matrix(q))
    assert (back[:, 0] >= 0).all()
    same_rotation(back, q)
    np.testing.assert_allclose(quat_to_matrix(back), quat_to_matrix(q), rtol=0, atol=1e-12)


def test_cont6d_round_trip():
    q = random_quats(100, 5)
    d6 = quat_to_cont6d(q)
    assert d6.shape == (100, 6)
    np.testing.assert_allclose(cont6d_to_matrix(d6), quat_to_matrix(q), rtol=0, atol=1e-12)
    # Gram-Schmidt also repairs non-orthogonal, unnormalised 6D vectors.
    noisy = 2.0 * d6 + 0.01 * np.random.default_rng(6).normal(size=d6.shape)
    m = cont6d_to_matrix(noisy)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_composes_axes_in_order_and_round_trips(order):
    angles = np.random.default_rng(7).uniform(-170, 170, size=(64, 3))
    angles[:, 1] = np.clip(angles[:, 1], -85, 85)  # away from gimbal lock
    q = euler_to_quat(angles, order)
    rad = np.radians(angles)
    expected = np.stack(
        [
            axis_matrix(order[0], a) @ axis_matrix(order[1], b) @ axis_matrix(order[2], c)
            for a, b, c in rad
        ]
    )
    np.testing.assert_allclose(quat_to_matrix(q), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(quat_to_euler(q, order), angles, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        quat_to_euler(q, order.lower(), degrees=False), rad, rtol=0, atol=1e-9
    )


def test_euler_known_case():
    q = euler_to_quat(np.array([90.0, 0.0, 0.0]), "XYZ")
    np.testing.assert_allclose(qrot(q, np.array([0.0, 1.0, 0.0])), [0, 0, 1], rtol=0, atol=1e-12)


def test_qbetween_takes_v0_to_v1():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(100, 3)), 3.0 * rng.normal(size=(100, 3))
    q = qbetween(a, b)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, rtol=0, atol=1e-12)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(qrot(q, unit(a)), unit(b), rtol=0, atol=1e-12)
    # Shortest arc: the axis is perpendicular to both directions.
    np.testing.assert_allclose((q[:, 1:] * a).sum(-1), 0.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "v0", [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.3, -0.5, 0.8]]
)
def test_qbetween_opposite_vectors_is_a_half_turn(v0):
    v0 = np.array(v0) / np.linalg.norm(v0)
    q = qbetween(v0, -2.0 * v0)
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q[0], 0.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(qrot(q, v0), -v0, rtol=0, atol=1e-12)
    if abs(v0[1]) < 1e-9:  # facing away in the floor plane: a pure heading turn about Y
        np.testing.assert_allclose(np.abs(q), [0, 0, 1, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("gap", [1e-2, 1e-4, 1e-6])
def test_qbetween_accurate_near_opposite(gap):
    # Vectors just short of opposite must still be mapped exactly (a fixed "opposite"
    # tolerance once swapped in a half turn here, off by `gap` radians).
    v0 = np.array([1.0, 0.0, 0.0])
    v1 = np.array([-np.cos(gap), 0.6 * np.sin(gap), 0.8 * np.sin(gap)])
    q = qbetween(v0, v1)
    np.testing.assert_allclose(qrot(q, v0), v1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(q), 1.0, atol=1e-14)


def test_qbetween_broadcasts_and_handles_zero_vectors():
    targets = np.random.default_rng(9).normal(size=(5, 3))
    q = qbetween(np.array([0.0, 0.0, 1.0]), targets)
    assert q.shape == (5, 4)
    np.testing.assert_allclose(qbetween(np.zeros(3), np.ones(3)), [1, 0, 0, 0])


def test_qfix_makes_signs_continuous():
    q = random_quats(1, 10)[0]
    steps = np.stack([q, -q, q, -q])[:, None]  # (T, 1, 4)
    fixed = qfix(steps)
    np.testing.assert_allclose(fixed[:, 0], np.tile(q, (4, 1)))
    assert ((fixed[1:] * fixed[:-1]).sum(-1) > 0).all()


def test_qnormalize():
    q = np.array([[2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(qnormalize(q), [[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]], atol=1e-8)


def _cases():
    rng = np.random.default_rng(11)
    q, p = random_quats(16, 12), random_quats(16, 13)
    v, w = rng.normal(size=(16, 3)), rng.normal(size=(16, 3))
    w[0] = -v[0]  # an opposite pair through the torch path too
    eul = rng.uniform(-80, 80, size=(16, 3))
    return {
        "qmul": (qmul, (q, p)),
        "qinv": (qinv, (q,)),
        "qrot": (qrot, (q, v)),
        "qbetween": (qbetween, (v, w)),
        "qnormalize": (qnormalize, (2 * q,)),
        "quat_to_matrix": (quat_to_matrix, (q,)),
        "matrix_to_quat": (matrix_to_quat, (quat_to_matrix(q),)),
        "quat_to_cont6d": (quat_to_cont6d, (q,)),
        "cont6d_to_matrix": (cont6d_to_matrix, (quat_to_cont6d(q) + 0.1,)),
        "axis_angle": (
            axis_angle_to_quat,
            (v / np.linalg.norm(v, axis=-1, keepdims=True), v[:, 0]),
        ),
        "euler_to_quat": (lambda a: euler_to_quat(a, "ZXY"), (eul,)),
        "quat_to_euler": (lambda x: quat_to_euler(x, "YXZ"), (q,)),
        "qfix": (qfix, (np.stack([q, -q, q]),)),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_numpy_and_torch_agree(name):
    fn, args = _cases()[name]
    expected = fn(*args)
    got = fn(*(torch.from_numpy(a) for a in args))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
