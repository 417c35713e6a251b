"""Where the add-on is and what it keeps: its id, its user folder (private packages, the
clip cache, saved bone maps) and its preferences.

Kept apart from the modules that draw and operate so that any of them can ask where things
are without importing the others (the preferences draw the SMPL and MoLingo sections, whose
operators read the preferences: through here, not through each other).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

ADDON_ID = __package__.rpartition(".")[0]  # "bl_ext.<repo>.kinetext" once installed


def user_folder() -> Path:
    """The extension's own writable folder (private packages, the clip cache).

    Scripts and tests that import the package directly (not installed as an extension) get
    a folder inside Blender's session temp folder instead.
    """
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, create=True))
    except ValueError:  # "does not name an extension"
        folder = Path(bpy.app.tempdir or ".") / "kinetext-user"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def user_map_folder() -> Path:
    """Where the user's saved bone maps live: the extension's user folder, ``bone_maps``."""
    return user_folder() / "bone_maps"


def results_folder() -> Path:
    """Where generated clips are cached (``results``)."""
    return user_folder() / "results"


def addon_preferences(context: bpy.types.Context) -> Any:
    """This add-on's preferences, or None when it was registered outside the add-on system."""
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None
