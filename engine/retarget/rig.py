"""Retargeting generated joints onto any rig: per-bone local rotations in Blender's terms.

Only bone *directions* travel from the joints to the rig; its bone lengths stay its own.
The steps, all in a "character frame" (Y up, metres, the frame the joints live in):

1. The rig's rest heads of the mapped bones give rest offsets of a reduced skeleton (the
   mapped joints, each under its nearest mapped ancestor). Rest-pose differences (A-pose,
   T-pose, bones along local +Y with any roll) are thereby part of the rest offsets.
2. ``rig_pose.rotations_from_joints`` turns those offsets towards the joints, with twist
   from the bend planes: the hint axes (which rest axis follows the knee's and the elbow's
   bend normal) are worked out from the rig's own rest pose and facing.
3. The pelvis path is scaled by the ratio of leg lengths (rig / joints), so strides fit the
   rig's legs; forward kinematics with the rig's offsets gives where its joints will be.
4. Foot clean-up: while the contact features say a foot is planted, its ankle is held at
   one place and the leg re-solved by two-bone IK (hip fixed, the rig's thigh and shin).
5. Global rotations become Blender pose-bone rotations: for a bone B with parent P,
   basis_B = rest_B^T rest_P pose_P^T pose_B (rotation parts, armature space), including
   the unmapped bones between mapped ones, which stay at rest. Quaternion signs are made
   continuous in time.

The motion lives in the rig's own frame: its up, left and forward axes are read from its
rest pose in armature space (pelvis to head, right to left hip), so a rig turned or moved
as an object walks along its own forward from its own origin, and an FBX import's Y-up
armature space works as a Z-up one does. Joints go to metres -> scene units by ``scale``.
The feet end on the rig's floor: one height shift for the clip puts the rig's lowest foot
joint, on the frames where the clip's feet are on the ground, at its own rest height.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..edit.foot_cleanup import PLANTED, LegChain, pin_feet
from ..errors import MotionError
from ..motion.quaternion import matrix_to_quat, quat_to_matrix
from ..motion.rig_pose import (
    canonical_rest_joints,
    forward_kinematics,
    local_from_global,
    rotations_from_joints,
)
from ..motion.skeleton import (
    COLLARS,
    FOOT_LEFT,
    FOOT_RIGHT,
    HIPS,
    JOINT_NAMES,
    LEFT_HIP,
    LEFT_KNEE,
    NUM_JOINTS,
    PARENTS,
    RIGHT_HIP,
    RIGHT_KNEE,
    SHOULDERS,
    SPINE_UP,
)
from .generated_twist import apply_generated_twist
from .presets import (
    PRESETS,
    BoneMap,
    detect_preset,
    find_bone_map,
    load_bone_map,
    resolve_bones,
    resolve_root,
    save_bone_map,
    save_user_map,
    user_map_names,
)

__all__ = [  # the bone-map API lives in presets; one import serves the add-on
    "PRESETS", "BoneMap", "detect_preset", "find_bone_map", "load_bone_map", "save_bone_map",
    "save_user_map", "user_map_names", "ROOT_MOTION_MODES", "RestPose", "PoseTracks", "retarget",
]  # fmt: skip

ROOT_MOTION_MODES = ("in_place", "root_bone", "hips")
"""in_place: the pelvis keeps only its height; root_bone: a bone above the hips carries the
floor-plane motion, the hips the rest; hips: the hips bone carries all of it."""

Y_UP_FROM_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Blender (x, y, z) -> HumanML3D (x, z, -y); its transpose goes back: (x, y, z) -> (x, -z, y)."""

_LEGS = (  # hip, knee, ankle, toe, ankle contact column, toe contact column
    (LEFT_HIP, LEFT_KNEE, *FOOT_LEFT, 0, 1),
    (RIGHT_HIP, RIGHT_KNEE, *FOOT_RIGHT, 2, 3),
)
_FOOT_JOINTS = FOOT_LEFT + FOOT_RIGHT  # ankles and toes
_CANONICAL_REST = canonical_rest_joints()  # (22, 3) the skeleton generated clips stand on
GROUND_LIFT_LIMIT = 0.05
"""Metres: a clip whose feet float less than this over its floor is put on the floor."""


@dataclass
class RestPose:
    """A rig at rest, in its armature object's space (Blender's ``Bone`` data).

    names: bone names; parents: parent index per bone, -1 for roots, parents first.
    heads: (B, 3) ``Bone.head_local``; rotations: (B, 3, 3) ``Bone.matrix_local`` rotation
    (column 1 runs along the bone). connected: (B,) ``Bone.use_connect`` (such bones take no
    location). object_matrix: (4, 4) armature object -> world (Z up, scene units).
    """

    names: list[str]
    parents: list[int]
    heads: np.ndarray
    rotations: np.ndarray
    object_matrix: np.ndarray = field(default_factory=lambda: np.eye(4))
    connected: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        self.heads = np.asarray(self.heads, dtype=np.float64)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.object_matrix = np.asarray(self.object_matrix, dtype=np.float64)
        self.connected = (
            np.zeros(n, dtype=bool) if self.connected is None else np.asarray(self.connected, bool)
        )
        if (
            len(self.parents) != n
            or self.heads.shape != (n, 3)
            or self.rotations.shape != (n, 3, 3)
            or self.object_matrix.shape != (4, 4)
            or self.connected.shape != (n,)
        ):
            raise MotionError(f"rest pose arrays do not match its {n} bone names")
        for b, p in enumerate(self.parents):
            if not -1 <= p < b:
                raise MotionError(f"rest pose must list parents first: bone '{self.names[b]}'")

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass
class PoseTracks:
    """Per-frame pose-bone channels for the bones a bake keys (mapped bones, their ancestors).

    rotations: (T, K, 4) quaternions (w, x, y, z) in each bone's rest frame, signs continuous.
    locations: bone name -> (T, 3) pose location (bone rest frame, armature units).
    heads: (T, K, 3) where each bone's head lands, armature space (Blender will agree).
    notes: what the solve decided that the user may want to know.
    """

    bone_names: list[str]
    rotations: np.ndarray
    locations: dict[str, np.ndarray]
    heads: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])


class _Frame:
    """Conversions between armature space and the character frame (Y up, metres).

    axes: (3, 3) rows = the rig's left, up and forward in armature space (orthonormal);
    None: armature space read as Blender's convention (Z up, facing -Y).
    """

    def __init__(self, object_matrix: np.ndarray, scale: float, axes: np.ndarray | None = None):
        lin = object_matrix[:3, :3]
        det = np.linalg.det(lin)
        size = abs(det) ** (1.0 / 3.0)
        if det <= 0 or not np.allclose(lin.T @ lin, size**2 * np.eye(3), atol=1e-5 * size**2):
            raise MotionError(
                "the armature object is mirrored or scaled unevenly: apply its scale first"
            )
        if not scale > 0:
            raise MotionError(f"scene unit scale must be positive, got {scale}")
        self.rot = Y_UP_FROM_Z_UP if axes is None else axes  # armature dirs -> character
        self.per_unit = size / scale  # metres per armature unit
        self.to_arm = self.rot.T / self.per_unit

    def to_character(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rot.T * self.per_unit

    def to_armature(self, points: np.ndarray) -> np.ndarray:
        return points @ self.to_arm.T


def rig_axes(heads: np.ndarray, mapped: Sequence[int]) -> np.ndarray | None:
    """(3, 3) rows: the rig's left, up, forward in armature space, from its rest heads.

    heads: (M, 3) armature-space rest heads of the mapped joints ``mapped``. Up runs from the
    pelvis to the highest mapped spine/head joint, left from the right to the left hip (or
    shoulder, collar). Each snaps to the nearest armature axis within 20 degrees (rigs are
    built along their axes; a leaning spine must not tilt the motion). None when the rest
    pose has no such joints.
    """
    where = {j: i for i, j in enumerate(mapped)}
    top = next((j for j in SPINE_UP if j in where), None)
    pair = next((p for p in (HIPS, SHOULDERS, COLLARS) if set(p) <= set(where)),
                None)  # fmt: skip
    if top is None or pair is None:
        return None
    up = _snap(heads[where[top]] - heads[where[0]])
    left = heads[where[pair[0]]] - heads[where[pair[1]]]
    if up is None or np.linalg.norm(left - up * (left @ up)) < 1e-9:
        return None
    left = _snap(left - up * (left @ up))
    left = left - up * (left @ up)
    left /= np.linalg.norm(left)
    return np.stack([left, up, np.cross(left, up)])


def _snap(v: np.ndarray, degrees: float = 20.0) -> np.ndarray | None:
    """Unit ``v``, or the armature axis it lies within ``degrees`` of; None for a zero v."""
    length = np.linalg.norm(v)
    if length < 1e-9:
        return None
    v = v / length
    axis = int(np.argmax(np.abs(v)))
    if abs(v[axis]) >= np.cos(np.radians(degrees)):
        snapped = np.zeros(3)
        snapped[axis] = np.sign(v[axis])
        return snapped
    return v


def retarget(
    joints: np.ndarray,
    target_rest: RestPose,
    bone_map: BoneMap,
    *,
    root_motion: str = "hips",
    scale: float = 1.0,
    contacts: np.ndarray | None = None,
    match_joints: bool = False,
    foot_cleanup: bool = True,
    rotations: np.ndarray | None = None,
) -> PoseTracks:
    """Pose-bone tracks that make the rig follow joints (T, 22, 3), metres, Y up.

    scale: scene units per metre (1 / ``unit_settings.scale_length``). contacts: (T, 4) or
    (T-1, 4) foot contact features (left ankle, left foot, right ankle, right foot): they
    say which frames stand on the floor, and with ``foot_cleanup`` planted feet are pinned;
    None = floor frames from the feet's heights, no clean-up. match_joints: give every
    mapped bone a location too, so heads land on the joints exactly whatever their bone
    lengths (the canonical armature showing a clip as generated); the root path is then
    neither rescaled nor grounded. rotations: (T, 22, 3, 3) generated local joint rotations
    (a 272 clip's, ``representation_272.rotations_from_272``) whose twist the bones take
    (``generated_twist``); None: twist from the bend planes.
    """
    joints = _check_joints(joints)
    if root_motion not in ROOT_MOTION_MODES:
        raise MotionError(f"root motion must be one of {', '.join(ROOT_MOTION_MODES)}")
    rest, notes = target_rest, []
    by_joint = resolve_bones(bone_map, rest.names)
    mapped = [j for j in range(NUM_JOINTS) if JOINT_NAMES[j] in by_joint]  # (M,)
    bone_of = [rest.index(by_joint[JOINT_NAMES[j]]) for j in mapped]
    rparents = _reduced_parents(mapped)
    frame = _Frame(rest.object_matrix, scale, rig_axes(rest.heads[bone_of], mapped))
    rest_pos = frame.to_character(rest.heads[bone_of])  # (M, 3)
    offsets = rest_pos - rest_pos[np.maximum(rparents, 0)]  # (M, 3), root row 0
    hints = _twist_hints(rest_pos, mapped, rparents)
    root_bone = _root_bone(rest, bone_map, bone_of[0]) if root_motion == "root_bone" else None
    contacts = None if contacts is None else _check_contacts(contacts, len(joints))

    if root_motion == "in_place":
        joints = joints - joints[:, :1] * np.array([1.0, 0.0, 1.0])
    glob = None  # (T, M, 4) global rotations, character frame
    if match_joints:
        pos = joints[:, mapped]  # (T, M, 3)
    else:
        ratio = _leg_ratio(joints, rest_pos, mapped, notes)
        glob = rotations_from_joints(joints[:, mapped], rparents, offsets, hints)
        local = local_from_global(glob, rparents)
        pos = forward_kinematics(local, joints[:, 0] * ratio, rparents, offsets)
        pos[..., 1] += _floor_shift(joints, pos, rest_pos, mapped, ratio, contacts, notes)
    if contacts is not None and foot_cleanup and root_motion == "in_place":
        notes.append("foot clean-up skipped: feet must slide when the motion stays in place")
    elif contacts is not None and foot_cleanup:
        pos = pin_feet(pos, contacts, _leg_chains(mapped, rparents, rest_pos[:, 1]))
        glob = None
    if glob is None:
        glob = rotations_from_joints(pos, rparents, offsets, hints)
    if rotations is not None:
        glob = apply_generated_twist(glob, rotations, joints, mapped, rparents, offsets)

    desired = {}  # bone -> (T, 3) head in armature space, for bones that take a location
    for m, b in enumerate(bone_of):
        if (m == 0 or match_joints) and not rest.connected[b]:
            desired[b] = frame.to_armature(pos[:, m])
    if root_bone is not None:
        floor = pos[:, 0] * np.array([1.0, 0.0, 1.0])  # (T, 3) the pelvis path on the floor
        desired[root_bone] = rest.heads[root_bone] + frame.to_armature(floor)
    keyed = _ancestor_closed(rest.parents, bone_of + ([root_bone] if root_bone is not None else []))
    world_rot = quat_to_matrix(glob)  # (T, M, 3, 3) character frame
    arm_rot = {b: frame.rot.T @ world_rot[:, m] @ frame.rot for m, b in enumerate(bone_of)}
    return _pose_tracks(rest, keyed, arm_rot, desired, notes)


def _pose_tracks(rest: RestPose, keyed: list[int], arm_rot: dict, desired: dict, notes):
    """Local rotations and locations of the keyed bones (parents first) from global poses.

    With D_b = pose_b rest_b^T, the rotation taking bone b from rest to pose (armature
    space; an unmapped bone has its parent's, a root at rest none), Blender's rule gives
    basis_b = rest_b^T D_p^T D_b rest_b, head_b = head_p + D_p (rest_head_b - rest_head_p +
    rest_b location_b).
    """
    num_frames, count = next(iter(arm_rot.values())).shape[0], len(keyed)
    col = {b: k for k, b in enumerate(keyed)}
    parent = [col.get(rest.parents[b], -1) for b in keyed]  # ancestors are keyed too
    delta = np.empty((num_frames, count, 3, 3))  # (T, K, 3, 3)
    for k, b in enumerate(keyed):
        if b in arm_rot:
            delta[:, k] = arm_rot[b]
        else:  # an unmapped bone between mapped ones stays at rest under its parent
            delta[:, k] = np.eye(3) if parent[k] < 0 else delta[:, parent[k]]
    above = np.where(np.array(parent)[None, :, None, None] < 0, np.eye(3),
                     delta[:, np.maximum(parent, 0)])  # fmt: skip
    r_rest = rest.rotations[keyed]  # (K, 3, 3)
    local = np.swapaxes(r_rest, -1, -2) @ np.swapaxes(above, -1, -2) @ delta @ r_rest
    heads = np.empty((num_frames, count, 3))
    locations = {}
    for k, b in enumerate(keyed):
        p = parent[k]
        base = heads[:, p] if p >= 0 else 0.0
        rest_off = rest.heads[b] - (rest.heads[rest.parents[b]] if p >= 0 else 0.0)
        if b in desired:
            heads[:, k] = desired[b]
            rel = np.einsum("tji,tj->ti", above[:, k], desired[b] - base)  # D_p^T (h_b - h_p)
            locations[rest.names[b]] = (rel - rest_off) @ rest.rotations[b]
        else:
            heads[:, k] = base + above[:, k] @ rest_off
    return PoseTracks(
        bone_names=[rest.names[b] for b in keyed],
        rotations=_continuous(matrix_to_quat(local)),  # (T, K, 4)
        locations=locations,
        heads=heads,
        notes=notes,
    )


def _continuous(quats: np.ndarray) -> np.ndarray:
    """Flip signs over time (axis 0) so consecutive quaternions never differ by more than 180°.

    Flipping both of two neighbours keeps the sign of their dot product, so the number of
    sign changes up to each frame says which frames to flip: no loop over time.
    """
    changes = ((quats[1:] * quats[:-1]).sum(-1) < 0).astype(np.int64)  # (T-1, ...)
    parity = np.concatenate([np.zeros_like(changes[:1]), np.cumsum(changes, axis=0)]) % 2
    return np.where(parity[..., None] == 1, -quats, quats)


def _check_joints(joints: np.ndarray) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or not len(arr):
        raise MotionError(f"joints must have shape (T, {NUM_JOINTS}, 3), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise MotionError("joints hold NaN or infinite values")
    return arr


def _check_contacts(contacts: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, 4) contacts; features give one row fewer than joints, the last row repeats."""
    arr = np.asarray(contacts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) not in (num_frames, num_frames - 1):
        raise MotionError(f"foot contacts must be ({num_frames}, 4), got {arr.shape}")
    return arr if len(arr) == num_frames else np.concatenate([arr, arr[-1:]])


def _reduced_parents(mapped: Sequence[int]) -> list[int]:
    """Each mapped joint's nearest mapped ancestor, as an index into ``mapped``."""
    where = {j: i for i, j in enumerate(mapped)}
    out = []
    for j in mapped:
        p = PARENTS[j]
        while p >= 0 and p not in where:
            p = PARENTS[p]
        out.append(where.get(p, -1))
    if out[0] != -1 or mapped[0] != 0:
        raise MotionError("a bone map must map the pelvis")
    return out


def _twist_hints(rest_pos: np.ndarray, mapped: Sequence[int], rparents: Sequence[int]) -> dict:
    """Rest axes of the rig's hips and shoulders that follow the knee and elbow bend normals.

    A knee bends backwards: normal = forward x thigh; an elbow forwards: normal = upper arm
    x forward. On the canonical rest pose these give its CANONICAL_TWIST_HINTS; on a T-pose
    the shoulders' axis turns with the arm. forward = left x up from the rig's hip line.
    """
    where = {j: i for i, j in enumerate(mapped)}
    sides = [(a, b) for a, b in (HIPS, SHOULDERS, COLLARS) if {a, b} <= set(where)]
    if not sides:
        return {}
    left = rest_pos[where[sides[0][0]]] - rest_pos[where[sides[0][1]]]
    left[1] = 0.0
    if np.linalg.norm(left) < 1e-9:
        return {}
    forward = np.cross(left / np.linalg.norm(left), [0.0, 1.0, 0.0])
    hints = {}
    for joint, child in ((1, 4), (2, 5), (16, 18), (17, 19)):
        if joint in where and child in where and rparents[where[child]] == where[joint]:
            bone = rest_pos[where[child]] - rest_pos[where[joint]]
            axis = np.cross(forward, bone) if joint in HIPS else np.cross(bone, forward)
            hints[where[joint]] = tuple(axis)
    return hints


def _leg_ratio(joints: np.ndarray, rest_pos: np.ndarray, mapped, notes: list[str]) -> float:
    """Rig leg length / the joints' leg length (hip-knee-ankle), right leg first."""
    where = {j: i for i, j in enumerate(mapped)}
    for hip, knee, ankle in ((2, 5, 8), (1, 4, 7)):
        if {hip, knee, ankle} <= set(where):
            rig = sum(
                np.linalg.norm(rest_pos[where[b]] - rest_pos[where[a]])
                for a, b in ((hip, knee), (knee, ankle))
            )
            src = np.linalg.norm(joints[:, [knee, ankle]] - joints[:, [hip, knee]], axis=-1)
            src = float(src.sum(-1).mean())
            if not src > 0:
                raise MotionError("the joints' legs have zero length")
            return float(rig / src)
    notes.append("no leg is mapped: the root path keeps its size in metres")
    return 1.0


def _floor_shift(
    joints: np.ndarray,
    pos: np.ndarray,
    rest_pos: np.ndarray,
    mapped: Sequence[int],
    ratio: float,
    contacts: np.ndarray | None,
    notes: list[str],
) -> float:
    """Metres to raise the rig's joints pos (T, M, 3) by so that its feet meet its floor.

    A foot's clearance is its lowest mapped foot joint's height above that joint's rest
    height (the rig's rest heights for ``pos``, the canonical skeleton's for ``joints``).
    On the clip's floor frames (planted contacts, else the frames within 2 cm of its lowest
    clearance) the rig's clearance is made the clip's scaled by ``ratio``, less the clip's
    own float (the planted frames' median clearance, else the lowest): generated feet
    hovering or sinking a few cm stand on the floor. A clip that never comes
    within GROUND_LIFT_LIMIT of its floor (a dive, a jump cut short) keeps its height.
    """
    where = {j: i for i, j in enumerate(mapped)}
    feet = [j for j in _FOOT_JOINTS if j in where]
    if not feet:
        return 0.0
    cols = [where[j] for j in feet]
    rig = (pos[:, cols, 1] - rest_pos[cols, 1]).min(axis=1)  # (T,)
    src = (joints[:, feet, 1] - _CANONICAL_REST[feet, 1]).min(axis=1)  # (T,)
    floor = None if contacts is None else (contacts > PLANTED).any(axis=1)
    if floor is not None and floor.any():
        lift = float(np.median(src[floor]))
    else:  # no contacts: the clip's lowest foot is its floor (HumanML3D's own convention)
        floor, lift = src <= src.min() + 0.02, float(src.min())
    if lift > GROUND_LIFT_LIMIT:
        notes.append(f"the clip's feet stay {100 * lift:.0f} cm above its floor: kept so")
        lift = 0.0
    return float(np.median(ratio * (src[floor] - lift) - rig[floor]))


def _root_bone(rest: RestPose, bone_map: BoneMap, hips: int) -> int:
    """The bone that carries floor motion in "root_bone" mode: the map's, or the hips' top."""
    named = resolve_root(bone_map, rest.names)
    if named is not None and named != rest.names[hips]:
        return rest.index(named)
    top = hips
    while rest.parents[top] >= 0:
        top = rest.parents[top]
    if top == hips:
        raise MotionError(
            f"root motion 'root_bone' needs a bone above the hips ('{rest.names[hips]}' has "
            "no parent): choose 'hips' or 'in_place'"
        )
    return top


def _ancestor_closed(parents: Sequence[int], bones: Sequence[int]) -> list[int]:
    """The bones with all their ancestors, parents first."""
    keep: set[int] = set()
    for b in bones:
        while b >= 0 and b not in keep:
            keep.add(b)
            b = parents[b]
    return sorted(keep)


def _leg_chains(
    mapped: Sequence[int], rparents: Sequence[int], rest_heights: np.ndarray | None = None
) -> list[LegChain]:
    """Legs whose hip, knee and ankle are mapped as one chain (the toe is optional).

    rest_heights: (M,) each mapped joint's rest height, where planted feet are pinned.
    """
    where = {j: i for i, j in enumerate(mapped)}
    out = []
    for hip, knee, ankle, toe, ca, ct in _LEGS:
        if not {hip, knee, ankle} <= set(where):
            continue
        if rparents[where[knee]] != where[hip] or rparents[where[ankle]] != where[knee]:
            continue
        floors = [
            None if rest_heights is None or j not in where else float(rest_heights[where[j]])
            for j in (ankle, toe)
        ]
        out.append(LegChain(where[hip], where[knee], where[ankle], where.get(toe), ca, ct,
                            *floors))  # fmt: skip
    return out
