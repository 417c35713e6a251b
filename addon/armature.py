"""The canonical 22-bone armature: SMPL joint names, the canonical skeleton at rest.

It is the skeleton generated clips are previewed on and the one the BVH export writes: one
bone per joint, from the joint to its child joint (the pelvis and spine3 point up the
spine; the head, hands and toes end at the canonical BVH's end sites), no bone connected so
that a bake may place every head exactly on its joint. The rest pose stands on the floor
(Blender Z up, facing -Y) in scene units, so it matches a clip in metres whatever
``unit_settings.scale_length`` is.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..engine.io.bvh import CANONICAL_END_SITES
from ..engine.motion.rig_pose import canonical_rest_joints
from ..engine.motion.skeleton import JOINT_NAMES, PARENTS
from ..engine.retarget.rig import Y_UP_FROM_Z_UP

CANONICAL_PROPERTY = "kinetext_canonical"
"""Armature data property marking the canonical skeleton (bakes then match joints exactly)."""

_TAIL_CHILD = {0: 3, 9: 12}
"""Branching joints point at their spine child, as every rig draws them."""


def canonical_bones(scale: float = 1.0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, head, tail) per joint in JOINT_NAMES order, Blender Z up, ``scale`` units/metre."""
    joints = canonical_rest_joints()
    out = []
    for j, name in enumerate(JOINT_NAMES):
        kids = [c for c, p in enumerate(PARENTS) if p == j]
        if kids:
            tail = joints[_TAIL_CHILD.get(j, kids[0])]
        else:
            tail = joints[j] + np.asarray(CANONICAL_END_SITES[j])
        out.append((name, joints[j] @ Y_UP_FROM_Z_UP * scale, tail @ Y_UP_FROM_Z_UP * scale))
    return out


def units_per_metre(scene: bpy.types.Scene) -> float:
    """Scene units in one metre: 1 / ``unit_settings.scale_length`` (1 in a default scene)."""
    return 1.0 / scene.unit_settings.scale_length


def new_armature_object(context: bpy.types.Context, name: str) -> bpy.types.Object:
    """An empty armature object in the active collection, the only one selected and active
    (Object Mode first: a new object cannot be added from another object's Edit Mode)."""
    if context.mode != "OBJECT" and context.view_layer.objects.active is not None:
        bpy.ops.object.mode_set(mode="OBJECT")
    obj = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    (context.collection or context.scene.collection).objects.link(obj)
    for other in context.selected_objects:
        other.select_set(False)
    context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def create_canonical_armature(
    context: bpy.types.Context, name: str = "Kinetext Skeleton"
) -> bpy.types.Object:
    """Add the canonical armature to the active collection at the world origin, active.

    Pose bones rotate by quaternions. Leaves the new armature in Object Mode, selected and
    active (as Blender's own Add operators do).
    """
    obj = new_armature_object(context, name)
    data = obj.data
    data[CANONICAL_PROPERTY] = True
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = data.edit_bones
        made = {}
        for j, (bone_name, head, tail) in enumerate(
            canonical_bones(units_per_metre(context.scene))
        ):
            bone = edit_bones.new(bone_name)
            bone.head, bone.tail = head.tolist(), tail.tolist()
            bone.use_connect = False
            if PARENTS[j] >= 0:
                bone.parent = made[PARENTS[j]]
            made[j] = bone
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return obj


def is_canonical(obj: bpy.types.Object) -> bool:
    """Whether ``obj`` is a canonical armature made by ``create_canonical_armature``."""
    return obj.type == "ARMATURE" and bool(obj.data.get(CANONICAL_PROPERTY, False))
