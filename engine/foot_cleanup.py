"""Foot clean-up: hold planted feet still and re-solve the legs by two-bone IK.

Retargeted feet skate where the rig's legs differ from the joints' and where generated
motion itself slides; the contact features (HumanML3D's foot contacts) say when a foot
should be still. Works on joint positions (Y up) before rotations are solved, so the
solver's bone directions then reproduce the pinned feet exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PLANTED = 0.5
"""Contact feature value above which a foot joint counts as planted."""


@dataclass(frozen=True)
class LegChain:
    """Indices of one leg's joints in a positions array, and its contact feature columns."""

    hip: int
    knee: int
    ankle: int
    toe: int | None
    ankle_contact: int
    toe_contact: int


def pin_feet(
    positions: np.ndarray, contacts: np.ndarray, legs: Sequence[LegChain], blend: int = 3
) -> np.ndarray:
    """Hold each planted ankle still and re-solve its leg; positions (T, J, 3), Y up.

    contacts: (T, 4). During each run of planted frames the ankle is held at its mean over
    the run, easing in and out over ``blend`` frames; the knee follows by two-bone IK with
    the hip fixed and the thigh and shin lengths kept. The toe moves with the ankle, and is
    held too while its own contact says planted. Returns new positions (T, J, 3).
    """
    out = np.array(positions, dtype=np.float64)
    for leg in legs:
        ankle = out[:, leg.ankle].copy()
        weight, pins = _pins(ankle, contacts[:, leg.ankle_contact] > PLANTED, blend)
        target = ankle + weight[:, None] * (pins - ankle)
        knee, reached = two_bone_ik(out[:, leg.hip], out[:, leg.knee], ankle, target)
        out[:, leg.knee], out[:, leg.ankle] = knee, reached
        if leg.toe is not None:
            toe = out[:, leg.toe] + (reached - ankle)
            weight, pins = _pins(toe, contacts[:, leg.toe_contact] > PLANTED, blend)
            out[:, leg.toe] = toe + weight[:, None] * (pins - toe)
    return out


def _pins(path: np.ndarray, planted: np.ndarray, blend: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (T,) and pinned positions (T, 3): each run's mean, fading out next to it."""
    weight, pins = np.zeros(len(path)), path.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], planted.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):  # planted frames a..b-1
        spot = path[a:b].mean(axis=0)
        pins[a:b], weight[a:b] = spot, 1.0
        for k in range(1, blend + 1):
            w = 1.0 - k / (blend + 1)
            for t in (a - k, b - 1 + k):
                if 0 <= t < len(path) and w > weight[t]:
                    weight[t], pins[t] = w, spot
    return weight, pins


def two_bone_ik(
    hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle (T, 3) putting the ankle at target (or as near as the leg reaches).

    All inputs (T, 3). The thigh |knee - hip| and shin |ankle - knee| keep their lengths;
    the knee stays on the side it bent to (its plane through hip and target), or forward
    (+Z) where the leg was straight along the new line.
    """
    thigh = np.linalg.norm(knee - hip, axis=-1)  # (T,)
    shin = np.linalg.norm(ankle - knee, axis=-1)
    reach = target - hip
    dist = np.linalg.norm(reach, axis=-1)
    along = reach / np.maximum(dist, 1e-12)[:, None]
    dist = np.clip(dist, np.abs(thigh - shin) + 1e-9, (thigh + shin) * (1 - 1e-9))
    pole = (knee - hip) - ((knee - hip) * along).sum(-1, keepdims=True) * along
    fallback = np.array([0.0, 0.0, 1.0]) - along[:, 2:3] * along
    weak = np.linalg.norm(pole, axis=-1) < 1e-9 * np.maximum(thigh, 1e-12)
    pole = np.where(weak[:, None], fallback, pole)
    pole /= np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-12)
    cos_a = np.clip((thigh**2 + dist**2 - shin**2) / (2 * thigh * dist + 1e-12), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a**2)
    new_knee = hip + thigh[:, None] * (cos_a[:, None] * along + sin_a[:, None] * pole)
    return new_knee, hip + dist[:, None] * along
