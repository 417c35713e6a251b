"""Clean generated joints into a body: rigid bones, feet on the floor, planted feet still.

A generator predicts 22 joint positions per frame independently, so its bones stretch (a
forearm of the shipped checkpoint went from 9.8 to 27.4 cm within one clip), its feet hover
or sink and slide while the contact features say they are planted. Animators see that on
every path (preview, .npy, .bvh, the bake), so ``generate()`` runs ``clean_joints`` on
every clip by default, and ``Cleanup`` is the one switch (``generate(..., clean=False)``,
``--raw`` on the command line) that gives the network's output back.

Steps, in order (each an option of ``Cleanup``):
1. smoothing: a zero-phase Gaussian over time (timing is kept: the kernel is symmetric) of
   0.6 frames: the network's frame-to-frame noise made generated joints accelerate 1.37x and
   jerk 2.0x as much as real clips (test); after it 1.06x and 1.27x, FID 0.017 -> 0.018
   (docs/results.md "Smoothing"). A sigma of 1 frame over-smooths (0.8x real's acceleration);
2. rigid skeleton: from the root outwards every bone keeps the generated direction and takes
   one fixed length for the whole clip (the canonical skeleton's, or the clip's median);
3. grounding: a vertical offset per frame that puts the lowest joint of the planted feet on
   y = 0 (interpolated through steps where no foot is planted, smoothed), then lifts any
   frame whose lowest joint is under the floor;
4. foot pinning: each planted ankle and toe held where the foot stood during its run (eased
   in and out inside the run; ``pin_hold`` holds the whole run), the knee re-solved by
   two-bone IK (``foot_cleanup.pin_feet``), bone lengths kept; with
   ``floor_feet`` each planted foot's lowest joint is also put on the floor. That last step
   is off by default: it made feet touch the floor exactly but cost the most FID of any
   step (val, one replication: 0.026 with it, 0.020 without, 0.015 raw), and the grounding
   already leaves planted feet within half a centimetre of it, as real clips are;
5. swing clearance: a foot whose toe moves over the floor (faster than 0.5 m/s, fully from
   1 m/s) is turned up at its ankle, and lifted by its leg where that is not enough, until
   its lowest joint is ``clearance`` over the floor (``foot_cleanup.clear_moving_feet``).
   Generated feet travel low: at 0.5-1 m/s 65% of cleaned toe steps were under 5 cm on
   val, 29% of real ones, and most of what was left of foot skating was those toes
   skidding into and out of their planted runs (val: 0.092 with the steps above, 0.038
   with this one, 0.052 real; FID unchanged, docs/results.md "Swing clearance").
Directions in, rigid lengths out: this is the IK-to-FK round trip that the reference BVH
exporters do, without the twist a position-only solve cannot know.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..errors import MotionError
from ..motion.features import FOOT_CONTACT, joints_to_features, recover_from_ric
from ..motion.kinematics import bone_lengths
from ..motion.skeleton import (
    BONE_LENGTHS,
    FOOT_LEFT,
    FOOT_RIGHT,
    FPS,
    NUM_JOINTS,
    PARENTS,
    RAW_OFFSETS,
)
from .foot_cleanup import PLANTED, LegChain, clear_moving_feet, floor_feet, pin_feet

CANONICAL_LEGS = (
    LegChain(hip=1, knee=4, ankle=FOOT_LEFT[0], toe=FOOT_LEFT[1], ankle_contact=0, toe_contact=1),
    LegChain(hip=2, knee=5, ankle=FOOT_RIGHT[0], toe=FOOT_RIGHT[1], ankle_contact=2, toe_contact=3),
)
"""The canonical skeleton's legs, with the columns of their foot contacts (features order)."""


@dataclasses.dataclass(frozen=True)
class Cleanup:
    """How ``clean_joints`` turns network output into a body. The defaults are the settings
    measured best on val (docs/results.md, "Clean motion"): rigid canonical bones, grounding,
    foot pins and a light smoothing (0.6 frames) on; ``floor_feet`` off (it cost FID there).
    Pins ease in inside each planted run; ``pin_hold`` holds the whole run instead: planted toes
    then slide on 0.2% of low toe steps against 4.7% eased (0.6% in real clips), but its fades
    snap feet where the contacts disagree with the motion (peak acceleration at timeline joins
    1.52x that inside segments, against 1.06x eased) and it costs 0.002 FID on val.
    ``clearance`` (5 cm; 0 turns it off) lifts moving feet off the floor: foot skating on test
    0.085 -> 0.036 (real clips 0.046) at the same FID and R-precision."""

    lengths: Literal["canonical", "median"] = "canonical"
    smoothing: float = 0.6  # Gaussian sigma in frames; 0 = none (see docs/results.md)
    ground: bool = True
    pin_feet: bool = True
    ground_smoothing: float = 3.0  # sigma (frames) of the per-frame vertical offset
    pin_blend: int = 4  # frames a pinned foot eases in and out over
    pin_hold: bool = False  # hold whole runs, fade the correction outside them
    floor_feet: bool = False  # also put each planted foot's lowest joint on y = 0 (FID cost)
    clearance: float = 0.05  # metres a moving foot clears the floor by (0: off)

    def __post_init__(self) -> None:
        if self.lengths not in ("canonical", "median"):
            raise MotionError(
                f"Cleanup.lengths must be 'canonical' or 'median', not {self.lengths!r}"
            )
        for name in ("smoothing", "ground_smoothing"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and 0 <= value <= 20):
                raise MotionError(f"Cleanup.{name} must be between 0 and 20 frames, got {value!r}")
        if isinstance(self.clearance, bool) or not (
            isinstance(self.clearance, (int, float)) and 0 <= self.clearance <= 0.2
        ):
            raise MotionError(f"Cleanup.clearance must be 0 to 0.2 metres, got {self.clearance!r}")
        if isinstance(self.pin_blend, bool) or not (
            isinstance(self.pin_blend, int) and 0 <= self.pin_blend <= 20
        ):
            raise MotionError(f"Cleanup.pin_blend must be 0 to 20 frames, got {self.pin_blend!r}")


def clean_joints(
    joints: np.ndarray,
    contacts: np.ndarray | None,
    options: Cleanup | None = None,
    fps: float = FPS,
) -> np.ndarray:
    """Clips (N, T, 22, 3) or one clip (T, 22, 3), metres, Y up -> cleaned, same shape.

    contacts: (N, T, 4) / (T, 4) foot contacts in the features' order (planted above 0.5),
    or None (no grounding by contact, no pinning: the lowest joint goes on the floor)."""
    options = options or Cleanup()
    arr = np.asarray(joints, dtype=np.float64)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
        contacts = None if contacts is None else np.asarray(contacts)[None]
    if arr.ndim != 4 or arr.shape[2:] != (NUM_JOINTS, 3) or arr.shape[1] < 2:
        raise MotionError(f"clean_joints needs joints (N, T, 22, 3), got {np.shape(joints)}")
    if contacts is not None and np.shape(contacts) != arr.shape[:2] + (4,):
        raise MotionError(f"contacts {np.shape(contacts)} do not fit joints {arr.shape}")
    if not np.isfinite(arr).all():
        raise MotionError("clean_joints: the joints hold NaN or infinite values")
    planted = None if contacts is None else np.asarray(contacts) > PLANTED  # (N, T, 4)
    if options.smoothing > 0 and arr.shape[1] > 2:
        arr = gaussian_filter1d(arr, options.smoothing, axis=1, mode="nearest")
    arr = rigid_skeleton(arr, _target_lengths(arr, options.lengths))
    if options.ground:
        arr = ground(arr, planted, options.ground_smoothing)
    if options.pin_feet and planted is not None:
        lengths = bone_lengths(arr[:, 0])  # (N, 22): rigid, so any frame's
        for i in range(len(arr)):
            blend = options.pin_blend
            arr[i] = pin_feet(
                arr[i], contacts[i], CANONICAL_LEGS, blend=blend, fps=fps, hold=options.pin_hold
            )
            if options.floor_feet:
                arr[i] = floor_feet(arr[i], contacts[i], CANONICAL_LEGS, blend=blend)
        arr = rigid_skeleton(arr, lengths)  # the pinned toe may sit off its foot bone
        arr = lift_above_floor(arr)
    if options.clearance > 0:  # only raises feet (and folds knees): nothing goes below y = 0
        for i in range(len(arr)):
            arr[i] = clear_moving_feet(arr[i], CANONICAL_LEGS, fps, options.clearance)
    return arr[0] if single else arr


def _target_lengths(joints: np.ndarray, which: str) -> np.ndarray:
    """(N, 22) bone lengths every frame of each clip gets."""
    if which == "canonical":
        return np.broadcast_to(BONE_LENGTHS, (len(joints), NUM_JOINTS))
    return np.median(bone_lengths(joints), axis=1)  # (N, 22)


def rigid_skeleton(joints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Joints (N, T, 22, 3) rebuilt from the root out with bone lengths (N, 22).

    Each bone keeps the direction it has in ``joints``; a bone of zero length takes its rest
    direction. Parents precede children in PARENTS, so one pass builds every chain."""
    out = np.empty_like(joints)
    out[:, :, 0] = joints[:, :, 0]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        bone = joints[:, :, j] - joints[:, :, p]  # (N, T, 3)
        norm = np.linalg.norm(bone, axis=-1, keepdims=True)
        direction = np.where(norm > 1e-9, bone / np.maximum(norm, 1e-12), RAW_OFFSETS[j])
        out[:, :, j] = out[:, :, p] + direction * lengths[:, None, j, None]
    return out


def ground(joints: np.ndarray, planted: np.ndarray | None, sigma: float) -> np.ndarray:
    """Shift each frame vertically so planted feet stand on y = 0 and nothing goes below.

    joints (N, T, 22, 3); planted (N, T, 4) bool or None. A foot counts as planted when its
    ankle or toe contact says so; the frame's offset puts the lowest joint of its planted
    feet on the floor. Frames with no planted foot take the offset interpolated from their
    neighbours (a jump keeps its height); a clip with none puts its lowest joint on the
    floor. The offset is smoothed (sigma frames) so the body does not bob with the
    network's noise, then raised wherever a joint would be under y = 0. Touching the floor
    with the foot's lowest joint holds on any data set, whatever height its ankle joints sit
    at (Bandai Namco's 9 cm, HumanML3D's 6 cm).
    """
    out = joints.copy()
    for i in range(len(out)):
        offset = None if planted is None else _contact_offset(out[i], planted[i])
        if offset is None:
            offset = np.full(out.shape[1], -out[i, :, :, 1].min())
        elif sigma > 0 and len(offset) > 2:
            offset = gaussian_filter1d(offset, sigma, mode="nearest")
        out[i, :, :, 1] += offset[:, None]
    return lift_above_floor(out)


def _contact_offset(joints: np.ndarray, planted: np.ndarray) -> np.ndarray | None:
    """(T,) offsets putting each frame's lowest planted-foot joint on y = 0, interpolated
    over frames without a planted foot; None when no frame has one. joints (T, 22, 3),
    planted (T, 4) in the contact columns' order."""
    lowest = np.full(len(joints), np.inf)
    for leg in CANONICAL_LEGS:
        down = planted[:, leg.ankle_contact] | planted[:, leg.toe_contact]  # (T,)
        foot = np.minimum(joints[:, leg.ankle, 1], joints[:, leg.toe, 1])  # (T,)
        lowest = np.where(down, np.minimum(lowest, foot), lowest)
    known = np.isfinite(lowest)
    if not known.any():
        return None
    frames = np.arange(len(lowest))
    return np.interp(frames, frames[known], -lowest[known])


def lift_above_floor(joints: np.ndarray) -> np.ndarray:
    """Raise each frame (N, T, 22, 3) whose lowest joint is below y = 0 until it touches."""
    lowest = joints[..., 1].min(axis=-1)  # (N, T)
    out = joints.copy()
    out[..., 1] += np.maximum(-lowest, 0.0)[..., None]
    return out


def clean_motion(
    joints: np.ndarray, features: np.ndarray, cleanup: Cleanup, fps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Network joints (N, T, 22, 3) and features (N, T, 263) -> cleaned joints and their
    features (float32), so that every output (and an evaluator reading features) sees the
    same body and ``recover_from_ric(features)`` gives the joints back.

    The features are taken as the data set's are (``joints_to_features``, with one frame
    extrapolated so that they keep T frames), which also puts the clip as the data set does:
    frame 0's root at the origin, its hips and shoulders facing +Z, its lowest joint on the
    floor. The joints returned are the ones those features describe (a turn of a few
    degrees and a shift of millimetres from the cleaned ones, bones still rigid)."""
    clean = clean_joints(joints, features[..., FOOT_CONTACT], cleanup, fps=fps)
    extended = np.concatenate([clean, 2 * clean[:, -1:] - clean[:, -2:-1]], axis=1)
    feats = joints_to_features(extended)  # (N, T, 263), the clips in one batch
    return recover_from_ric(feats).astype(np.float32), feats.astype(np.float32)
