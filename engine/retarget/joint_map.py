"""Joint maps from BVH skeletons to the canonical 22 joints, and resampling to 20 fps.

A JointMap says where each canonical (SMPL-order) joint sits on a source skeleton: one source
joint, or a weighted blend of several where the source has no joint at that place (the Bandai
Namco skeleton has one spine joint fewer than SMPL). Maps work on world positions, so the
source's rest pose and bone axes do not matter; only where its joints sit on the body does.

Maps come from three places: the hand-measured ones here (Bandai Namco, SMPL), the bone-map
presets of retargeting (``presets``: Mixamo, Rigify, Unreal, SMPL-X, Biped,
Character Creator), whose bone names are read as joint names, and JSON files a user writes
(``load_joint_map``; the same format the add-on saves bone maps in), passed by path or kept in
a folder (``user_map_folder``). Detection picks the most specific map whose joints a file has.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MotionError
from ..io.bvh import BVH, read_bvh
from ..io.bvh_units import FileUnits, Units, resolve_units
from ..motion.skeleton import FPS, JOINT_NAMES
from .presets import PRESETS, BoneMap, NameIndex

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

    def missing(self, names: Sequence[str]) -> list[str]:
        """The map's source joints that a file with joints ``names`` lacks."""
        index = NameIndex(names)
        return [n for n in self.source_names() if index.find(n) is None]

    def weights(self, names: Sequence[str]) -> np.ndarray:
        """(22, J) matrix taking source positions (J) to canonical ones; names are the file's.

        Names match as bone names do when retargeting (``presets.NameIndex``):
        exactly, then without case or namespace, then loosely (``UpLeg.L`` is ``LeftUpLeg``).
        """
        missing = self.missing(names)
        if missing:
            raise MotionError(
                f"joint map '{self.name}' needs joints missing here: {', '.join(missing)}"
            )
        index, column = NameIndex(names), {n: i for i, n in enumerate(names)}
        out = np.zeros((len(JOINT_NAMES), len(names)))
        for i, source in enumerate(self.joints):
            for name, weight in _blend(source):
                out[i, column[index.find(name)]] += weight
        return out

    def to_dict(self) -> dict:
        """The JSON form ``load_joint_map`` reads: blends as {joint name: weight}."""
        bones = {
            target: source if isinstance(source, str) else dict(source)
            for target, source in zip(JOINT_NAMES, self.joints, strict=True)
        }
        return {"name": self.name, "description": self.description, "bones": bones,
                "units_to_metres": self.units_to_metres, "up_axis": self.up_axis}  # fmt: skip


def _blend(source: Source) -> tuple[tuple[str, float], ...]:
    return ((source, 1.0),) if isinstance(source, str) else source


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

SPINE_CHAIN = ("pelvis", "spine1", "spine2", "spine3", "neck")
"""Where a bone map that skips a spine joint gets it from: between its mapped neighbours."""


def from_bone_map(
    bone_map: BoneMap,
    blends: Mapping[str, Sequence[tuple[str, float]]] | None = None,
    units_to_metres: float = 1.0,
    up_axis: str = "Y",
    description: str | None = None,
) -> JointMap:
    """A joint map that reads a bone map's bone names as BVH joint names.

    A bone's head sits at its canonical joint (what a BoneMap means), and a BVH joint is a
    bone head, so the names carry over unchanged. ``blends`` (canonical joint -> ((canonical
    joint, weight), ...)) moves a joint to a weighted blend of the map's bones at other
    joints, where the skeleton's joints sit elsewhere than SMPL's. Joints left out are
    completed as ``complete_sources`` says.
    """
    bones = dict(bone_map.bones)
    sources: dict[str, Source] = dict(bones)
    for joint, blend in (blends or {}).items():
        sources[joint] = tuple((bones[j], float(w)) for j, w in blend)
    text = bone_map.description if description is None else description
    joints = complete_sources(bone_map.name, sources)
    return JointMap(bone_map.name, text, joints, units_to_metres, up_axis)


def complete_sources(name: str, sources: Mapping[str, Source]) -> tuple[Source, ...]:
    """All 22 sources in canonical order, from a map that may skip spine joints.

    A spine joint left out (spine1-3: rigs have two to five spine bones) is put halfway
    between its nearest given neighbours on the pelvis-neck chain; any other joint left out
    is a MotionError naming it, because reading a BVH needs every canonical joint.
    """
    sources = dict(sources)
    for i, joint in enumerate(SPINE_CHAIN[1:-1], start=1):
        below = next((j for j in SPINE_CHAIN[i - 1 :: -1] if j in sources), None)
        above = next((j for j in SPINE_CHAIN[i + 1 :] if j in sources), None)
        if joint not in sources and below and above:
            mixed: dict[str, float] = {}
            for end in (below, above):
                for bone, weight in _blend(sources[end]):
                    mixed[bone] = mixed.get(bone, 0.0) + 0.5 * weight
            sources[joint] = tuple(mixed.items())
    missing = [j for j in JOINT_NAMES if j not in sources]
    if missing:
        raise MotionError(
            f"joint map '{name}' names no joint for {', '.join(missing)}: reading BVH needs "
            "all 22 (only spine1-3 may be left out, between mapped neighbours)"
        )
    return tuple(sources[j] for j in JOINT_NAMES)


CHARACTER_CREATOR_BLENDS = {
    "pelvis": (("pelvis", 0.2), ("spine1", 0.8)),
    "spine1": (("spine2", 0.7), ("spine3", 0.3)),
    "spine2": (("spine3", 0.9), ("neck", 0.1)),
    "spine3": (("spine3", 0.72), ("neck", 0.28)),
}
"""Character Creator's torso joints sit elsewhere than SMPL's. Measured on the CMU T-pose
frames (CC_Base_*), heights along the hip line -> neck path are: Hip 0.04, Waist 0.18,
Spine01 0.25, Spine02 0.52, clavicles 0.89, NeckTwist01 1; SMPL's are pelvis 0.15, spine1
0.33, spine2 0.56, spine3 0.65 (``BANDAI_NAMCO``'s description). Each blend is of two points
of one rigid bone (Hip-Waist, Spine01-Spine02, Spine02-neck), at SMPL's heights."""

INPUT_PRESETS: dict[str, dict] = {
    "mixamo": {"units_to_metres": 0.01},
    "rigify": {},
    "unreal": {"units_to_metres": 0.01},
    "smplx": {},
    "biped": {"units_to_metres": 0.0254},
    "character_creator": {"units_to_metres": 0.01, "blends": CHARACTER_CREATOR_BLENDS},
}
"""Retargeting presets that are also read as BVH joint maps (with the unit their files
usually come in, for ``to_canonical``). Not rigify_fk (control bones, not a skeleton
anything exports) nor bandai_namco (``BANDAI_NAMCO`` above is measured on its data)."""

JOINT_MAPS: dict[str, JointMap] = {
    m.name: m
    for m in (
        BANDAI_NAMCO,
        SMPL,
        *(from_bone_map(PRESETS[name], **extra) for name, extra in INPUT_PRESETS.items()),
    )
}


def detect_joint_map(names: Sequence[str], maps: Sequence[JointMap] | None = None) -> JointMap:
    """The map all of whose source joints are in ``names``, the most specific (most joints)
    first; among equally specific ones, the first of ``maps`` (default: ``JOINT_MAPS``).

    Raises MotionError naming the closest map and what it misses, in one or two lines.
    """
    maps = list(JOINT_MAPS.values()) if maps is None else list(maps)
    missing = {m.name: m.missing(names) for m in maps}
    fits = [m for m in maps if not missing[m.name]]
    if fits:
        return max(fits, key=lambda m: len(m.source_names()))  # the first of the largest

    def share(m: JointMap) -> tuple[float, int]:
        return len(missing[m.name]) / len(m.source_names()), -len(m.source_names())

    best = min(maps, key=share)
    lacks = missing[best.name]
    shown = ", ".join(lacks[:6]) + (f" and {len(lacks) - 6} more" if len(lacks) > 6 else "")
    skeleton = f"{len(names)} joints, first {names[0] if names else '-'}"
    if len(lacks) == len(best.source_names()):
        closest = f"no joint map knows any of its joint names ({skeleton})"
    else:
        closest = f"no joint map fits this skeleton ({skeleton}); closest '{best.name}'"
        closest += f" lacks {shown}"
    raise MotionError(
        f"{closest}. Write a JSON joint map for it (docs/dataset.md, 'Joint maps') and pass "
        "it with --map-file"
    )


USER_MAP_FOLDER_ENV = "KINETEXT_JOINT_MAPS"


def user_map_folder() -> Path:
    """Where a user's JSON joint maps live: ``$KINETEXT_JOINT_MAPS`` if set, else
    ``$XDG_CONFIG_HOME/kinetext/joint_maps`` (``~/.config/kinetext/joint_maps``)."""
    if os.environ.get(USER_MAP_FOLDER_ENV):
        return Path(os.environ[USER_MAP_FOLDER_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "kinetext" / "joint_maps"


def user_joint_maps(folder: str | os.PathLike | None = None) -> list[JointMap]:
    """Every ``*.json`` map in ``folder`` (default ``user_map_folder()``), sorted by file name;
    none when the folder does not exist. A broken file is a MotionError naming it."""
    folder = Path(folder) if folder is not None else user_map_folder()
    if not folder.is_dir():
        return []
    return [load_joint_map(path) for path in sorted(folder.glob("*.json"))]


_MAP_KEYS = {"name", "description", "root", "bones", "units_to_metres", "up_axis"}


def load_joint_map(path: str | os.PathLike) -> JointMap:
    """A joint map from JSON: ``{"name", "description", "bones": {joint: source}}`` with
    optional ``units_to_metres`` (default 1; ``--units auto`` measures each file anyway)
    and ``up_axis`` ("Y" or "Z"). A source is the file's joint name, or ``{name: weight}``
    for a blend (weights summing to 1). The add-on's saved bone maps (which also carry
    ``root``) read as they are. Spine joints may be left out (``complete_sources``).
    MotionError names the file and the problem.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise MotionError(f"{path}: cannot read the joint map ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MotionError(f"{path}: not a JSON joint map ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("bones"), dict):
        raise MotionError(f'{path}: a joint map needs "bones": {{joint: joint name in the file}}')
    unknown = sorted(set(data) - _MAP_KEYS) + sorted(set(data["bones"]) - set(JOINT_NAMES))
    if unknown:
        raise MotionError(
            f"{path}: unknown keys {', '.join(unknown)} (joints are {', '.join(JOINT_NAMES)})"
        )
    sources: dict[str, Source] = {}
    for joint, source in data["bones"].items():
        if isinstance(source, str) and source.strip():
            sources[joint] = source.strip()
        elif (
            isinstance(source, dict)
            and source
            and all(isinstance(k, str) and isinstance(w, int | float) for k, w in source.items())
        ):
            sources[joint] = tuple((k, float(w)) for k, w in source.items())
            if abs(sum(source.values()) - 1.0) > 1e-6:
                raise MotionError(f"{path}: the weights for {joint} do not sum to 1")
        else:
            raise MotionError(f'{path}: "{joint}" must be a joint name or {{name: weight}}')
    name = str(data.get("name") or Path(path).stem)
    try:
        return JointMap(
            name=name,
            description=str(data.get("description") or f"from {Path(path).name}"),
            joints=complete_sources(name, sources),
            units_to_metres=float(data.get("units_to_metres", 1.0)),
            up_axis=str(data.get("up_axis", "Y")),
        )
    except (ValueError, TypeError, MotionError) as exc:
        raise MotionError(f"{path}: {exc}") from exc


def available_maps(folder: str | os.PathLike | None = None) -> tuple[JointMap, ...]:
    """The maps a read may take: the user's (``user_joint_maps``) first, then the built-in
    ones; detection prefers the user's among equally specific maps."""
    return (*user_joint_maps(folder), *JOINT_MAPS.values())


def resolve_joint_map(
    wanted: str | JointMap | None, maps: Sequence[JointMap] | None = None
) -> JointMap | None:
    """A map by name among ``maps`` (default ``JOINT_MAPS``), from a ``.json`` file path, a
    JointMap as it is, or None (detect); MotionError lists the known names for an unknown
    one."""
    if wanted is None or isinstance(wanted, JointMap):
        return wanted
    if wanted.lower().endswith(".json"):
        return load_joint_map(wanted)
    known = {m.name: m for m in (JOINT_MAPS.values() if maps is None else maps)}
    if wanted not in known:
        raise MotionError(f"unknown joint map '{wanted}'; known: {', '.join(known)}")
    return known[wanted]


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
a BVH lasts at most ``engine.io.bvh.MAX_DURATION_S`` (3 h) anyway."""


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
    dropped_first_frame: bool = False  # frame 0 was an added pose (``added_first_frame``)


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


def _standing_axis(body: np.ndarray, final: bool = False) -> tuple[str, np.ndarray] | None:
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
    path: str | os.PathLike,
    map_name: str | JointMap | None = None,
    fps: float = FPS,
    units: Units = "auto",
    maps: Sequence[JointMap] | None = None,
    drop_added_first_frame: bool = False,
) -> CanonicalClip:
    """A BVH file -> canonical joints at ``fps`` (20), metres, Y up, with how it was read.

    map_name: a map's name among ``maps`` (default ``JOINT_MAPS``), a JointMap, or None to
    detect the map from the joint names among ``maps``. units: "auto" (the default) tells
    metres, centimetres or millimetres from the rest skeleton's size; "m", "cm", "mm", "in"
    or a number of metres per file unit always win. drop_added_first_frame: leave out a
    first frame that is no part of the motion (``added_first_frame``). Raises MotionError
    naming the file for an unknown map, a skeleton it does not fit, or a size "auto" cannot
    read as human.
    """
    chosen = resolve_joint_map(map_name, maps)
    bvh = read_bvh(path)
    try:
        joint_map = chosen or detect_joint_map(bvh.names, maps)
        file_units = resolve_units(bvh, units)
        positions = bvh.world_positions()
        dropped = drop_added_first_frame and added_first_frame(positions, file_units.to_metres)
        joints = to_canonical(positions[int(dropped) :], bvh.names, joint_map, file_units.to_metres)
        up, turn = up_turn(bvh, joint_map, joints)
        joints = joints @ turn.T
        if not np.isfinite(joints).all():  # bounded inputs make this unreachable; never silent
            raise MotionError("the joints are not finite numbers in metres")
        joints = resample(joints, bvh.fps, fps)
    except MotionError as exc:
        raise MotionError(f"{path}: {exc}") from exc
    return CanonicalClip(joints, joint_map, file_units, fps, up, bvh.fps, dropped)


ADDED_FRAME_JUMP_M = 0.25
"""Least jump (metres, the farthest-moving joint) from frame 0 to 1 that marks frame 0 as
added; with ``ADDED_FRAME_RATIO`` times the clip's median frame-to-frame jump."""
ADDED_FRAME_RATIO = 10.0


def added_first_frame(positions: np.ndarray, to_metres: float) -> bool:
    """Whether frame 0 of (T, J, 3) positions is a pose added before the motion (the T-pose
    many converters write first) rather than its start: some joint jumps from it to frame 1
    by at least ``ADDED_FRAME_JUMP_M`` and ``ADDED_FRAME_RATIO`` times the clip's median
    step. Why: such a frame makes a 2-3 m teleport in the clip's first 1/60 s, which a
    model would learn as motion. The CMU conversions on the Character Creator skeleton
    start this way."""
    if len(positions) < 3:
        return False
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=-1).max(axis=1) * to_metres
    return bool(steps[0] >= max(ADDED_FRAME_JUMP_M, ADDED_FRAME_RATIO * np.median(steps[1:])))


def bvh_to_canonical(
    path: str | os.PathLike, map_name: str | None = None, fps: float = FPS, units: Units = "auto"
) -> np.ndarray:
    """A BVH file -> canonical joints (T', 22, 3) at ``fps`` (20), metres, Y up.

    The joints of ``read_canonical`` (see it for map_name and units).
    """
    return read_canonical(path, map_name, fps, units).joints
