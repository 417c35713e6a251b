"""Editing and saving bone maps in the panel: joint -> bone rows filled from a preset.

A rig that no preset fits is mapped once by hand: "Load" fills the 22 rows from the chosen
preset or saved map (or, with "Detect", from the closest preset), written with the rig's
own bone names where it has them and left empty where it does not; the user picks the
missing bones from the rig's list and saves the map under a name. Saved maps are JSON files
in the extension's user folder (``engine.retarget.rig.save_user_map``) and appear in the bone
map list of the Bake panel from then on.
"""

from __future__ import annotations

import bpy

from ..engine.errors import MotionError
from ..engine.motion.skeleton import JOINT_NAMES
from ..engine.retarget.presets import (
    BoneMap,
    NameIndex,
    find_bone_map,
    save_user_map,
    suggest_bone_map,
)
from .operators import target_armature
from .panel import KINETEXT_PT_bake
from .properties import AUTO_PRESET, settings
from .rig_check import blocked_bones


class KINETEXT_PG_bone_pair(bpy.types.PropertyGroup):
    joint: bpy.props.StringProperty(name="Joint", options={"HIDDEN"})
    bone: bpy.props.StringProperty(name="Bone", description="The rig's bone at this joint")


class KINETEXT_PG_bone_map(bpy.types.PropertyGroup):
    name: bpy.props.StringProperty(name="Map name", description="Saved as <name>.json")
    pairs: bpy.props.CollectionProperty(type=KINETEXT_PG_bone_pair)


def editor(context: bpy.types.Context) -> KINETEXT_PG_bone_map:
    return context.scene.kinetext_bone_map


def user_map_folder():
    """Where bake looks for saved maps."""
    from .paths import user_map_folder

    return user_map_folder()


def rows_for(bone_map: BoneMap, bone_names: list[str]) -> dict[str, str]:
    """Joint -> the rig's spelling of the map's bone, loosely matched ("" where it lacks it)."""
    index = NameIndex(bone_names)
    return {j: index.find(bone_map.bones.get(j, "")) or "" for j in JOINT_NAMES}


class MOTION_OT_bone_map_load(bpy.types.Operator):
    """Fill the rows from the chosen bone map (Detect: the closest preset) for this rig"""

    bl_idname = "motion.bone_map_load"
    bl_label = "Load"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            rig = target_armature(context, "")
            names = [b.name for b in rig.data.bones]
            preset = settings(context).preset
            if preset == AUTO_PRESET:
                source = suggest_bone_map(names, f"{rig.name} map", blocked_bones(rig))
            else:
                source = find_bone_map(preset, user_map_folder())
        except MotionError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        state = editor(context)
        state.pairs.clear()
        for joint, bone in rows_for(source, names).items():
            pair = state.pairs.add()
            pair.joint, pair.bone = joint, bone
        state.name = state.name or f"{rig.name} map"
        empty = [p.joint for p in state.pairs if not p.bone]
        if empty:
            self.report({"WARNING"}, f"pick bones for: {', '.join(empty)} (or leave them out)")
        return {"FINISHED"}


class MOTION_OT_bone_map_save(bpy.types.Operator):
    """Save the rows as a bone map and use it for baking"""

    bl_idname = "motion.bone_map_save"
    bl_label = "Save Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        state = editor(context)
        bones = {p.joint: p.bone.strip() for p in state.pairs if p.bone.strip()}
        try:
            if not state.pairs:
                raise MotionError("no rows to save: press Load first")
            path = save_user_map(BoneMap(state.name.strip(), bones), user_map_folder())
        except MotionError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings(context).preset = state.name.strip()
        self.report({"INFO"}, f"Saved bone map '{state.name.strip()}' to {path}")
        return {"FINISHED"}


class KINETEXT_PT_bone_map(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = KINETEXT_PT_bake.bl_category
    bl_parent_id = "KINETEXT_PT_bake"
    bl_label = "Edit Bone Map"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        state = editor(context)
        rig = settings(context).target or context.active_object
        rig = rig if rig is not None and rig.type == "ARMATURE" else None
        row = layout.row(align=True)
        row.prop(state, "name", text="")
        row.operator(MOTION_OT_bone_map_load.bl_idname, icon="IMPORT")
        if not state.pairs:
            layout.label(text="Load fills the rows from the bone map above", icon="INFO")
            return
        column = layout.column(align=True)
        for pair in state.pairs:
            split = column.split(factor=0.4, align=True)
            split.label(text=pair.joint)
            if rig is not None:
                split.prop_search(pair, "bone", rig.data, "bones", text="")
            else:
                split.prop(pair, "bone", text="")
        layout.operator(MOTION_OT_bone_map_save.bl_idname, icon="FILE_TICK")


classes = (
    KINETEXT_PG_bone_pair,
    KINETEXT_PG_bone_map,
    MOTION_OT_bone_map_load,
    MOTION_OT_bone_map_save,
    KINETEXT_PT_bone_map,
)


register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    register_classes()
    bpy.types.Scene.kinetext_bone_map = bpy.props.PointerProperty(type=KINETEXT_PG_bone_map)


def unregister() -> None:
    del bpy.types.Scene.kinetext_bone_map
    unregister_classes()
