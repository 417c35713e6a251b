"""The sidebar tab "Kinetext" in the 3D viewport: Generate, Variations, Bake to Rig.

Drawing reads settings and the run state only; it never imports torch (``deps.missing``
only looks at the import path), so the panel still tells the user what is missing and how
to fix it when the heavy packages are absent.
"""

from __future__ import annotations

import textwrap

import bpy

from . import deps
from .operators import (
    MOTION_OT_bake,
    MOTION_OT_cancel_generation,
    MOTION_OT_clear_variations,
    MOTION_OT_edit_variation,
    MOTION_OT_export_bvh,
    MOTION_OT_generate,
    MOTION_OT_preview,
    MOTION_OT_randomize_seed,
)
from .preferences import ADDON_ID
from .properties import runtime, settings

CATEGORY = "Kinetext"
STATUS_ICONS = {"INFO": "INFO", "WARNING": "ERROR", "ERROR": "CANCEL"}


def draw_wrapped(
    layout: bpy.types.UILayout, text: str, icon: str = "NONE", alert: bool = False, width=44
) -> None:
    """A long message as several labels (Blender's labels do not wrap)."""
    column = layout.column(align=True)
    column.alert = alert
    for i, line in enumerate(textwrap.wrap(text, width) or [""]):
        column.label(text=line, icon=icon if i == 0 else "BLANK1")


def _chars_per_line(context: bpy.types.Context) -> int:
    region = getattr(context, "region", None)
    width = getattr(region, "width", 0) or 300
    return max(20, int(width / 7))


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class KINETEXT_PT_generate(_SidebarPanel, bpy.types.Panel):
    bl_label = "Generate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        panel, state = settings(context), runtime(context)
        width = _chars_per_line(context)
        absent = deps.missing()
        if absent:
            box = layout.box()
            names = ", ".join(r.package for r in absent)
            draw_wrapped(box, f"Missing Python packages: {names}", "ERROR", True, width)
            fix = (
                "Install them from the add-on's preferences (one button), or point the "
                "preferences at an existing site-packages folder."
            )
            draw_wrapped(box, fix, width=width)
            box.operator("preferences.addon_show", text="Open Preferences").module = ADDON_ID
        layout.prop(panel, "prompt", text="", icon="TEXT")
        column = layout.column(align=True)
        column.prop(panel, "seconds")
        column.prop(panel, "variations")
        row = column.row(align=True)
        row.prop(panel, "seed")
        row.operator(MOTION_OT_randomize_seed.bl_idname, text="", icon="FILE_REFRESH")
        column = layout.column(align=True)
        column.prop(panel, "guidance")
        column.prop(panel, "steps")
        layout.prop(panel, "generator")
        layout.prop(panel, "clean_motion")
        if state.running:
            row = layout.row(align=True)
            row.progress(factor=state.progress, type="BAR", text=f"{state.progress:.0%}")
            row.operator(MOTION_OT_cancel_generation.bl_idname, text="", icon="CANCEL")
            layout.label(text="Esc also cancels", icon="INFO")
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.enabled = not absent
            row.operator(MOTION_OT_generate.bl_idname, icon="PLAY")
        if state.status:
            level = state.status_level
            draw_wrapped(layout, state.status, STATUS_ICONS[level], level == "ERROR", width)


class KINETEXT_UL_variations(bpy.types.UIList):
    """One row per generated clip: its name, length, and preview / bake buttons."""

    def draw_item(self, _context, layout, _data, item, _icon, _active, _prop, index=0, _flt=0):
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False)
        row.label(text=f"{item.frames / max(item.fps, 1):.1f} s")
        row.operator(MOTION_OT_preview.bl_idname, text="", icon="HIDE_OFF").variation = index
        row.operator(MOTION_OT_bake.bl_idname, text="", icon="KEYINGSET").variation = index


class KINETEXT_PT_variations(_SidebarPanel, bpy.types.Panel):
    bl_label = "Variations"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        panel = settings(context)
        layout.template_list(
            "KINETEXT_UL_variations", "", panel, "variation_list", panel, "active_variation",
            rows=3,
        )  # fmt: skip
        if not panel.variation_list:
            layout.label(text="Generated clips appear here", icon="INFO")
            return
        row = layout.row(align=True)
        row.operator(MOTION_OT_preview.bl_idname, icon="HIDE_OFF").variation = -1
        row.operator(MOTION_OT_export_bvh.bl_idname, icon="EXPORT").variation = -1
        row.operator(MOTION_OT_clear_variations.bl_idname, text="", icon="TRASH")
        row = layout.row(align=True)
        for edit, icon in (("MIRROR", "MOD_MIRROR"), ("LOOP", "FILE_REFRESH")):
            op = row.operator(MOTION_OT_edit_variation.bl_idname, text=edit.title(), icon=icon)
            op.edit, op.variation = edit, -1
        row = layout.row(align=True)
        row.prop(panel, "speed")
        op = row.operator(MOTION_OT_edit_variation.bl_idname, text="Retime", icon="TIME")
        op.edit, op.variation = "SPEED", -1


class KINETEXT_PT_bake(_SidebarPanel, bpy.types.Panel):
    bl_label = "Bake to Rig"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        panel = settings(context)
        layout.prop(panel, "target")
        if panel.target is None:
            active = context.active_object
            name = active.name if active is not None and active.type == "ARMATURE" else None
            layout.label(text=f"Uses the active armature: {name}" if name else
                         "Select an armature or pick one above", icon="INFO")  # fmt: skip
        layout.prop(panel, "preset")
        rig = panel.target or context.active_object
        if rig is not None and rig.type == "ARMATURE":
            _draw_rig_check(layout, rig, panel.preset, _chars_per_line(context))
        layout.prop(panel, "root_motion")
        split = layout.split(factor=0.5)
        split.prop(panel, "foot_cleanup")
        split.prop(panel, "push_to_nla")
        layout.prop(panel, "key_reduction")
        if panel.key_reduction:
            column = layout.column(align=True)
            column.prop(panel, "key_degrees", text="Rotation (deg)")
            column.prop(panel, "key_cm", text="Location (cm)")
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = bool(panel.variation_list)
        row.operator(MOTION_OT_bake.bl_idname, icon="KEYINGSET").variation = -1


def _draw_rig_check(layout, rig: bpy.types.Object, preset: str, width: int) -> None:
    """The bone map a bake would use on ``rig`` and what would not show, for confirmation."""
    from . import preferences, rig_check

    box = layout.box()
    for text, level in rig_check.summary(rig, preset, preferences.user_map_folder()):
        draw_wrapped(box, text, STATUS_ICONS[level], level == "ERROR", width)


classes = (KINETEXT_UL_variations, KINETEXT_PT_generate, KINETEXT_PT_variations, KINETEXT_PT_bake)


register, unregister = bpy.utils.register_classes_factory(classes)
