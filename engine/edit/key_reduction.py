"""Key reduction: the fewest linear keys that keep a baked channel within a tolerance.

A bake keys every frame. Animators edit curves with few keys, so a bake may keep only the
frames it needs: between two kept keys Blender interpolates linearly, and the kept frames
are chosen (Douglas-Peucker: split each span at its worst frame until every frame of the
span is within the tolerance) so that what Blender plays stays within the tolerance of
the full bake on *every* frame, not only on the kept ones. A bone's channels of one kind
(its four quaternion components, three Euler angles or three location components) share
their keys, so the tolerance holds for the rotation or offset as a whole: degrees of
rotation between the played and the baked pose, distance in centimetres.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import MotionError
from ..motion.quaternion import euler_to_quat

ErrorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def reduce_keys(values: np.ndarray, error: ErrorFn, tolerance: float) -> np.ndarray:
    """Indices (K,) of the frames to key, first and last always, ascending.

    values: (T, C) channels keyed together, linear between keys. error(played (N, C),
    baked (N, C)) -> (N,) how far each played frame is from the baked one, in the units
    of ``tolerance``. Every frame played from the kept keys is within ``tolerance``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or not len(values):
        raise MotionError(f"reduce_keys needs (T, C) values, got {values.shape}")
    if not tolerance > 0:
        raise MotionError(f"the key reduction tolerance must be positive, got {tolerance}")
    keep = np.zeros(len(values), dtype=bool)
    keep[[0, -1]] = True
    spans = [(0, len(values) - 1)]
    while spans:
        a, b = spans.pop()
        if b - a < 2:
            continue
        w = (np.arange(a + 1, b) - a)[:, None] / (b - a)  # (N, 1)
        played = values[a] + w * (values[b] - values[a])
        err = error(played, values[a + 1 : b])
        worst = int(np.argmax(err))
        if err[worst] > tolerance:
            keep[a + 1 + worst] = True
            spans += [(a, a + 1 + worst), (a + 1 + worst, b)]
    return np.flatnonzero(keep)


def quaternion_degrees(played: np.ndarray, baked: np.ndarray) -> np.ndarray:
    """Angle (N,) in degrees between quaternions (N, 4); ``played`` is normalised first, as
    Blender normalises linearly interpolated quaternion channels before posing."""
    p = played / np.linalg.norm(played, axis=-1, keepdims=True)
    b = baked / np.linalg.norm(baked, axis=-1, keepdims=True)
    cos_half = np.clip(np.abs((p * b).sum(-1)), 0.0, 1.0)
    return np.degrees(2.0 * np.arccos(cos_half))


def euler_degrees(blender_order: str) -> ErrorFn:
    """Error of Euler channels (N, 3) in x, y, z slots for Blender's ``blender_order`` mode:
    the angle between the two rotations, in degrees."""
    order = blender_order[::-1]  # Blender's "XYZ" applies X first: R = Rz Ry Rx

    def error(played: np.ndarray, baked: np.ndarray) -> np.ndarray:
        slots = ["XYZ".index(axis) for axis in order]
        return quaternion_degrees(
            euler_to_quat(played[:, slots], order, degrees=False),
            euler_to_quat(baked[:, slots], order, degrees=False),
        )

    return error


def distance_cm(metres_per_unit: float) -> ErrorFn:
    """Error of location channels (N, 3) in centimetres, for channels in units of
    ``metres_per_unit`` metres."""

    def error(played: np.ndarray, baked: np.ndarray) -> np.ndarray:
        return 100.0 * metres_per_unit * np.linalg.norm(played - baked, axis=-1)

    return error
