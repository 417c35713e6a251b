"""Quaternion and rotation maths, batched, one implementation for numpy arrays and torch tensors.

Quaternions are (..., 4) as (w, x, y, z), Hamilton product, unit length; ``qrot(q, v)``
rotates vectors by q. Every function takes either numpy arrays or torch tensors and returns
the same kind, so the feature code, the sampler and the add-on share one set of formulas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # np.ndarray or torch.Tensor


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(xs: list, x: Array) -> Array:
    if _is_torch(x):
        import torch

        return torch.stack(xs, dim=-1)
    return np.stack(xs, axis=-1)


def _cat(xs: list, x: Array) -> Array:
    if _is_torch(x):
        import torch

        return torch.cat(xs, dim=-1)
    return np.concatenate(xs, axis=-1)


def _cross(a: Array, b: Array) -> Array:
    if _is_torch(a):
        import torch

        a, b = torch.broadcast_tensors(a, b)
        return torch.linalg.cross(a, b, dim=-1)
    return np.cross(a, b, axis=-1)


def _norm(x: Array) -> Array:
    """Euclidean norm over the last axis, keeping it."""
    if _is_torch(x):
        return (x * x).sum(-1, keepdim=True) ** 0.5
    return (x * x).sum(-1, keepdims=True) ** 0.5


def _like(values: Array, x: Array) -> Array:
    if _is_torch(x):
        import torch

        return torch.as_tensor(values, dtype=x.dtype, device=x.device)
    return np.asarray(values, dtype=x.dtype)


def _trig(x: Array, name: str) -> Array:
    if _is_torch(x):
        import torch

        return getattr(torch, {"arcsin": "asin", "arctan2": "atan2"}.get(name, name))(x)
    return getattr(np, name)(x)


def qnormalize(q: Array) -> Array:
    """(..., 4) -> unit quaternions (exactly unit: an added epsilon would bias the length)."""
    return _unit(q)


def qinv(q: Array) -> Array:
    """Inverse (conjugate) of unit quaternions (..., 4)."""
    return q * _like([1.0, -1.0, -1.0, -1.0], q)


def qmul(a: Array, b: Array) -> Array:
    """Hamilton product a * b of (..., 4) quaternions (broadcasting)."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        a if _is_torch(a) else b,
    )


def qrot(q: Array, v: Array) -> Array:
    """Rotate vectors v (..., 3) by quaternions q (..., 4) (broadcasting)."""
    u = q[..., 1:]
    w = q[..., :1]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def qbetween(v0: Array, v1: Array) -> Array:
    """Shortest-arc rotation taking direction v0 to v1, (..., 3) -> (..., 4) (broadcasting).

    Where v0 and v1 are opposite the shortest arc is not unique; the reference formula then
    returns a zero quaternion (the "character faces away" failure), so a half turn about an
    axis perpendicular to v0 is used instead (about Y whenever v0 lies in the floor plane).
    The half turn is taken only within a few rounding errors of exactly opposite: the
    formula stays accurate closer to opposite than a fixed tolerance would allow.
    """
    v0, v1 = _broadcast(_unit(v0), _unit(v1))
    w = 1.0 + (v0 * v1).sum(-1)[..., None]
    q = _cat([w, _cross(v0, v1)], w)
    # Half-turn axis: Y while v0 lies off the vertical (a pure heading change), else X x v0.
    y_axis = _like([0.0, 1.0, 0.0], v0) + 0 * v0
    x_cross = _cross(_like([1.0, 0.0, 0.0], v0) + 0 * v0, v0)
    vertical = v0[..., 1:2] ** 2
    off_vertical = vertical < 1.0 - 1e-6
    axis = _where(off_vertical & (vertical < 1e-12), y_axis, _unit(x_cross))
    axis = _where(off_vertical & (vertical >= 1e-12), _perp(v0), axis)
    flip = _cat([0 * w, axis], w)
    q = _where(w < 16 * _dtype_eps(w), flip, q)
    return q / _norm(q)  # |q| >= 16 eps here, so no epsilon that would bias the length


def _unit(v: Array) -> Array:
    """v / |v| over the last axis, exact for nonzero v and 0 for zero vectors."""
    n = _norm(v)
    return v / _where(n > 0, n, 1.0 + 0 * n)


def _broadcast(a: Array, b: Array) -> tuple[Array, Array]:
    if _is_torch(a):
        import torch

        return torch.broadcast_tensors(a, b)
    return np.broadcast_arrays(a, b)


def _dtype_eps(x: Array) -> float:
    if _is_torch(x):
        import torch

        return torch.finfo(x.dtype).eps
    return float(np.finfo(x.dtype).eps)


def _perp(v: Array) -> Array:
    """A unit vector perpendicular to unit vectors v (..., 3)."""
    helper = _like([0.0, 1.0, 0.0], v) + 0 * v
    c = _cross(helper, v)
    return _unit(c)


def _where(cond: Array, a: Array, b: Array) -> Array:
    if _is_torch(a):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def qfix(q: Array) -> Array:
    """Flip signs along time axis -2 so consecutive quaternions stay in one hemisphere.

    q: (..., T, 4) or (T, ..., 4) with time first is *not* assumed: time is axis 0.
    Keeps interpolation and Euler conversion free of sudden 360-degree jumps.
    """
    out = q.clone() if _is_torch(q) else q.copy()
    for t in range(1, out.shape[0]):
        dot = (out[t] * out[t - 1]).sum(-1)
        sign = _where(dot < 0, _like(-1.0, out), _like(1.0, out))
        out[t] = out[t] * sign[..., None]
    return out


def quat_to_matrix(q: Array) -> Array:
    """(..., 4) -> (..., 3, 3) rotation matrices (columns are the rotated basis vectors)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        _stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], q),
        _stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], q),
        _stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], q),
    ]
    if _is_torch(q):
        import torch

        return torch.stack(rows, dim=-2)
    return np.stack(rows, axis=-2)


def matrix_to_quat(m: Array) -> Array:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0.

    Uses the largest-diagonal branch per element so it is stable for half turns.
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = [
        _stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                m[..., 1, 0] - m[..., 0, 1]], m00),
        _stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                m[..., 0, 2] + m[..., 2, 0]], m00),
        _stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                m[..., 1, 2] + m[..., 2, 1]], m00),
        _stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], m00),
    ]  # fmt: skip
    traces = _stack([m00 + m11 + m22, m00 - m11 - m22, -m00 + m11 - m22, -m00 - m11 + m22], m00)
    if _is_torch(m):
        import torch

        allq = torch.stack(cands, dim=-2)  # (..., 4 candidates, 4)
        best = traces.argmax(-1)
        q = torch.gather(allq, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    else:
        allq = np.stack(cands, axis=-2)
        best = traces.argmax(-1)
        q = np.take_along_axis(allq, best[..., None, None], axis=-2)[..., 0, :]
    q = qnormalize(q)
    return _where(q[..., :1] < 0, -q, q)


def quat_to_cont6d(q: Array) -> Array:
    """(..., 4) -> (..., 6): the first two columns of the rotation matrix (HumanML3D's 6D)."""
    m = quat_to_matrix(q)
    return _cat([m[..., :, 0], m[..., :, 1]], m)


def cont6d_to_matrix(d6: Array) -> Array:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt, the inverse of ``quat_to_cont6d``."""
    a, b = d6[..., 0:3], d6[..., 3:6]
    x = _unit(a)
    z = _cross(x, b)
    z = _unit(z)
    y = _cross(z, x)
    if _is_torch(d6):
        import torch

        return torch.stack([x, y, z], dim=-1)
    return np.stack([x, y, z], axis=-1)


def axis_angle_to_quat(axis: Array, angle: Array) -> Array:
    """Unit axes (..., 3) and angles in radians (...) -> (..., 4)."""
    half = angle[..., None] * 0.5
    return _cat([_trig(half, "cos"), _trig(half, "sin") * axis], axis)


_AXES = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}


def euler_to_quat(angles: Array, order: str, degrees: bool = True) -> Array:
    """BVH-style Euler angles (..., 3), applied in channel order ``order`` (e.g. "ZXY").

    BVH composes the channels left to right as intrinsic rotations, R = R_0 R_1 R_2, where
    angle i belongs to axis order[i].
    """
    rad = angles * (np.pi / 180.0) if degrees else angles
    q = None
    for i, ax in enumerate(order.upper()):
        qi = axis_angle_to_quat(_like(_AXES[ax], rad), rad[..., i])
        q = qi if q is None else qmul(q, qi)
    return q


def quat_to_euler(q: Array, order: str, degrees: bool = True) -> Array:
    """Inverse of ``euler_to_quat`` for any of the six Tait-Bryan orders, (..., 4) -> (..., 3)."""
    order = order.upper()
    i, j, k = ("XYZ".index(c) for c in order)
    m = quat_to_matrix(q)
    # R = R_i(a) R_j(b) R_k(c); parity of the permutation fixes the signs.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    sb = sign * m[..., i, k]
    sb = sb.clamp(-1.0, 1.0) if _is_torch(sb) else np.clip(sb, -1.0, 1.0)
    b = _trig(sb, "arcsin")
    a = _trig2(-sign * m[..., j, k], m[..., k, k])
    c = _trig2(-sign * m[..., i, j], m[..., i, i])
    out = _stack([a, b, c], b)
    return out * (180.0 / np.pi) if degrees else out


def _trig2(y: Array, x: Array) -> Array:
    if _is_torch(y):
        import torch

        return torch.atan2(y, x)
    return np.arctan2(y, x)
