"""Drawing helpers shared by the add-on's panels and sections: the sidebar tab's name,
status icons and long messages wrapped into labels (Blender's labels do not wrap)."""

from __future__ import annotations

import textwrap

import bpy

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


def chars_per_line(context: bpy.types.Context) -> int:
    """Characters of label text that fit the region's width (about 7 pixels each)."""
    region = getattr(context, "region", None)
    width = getattr(region, "width", 0) or 300
    return max(20, int(width / 7))
