"""Bone maps: which bone of a target rig sits at each canonical joint, presets and detection.

A BoneMap names, for canonical (SMPL-order) joints, the target bone whose *head* sits at that
joint: Mixamo's ``LeftUpLeg`` starts at the left hip, so ``left_hip -> LeftUpLeg``. A map
may leave joints out where the rig has no bone there (the Bandai Namco skeleton has one
spine bone fewer); the pelvis is always needed because everything hangs from it. Names
compare exactly first, then without case and namespace (``mixamorig1:Hips`` is ``Hips``),
then loosely (``fuzzy_key``): without a rig prefix (``mixamorig_``, ``Bip01``), case,
separators or leading zeros, with the side written any common way (``LeftUpLeg``,
``UpLeg.L``, ``upleg_l``, ``L UpLeg``). User maps are saved as JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import MotionError
from ..motion.skeleton import JOINT_NAMES

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


_RIG_PREFIX = re.compile(r"^(mixamorig\d*|bip\d+)(?=[\s_.\-]|[A-Z]|$)", re.IGNORECASE)
_SIDES = {"l": "l", "left": "l", "r": "r", "right": "r"}
_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def fuzzy_key(name: str) -> str:
    """How names compare loosely: "side:core", e.g. "l:upleg" for ``mixamorig1:LeftUpLeg``,
    ``UpLeg.L``, ``upleg_l``, ``L_UpLeg`` or ``Bip01 L UpLeg``; "" for a prefix alone.

    The namespace (``x:``, ``x|``) and a rig prefix (mixamorig, Bip01) go; the rest splits
    into words at separators, case changes and digits; a first or last word l/left/r/right
    is the side; numbers lose leading zeros (``spine_01`` is ``Spine1``).
    """
    base = _RIG_PREFIX.sub("", re.split(r"[:|]", name)[-1].strip())
    words = [w.lower() for w in _TOKEN.findall(base)]
    words = [str(int(w)) if w.isdigit() else w for w in words]
    side = ""
    for at in (0, -1):
        if len(words) > 1 and words[at] in _SIDES:
            side = _SIDES[words.pop(at)]
            break
    core = "".join(words)
    return f"{side}:{core}" if core else ""


class NameIndex:
    """A rig's bone names, found by exact name, then ``bone_key``, then ``fuzzy_key``."""

    def __init__(self, bone_names: Iterable[str]):
        self.names = list(bone_names)
        self._exact = set(self.names)
        self._loose: dict[str, str] = {}
        self._fuzzy: dict[str, str] = {}
        for n in self.names:
            self._loose.setdefault(bone_key(n), n)
            if fuzzy_key(n):
                self._fuzzy.setdefault(fuzzy_key(n), n)

    def find(self, wanted: str) -> str | None:
        """The rig's bone for a map's bone name ``wanted``, or None."""
        if wanted in self._exact:
            return wanted
        return self._loose.get(bone_key(wanted)) or self._fuzzy.get(fuzzy_key(wanted) or "-")


def resolve_bones(bone_map: BoneMap, bone_names: Iterable[str]) -> dict[str, str]:
    """Canonical joint -> the rig's own bone name, for every joint the map names.

    An exact name wins over a case/namespace-insensitive match, which wins over a loose
    one (``fuzzy_key``). Raises MotionError listing every mapped bone the rig lacks.
    """
    index = NameIndex(bone_names)
    out, missing = {}, []
    for joint, bone in bone_map.bones.items():
        found = index.find(bone)
        if found is None or found in out.values():
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
    return NameIndex(bone_names).find(bone_map.root)


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

RIGIFY_FK = BoneMap(
    name="rigify_fk",
    description=(
        "Rigify's FK controls (torso, spine_fk.002, thigh_fk.L ...): keys you can edit, which "
        "the rig's constraints carry to its deform bones. Set the limbs' IK-FK switches to FK."
    ),
    root="root",
    bones={
        "pelvis": "torso",
        "spine2": "spine_fk.002",
        "spine3": "spine_fk.003",
        "neck": "neck",
        "head": "head",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("thigh_fk.{}", "shin_fk.{}", "foot_fk.{}", "toe_fk.{}")
                    + ("shoulder.{}", "upper_arm_fk.{}", "forearm_fk.{}", "hand_fk.{}"),
                    strict=True,
                )
            ),
            "L",
            "R",
        ),
    },
)

BIPED = BoneMap(
    name="biped",
    description="3ds Max Biped naming (Bip01 Pelvis, Bip01 L Thigh ...; Bip001 too).",
    root="Bip01",
    bones={
        "pelvis": "Bip01 Pelvis",
        "spine1": "Bip01 Spine",
        "spine2": "Bip01 Spine1",
        "spine3": "Bip01 Spine2",
        "neck": "Bip01 Neck",
        "head": "Bip01 Head",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("Bip01 {} Thigh", "Bip01 {} Calf", "Bip01 {} Foot", "Bip01 {} Toe0")
                    + ("Bip01 {} Clavicle", "Bip01 {} UpperArm", "Bip01 {} Forearm")
                    + ("Bip01 {} Hand",),
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

CHARACTER_CREATOR = BoneMap(
    name="character_creator",
    description=(
        "Reallusion Character Creator 3/4 and iClone (CC_Base_Hip, CC_Base_Waist, "
        "CC_Base_L_Thigh ...; centimetres in BVH and FBX). CC_Base_Hip carries the body (the "
        "thighs hang from its child CC_Base_Pelvis, which is left as it is); the twist and "
        "share bones, fingers and face are not keyed."
    ),
    bones={
        "pelvis": "CC_Base_Hip",
        "spine1": "CC_Base_Waist",
        "spine2": "CC_Base_Spine01",
        "spine3": "CC_Base_Spine02",
        "neck": "CC_Base_NeckTwist01",
        "head": "CC_Base_Head",
        **_sided(
            dict(
                zip(
                    _LIMBS,
                    ("CC_Base_{}_Thigh", "CC_Base_{}_Calf", "CC_Base_{}_Foot")
                    + ("CC_Base_{}_ToeBase", "CC_Base_{}_Clavicle", "CC_Base_{}_Upperarm")
                    + ("CC_Base_{}_Forearm", "CC_Base_{}_Hand"),
                    strict=True,
                )
            ),
            "L",
            "R",
        ),
    },
)

PRESETS: dict[str, BoneMap] = {
    m.name: m
    for m in (MIXAMO, RIGIFY, RIGIFY_FK, UNREAL, SMPLX, BANDAI_NAMCO, BIPED, CHARACTER_CREATOR)
}


@dataclass(frozen=True)
class PresetFit:
    """How a preset fits a rig: found (joint -> the rig's bone), missing (the preset's bone
    names the rig lacks), loose (joints found only by ``fuzzy_key``), blocked (found bones
    that cannot take keys, e.g. driven by constraints)."""

    preset: BoneMap
    found: dict[str, str]
    missing: list[str]
    loose: list[str]
    blocked: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing

    def as_map(self, name: str | None = None) -> BoneMap:
        """The preset in the rig's own spelling (what ``detect_preset`` hands to a bake)."""
        root = self.preset.root
        return BoneMap(name or self.preset.name, self.found, self.preset.description, root)


def rank_presets(bone_names: Iterable[str], blocked: Collection[str] = ()) -> list[PresetFit]:
    """Every preset's fit to the rig, best first: complete fits with no blocked bone, then
    complete ones, then by the share of bones found (more bones first on ties)."""
    names = list(bone_names)
    index = NameIndex(names)
    fits = []
    for preset in PRESETS.values():
        found, missing, loose = {}, [], []
        for joint, bone in preset.bones.items():
            hit = index.find(bone)
            if hit is None or hit in found.values():
                missing.append(bone)
                continue
            found[joint] = hit
            if hit != bone and bone_key(hit) != bone_key(bone):
                loose.append(joint)
        stuck = [b for b in found.values() if b in blocked]
        fits.append(PresetFit(preset, found, missing, loose, stuck))

    def order(fit: PresetFit) -> tuple:
        share = len(fit.missing) / len(fit.preset.bones)
        return (share > 0, bool(fit.blocked), share, len(fit.loose), -len(fit.preset.bones))

    return sorted(fits, key=order)


def detect_preset(bone_names: Iterable[str], blocked: Collection[str] = ()) -> BoneMap:
    """The preset whose bones the rig has (names matched loosely), in the rig's spelling.

    Presets whose bones are all free of ``blocked`` (bones whose keys would not show) win
    over those that are not, then the most bones. Raises MotionError when none fits
    completely, naming the closest preset and the bones it misses, so the user knows
    whether to rename bones or edit a map.
    """
    best = rank_presets(bone_names, blocked)[0]
    if best.complete:
        return best.as_map()
    raise MotionError(
        f"no bone map preset fits this rig; the closest, '{best.preset.name}', misses "
        f"{len(best.missing)} bone(s): {', '.join(best.missing)}"
    )


def suggest_bone_map(
    bone_names: Iterable[str], name: str, blocked: Collection[str] = ()
) -> BoneMap:
    """A starting point for a user's own map: the closest preset, keeping the bones found.

    Joints whose preset bone the rig lacks are left out for the user to fill in; names are
    the rig's own spelling; among equally close presets, one free of ``blocked`` bones.
    Raises MotionError when even the pelvis is not found.
    """
    names = list(bone_names)
    fits = rank_presets(names, blocked)
    best = min(fits, key=lambda f: len(f.missing) / len(f.preset.bones))
    if "pelvis" not in best.found:
        raise MotionError(
            f"no preset finds this rig's pelvis (the closest is '{best.preset.name}', which "
            f"calls it '{best.preset.bones['pelvis']}'): map the bones by hand"
        )
    root = resolve_root(best.preset, names)
    return BoneMap(
        name, best.found, description=f"edited from the '{best.preset.name}' preset", root=root
    )


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
