"""Physical plausibility of joint positions: is a clip a rigid body standing on a floor?

FID and R-precision live in an evaluator's embedding space and cannot see a forearm that
grows by 30% or a foot that slides: a generator can score well on both and still hand an
animator limbs that stretch and feet that skate. These metrics read the joints themselves
(``(T, 22, 3)``, metres, Y up, the floor at y = 0, the canonical skeleton's joint order), so
real clips and every generator are measured by the same definitions, here and only here.

Definitions (each function's docstring gives the exact formula):
- bone-length variation: per bone std / mean of its length over the clip, the worst bone;
- foot skating: of the frame steps where a foot joint stays below ``CONTACT_HEIGHT``, the
  share in which it slides horizontally more than ``SKATE_SPEED`` (GMD's skating ratio:
  2.5 cm per frame at 20 fps, with a 5 cm contact height);
- penetration: the deepest any joint goes below the floor;
- floating: the median over frames of the lowest foot joint's height above the floor;
- jitter: mean joint acceleration and jerk magnitudes (finite differences).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from engine.errors import MotionError
from engine.motion.skeleton import FOOT_LEFT, FOOT_RIGHT, NUM_JOINTS, PARENTS

CONTACT_HEIGHT = 0.05
"""Metres: a foot joint this close to the floor counts as touching it (skating)."""
SKATE_SPEED = 0.5
"""Metres per second (2.5 cm per frame at 20 fps): faster than this a contact foot slides."""
FOOT_JOINTS = (FOOT_LEFT[0], FOOT_LEFT[1], FOOT_RIGHT[0], FOOT_RIGHT[1])
TOE_JOINTS = (FOOT_LEFT[1], FOOT_RIGHT[1])
"""The joints that touch the floor when a foot is planted flat or on its ball."""


@dataclasses.dataclass(frozen=True)
class ClipPhysics:
    """One clip's physical measurements (SI units; lengths in metres)."""

    bone_variation: float  # max over bones of std / mean of the bone's length
    skate_steps: int  # contact steps that slid faster than SKATE_SPEED
    contact_steps: int  # foot-joint frame steps below CONTACT_HEIGHT at both ends
    penetration: float  # metres: deepest any joint goes below y = 0 (0 if none)
    floating: float  # metres: median over frames of the lowest foot joint's height
    acceleration: float  # m/s^2: mean joint acceleration magnitude
    jerk: float  # m/s^3: mean joint jerk magnitude


def _check(joints: np.ndarray, fps: float) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise MotionError(f"joints must have shape (T, {NUM_JOINTS}, 3), got {arr.shape}")
    if arr.shape[0] < 4:
        raise MotionError(f"physical metrics need at least 4 frames, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise MotionError("joints hold NaN or infinite values")
    if not fps > 0:
        raise MotionError(f"fps must be positive, got {fps}")
    return arr


def bone_length_variation(joints: np.ndarray) -> float:
    """max over bones b of std_t(|j_b(t) - j_parent(b)(t)|) / mean_t(...), one clip (T, 22, 3).

    0 for a rigid skeleton; 0.1 means some bone's length wavers by about 10% of itself."""
    bones = joints[:, 1:] - joints[:, list(PARENTS[1:])]  # (T, 21, 3)
    lengths = np.linalg.norm(bones, axis=-1)  # (T, 21)
    mean = lengths.mean(axis=0)
    return float((lengths.std(axis=0) / np.maximum(mean, 1e-9)).max())


def skating_counts(joints: np.ndarray, fps: float) -> tuple[int, int]:
    """(sliding steps, contact steps) over the toe joints of one clip.

    A contact step is a pair of consecutive frames in which a toe is below CONTACT_HEIGHT in
    both; it slides when its horizontal displacement exceeds SKATE_SPEED / fps. Counts, not
    a ratio, so clips can be pooled without short clips weighing as much as long ones."""
    toes = joints[:, list(TOE_JOINTS)]  # (T, 2, 3)
    low = toes[..., 1] < CONTACT_HEIGHT  # (T, 2)
    contact = low[1:] & low[:-1]  # (T-1, 2)
    step = np.linalg.norm(toes[1:, :, [0, 2]] - toes[:-1, :, [0, 2]], axis=-1)  # (T-1, 2)
    sliding = contact & (step > SKATE_SPEED / fps)
    return int(sliding.sum()), int(contact.sum())


def penetration(joints: np.ndarray) -> float:
    """max(0, -min over frames and joints of y): how deep the body goes into the floor."""
    return float(max(0.0, -joints[..., 1].min()))


def floating(joints: np.ndarray) -> float:
    """median over frames of max(0, lowest foot joint's y): how high planted feet hover.

    A walk or a stand has a foot on the floor in nearly every frame, so real clips give
    about 0; a median lets a jump's airborne frames through without moving the value."""
    lowest = joints[:, list(FOOT_JOINTS), 1].min(axis=1)  # (T,)
    return float(np.median(np.maximum(lowest, 0.0)))


def jitter(joints: np.ndarray, fps: float) -> tuple[float, float]:
    """(mean |second difference| * fps^2, mean |third difference| * fps^3) over joints."""
    acc = np.diff(joints, n=2, axis=0) * fps**2  # (T-2, 22, 3)
    jerk = np.diff(joints, n=3, axis=0) * fps**3  # (T-3, 22, 3)
    return float(np.linalg.norm(acc, axis=-1).mean()), float(np.linalg.norm(jerk, axis=-1).mean())


def clip_physics(joints: np.ndarray, fps: float) -> ClipPhysics:
    """Every measurement of one clip (T, 22, 3), metres, Y up, floor at y = 0."""
    arr = _check(joints, fps)
    skate, contact = skating_counts(arr, fps)
    acc, jerk = jitter(arr, fps)
    return ClipPhysics(
        bone_variation=bone_length_variation(arr), skate_steps=skate, contact_steps=contact,
        penetration=penetration(arr), floating=floating(arr), acceleration=acc, jerk=jerk,
    )  # fmt: skip


PHYSICS_COLUMNS = {
    "bone_var": "Bone-length var. (median clip) ↓",
    "bone_var_max": "Bone-length var. (worst clip) ↓",
    "skating": "Foot skating ↓",
    "penetration_cm": "Penetration cm ↓",
    "floating_cm": "Floating cm ↓",
    "accel": "Accel. m/s² →",
    "jerk": "Jerk m/s³ →",
}
"""Keys of ``summarise`` -> column titles (arrow: better direction; -> closer to real)."""


def summarise(clips: Iterable[ClipPhysics]) -> dict[str, float]:
    """Clips -> one value per PHYSICS_COLUMNS key (skating pooled over all contact steps)."""
    items = list(clips)
    if not items:
        raise MotionError("no clips to summarise")
    variation = np.array([c.bone_variation for c in items])
    contact = sum(c.contact_steps for c in items)
    return {
        "bone_var": float(np.median(variation)),
        "bone_var_max": float(variation.max()),
        "skating": sum(c.skate_steps for c in items) / contact if contact else 0.0,
        "penetration_cm": 100.0 * float(np.mean([c.penetration for c in items])),
        "floating_cm": 100.0 * float(np.mean([c.floating for c in items])),
        "accel": float(np.mean([c.acceleration for c in items])),
        "jerk": float(np.mean([c.jerk for c in items])),
    }
