"""A procedural walk on the canonical skeleton: a clip to show the pipeline with no data.

``walk_cycle`` poses the HumanML3D skeleton frame by frame and turns the pose into joints
through the reference's chain forward kinematics, so the clip has exactly the canonical
bone lengths. The body follows an arc at constant speed; the pelvis twists towards the
leading leg, the chest turns back against it, the arms swing opposite to the legs.

The legs are not driven by sinusoids: a leg whose hip and knee angles are sines cannot
both keep its stance foot still and keep its swinging foot off the floor (the swinging
leg, knee straightening, reaches lower than the standing one). Instead each foot follows
footprints: planted flat during the stance, rolling onto the toe before it lifts, then
swinging in a smooth arc to the next footprint; hip and knee angles come from two-bone
inverse kinematics towards the ankle. The pelvis sits as high as the planted legs reach,
which gives the natural bob (lowest when both feet are down).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from ..errors import MotionError
from .kinematics import chain_forward_kinematics
from .quaternion import axis_angle_to_quat, qbetween, qinv, qmul, qrot
from .skeleton import BONE_LENGTHS, CANONICAL_OFFSETS, FPS, NUM_JOINTS

STANCE = 0.6
"""Fraction of a gait cycle a foot is on the floor (> 0.5: both feet down at a change)."""
STRIDE = 1.3
"""Metres a foot travels per gait cycle at 1.2 m/s; it scales with the square root of speed."""
LIFT = 0.09
"""Peak height of the ankle above its straight path during the swing, metres."""
TOE_ROLL = 35.0
"""Degrees the foot pitches onto its toe by the end of the stance."""
PELVIS_TWIST = 6.0
"""Degrees of pelvis yaw towards the leading leg; the chest turns back by most of it."""
LEAN = 4.0
"""Degrees of forward lean of the spine."""
ARM_SWING = 18.0
ELBOW_BEND = 14.0
STANDING = 0.97
"""Highest the pelvis goes, as a fraction of the shorter leg's length."""
SETTLE = 0.25
"""Seconds over which the pelvis height is smoothed (it only ever moves lower)."""

_X, _Y, _Z = np.eye(3)
_LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))
"""(hip, knee, ankle, toe) of the left and right leg."""


def _about(axis: np.ndarray, radians: np.ndarray) -> np.ndarray:
    """(T,) angles about one axis -> (T, 4) quaternions."""
    radians = np.asarray(radians, dtype=np.float64)
    return axis_angle_to_quat(np.broadcast_to(axis, radians.shape + (3,)), radians)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a cubic between with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _forward(heading: np.ndarray) -> np.ndarray:
    """(T,) headings (radians; 0 faces +Z, positive turns towards +X) -> (T, 3) unit vectors."""
    return np.stack([np.sin(heading), np.zeros_like(heading), np.cos(heading)], axis=-1)


class _Walk:
    """The path, the gait clock and the footprints of one clip (all times in seconds)."""

    def __init__(self, duration: float, turn: float, speed: float):
        self.speed = speed
        self.omega = turn / duration  # rad/s, a constant turn: the path is an arc
        self.cadence = speed / (STRIDE * np.sqrt(speed / 1.2))  # gait cycles per second
        self.u0 = 0.25  # left leg's cycle position at t = 0: mid-way between the heel strikes

    def heading(self, t: np.ndarray) -> np.ndarray:
        return self.omega * t

    def root_xz(self, t: np.ndarray) -> np.ndarray:
        """(T,) -> (T, 3) root on the floor: the arc integral of speed * forward(heading)."""
        if abs(self.omega) < 1e-9:
            return np.stack([np.zeros_like(t), np.zeros_like(t), self.speed * t], axis=-1)
        r, h = self.speed / self.omega, self.heading(t)
        return np.stack([r * (1 - np.cos(h)), np.zeros_like(t), r * np.sin(h)], axis=-1)

    def cycle(self, t: np.ndarray, side: int) -> np.ndarray:
        """Gait cycle position of a leg (heel strike at whole numbers); right half a cycle on."""
        return self.u0 + 0.5 * side + self.cadence * t

    def twist(self, t: np.ndarray) -> np.ndarray:
        """Pelvis yaw (radians): the left hip leads at the left heel strike."""
        return -np.radians(PELVIS_TWIST) * np.cos(2 * np.pi * self.cycle(t, 0))

    def hip(self, t: np.ndarray, side: int, height: np.ndarray | float = 0.0) -> np.ndarray:
        """(T, 3) world position of a hip joint with the root at ``height``."""
        body = _about(_Y, self.heading(t) + self.twist(t))
        hip = qrot(body, np.broadcast_to(CANONICAL_OFFSETS[1 + side], (len(t), 3)))
        return self.root_xz(t) + hip + np.asarray(height)[..., None] * _Y

    def footprint(self, n: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Ankle position (N, 3) on the floor and heading (N,) of a leg's n-th footprint.

        The foot is set down where its hip passes a little before mid-stance (so it lands
        less far ahead and leaves rolled onto the toe), pointing along the path.
        """
        t_mid = (n + 0.42 * STANCE - self.u0 - 0.5 * side) / self.cadence
        ankle = self.hip(t_mid, side) * np.array([1.0, 0.0, 1.0])
        return ankle, self.heading(t_mid)


def _foot_track(walk: _Walk, t: np.ndarray, side: int) -> tuple[np.ndarray, ...]:
    """Where one foot is: ankle (T, 3), toe direction (T, 3), and whether it bears weight (T,).

    Stance: the toe stays on its footprint while the heel rises by up to TOE_ROLL in the
    last half. Swing: from that rolled pose to the next footprint along a smoothstep, the
    ankle lifted by LIFT * sin(pi * progress), the foot levelling out and turning with it.
    """
    length = BONE_LENGTHS[10 + side]
    u = walk.cycle(t, side)
    n, frac = np.floor(u), u - np.floor(u)
    stance = frac < STANCE
    here, head_here = walk.footprint(n, side)
    there, head_there = walk.footprint(n + 1, side)
    roll_end = np.radians(TOE_ROLL)
    # stance: pivot about the toe
    roll = roll_end * _smoothstep((frac / STANCE - 0.5) / 0.5)
    toe = here + length * _forward(head_here)
    planted = toe - length * np.cos(roll)[:, None] * _forward(head_here)
    planted[:, 1] = length * np.sin(roll)
    # swing: from the fully rolled foot to the next footprint
    s = np.clip((frac - STANCE) / (1 - STANCE), 0.0, 1.0)
    ease = _smoothstep(s)[:, None]
    lift_off = toe - length * np.cos(roll_end) * _forward(head_here)
    lift_off[:, 1] = length * np.sin(roll_end)
    swinging = (1 - ease) * lift_off + ease * there
    swinging[:, 1] += LIFT * np.sin(np.pi * s)
    swing_roll = roll_end * (1 - _smoothstep(s / 0.6))
    swing_head = (1 - ease[:, 0]) * head_here + ease[:, 0] * head_there
    ankle = np.where(stance[:, None], planted, swinging)
    roll = np.where(stance, roll, swing_roll)
    heading = np.where(stance, head_here, swing_head)
    toe_dir = _forward(heading) * np.cos(roll)[:, None] - np.sin(roll)[:, None] * _Y
    return ankle, toe_dir, stance


def _pelvis_height(
    walk: _Walk, t: np.ndarray, tracks: list[tuple[np.ndarray, ...]], fps: float
) -> np.ndarray:
    """(T,) root height: no higher than every planted leg reaches, smoothed.

    Each frame's reach is the height at which a planted leg is just short of straight.
    Averaging the moving minimum over a window no wider than the minimum's own never
    exceeds the reach, so the smoothing can only bend knees, never lift a planted foot.
    """
    legs = [BONE_LENGTHS[4 + side] + BONE_LENGTHS[7 + side] for side in (0, 1)]
    height = np.full(len(t), STANDING * min(legs))
    for side, (ankle, _, stance) in enumerate(tracks):
        reach = 0.99 * (BONE_LENGTHS[4 + side] + BONE_LENGTHS[7 + side])
        flat = walk.hip(t, side) - ankle * np.array([1.0, 0.0, 1.0])
        across = np.linalg.norm(flat, axis=-1)
        top = ankle[:, 1] + np.sqrt(np.clip(reach**2 - across**2, 0.0, None))
        height = np.where(stance, np.minimum(height, top), height)
    width = max(1, int(round(SETTLE * fps)))
    lowest = minimum_filter1d(height, width, mode="nearest")
    return uniform_filter1d(lowest, width, mode="nearest")


def _leg_rotations(
    body: np.ndarray, hip: np.ndarray, ankle: np.ndarray, toe_dir: np.ndarray, side: int
) -> tuple[np.ndarray, ...]:
    """Chain rotations (T, 4) at the knee, ankle and toe indices putting the ankle at ``ankle``.

    The chain rotation stored at a joint turns the bone that ends there: the thigh's at the
    knee's index, the shin's at the ankle's, the foot's at the toe's. The thigh rolls
    sideways by ``a`` so that the leg's plane holds the ankle, then flexes by ``h``; the knee
    bends by ``k`` (law of cosines, bending backwards only); the foot takes ``toe_dir``.
    """
    thigh, shin = BONE_LENGTHS[4 + side], BONE_LENGTHS[7 + side]
    d = qrot(qinv(body), ankle - hip)  # (T, 3) in the pelvis frame
    roll = np.arctan2(d[:, 0], -d[:, 1])
    down, ahead = np.hypot(d[:, 0], d[:, 1]), d[:, 2]
    dist = np.clip(np.hypot(down, ahead), abs(thigh - shin) + 1e-6, thigh + shin - 1e-6)
    at_hip = np.arccos(np.clip((thigh**2 + dist**2 - shin**2) / (2 * thigh * dist), -1, 1))
    at_knee = np.arccos(np.clip((thigh**2 + shin**2 - dist**2) / (2 * thigh * shin), -1, 1))
    flex, bend = np.arctan2(ahead, down) + at_hip, np.pi - at_knee
    q_thigh = qmul(_about(_Z, roll), _about(_X, -flex))
    q_shin = _about(_X, bend)
    above = qmul(body, qmul(q_thigh, q_shin))  # rotation the foot bone inherits
    q_foot = qbetween(np.broadcast_to(_Z, toe_dir.shape), qrot(qinv(above), toe_dir))
    return q_thigh, q_shin, q_foot


def _upper_body(quats: np.ndarray, walk: _Walk, t: np.ndarray) -> None:
    """Spine lean and counter-twist, arms swinging opposite to their legs (in place)."""
    chest = qmul(_about(_Y, -0.8 * walk.twist(t)), _about(_X, np.full(len(t), np.radians(LEAN))))
    quats[:, 3] = chest
    # Arm chains restart from the root rotation, so they take the chest's turn at the collar.
    quats[:, 13] = quats[:, 14] = chest
    for side, (elbow, wrist) in enumerate(((18, 20), (19, 21))):
        forward = -np.radians(ARM_SWING) * np.cos(2 * np.pi * walk.cycle(t, side) + np.pi)
        quats[:, elbow] = _about(_X, -forward)
        bend = np.radians(ELBOW_BEND) + 0.5 * np.clip(forward, 0.0, None)
        quats[:, wrist] = _about(_X, -bend)


def walk_cycle(
    seconds: float = 4.0, fps: float = FPS, turn_degrees: float = 90.0, speed: float = 1.2
) -> np.ndarray:
    """A walk of ``seconds`` at ``fps``: joints (T, 22, 3), T = round(seconds * fps).

    Metres, Y up, canonical bone lengths, in HumanML3D's canonical frame: frame 0's root at
    the XZ origin facing +Z, the lowest foot joint on y = 0 while a foot is planted. The
    heading turns steadily by ``turn_degrees`` from the first frame to the last (positive
    turns left, towards +X) at ``speed`` metres per second, so the path is an arc.
    """
    frames = int(round(seconds * fps)) if np.isfinite(seconds * fps) else 0
    if frames < 2:
        raise MotionError(f"walk_cycle needs at least 2 frames, got seconds={seconds}, fps={fps}")
    if not 0.3 <= speed <= 2.0:
        raise MotionError(f"walk_cycle speed must be 0.3 to 2 m/s for a walk, got {speed}")
    t = np.arange(frames) / fps
    walk = _Walk(t[-1], np.radians(turn_degrees), speed)
    tracks = [_foot_track(walk, t, side) for side in (0, 1)]
    height = _pelvis_height(walk, t, tracks, fps)
    body = _about(_Y, walk.heading(t) + walk.twist(t))  # (T, 4) pelvis rotation
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (frames, NUM_JOINTS, 1))  # (T, 22, 4)
    quats[:, 0] = body
    for side, (_, knee, ankle_j, toe_j) in enumerate(_LEGS):
        ankle, toe_dir, _ = tracks[side]
        hip = walk.hip(t, side, height)
        quats[:, knee], quats[:, ankle_j], quats[:, toe_j] = _leg_rotations(
            body, hip, ankle, toe_dir, side
        )
    _upper_body(quats, walk, t)
    root = walk.root_xz(t) + height[:, None] * _Y
    return chain_forward_kinematics(quats, root, CANONICAL_OFFSETS)
