"""The sidebar tab "Kinetext" in the 3D viewport: Generate, Variations, Bake to Rig.

Drawing reads settings and the run state only; it never imports torch (``deps.missing``
only looks at the import path), so the panel still tells the user what is missing and how
to fix it when the heavy packages are absent.
"""

from __future__ import annotations

import bpy

from . import deps, knowledge
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
from .paths import ADDON_ID, user_map_folder
from .properties import runtime, settings
from .timeline import (
    MOTION_OT_generate_sequence,
    MOTION_OT_regenerate_range,
    MOTION_OT_timeline_segment,
)
from .ui import CATEGORY, STATUS_ICONS, chars_per_line, draw_wrapped


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class KINETEXT_PT_generate(_SidebarPanel, bpy.types.Panel):
    bl_label = "Generate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        panel, state = settings(context), runtime(context)
        width = chars_per_line(context)
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
        far = None if absent else knowledge.warning(context, panel.prompt)
        if far:  # before generating: the prompt is unlike anything the checkpoint learned
            draw_wrapped(layout, far, STATUS_ICONS["WARNING"], width=width)
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


class KINETEXT_PT_knowledge(_SidebarPanel, bpy.types.Panel):
    """The chosen checkpoint's action vocabulary and data sets (asked of the engine process
    when the panel is opened; drawn from what came back)."""

    bl_label = "What this model knows"
    bl_parent_id = "KINETEXT_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        width = chars_per_line(context)
        if deps.missing():
            layout.label(text="Needs the missing Python packages", icon="INFO")
            return
        found = knowledge.answer(context, "")
        if found is None:
            layout.label(text="Reading the checkpoint...", icon="SORTTIME")
            return
        if "error" in found or "pending" in found:
            draw_wrapped(layout, found.get("error") or found["pending"], "INFO", width=width)
            return
        summary = found["summary"]
        if summary is None:
            text = ("Unknown: this checkpoint does not say what it was trained on, so "
                    "prompts cannot be checked against it")  # fmt: skip
            draw_wrapped(layout, text, "QUESTION", width=width)
            return
        for data in summary["datasets"]:
            hours = data.get("hours")
            whole = f" of {hours:.1f} h" if isinstance(hours, (int, float)) else ""
            size = f"{data.get('clips', '?')} training clips{whole}"
            layout.label(text=f"{data.get('name', '?')}: {size}", icon="FILE")
        column = layout.column(align=True)
        column.label(text="Actions (training clips):")
        for action, clips in summary["vocabulary"].items():
            split = column.split(factor=0.8)
            split.label(text=action, icon="ARMATURE_DATA")
            split.label(text=str(clips))
        text = "Prompts unlike these get a warning before and after generating"
        draw_wrapped(layout, text, "INFO", width=width)


class KINETEXT_UL_segments(bpy.types.UIList):
    """One row per Timeline segment: its prompt and its length, both editable in place."""

    def draw_item(self, _context, layout, _data, item, _icon, _active, _prop, index=0, _flt=0):
        row = layout.row(align=True)
        row.label(text=f"{index + 1}.")
        row.prop(item, "prompt", text="", emboss=True)
        sub = row.row(align=True)
        sub.ui_units_x = 3.5
        sub.prop(item, "seconds", text="")


def segment_progress(progress: float, segments: int) -> str:
    """The progress bar's text while a timeline runs: which segment, and the whole's share."""
    current = min(segments, int(progress * segments) + 1)
    return f"Segment {current}/{segments}  {progress:.0%}"


class KINETEXT_PT_timeline(_SidebarPanel, bpy.types.Panel):
    bl_label = "Timeline"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        panel, state = settings(context), runtime(context)
        row = layout.row()
        row.template_list(
            "KINETEXT_UL_segments", "", panel, "segment_list", panel, "active_segment", rows=4
        )
        column = row.column(align=True)
        for edit, icon in (("ADD", "ADD"), ("REMOVE", "REMOVE"), ("DUPLICATE", "DUPLICATE")):
            column.operator(MOTION_OT_timeline_segment.bl_idname, text="", icon=icon).edit = edit
        column.separator()
        for edit, icon in (("UP", "TRIA_UP"), ("DOWN", "TRIA_DOWN")):
            column.operator(MOTION_OT_timeline_segment.bl_idname, text="", icon=icon).edit = edit
        total = sum(s.seconds for s in panel.segment_list)
        layout.label(text=f"{len(panel.segment_list)} segments, {total:.1f} s", icon="TIME")
        layout.prop(panel, "timeline_method")
        if state.running and state.segments:
            row = layout.row(align=True)
            text = segment_progress(state.progress, state.segments)
            row.progress(factor=state.progress, type="BAR", text=text)
            row.operator(MOTION_OT_cancel_generation.bl_idname, text="", icon="CANCEL")
        else:
            row = layout.row()
            row.scale_y = 1.3
            row.enabled = bool(panel.segment_list) and not state.running
            row.operator(MOTION_OT_generate_sequence.bl_idname, icon="SEQ_SEQUENCER")
        box = layout.box()
        box.label(text="Regenerate a range of the baked action", icon="ACTION")
        box.prop(panel, "range_prompt", text="", icon="TEXT")
        box.prop(panel, "range_source", expand=True)
        if panel.range_source == "FIELDS":
            row = box.row(align=True)
            row.prop(panel, "range_start")
            row.prop(panel, "range_end")
        elif not context.scene.use_preview_range:
            box.label(text="No preview range set (Ctrl+Alt+P)", icon="INFO")
        row = box.row()
        row.enabled = not state.running
        row.operator(MOTION_OT_regenerate_range.bl_idname, icon="FILE_REFRESH")


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
            _draw_rig_check(layout, rig, panel.preset, chars_per_line(context))
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
    from . import rig_check

    box = layout.box()
    for text, level in rig_check.summary(rig, preset, user_map_folder()):
        draw_wrapped(box, text, STATUS_ICONS[level], level == "ERROR", width)


classes = (
    KINETEXT_UL_segments, KINETEXT_UL_variations, KINETEXT_PT_generate, KINETEXT_PT_knowledge,
    KINETEXT_PT_timeline, KINETEXT_PT_variations, KINETEXT_PT_bake,
)  # fmt: skip


register, unregister = bpy.utils.register_classes_factory(classes)
