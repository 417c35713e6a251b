"""Joint maps from BVH skeletons to the canonical 22 joints, and resampling to 20 fps.

A JointMap says where each canonical (SMPL-order) joint sits on a source skeleton: one source
joint, or a weighted blend of several where the source has no joint at that place (the Bandai
Namco skeleton has one spine joint fewer than SMPL). Maps work on world positions, so the
source's rest pose and bone axes do not matter; only where its joints sit on the body does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bvh import BVH, read_bvh
from .bvh_units import FileUnits, Units, resolve_units
from .errors import MotionError
from .skeleton import FPS, JOINT_NAMES

Source = str | tuple[tuple[str, float], ...]
"""A source joint name, or ((name, weight), ...) with weights summing to 1."""

_UP_AXIS_TO_Y_UP = {
    "Y": np.eye(3),
    # Z up (Blender and many DCC exports, facing -Y): (x, y, z) -> (x, z, -y).
    "Z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
}


@dataclass(frozen=True)
class JointMap:
    """Where the canonical joints are on one source skeleton.

    joints: one Source per canonical joint, in JOINT_NAMES order. units_to_metres: the unit the
    source usually comes in (0.01 for centimetres), what ``to_canonical`` scales by when not
    told otherwise; ``bvh_to_canonical`` measures each file's unit instead (``bvh_units``),
    since a skeleton's names say nothing about the unit it was written in. up_axis: the
    source's up axis ("Y" or "Z"); positions are turned to Y up.
    """

    name: str
    description: str
    joints: tuple[Source, ...]
    units_to_metres: float = 1.0
    up_axis: str = "Y"

    def __post_init__(self) -> None:
        if len(self.joints) != len(JOINT_NAMES):
            raise ValueError(
                f"{self.name}: {len(self.joints)} sources for {len(JOINT_NAMES)} joints"
            )
        if self.up_axis not in _UP_AXIS_TO_Y_UP:
            raise ValueError(f"{self.name}: up_axis must be one of {sorted(_UP_AXIS_TO_Y_UP)}")
        for target, source in zip(JOINT_NAMES, self.joints, strict=True):
            if not isinstance(source, str) and abs(sum(w for _, w in source) - 1.0) > 1e-9:
                raise ValueError(f"{self.name}: weights for {target} do not sum to 1")

    def source_names(self) -> list[str]:
        """Every source joint the map reads, in first-use order."""
        out: list[str] = []
        for source in self.joints:
            for name, _ in _blend(source):
                if name not in out:
                    out.append(name)
        return out

    def weights(self, names: Sequence[str]) -> np.ndarray:
        """(22, J) matrix taking source positions (J) to canonical ones; names are the file's."""
        index = {_key(n): i for i, n in enumerate(names)}
        missing = [n for n in self.source_names() if _key(n) not in index]
        if missing:
            raise MotionError(
                f"joint map '{self.name}' needs joints missing here: {', '.join(missing)}"
            )
        out = np.zeros((len(JOINT_NAMES), len(names)))
        for i, source in enumerate(self.joints):
            for name, weight in _blend(source):
                out[i, index[_key(name)]] += weight
        return out


def _blend(source: Source) -> tuple[tuple[str, float], ...]:
    return ((source, 1.0),) if isinstance(source, str) else source


def _key(name: str) -> str:
    """Names compare without case and without a namespace prefix ("mixamorig:Hips")."""
    return name.rsplit(":", 1)[-1].strip().lower()


def _bandai(side: str) -> dict[str, str]:
    return {
        f"{side}_hip": f"UpperLeg_{side[0].upper()}",
        f"{side}_knee": f"LowerLeg_{side[0].upper()}",
        f"{side}_ankle": f"Foot_{side[0].upper()}",
        f"{side}_foot": f"Toes_{side[0].upper()}",
        f"{side}_collar": f"Shoulder_{side[0].upper()}",
        f"{side}_shoulder": f"UpperArm_{side[0].upper()}",
        f"{side}_elbow": f"LowerArm_{side[0].upper()}",
        f"{side}_wrist": f"Hand_{side[0].upper()}",
    }


_BANDAI_TORSO: dict[str, Source] = {
    "pelvis": (("Hips", 0.7), ("Spine", 0.3)),
    "spine1": (("Hips", 0.25), ("Spine", 0.75)),
    "spine2": (("Spine", 0.3), ("Chest", 0.7)),
    "spine3": "Chest",
    "neck": "Neck",
    "head": "Head",
}
_BANDAI_ALL = {**_BANDAI_TORSO, **_bandai("left"), **_bandai("right")}

BANDAI_NAMCO = JointMap(
    name="bandai_namco",
    description=(
        "Bandai Namco Research Motion datasets 1 and 2 (cm, Y up, facing +Z, _L on +X). "
        "Measured on the data, heights along the hip line -> neck path are: Hips 0.05, "
        "Spine 0.41, Chest 0.62, shoulders 0.90, Neck 1; SMPL's are pelvis 0.15, spine1 0.33, "
        "spine2 0.56, spine3 0.65, shoulders 0.93, neck 1. So pelvis and spine1 are blends of "
        "Hips and Spine, spine2 of Spine and Chest at those fractions, spine3 is Chest; "
        "UpperLeg/LowerLeg/Foot are hip/knee/ankle, Toes is SMPL's foot (the toe base); "
        "Shoulder/UpperArm/LowerArm/Hand are collar/shoulder/elbow/wrist. joint_Root (on the "
        "floor) is not used."
    ),
    joints=tuple(_BANDAI_ALL[n] for n in JOINT_NAMES),
    units_to_metres=0.01,
    up_axis="Y",
)

SMPL = JointMap(
    name="smpl",
    description="SMPL joint names in metres, Y up: the identity map (BVH from canonical_bvh).",
    joints=tuple(JOINT_NAMES),
    units_to_metres=1.0,
    up_axis="Y",
)

JOINT_MAPS: dict[str, JointMap] = {m.name: m for m in (BANDAI_NAMCO, SMPL)}


def detect_joint_map(names: Sequence[str]) -> JointMap:
    """The registered map all of whose source joints are in ``names`` (the most specific)."""
    have = {_key(n) for n in names}
    fits = [m for m in JOINT_MAPS.values() if all(_key(n) in have for n in m.source_names())]
    if fits:
        return max(fits, key=lambda m: len(m.source_names()))
    report = "; ".join(
        f"{m.name} is missing {', '.join(n for n in m.source_names() if _key(n) not in have)}"
        for m in JOINT_MAPS.values()
    )
    shown = ", ".join(list(names)[:30]) + (", ..." if len(names) > 30 else "")
    raise MotionError(f"no joint map fits this skeleton (joints: {shown}): {report}")


def to_canonical(
    positions: np.ndarray,
    names: Sequence[str],
    joint_map: JointMap,
    units_to_metres: float | None = None,
) -> np.ndarray:
    """Source positions (T, J, 3) in file units -> canonical joints (T, 22, 3), metres, Y up.

    units_to_metres: metres per file unit; None takes the map's own ``units_to_metres``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (len(names), 3):
        raise MotionError(f"positions {positions.shape} do not match {len(names)} joint names")
    scale = joint_map.units_to_metres if units_to_metres is None else units_to_metres
    mixed = np.einsum("ij,tjd->tid", joint_map.weights(names), positions)  # (T, 22, 3)
    return mixed @ _UP_AXIS_TO_Y_UP[joint_map.up_axis].T * scale


MAX_RESAMPLED_FRAMES = 1_000_000
"""Most frames ``resample`` gives: 14 hours at 20 fps, 0.5 GiB of float64 (T, 22, 3) joints;
a BVH lasts at most ``engine.bvh.MAX_DURATION_S`` (3 h) anyway."""


def resample(joints: np.ndarray, src_fps: float, dst_fps: float = FPS) -> np.ndarray:
    """Linear interpolation in time (T, J, 3) -> (T', J, 3) over the clip's duration.

    Frame k of the result is at time k / dst_fps, for every such time within the source's
    (T - 1) / src_fps seconds (a last time up to 1% of a frame past the end holds the last
    frame); positions, so no rotation slerp is needed.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if not (0 < src_fps < np.inf and 0 < dst_fps < np.inf) or not len(joints):
        raise MotionError(f"cannot resample {len(joints)} frames from {src_fps} to {dst_fps} fps")
    duration = (len(joints) - 1) / src_fps
    # A hundredth of a frame of slack: files round 1/30 s to 0.0333333, which would otherwise
    # drop the last frame of a clip whose duration is a whole number of output frames.
    exact = duration * dst_fps + 1e-2
    if not exact < MAX_RESAMPLED_FRAMES:  # checked before anything of that size is allocated
        raise MotionError(
            f"resampling {len(joints)} frames at {src_fps:g} fps to {dst_fps:g} fps would give "
            f"{exact:.4g} frames, over the limit of {MAX_RESAMPLED_FRAMES:,}"
        )
    count = int(np.floor(exact)) + 1
    where = np.minimum(np.arange(count) * (src_fps / dst_fps), len(joints) - 1)  # source frames
    lo = np.floor(where).astype(int)
    hi = np.minimum(lo + 1, len(joints) - 1)
    frac = (where - lo)[:, None, None]
    return joints[lo] * (1.0 - frac) + joints[hi] * frac


@dataclass(frozen=True)
class CanonicalClip:
    """A BVH read for the engine: joints (T', 22, 3) metres, Y up, at ``fps``; the map used
    and the file's unit (``units.detected`` says whether it was told from the skeleton);
    ``up`` the axis the file's skeleton stands along ("Y" or "Z", found from its rest pose)."""

    joints: np.ndarray
    joint_map: JointMap
    units: FileUnits
    fps: float
    up: str = "Y"
    source_fps: float = FPS  # the file's own frame rate


HEAD, ANKLES = 15, (7, 8)


def up_turn(bvh: BVH, joint_map: JointMap, positions: np.ndarray) -> tuple[str, np.ndarray]:
    """The axis a file's skeleton stands along and the turn that stands it up along +Y.

    ``positions``: the clip's canonical joints (T, 22, 3) after the map's own axis change.
    Read first from the rest pose (the offsets alone: a standing pose in most mocap files,
    whatever the motion does, which may lie or crawl), then, where the rest pose stands along
    no clear axis (Bandai Namco's bones all lie along X at rest), from the motion's median
    pose. "Y" needs no turn; "Z" (Blender, 3ds Max exports) is turned to Y up; anything else
    (upside down, sideways) is a MotionError saying how to export it. Why: a Z-up file used
    to build silently into a body lying on the floor with its pelvis 3.5 m "up".
    """
    rest = np.zeros((len(bvh.names), 3))
    for j, parent in enumerate(bvh.parents):
        rest[j] = bvh.offsets[j] + (rest[parent] if parent >= 0 else 0.0)
    body = to_canonical(rest[None], bvh.names, joint_map, 1.0)[0]  # directions only
    return _standing_axis(body) or _standing_axis(np.median(positions, axis=0), final=True)


def _standing_axis(
    body: np.ndarray, final: bool = False
) -> tuple[str, np.ndarray] | None:
    """("Y" | "Z", turn) for one pose (22, 3) whose head is clearly above its ankles along
    +Y or +-Z; None (or, when ``final``, a MotionError) otherwise."""
    up = body[HEAD] - body[list(ANKLES)].mean(axis=0)
    size = float(np.linalg.norm(up))
    axis = int(np.argmax(np.abs(up)))
    if size > 0 and axis == 1 and up[1] > 0.8 * size:
        return "Y", np.eye(3)
    if size > 0 and axis == 2 and abs(up[2]) > 0.8 * size:
        sign = 1.0 if up[2] > 0 else -1.0  # (x, y, z) -> (x, +-z, -+y): the head to +Y
        return "Z", np.array([[1.0, 0.0, 0.0], [0.0, 0.0, sign], [0.0, -sign, 0.0]])
    if not final:
        return None
    looks = "upside down" if axis == 1 else f"along {'XYZ'[axis]}"
    raise MotionError(
        f"the skeleton stands {looks} (head minus ankles {np.round(up, 2).tolist()}): "
        "export the BVH with Y or Z up"
    )


def read_canonical(
    path: str | os.PathLike, map_name: str | None = None, fps: float = FPS, units: Units = "auto"
) -> CanonicalClip:
    """A BVH file -> canonical joints at ``fps`` (20), metres, Y up, with how it was read.

    map_name: a key of JOINT_MAPS, or None to detect the map from the joint names. units:
    "auto" (the default) tells metres, centimetres or millimetres from the rest skeleton's
    size; "m", "cm", "mm", "in" or a number of metres per file unit always win. Raises
    MotionError naming the file for an unknown map, a skeleton it does not fit, or a size
    "auto" cannot read as human.
    """
    if map_name is not None and map_name not in JOINT_MAPS:
        raise MotionError(f"unknown joint map '{map_name}'; known: {', '.join(JOINT_MAPS)}")
    bvh = read_bvh(path)
    try:
        joint_map = JOINT_MAPS[map_name] if map_name else detect_joint_map(bvh.names)
        file_units = resolve_units(bvh, units)
        joints = to_canonical(bvh.world_positions(), bvh.names, joint_map, file_units.to_metres)
        up, turn = up_turn(bvh, joint_map, joints)
        joints = joints @ turn.T
        if not np.isfinite(joints).all():  # bounded inputs make this unreachable; never silent
            raise MotionError("the joints are not finite numbers in metres")
        joints = resample(joints, bvh.fps, fps)
    except MotionError as exc:
        raise MotionError(f"{path}: {exc}") from exc
    return CanonicalClip(joints, joint_map, file_units, fps, up, bvh.fps)


def bvh_to_canonical(
    path: str | os.PathLike, map_name: str | None = None, fps: float = FPS, units: Units = "auto"
) -> np.ndarray:
    """A BVH file -> canonical joints (T', 22, 3) at ``fps`` (20), metres, Y up.

    The joints of ``read_canonical`` (see it for map_name and units).
    """
    return read_canonical(path, map_name, fps, units).joints
