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
HINT_WEIGHT = 0.2
"""Weight (in thigh lengths) of the bend hint against the knee's own offset from the line."""
FLOOR_SNAP = 0.05
"""Metres: a planted run whose pin is this close to the floor is put on the floor (a foot
planted higher stands on something, a stair or a box, and keeps its height)."""


@dataclass(frozen=True)
class LegChain:
    """Indices of one leg's joints in a positions array, and its contact feature columns."""

    hip: int
    knee: int
    ankle: int
    toe: int | None
    ankle_contact: int
    toe_contact: int
    ankle_floor: float | None = None
    """Height (Y) the ankle has standing on the floor (the rig's rest height); None: the
    planted ankle keeps its own height."""
    toe_floor: float | None = None


def pin_feet(
    positions: np.ndarray,
    contacts: np.ndarray,
    legs: Sequence[LegChain],
    blend: int = 3,
    fps: float | None = None,
    hold: bool = False,
) -> np.ndarray:
    """Hold each planted ankle still and re-solve its leg; positions (T, J, 3), Y up.

    contacts: (T, 4). During each run of planted frames the ankle is held at its mean over
    the run, easing in and out over ``blend`` frames; the knee follows by two-bone IK with
    the hip fixed and the thigh and shin lengths kept. The toe moves with the ankle, and is
    held too while its own contact says planted. Returns new positions (T, J, 3).

    ``fps`` (the clip's frame rate) holds each run where the foot stood instead
    (``_stance_pins``), for a generator's contacts: its runs of "planted" frames start and
    end while the foot already moves several cm a frame, and pulling it to the run's mean
    made the foot jump by 10-15 cm when the run ended. With the legs' floors given (a rig's
    rest heights), a run held within FLOOR_SNAP of its floor is held on it, no ankle or toe
    goes below its floor on any frame, and the foot keeps its length (a held toe lifts the
    heel: the ankle goes to the foot's length from it).

    ``hold`` (with ``fps``) holds each run fully, first to last frame, and carries the
    correction out of the run instead, fading over ``blend`` frames on either side
    (``_held_pins``): an ease inside the run lets the planted foot slide while the weight
    rises, which was most of the generated clips' sliding on planted frames.
    """
    out = np.array(positions, dtype=np.float64)

    def pins_of(path: np.ndarray, column: int, floor: float | None) -> tuple[np.ndarray, ...]:
        if fps is not None and hold:
            weight, pins = _held_pins(path, contacts[:, column], fps, blend)
        elif fps is not None:
            weight, pins = _stance_pins(path, contacts[:, column], fps, blend)
        else:
            weight, pins = _pins(path, contacts[:, column] > PLANTED, blend)
        if floor is not None:
            near = (weight > 0) & (np.abs(pins[:, 1] - floor) < FLOOR_SNAP)
            pins[near, 1] = floor
        return weight, pins

    for leg in legs:
        ankle = out[:, leg.ankle].copy()
        weight, pins = pins_of(ankle, leg.ankle_contact, leg.ankle_floor)
        target = _above(ankle + weight[:, None] * (pins - ankle), leg.ankle_floor)
        hint = None if leg.toe is None else out[:, leg.toe] - ankle
        knee, reached = two_bone_ik(out[:, leg.hip], out[:, leg.knee], ankle, target, hint)
        out[:, leg.knee], out[:, leg.ankle] = knee, reached
        if leg.toe is None:
            continue
        toe = out[:, leg.toe] + (reached - ankle)
        held = weight >= 1.0  # (T,) frames whose ankle is pinned outright
        weight, pins = pins_of(toe, leg.toe_contact, leg.toe_floor)
        toe_target = _above(toe + weight[:, None] * (pins - toe), leg.toe_floor)
        if leg.toe_floor is None:  # joints without a rig's floor: the toe is simply held
            out[:, leg.toe] = toe_target
            continue
        foot = np.linalg.norm(toe - reached, axis=-1, keepdims=True)  # (T, 1) its length
        # On a rig's floor the foot keeps its length: a held toe with a free ankle lifts the
        # heel, the ankle at the foot's length from the toe; otherwise the foot turns about
        # its ankle towards the toe's target, at the target's height where it reaches.
        lift = (weight > 0) & ~held
        heel = np.where(lift[:, None], toe_target + foot * _unit(reached - toe_target), reached)
        knee, placed = two_bone_ik(out[:, leg.hip], out[:, leg.knee], reached, heel, toe - reached)
        out[:, leg.knee], out[:, leg.ankle] = knee, placed
        out[:, leg.toe] = np.where(lift[:, None], toe_target, _reach(placed, toe_target, foot))
    return out


def _reach(ankle: np.ndarray, target: np.ndarray, foot: np.ndarray) -> np.ndarray:
    """The toe (T, 3) at distance foot (T, 1) from the ankle, at the target's height where
    the foot reaches it, towards the target over the floor."""
    rise = np.clip(target[:, 1:2] - ankle[:, 1:2], -foot, foot)  # (T, 1)
    flat = (target - ankle) * np.array([1.0, 0.0, 1.0])
    return ankle + _unit(flat) * np.sqrt(foot**2 - rise**2) + rise * np.array([0.0, 1.0, 0.0])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _above(points: np.ndarray, floor: float | None) -> np.ndarray:
    """points (T, 3) with heights below ``floor`` raised to it (None: as they are)."""
    if floor is None:
        return points
    out = points.copy()
    out[:, 1] = np.maximum(out[:, 1], floor)
    return out


CLEARANCE_SPEEDS = (0.5, 1.0)
"""m/s: a toe moving over the floor slower than the first needs no clearance (it is planted
or creeping), from the second on it needs all of it (``clear_moving_feet``). Chosen on val
(docs/results.md, "Swing clearance"): starting the ramp at 0.25 m/s lifted feet on twice as
many frames for the same skating and cost twice the FID."""


def clear_moving_feet(
    positions: np.ndarray,
    legs: Sequence[LegChain],
    fps: float,
    clearance: float,
    sigma: float = 0.8,
    floor: float = 0.0,
) -> np.ndarray:
    """Lift each foot whose toe moves along the floor, so that a moving foot clears it;
    positions (T, J, 3), Y up. Bone lengths are kept; hips and everything above them stay.

    Why: a generated foot often travels at walking speed with its toe a centimetre over the
    floor and skids into and out of its planted runs, where a real foot is still or in the
    air (val: 65% of generated toe steps at 0.5-1 m/s are under 5 cm, 29% of real ones).
    The clearance a toe needs grows with its horizontal speed (the slower of its steps into
    and out of the frame, so the frames a foot leaves or lands on need none), from none
    below CLEARANCE_SPEEDS[0] to ``clearance`` metres for the foot's lowest joint from
    CLEARANCE_SPEEDS[1] on. What is missing is spread over neighbouring frames (a running
    maximum, then a Gaussian of ``sigma`` frames) so the lift rises and falls smoothly, and
    it is zero where the toe stands still: a planted foot is not moved.

    The lift goes first to the foot's pitch, as in a real swing (the ankle flexes to clear
    the toe): the toe turns up about the ankle, on its heading, until the foot is level at
    most. What that cannot give lifts the ankle too, the knee folding by two-bone IK in its
    own plane (the toe moves with the ankle). Turning the foot first cost no FID on val
    where carrying the whole foot up by the leg did (docs/results.md, "Swing clearance").
    """
    # scipy here, not at the top: the add-on imports this module (retarget) to register,
    # in a Blender that may not have scipy installed yet
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d

    out = np.array(positions, dtype=np.float64)
    if clearance <= 0 or len(out) < 2:
        return out
    slow, fast = CLEARANCE_SPEEDS
    for leg in legs:
        if leg.toe is None:
            continue
        toe, ankle = out[:, leg.toe].copy(), out[:, leg.ankle].copy()
        step = np.linalg.norm(np.diff(toe[:, [0, 2]], axis=0), axis=-1) * fps  # (T-1,) m/s
        before, after = np.concatenate([step[:1], step]), np.concatenate([step, step[-1:]])
        moving = np.minimum(before, after)  # (T,) 0 on the frames a foot leaves or lands
        needed = clearance * _smoothstep((moving - slow) / (fast - slow))
        lowest = np.minimum(toe[:, 1], ankle[:, 1]) - floor  # (T,) the foot's lowest joint
        missing = np.maximum(needed - lowest, 0.0)
        if not missing.any():
            continue
        reach = 2 * int(np.ceil(sigma)) + 1
        lift = gaussian_filter1d(maximum_filter1d(missing, reach), sigma) if sigma > 0 else missing
        lift *= _smoothstep(moving / slow)  # 0 where the toe is still
        up = np.flatnonzero(lift > 0)
        foot = _pitch_up(toe[up] - ankle[up], lift[up])
        rest = lift[up] - (foot[:, 1] - (toe[up, 1] - ankle[up, 1]))  # what the pitch left
        out[up, leg.toe] = ankle[up] + foot
        more = up[rest > 1e-9]
        if len(more):
            target = ankle[more] + rest[rest > 1e-9, None] * np.array([0.0, 1.0, 0.0])
            knee, reached = two_bone_ik(
                out[more, leg.hip], out[more, leg.knee], ankle[more], target
            )
            out[more, leg.toe] += reached - ankle[more]
            out[more, leg.knee], out[more, leg.ankle] = knee, reached
    return out


def _pitch_up(foot: np.ndarray, rise: np.ndarray) -> np.ndarray:
    """Foot vectors (n, 3) (ankle to toe) turned up on their heading so the toe rises by
    ``rise`` (n,) metres, but no higher than the ankle (a level foot); same lengths. A foot
    pointing straight down has no heading to turn on and is kept."""
    length = np.linalg.norm(foot, axis=-1)
    flat = foot * np.array([1.0, 0.0, 1.0])
    across = np.linalg.norm(flat, axis=-1)
    turnable = across > 1e-6 * np.maximum(length, 1e-12)
    height = np.where(
        turnable, np.minimum(foot[:, 1] + rise, np.maximum(foot[:, 1], 0.0)), foot[:, 1]
    )
    heading = flat / np.maximum(across, 1e-12)[:, None]
    out = heading * np.sqrt(np.maximum(length**2 - height**2, 0.0))[:, None]
    out[:, 1] = height
    return np.where(turnable[:, None], out, foot)


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    """0 below 0, 1 above 1, 3x^2 - 2x^3 between (no corner at either end)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def floor_feet(
    positions: np.ndarray,
    contacts: np.ndarray,
    legs: Sequence[LegChain],
    blend: int = 3,
    floor: float = 0.0,
) -> np.ndarray:
    """Put each planted foot's lowest joint (ankle or toe) on ``floor``; the leg follows.

    positions (T, J, 3), Y up; contacts (T, 4). A foot is planted while its ankle or its
    toe contact says so; the correction eases in and out over ``blend`` frames. The ankle
    moves vertically, the knee by two-bone IK with the hip fixed (bone lengths kept), the
    toe with the ankle. Why: a generated double support often has one foot on the floor and
    the other a few cm above it, and grounding the body cannot fix both.
    """
    out = np.array(positions, dtype=np.float64)
    for leg in legs:
        if leg.toe is None:
            continue
        planted = (contacts[:, [leg.ankle_contact, leg.toe_contact]] > PLANTED).any(axis=1)
        weight = eased_weight(planted, blend)
        ankle, toe = out[:, leg.ankle].copy(), out[:, leg.toe]
        target = ankle.copy()
        target[:, 1] -= weight * (np.minimum(ankle[:, 1], toe[:, 1]) - floor)
        knee, reached = two_bone_ik(out[:, leg.hip], out[:, leg.knee], ankle, target, toe - ankle)
        out[:, leg.knee], out[:, leg.ankle] = knee, reached
        out[:, leg.toe] = toe + (reached - ankle)
    return out


def eased_weight(planted: np.ndarray, blend: int) -> np.ndarray:
    """(T,) weights over runs of planted frames: 1 inside a run, easing from 0 over its first
    and last ``blend`` frames (smoothstep: no corner for the acceleration to jump at).

    The ease stays inside the run: easing outside it held feet still for longer than the
    contacts said, which changed the motion's stance timing (the evaluator's FID rose from
    0.042 to 0.099 on val as the blend went from 2 to 6 frames outside the runs)."""
    weight = np.zeros(len(planted))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], planted.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):  # planted frames a..b-1
        k = np.arange(b - a)
        weight[a:b] = _smoothstep(np.minimum(k + 1, b - a - k) / (blend + 1))
    return weight


def _stance_pins(
    path: np.ndarray, contact: np.ndarray, fps: float, blend: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (T,) and pinned positions (T, 3) for contact probabilities (T,).

    Runs are the frames whose contact is above PLANTED, as in ``_pins``, but each is held
    where the foot stood, not at its mean: frames are weighted by 1 / (speed + 5 cm/s), so a
    run that starts or ends while the foot already moves is pinned at its still part. The
    weight eases in and out inside the run (``eased_weight``)."""
    step = np.linalg.norm(np.diff(path, axis=0), axis=-1) * fps  # (T-1,) m/s
    speed = np.concatenate([step[:1], np.minimum(step[1:], step[:-1]), step[-1:]])
    stillness = 1.0 / (0.05 + speed)
    planted = contact > PLANTED
    pins = path.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], planted.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):  # planted frames a..b-1
        w = stillness[a:b, None]
        pins[a:b] = (w * path[a:b]).sum(axis=0) / w.sum()
    return eased_weight(planted, blend), pins


def _held_pins(
    path: np.ndarray, contact: np.ndarray, fps: float, blend: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (T,) and targets (T, 3): each run held still at its stance pin
    (``_stance_pins``), and outside the runs the run's correction (pin minus foot at the
    run's first or last frame) added to the free foot, fading over ``blend`` frames
    (smoothstep), so the foot arrives at and leaves its pin without a jump and is never held
    longer than the contacts say. Where two runs' fades meet, the larger correction wins."""
    _, pins = _stance_pins(path, contact, fps, blend)
    planted = contact > PLANTED
    offset = np.where(planted[:, None], pins - path, 0.0)  # (T, 3)
    fade = offset.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], planted.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):  # planted frames a..b-1
        for k in range(1, blend + 1):
            x = _smoothstep(1.0 - k / (blend + 1))
            for t, edge in ((a - k, a), (b - 1 + k, b - 1)):
                if 0 <= t < len(path) and not planted[t]:
                    carried = x * offset[edge]
                    if np.linalg.norm(carried) > np.linalg.norm(fade[t]):
                        fade[t] = carried
    return np.ones(len(path)), path + fade


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
    hip: np.ndarray,
    knee: np.ndarray,
    ankle: np.ndarray,
    target: np.ndarray,
    hint: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle (T, 3) putting the ankle at target (or as near as the leg reaches).

    All inputs (T, 3). The thigh |knee - hip| and shin |ankle - knee| keep their lengths;
    the knee stays on the side it bent to (its plane through hip and target), or forward
    (+Z) where the leg was straight along the new line. ``hint`` (T, 3), e.g. the foot's
    direction (knees bend over the toes), steadies that side on a nearly straight leg: its
    tiny bend says little about where the knee should go once the pin asks for more bend,
    and following it made the knee swing from frame to frame.
    """
    thigh = np.linalg.norm(knee - hip, axis=-1)  # (T,)
    shin = np.linalg.norm(ankle - knee, axis=-1)
    reach = target - hip
    dist = np.linalg.norm(reach, axis=-1)
    along = reach / np.maximum(dist, 1e-12)[:, None]
    dist = np.clip(dist, np.abs(thigh - shin) + 1e-9, (thigh + shin) * (1 - 1e-9))
    pole = (knee - hip) - ((knee - hip) * along).sum(-1, keepdims=True) * along
    fallback = np.array([0.0, 0.0, 1.0]) - along[:, 2:3] * along
    if hint is not None:
        steady = hint - (hint * along).sum(-1, keepdims=True) * along
        steady /= np.maximum(np.linalg.norm(steady, axis=-1, keepdims=True), 1e-12)
        pole = pole + HINT_WEIGHT * thigh[:, None] * steady
    weak = np.linalg.norm(pole, axis=-1) < 1e-9 * np.maximum(thigh, 1e-12)
    pole = np.where(weak[:, None], fallback, pole)
    pole /= np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-12)
    cos_a = np.clip((thigh**2 + dist**2 - shin**2) / (2 * thigh * dist + 1e-12), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a**2)
    new_knee = hip + thigh[:, None] * (cos_a[:, None] * along + sin_a[:, None] * pole)
    return new_knee, hip + dist[:, None] * along
