"""DeepMimic reference motions -> canonical joints: character file, forward kinematics, 15 -> 22.

A DeepMimic motion (``data/motions/*.txt``, JSON) is ``{"Loop": "wrap" | "none", "Frames":
[[duration s, root position (3, metres, Y up), root rotation (w, x, y, z), then per joint of
the character a quaternion (spherical), one angle about the joint's Z axis (revolute: knees,
elbows) or nothing (fixed: wrists)], ...]}``. The character (``data/characters/NAME.txt``)
gives each joint's parent and offset; the body faces +X, its right side is +Z.

The 15 joints map onto the canonical 22 (``engine.motion.skeleton``) by position: the ones both
have are taken as they are; the three spine joints are placed on the line pelvis - chest -
neck, the collars half way between the spine (at shoulder height) and each shoulder, the
head at the centre of the head body, the toes at the ball of each foot's box; all of them
ride rigidly on a DeepMimic body, so bone lengths stay fixed. Time is resampled to 20 fps
from the rotations (slerp), not the positions, so fast flips at 16 fps keep their bones.
Looping motions ("wrap") are repeated whole cycles, each moved on by the cycle's root
displacement and turn, to at least ``LOOP_SECONDS``; one-shot motions shorter than
``MIN_SECONDS`` hold their first and last pose (the training crops need 2 s).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import MotionError
from engine.motion.quaternion import qmul, qnormalize, qrot
from engine.motion.skeleton import FPS, JOINT_NAMES

LOOP_SECONDS = 4.0
"""Looping clips are repeated to at least this long (DeepMimic's walk cycle is 1.3 s)."""
MIN_SECONDS = 2.4
"""One-shot clips shorter than this hold their end poses (training crops are at least 2 s)."""
MAX_FRAMES = 200_000
"""Most frames a motion file may hold (the longest DeepMimic clip has 3936)."""

_Z_AXIS = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Character:
    """A DeepMimic character: joint names, parents, offsets (J, 3) m, types, and the two points
    the canonical skeleton needs from its bodies (head centre, ball of the foot)."""

    name: str
    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    types: tuple[str, ...]
    head: np.ndarray  # (3,) in the neck joint's frame
    toe: np.ndarray  # (3,) in each ankle joint's frame

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def dofs(self) -> int:
        """Values per frame: duration, root position and rotation, then the joints'."""
        size = {"spherical": 4, "revolute": 1, "fixed": 0, "none": 0}
        return 1 + 3 + 4 + sum(size[t] for t in self.types[1:])


NEEDED = (
    "root", "chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder",
    "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle", "left_shoulder",
    "left_elbow", "left_wrist",
)  # fmt: skip


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MotionError(f"{path}: not a readable DeepMimic JSON file ({err})") from err
    if not isinstance(data, dict):
        raise MotionError(f"{path}: expected a JSON object")
    return data


def read_character(path: str | Path) -> Character:
    """Parse a DeepMimic character file (``Skeleton.Joints`` and ``BodyDefs``)."""
    path = Path(path)
    data = _load_json(path)
    try:
        joints = sorted(data["Skeleton"]["Joints"], key=lambda j: int(j["ID"]))
        names = tuple(str(j["Name"]) for j in joints)
        parents = tuple(int(j["Parent"]) for j in joints)
        offsets = np.array([[float(j[f"Attach{a}"]) for a in "XYZ"] for j in joints])
        types = tuple(str(j["Type"]) for j in joints)
        bodies = {str(b["Name"]): b for b in data["BodyDefs"]}
        head = _attach(bodies["neck"])
        foot = bodies["right_ankle"]
        size = np.array([float(foot[f"Param{i}"]) for i in range(3)])
    except (KeyError, TypeError, ValueError) as err:
        raise MotionError(f"{path}: not a DeepMimic character file (missing {err})") from err
    missing = [n for n in NEEDED if n not in names]
    if missing:
        raise MotionError(f"{path}: the character lacks the joints {', '.join(missing)}")
    if any(not -1 <= p < i for i, p in enumerate(parents)) or parents[0] != -1:
        raise MotionError(f"{path}: joints must come after their parents, the root first")
    # Ball of the foot: three quarters along the foot box, a third of its height above the sole.
    toe = _attach(foot) + np.array([0.25 * size[0], -size[1] / 6, 0.0])
    return Character(path.stem, names, parents, offsets, types, head, toe)


def _attach(body: dict) -> np.ndarray:
    return np.array([float(body[f"Attach{a}"]) for a in "XYZ"])


@dataclass(frozen=True)
class Motion:
    """A motion's frames split up: times (T,) s, root positions (T, 3), rotations (T, J, 4)
    (local, the root's world; identity for fixed joints), and whether it loops."""

    times: np.ndarray
    root: np.ndarray
    rotations: np.ndarray
    loops: bool


def read_motion(path: str | Path, character: Character) -> Motion:
    """Parse a DeepMimic motion file for ``character``; MotionError names any problem."""
    path = Path(path)
    data = _load_json(path)
    frames = data.get("Frames")
    if not isinstance(frames, list) or len(frames) < 2 or len(frames) > MAX_FRAMES:
        raise MotionError(f"{path}: 'Frames' must be a list of 2 to {MAX_FRAMES} frames")
    try:
        values = np.array(frames, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MotionError(f"{path}: frames must be rows of numbers of one length") from err
    if values.ndim != 2 or values.shape[1] != character.dofs:
        raise MotionError(
            f"{path}: frames have {values.shape[1:]} values, the character "
            f"'{character.name}' needs {character.dofs}"
        )
    if not np.isfinite(values).all():
        raise MotionError(f"{path}: frames hold NaN or infinite values")
    durations = values[:-1, 0]
    if (durations <= 0).any() or durations.sum() > 3 * 3600:
        raise MotionError(f"{path}: frame durations must be positive (and under 3 hours)")
    times = np.concatenate([[0.0], np.cumsum(durations)])
    rotations = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (len(values), len(character.names), 1))
    rotations[:, 0] = values[:, 4:8]
    column = 8
    for j, kind in enumerate(character.types[1:], start=1):
        if kind == "spherical":
            rotations[:, j] = values[:, column : column + 4]
            column += 4
        elif kind == "revolute":
            half = values[:, column] / 2
            rotations[:, j] = np.stack([np.cos(half), 0 * half, 0 * half, np.sin(half)], -1)
            column += 1
    norms = np.linalg.norm(rotations, axis=-1)
    if (norms < 0.5).any() or (norms > 1.5).any():
        raise MotionError(f"{path}: a rotation is not a unit quaternion")
    loops = str(data.get("Loop", "none")).lower() == "wrap"
    return Motion(times, values[:, 1:4], qnormalize(rotations), loops)


def _yaw(q: np.ndarray) -> np.ndarray:
    """Heading angle about +Y of rotations (..., 4): where the body's forward +X points."""
    forward = qrot(q, np.broadcast_to(np.array([1.0, 0.0, 0.0]), q.shape[:-1] + (3,)))
    return np.arctan2(-forward[..., 2], forward[..., 0])


def _yaw_quat(angle: float) -> np.ndarray:
    return np.array([np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0])


def repeat_cycles(motion: Motion, seconds: float = LOOP_SECONDS) -> tuple[Motion, int]:
    """A looping motion repeated to at least ``seconds``; returns it and the cycle count.

    The last frame of a DeepMimic loop is its first pose again, moved on by one cycle: each
    repeat drops it and carries on from where the previous cycle ended (the root's floor
    displacement and its turn about the vertical from the first to the last frame).
    """
    period = motion.times[-1]
    cycles = max(1, int(np.ceil(seconds / period - 1e-9)))
    if not motion.loops or cycles == 1:
        return motion, 1
    turn = float(_yaw(motion.rotations[-1, 0]) - _yaw(motion.rotations[0, 0]))
    step_q = _yaw_quat(turn)
    shift = motion.root[-1] - qrot(step_q, motion.root[0])
    shift[1] = 0.0  # heights repeat; only the floor position moves on
    times, roots, rotations = [], [], []
    q, t = np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3)
    for k in range(cycles):
        last = k == cycles - 1
        keep = slice(None) if last else slice(0, -1)
        times.append(motion.times[keep] + k * period)
        roots.append(qrot(q, motion.root[keep]) + t)
        rot = motion.rotations[keep].copy()
        rot[:, 0] = qmul(np.broadcast_to(q, rot[:, 0].shape), rot[:, 0])
        rotations.append(rot)
        t = qrot(q, shift) + t
        q = qmul(q, step_q)
    return Motion(np.concatenate(times), np.concatenate(roots), np.concatenate(rotations),
                  True), cycles  # fmt: skip


def hold_ends(motion: Motion, seconds: float = MIN_SECONDS) -> Motion:
    """A one-shot motion shorter than ``seconds`` with its first and last poses held, half of
    the missing time each side."""
    missing = seconds - motion.times[-1]
    if missing <= 0:
        return motion
    half = missing / 2
    times = np.concatenate([[0.0], motion.times + half, [motion.times[-1] + missing]])
    root = np.concatenate([motion.root[:1], motion.root, motion.root[-1:]])
    rot = np.concatenate([motion.rotations[:1], motion.rotations, motion.rotations[-1:]])
    return Motion(times, root, rot, motion.loops)


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions (..., 4) by t (..., 1), shortest arc."""
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot).clip(max=1.0)
    angle = np.arccos(dot)
    small = angle < 1e-6
    sin = np.where(small, 1.0, np.sin(angle))
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * angle) / sin)
    wb = np.where(small, t, np.sin(t * angle) / sin)
    return qnormalize(wa * a + wb * b)


def resample_motion(motion: Motion, fps: float = FPS) -> Motion:
    """The motion at ``fps``: root positions interpolated linearly, rotations by slerp."""
    count = int(np.floor(motion.times[-1] * fps + 1e-2)) + 1
    at = np.minimum(np.arange(count) / fps, motion.times[-1])
    hi = np.clip(np.searchsorted(motion.times, at, side="right"), 1, len(motion.times) - 1)
    lo = hi - 1
    frac = ((at - motion.times[lo]) / (motion.times[hi] - motion.times[lo])).clip(0.0, 1.0)
    root = motion.root[lo] * (1 - frac[:, None]) + motion.root[hi] * frac[:, None]
    rot = _slerp(motion.rotations[lo], motion.rotations[hi], frac[:, None, None])
    return Motion(at, root, rot, motion.loops)


def forward_kinematics(character: Character, motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions (T, J, 3) and rotations (T, J, 4) of a motion."""
    count, joints = len(motion.times), len(character.names)
    positions = np.zeros((count, joints, 3))
    world = np.zeros((count, joints, 4))
    positions[:, 0], world[:, 0] = motion.root, motion.rotations[:, 0]
    for j in range(1, joints):
        p = character.parents[j]
        offset = np.broadcast_to(character.offsets[j], (count, 3))
        positions[:, j] = positions[:, p] + qrot(world[:, p], offset)
        world[:, j] = qmul(world[:, p], motion.rotations[:, j])
    return positions, world


def to_canonical22(character: Character, positions: np.ndarray, world: np.ndarray) -> np.ndarray:
    """DeepMimic world joints (T, 15, 3) and rotations -> canonical joints (T, 22, 3)."""
    at = {name: positions[:, character.index(name)] for name in NEEDED}

    def local(joint: str, point: np.ndarray) -> np.ndarray:
        """A point fixed in ``joint``'s frame, in world coordinates (T, 3)."""
        j = character.index(joint)
        return positions[:, j] + qrot(world[:, j], np.broadcast_to(point, (len(positions), 3)))

    shoulder = character.offsets[character.index("left_shoulder")]
    spine_top = local("chest", np.array([shoulder[0], shoulder[1], 0.0]))
    out = {
        "pelvis": at["root"],
        "spine1": 0.5 * (at["root"] + at["chest"]),
        "spine2": at["chest"],
        "spine3": 0.75 * at["chest"] + 0.25 * at["neck"],
        "neck": at["neck"],
        "head": local("neck", character.head),
    }
    for side in ("left", "right"):
        out |= {
            f"{side}_hip": at[f"{side}_hip"],
            f"{side}_knee": at[f"{side}_knee"],
            f"{side}_ankle": at[f"{side}_ankle"],
            f"{side}_foot": local(f"{side}_ankle", character.toe),
            f"{side}_collar": 0.5 * (spine_top + at[f"{side}_shoulder"]),
            f"{side}_shoulder": at[f"{side}_shoulder"],
            f"{side}_elbow": at[f"{side}_elbow"],
            f"{side}_wrist": at[f"{side}_wrist"],
        }
    return np.stack([out[name] for name in JOINT_NAMES], axis=1)


def find_character(motion_path: Path) -> Path:
    """The character file of a motion: ``characters/*.txt`` in the nearest folder above it
    that has one; the one named in the motion's file name (``humanoid3d``) when several."""
    for folder in motion_path.absolute().parents:
        found = sorted((folder / "characters").glob("*.txt"))
        if not found:
            continue
        named = [c for c in found if c.stem in motion_path.stem]
        if len(named) == 1 or len(found) == 1:
            return (named or found)[0]
        raise MotionError(
            f"{motion_path}: several characters in {folder / 'characters'} and none named in "
            "the motion's file name"
        )
    raise MotionError(f"{motion_path}: no characters/*.txt in any folder above the motion")


@dataclass(frozen=True)
class DeepMimicClip:
    """A motion read for the builder: joints (T, 22, 3) m, Y up, 20 fps, and how it was read."""

    joints: np.ndarray
    read: dict


def read_deepmimic(path: str | Path, character: Character | None = None) -> DeepMimicClip:
    """A DeepMimic motion file -> canonical joints at 20 fps (see the module docstring)."""
    path = Path(path)
    character = character or read_character(find_character(path))
    motion = read_motion(path, character)
    source_fps = (len(motion.times) - 1) / motion.times[-1]
    motion, cycles = repeat_cycles(motion)
    held = bool(motion.times[-1] < MIN_SECONDS)
    motion = hold_ends(motion)
    positions, world = forward_kinematics(character, resample_motion(motion))
    joints = to_canonical22(character, positions, world)
    read = {"map": f"deepmimic_{character.name}", "units": "m", "up": "Y",
            "source_fps": round(source_fps, 4), "cycles": cycles, "held_ends": held}  # fmt: skip
    return DeepMimicClip(joints, read)
