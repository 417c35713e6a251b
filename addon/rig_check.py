"""What a rig will do with a bake's keys, said before baking: the bone map it gets, and the
bones whose keys would not show because constraints or drivers pose them.

A control rig (Rigify, most studio rigs) drives its deform bones by constraints from
hidden mechanism and control bones: keys on a deform bone are overridden on every frame,
so such a bake would "succeed" and show nothing. Bones are blocked when an active
constraint other than a limit sets their rotation or location, when an IK chain runs
through them, or when a driver writes those channels. Detection then prefers presets
whose bones are free (Rigify's FK controls over its DEF bones), and a bake onto blocked
bones is refused with their names. Light enough to run in the panel's ``draw``.
"""

from __future__ import annotations

import re

import bpy

from ..engine.errors import MotionError
from ..engine.retarget.presets import (
    BoneMap,
    PresetFit,
    detect_preset,
    find_bone_map,
    rank_presets,
    resolve_bones,
    resolve_root,
)
from .properties import preset_label as _label

_POSE_KEPT = {"LIMIT_ROTATION", "LIMIT_LOCATION", "LIMIT_SCALE", "MAINTAIN_VOLUME", "COPY_SCALE"}
"""Constraint types that leave a keyed rotation and location visible (limits, scale)."""
_IK_TYPES = {"IK", "SPLINE_IK"}
_DRIVEN = re.compile(r'^pose\.bones\["((?:[^"\\]|\\.)*)"\]\.(location|rotation_\w+)$')
SHOWN = 6  # blocked bones named in a message; the rest are counted


def blocked_bones(armature: bpy.types.Object) -> dict[str, str]:
    """Bone name -> why keys on its rotation or location would not show (empty: none)."""
    why: dict[str, str] = {}
    if armature.pose is None:  # a new armature object not evaluated yet: no constraints
        return why
    bones = armature.pose.bones
    for pose_bone in bones:
        for con in pose_bone.constraints:
            if con.mute or con.influence <= 0.0 or con.type in _POSE_KEPT:
                continue
            target = getattr(con, "subtarget", "") or ""
            reason = f"{con.name} constraint" + (f" from {target}" if target else "")
            why.setdefault(pose_bone.name, reason)
            if con.type in _IK_TYPES:  # the chain above the IK bone is posed by it too
                count = getattr(con, "chain_count", 0)
                parent, depth = pose_bone.parent, 1
                while parent is not None and (count == 0 or depth < count):
                    why.setdefault(parent.name, f"IK chain of {pose_bone.name}")
                    parent, depth = parent.parent, depth + 1
    anim = armature.animation_data
    for fcurve in anim.drivers if anim is not None else ():
        match = _DRIVEN.match(fcurve.data_path)
        if match and not fcurve.mute:
            name = match.group(1).replace('\\"', '"').replace("\\\\", "\\")
            if name in bones:
                why.setdefault(name, f"driver on its {match.group(2).replace('_', ' ')}")
    return why


def map_for(armature: bpy.types.Object, preset: str | BoneMap | None, folder) -> BoneMap:
    """The bone map a bake uses: ``preset`` (a name, looked up in presets and ``folder``),
    or for None/"AUTO" the detected preset, preferring one whose bones can take keys."""
    if isinstance(preset, BoneMap):
        return preset
    names = [b.name for b in armature.data.bones]
    if not preset or preset.upper() == "AUTO":
        return detect_preset(names, blocked_bones(armature))
    return find_bone_map(preset, folder)


def check_keys_show(armature: bpy.types.Object, bone_map: BoneMap, root_motion: str) -> None:
    """MotionError naming the bones the bake would key whose keys would not show."""
    names = [b.name for b in armature.data.bones]
    keyed = list(resolve_bones(bone_map, names).values())
    root = resolve_root(bone_map, names) if root_motion == "root_bone" else None
    blocked = blocked_bones(armature)
    stuck = [b for b in keyed + ([root] if root else []) if b in blocked]
    if not stuck:
        return
    listed = ", ".join(f"{b} ({blocked[b]})" for b in stuck[:SHOWN])
    more = f" and {len(stuck) - SHOWN} more" if len(stuck) > SHOWN else ""
    raise MotionError(
        f"{len(stuck)} bone(s) of the '{bone_map.name}' map are posed by constraints or "
        f"drivers, so keys on them would not show: {listed}{more}. {_advice(names, blocked)}"
    )


def ik_limbs(armature: bpy.types.Object) -> list[str]:
    """Bones carrying a Rigify "IK_FK" switch left towards IK (below 1): on those limbs the
    IK chain, not the FK controls, poses the deform bones."""
    if armature.pose is None:
        return []
    return [pb.name for pb in armature.pose.bones
            if "IK_FK" in pb.keys() and float(pb["IK_FK"]) < 1.0]  # fmt: skip


def _advice(names: list[str], blocked: dict[str, str]) -> str:
    fits = {f.preset.name: f for f in rank_presets(names, blocked)}
    fk = fits["rigify_fk"]
    if fk.complete and not fk.blocked:
        return (
            "This is a Rigify rig: bake onto its FK controls with the bone map "
            f"'{_label('rigify_fk')}' (or Detect), and set the limbs' IK-FK switches to FK."
        )
    return (
        "Bake onto the rig's control bones with a bone map of your own (Edit Bone Map), "
        "or mute those constraints."
    )


def summary(armature: bpy.types.Object, preset: str, folder) -> list[tuple[str, str]]:
    """Lines (text, level "INFO" | "WARNING" | "ERROR") for the Bake panel: which map the
    bake will use, how its bones were found, and what would not show."""
    names = [b.name for b in armature.data.bones]
    blocked = blocked_bones(armature)
    lines: list[tuple[str, str]] = []
    try:
        if preset == "AUTO":
            fits = rank_presets(names, blocked)
            fit: PresetFit = fits[0]
            if not fit.complete:
                closest = _label(fit.preset.name)
                text = f"No preset fits: the closest, {closest}, misses {len(fit.missing)} bone(s)"
                return [(text + ". Map them in Edit Bone Map", "ERROR")]
            bone_map = fit.as_map()
            lines.append((f"Detected: {_label(fit.preset.name)}, {len(fit.found)} joints", "INFO"))
            for other in fits:
                if other.complete and other.blocked:
                    lines.append((f"Not {_label(other.preset.name)}: its bones are posed by "
                                  "constraints, keys there would not show", "INFO"))  # fmt: skip
                    break
            if fit.loose:
                joint = fit.loose[0]
                lines.append((f"{len(fit.loose)} found by loose names, e.g. {joint} -> "
                              f"{fit.found[joint]} (check in Edit Bone Map)", "INFO"))  # fmt: skip
        else:
            bone_map = find_bone_map(preset, folder)
        check_keys_show(armature, bone_map, "hips")
    except MotionError as error:
        lines.append((str(error), "ERROR" if not lines else "WARNING"))
    return lines
