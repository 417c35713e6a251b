"""Bone maps: which bone of a target rig sits at each canonical joint, presets and detection.

A BoneMap names, for canonical (SMPL-order) joints, the target bone whose *head* sits at that
joint: Mixamo's ``LeftUpLeg`` starts at the left hip, so ``left_hip -> LeftUpLeg``. A map
may leave joints out where the rig has no bone there (the Bandai Namco skeleton has one
spine bone fewer); the pelvis is always needed because everything hangs from it. Names
compare without case and without a namespace prefix, so ``mixamorig:Hips``,
``mixamorig1:Hips`` and ``Hips`` all match the Mixamo preset. User maps are saved as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import MotionError
from .skeleton import JOINT_NAMES

REQUIRED_JOINTS = ("pelvis",)
"""Joints every map must name: the root that carries the motion and every other bone."""


@dataclass(frozen=True)
class BoneMap:
    """Canonical joint name -> target bone name, for one kind of rig.

    root: an optional bone above the hips that carries the floor-plane motion in the
    "root_bone" root motion mode (Unreal's ``root``); None = the hips bone's top ancestor.
    """

    name: str
    bones: Mapping[str, str]
    description: str = ""
    root: str | None = None

    def __post_init__(self) -> None:
        unknown = [j for j in self.bones if j not in JOINT_NAMES]
        if unknown:
            raise MotionError(
                f"bone map '{self.name}' names unknown joints: {', '.join(unknown)} "
                f"(joints are: {', '.join(JOINT_NAMES)})"
            )
        missing = [j for j in REQUIRED_JOINTS if j not in self.bones]
        if missing:
            raise MotionError(f"bone map '{self.name}' must map {', '.join(missing)}")
        empty = [j for j, b in self.bones.items() if not isinstance(b, str) or not b.strip()]
        if empty:
            raise MotionError(f"bone map '{self.name}' has no bone name for {', '.join(empty)}")
        seen: dict[str, str] = {}
        for joint, bone in self.bones.items():
            if bone_key(bone) in seen:
                raise MotionError(
                    f"bone map '{self.name}' gives bone '{bone}' to both "
                    f"{seen[bone_key(bone)]} and {joint}"
                )
            seen[bone_key(bone)] = joint
        # Canonical order, whatever order the caller gave.
        ordered = {j: self.bones[j] for j in JOINT_NAMES if j in self.bones}
        object.__setattr__(self, "bones", ordered)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "root": self.root,
            "bones": dict(self.bones),
        }


def bone_key(name: str) -> str:
    """How names compare: no case, no namespace prefix ("mixamorig:Hips" -> "hips")."""
    return name.rsplit(":", 1)[-1].strip().lower()


def resolve_bones(bone_map: BoneMap, bone_names: Iterable[str]) -> dict[str, str]:
    """Canonical joint -> the rig's own bone name, for every joint the map names.

    An exact name wins over a case/namespace-insensitive match. Raises MotionError listing
    every mapped bone the rig lacks.
    """
    names = list(bone_names)
    exact = set(names)
    loose: dict[str, str] = {}
    for n in names:
        loose.setdefault(bone_key(n), n)
    out, missing = {}, []
    for joint, bone in bone_map.bones.items():
        found = bone if bone in exact else loose.get(bone_key(bone))
        if found is None:
            missing.append(f"{bone} ({joint})")
        else:
            out[joint] = found
    if missing:
        raise MotionError(
            f"the rig lacks {len(missing)} bone(s) of the '{bone_map.name}' map: "
            + ", ".join(missing)
        )
    return out


def resolve_root(bone_map: BoneMap, bone_names: Iterable[str]) -> str | None:
    """The rig's name for the map's root bone, or None when the map has none or it is absent."""
    if bone_map.root is None:
        return None
    wanted = bone_key(bone_map.root)
    return next((n for n in bone_names if bone_key(n) == wanted), None)


# ----------------------------------------------------------------------------- presets


def _sided(table: Mapping[str, str], left: str, right: str) -> dict[str, str]:
    """Expand {"hip": "Up{}Leg"}-style entries into left_/right_ joints."""
    out = {}
    for joint, pattern in table.items():
        out[f"left_{joint}"] = pattern.format(left)
        out[f"right_{joint}"] = pattern.format(right)
    return out


_LIMBS = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")

MIXAMO = BoneMap(
    name="mixamo",
    description="Mixamo characters (mixamorig:Hips ..., with or without the prefix).",
    bones={
        "pelvis": "Hips",
        "spine1": "Spine",
        "spine2": "Spine1",
        "spine3": "Spine2",
        "neck": "Neck",
        "head": "Head",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("{}UpLeg", "{}Leg", "{}Foot", "{}ToeBase")
                    + ("{}Shoulder", "{}Arm", "{}ForeArm", "{}Hand"),
                    strict=True,
                )
            ),
            "Left",
            "Right",
        ),
    },
)

RIGIFY = BoneMap(
    name="rigify",
    description=(
        "Rigify deform bones (DEF-...). The generated rig drives them by constraints: bake "
        "onto a deform-only copy (a game rig) or mute those constraints."
    ),
    bones={
        "pelvis": "DEF-spine",
        "spine1": "DEF-spine.001",
        "spine2": "DEF-spine.002",
        "spine3": "DEF-spine.003",
        "neck": "DEF-spine.004",
        "head": "DEF-spine.006",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("DEF-thigh.{}", "DEF-shin.{}", "DEF-foot.{}", "DEF-toe.{}")
                    + ("DEF-shoulder.{}", "DEF-upper_arm.{}", "DEF-forearm.{}", "DEF-hand.{}"),
                    strict=True,
                )
            ),
            "L",
            "R",
        ),
    },
)

UNREAL = BoneMap(
    name="unreal",
    description="Unreal Engine mannequin (UE4 and UE5 names; root motion on 'root').",
    root="root",
    bones={
        "pelvis": "pelvis",
        "spine1": "spine_01",
        "spine2": "spine_02",
        "spine3": "spine_03",
        "neck": "neck_01",
        "head": "head",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("thigh_{}", "calf_{}", "foot_{}", "ball_{}")
                    + ("clavicle_{}", "upperarm_{}", "lowerarm_{}", "hand_{}"),
                    strict=True,
                )
            ),
            "l",
            "r",
        ),
    },
)

SMPLX = BoneMap(
    name="smplx",
    description="SMPL / SMPL-X joint names, as on the canonical armature this add-on creates.",
    root="root",
    bones={j: j for j in JOINT_NAMES},
)

BANDAI_NAMCO = BoneMap(
    name="bandai_namco",
    description=(
        "Bandai Namco Research Motion BVH naming (Hips, Spine, Chest, UpperLeg_L ...); it "
        "has no bone at SMPL's spine2, so Chest follows spine3. Root motion on joint_Root."
    ),
    root="joint_Root",
    bones={
        "pelvis": "Hips",
        "spine1": "Spine",
        "spine3": "Chest",
        "neck": "Neck",
        "head": "Head",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("UpperLeg_{}", "LowerLeg_{}", "Foot_{}", "Toes_{}")
                    + ("Shoulder_{}", "UpperArm_{}", "LowerArm_{}", "Hand_{}"),
                    strict=True,
                )
            ),
            "L",
            "R",
        ),
    },
)

PRESETS: dict[str, BoneMap] = {m.name: m for m in (MIXAMO, RIGIFY, UNREAL, SMPLX, BANDAI_NAMCO)}


def detect_preset(bone_names: Iterable[str]) -> BoneMap:
    """The preset whose bones the rig has, the most of them when several fit.

    Raises MotionError when none fits completely, naming the closest preset and the bones
    it misses, so the user knows whether to rename bones or edit a map.
    """
    have = {bone_key(n) for n in bone_names}
    scored = []
    for preset in PRESETS.values():
        wanted = list(preset.bones.values())
        missing = [b for b in wanted if bone_key(b) not in have]
        scored.append((len(missing) / len(wanted), -len(wanted), preset, missing))
    scored.sort(key=lambda s: s[:2])
    _, _, best, missing = scored[0]
    if not missing:
        return best
    raise MotionError(
        f"no bone map preset fits this rig; the closest, '{best.name}', misses "
        f"{len(missing)} bone(s): {', '.join(missing)}"
    )


def suggest_bone_map(bone_names: Iterable[str], name: str) -> BoneMap:
    """A starting point for a user's own map: the closest preset, keeping the bones found.

    Joints whose preset bone the rig lacks are left out for the user to fill in; names are
    the rig's own spelling. Raises MotionError when even the pelvis is not found.
    """
    names = list(bone_names)
    loose = {bone_key(n): n for n in names}
    best = max(
        PRESETS.values(),
        key=lambda m: sum(bone_key(b) in loose for b in m.bones.values()) / len(m.bones),
    )
    found = {j: loose[bone_key(b)] for j, b in best.bones.items() if bone_key(b) in loose}
    if "pelvis" not in found:
        raise MotionError(
            f"no preset finds this rig's pelvis (the closest is '{best.name}', which calls it "
            f"'{best.bones['pelvis']}'): map the bones by hand"
        )
    root = resolve_root(best, names)
    return BoneMap(name, found, description=f"edited from the '{best.name}' preset", root=root)


# ----------------------------------------------------------------------------- user maps


def save_bone_map(bone_map: BoneMap, path: str | os.PathLike) -> None:
    """Write a map as JSON ({"name", "description", "root", "bones": {joint: bone}})."""
    Path(path).write_text(json.dumps(bone_map.to_dict(), indent=2) + "\n", encoding="utf-8")


def user_map_names(folder: str | os.PathLike) -> list[str]:
    """Names of the maps saved in ``folder`` by ``save_user_map`` (none if it is absent)."""
    folder = Path(folder)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def save_user_map(bone_map: BoneMap, folder: str | os.PathLike) -> Path:
    """Save a map in ``folder`` as ``<name>.json`` so ``find_bone_map`` finds it by name."""
    bad = set('/\\:*?"<>|') & set(bone_map.name)
    if not bone_map.name.strip() or bad or bone_map.name.startswith("."):
        raise MotionError(f"bone map name {bone_map.name!r} cannot be a file name")
    if bone_map.name in PRESETS:
        raise MotionError(f"'{bone_map.name}' is a preset's name: choose another")
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{bone_map.name}.json"
    save_bone_map(bone_map, path)
    return path


def find_bone_map(name: str, folder: str | os.PathLike | None = None) -> BoneMap:
    """A preset by name, else a map saved in ``folder``; MotionError lists what there is."""
    if name in PRESETS:
        return PRESETS[name]
    saved = user_map_names(folder) if folder is not None else []
    if name in saved:
        return load_bone_map(Path(folder) / f"{name}.json")
    known = ", ".join(list(PRESETS) + saved)
    raise MotionError(f"unknown bone map '{name}'; known: {known}")


def load_bone_map(path: str | os.PathLike) -> BoneMap:
    """Read a map saved by ``save_bone_map``; MotionError names the file and the problem."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MotionError(f"{path}: cannot read the bone map ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise MotionError(f"{path}: not a JSON bone map (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("bones"), dict):
        raise MotionError(f"{path}: a bone map needs a 'bones' object of joint -> bone name")
    unknown = sorted(set(data) - {"name", "description", "root", "bones"})
    if unknown:
        raise MotionError(f"{path}: unknown keys in the bone map: {', '.join(unknown)}")
    root = data.get("root")
    if root is not None and not isinstance(root, str):
        raise MotionError(f"{path}: 'root' must be a bone name or null")
    try:
        return BoneMap(
            name=str(data.get("name") or Path(path).stem),
            description=str(data.get("description") or ""),
            root=root,
            bones=data["bones"],
        )
    except MotionError as exc:
        raise MotionError(f"{path}: {exc}") from exc
