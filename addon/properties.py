"""The panel's settings (per scene, saved and undone with the .blend) and the run state.

Prompt, sampling and bake settings belong to the scene: they travel with the file. Progress
and status live on the window manager: they describe this session's generation, must not be
undone by Ctrl+Z and are not saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpy

from ..engine import generators as engine_generators
from ..engine.generators import (
    DEFAULT_SECONDS,
    GUIDANCE_RANGE,
    MAX_SECONDS,
    MAX_STEPS,
    MAX_VARIATIONS,
    MIN_SECONDS,
)

_GENERATOR_LABELS = {  # how the panel names the engine's generators
    "molingo": ("MoLingo", "Masked autoregressive transformer with a rectified flow head"),
    "mlagen": ("MLA-Gen", "Flow matching with memory slots and sink-aware guidance"),
}
# Enum identifier -> the engine's generator name (None: the checkpoint's default).
GENERATOR_NAMES = {"AUTO": None, **{n.upper(): n for n in engine_generators.GENERATORS}}
GENERATORS = [
    ("AUTO", "Checkpoint default", "The generator the checkpoint names as its default"),
    *((n.upper(), *_GENERATOR_LABELS[n]) for n in engine_generators.GENERATORS),
]
ROOT_MOTION = [
    ("IN_PLACE", "In place", "No travel: the character stays over its origin"),
    ("ROOT_BONE", "Root bone", "Travel goes on the rig's root bone"),
    ("HIPS", "Hips", "Travel goes on the hips bone"),
]
TIMELINE_METHODS = [
    ("AUTO", "Default", "Blend with MLA-Gen, Continue with MoLingo (docs/timeline.md)"),
    ("INPAINT", "Continue", "Each window continues the previous one's last two seconds"),
    ("BLEND", "Blend", "All windows at once, averaged where neighbours overlap (MLA-Gen)"),
]
RANGE_SOURCES = [
    ("PREVIEW", "Preview range", "The scene's preview range (Ctrl+Alt+P in the timeline)"),
    ("FIELDS", "Frames", "The start and end frames below"),
]
STATUS_LEVELS = [("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")]
AUTO_PRESET = "AUTO"

_PRESET_ITEMS: list[tuple[str, str, str]] = []  # kept alive: Blender does not copy enum strings


def preset_items(_self: Any = None, _context: Any = None) -> list[tuple[str, str, str]]:
    """The "Detect" choice, the bone-map presets and the maps the user saved.

    Only the light preset module is imported here: the first opening of this dropdown took
    320 ms on the main thread when it imported the retargeting code (and scipy with it).
    """
    from ..engine.retarget.presets import PRESETS, user_map_names
    from .paths import user_map_folder

    items = [(AUTO_PRESET, "Detect", "Pick the preset whose bone names the rig has")]
    items += [(name, preset_label(name), m.description) for name, m in PRESETS.items()]
    items += [(n, n, "A bone map you saved") for n in user_map_names(user_map_folder())]
    _PRESET_ITEMS[:] = items
    return _PRESET_ITEMS


PRESET_LABELS = {
    "smplx": "SMPL-X",
    "bandai_namco": "Bandai Namco / BVH",
    "rigify": "Rigify deform bones",
    "rigify_fk": "Rigify FK controls",
    "biped": "3ds Max Biped",
    "character_creator": "Character Creator (CC3/CC4)",
}


def preset_label(name: str) -> str:
    """How the panel names a bone-map preset."""
    return PRESET_LABELS.get(name, name.title())


def _is_armature(_self: Any, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class KINETEXT_PG_variation(bpy.types.PropertyGroup):
    """One generated clip in the list; its arrays live in ``results`` under ``key``."""

    # ``name`` (inherited) is what the list shows: "prompt (seed n)"
    key: bpy.props.StringProperty(options={"HIDDEN"})
    prompt: bpy.props.StringProperty(name="Prompt")
    seed: bpy.props.IntProperty(name="Seed")
    frames: bpy.props.IntProperty(name="Frames")
    fps: bpy.props.IntProperty(name="FPS")


# Called with (settings, context) whenever the prompt changes, each keystroke included: the
# knowledge check adds itself here when registered (``knowledge.register``), so that this
# module, which most others import, imports none of them back.
PROMPT_WATCHERS: list[Callable[[Any, bpy.types.Context], None]] = []


def _prompt_changed(self: Any, context: bpy.types.Context) -> None:
    for watcher in list(PROMPT_WATCHERS):
        watcher(self, context)


class KINETEXT_PG_segment(bpy.types.PropertyGroup):
    """One entry of the Timeline: what the character does and for how long."""

    prompt: bpy.props.StringProperty(
        name="Prompt", description="What the character does in this segment"
    )
    seconds: bpy.props.FloatProperty(
        name="Seconds", default=3.0, min=1.0, max=60.0, step=10, precision=1,
        description="How long the segment lasts (rounded to 0.2 s steps)",
    )  # fmt: skip


class KINETEXT_PG_settings(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(
        name="Prompt", description="What the character does, e.g. 'a person walks forward "
        "and waves with the right hand'", update=_prompt_changed, options={"TEXTEDIT_UPDATE"},
    )  # fmt: skip
    seconds: bpy.props.FloatProperty(
        name="Seconds", default=DEFAULT_SECONDS, min=MIN_SECONDS, max=MAX_SECONDS, step=10,
        precision=1,
        description="Clip length (rounded to 0.2 s steps)",
    )  # fmt: skip
    variations: bpy.props.IntProperty(
        name="Variations", default=2, min=1, max=MAX_VARIATIONS,
        description="How many different clips to make from the prompt",
    )  # fmt: skip
    seed: bpy.props.IntProperty(
        name="Seed", default=0, min=0, description="Same seed and settings, same motion"
    )
    guidance: bpy.props.FloatProperty(
        name="Guidance", default=0.0, min=0.0, max=GUIDANCE_RANGE[1],
        description="How closely to follow the prompt (0: the checkpoint's own setting; "
        f"otherwise {GUIDANCE_RANGE[0]:g} to {GUIDANCE_RANGE[1]:g})",
    )  # fmt: skip
    steps: bpy.props.IntProperty(
        name="Steps", default=0, min=0, max=MAX_STEPS,
        description="Sampling steps (0: the checkpoint's own setting); more is slower",
    )  # fmt: skip
    generator: bpy.props.EnumProperty(name="Generator", items=GENERATORS, default="AUTO")
    clean_motion: bpy.props.BoolProperty(
        name="Clean body", default=True,
        description="Rigid bones, planted feet on the floor and held still (off: the "
        "network's raw joints, whose bones stretch and feet float)",
    )  # fmt: skip

    target: bpy.props.PointerProperty(
        name="Armature", type=bpy.types.Object, poll=_is_armature,
        description="The rig to bake onto (empty: the active armature)",
    )  # fmt: skip
    preset: bpy.props.EnumProperty(name="Bone map", items=preset_items)
    root_motion: bpy.props.EnumProperty(name="Root motion", items=ROOT_MOTION, default="HIPS")
    foot_cleanup: bpy.props.BoolProperty(
        name="Foot clean-up", default=True,
        description="Pin each foot while it is planted on the ground",
    )  # fmt: skip
    push_to_nla: bpy.props.BoolProperty(
        name="Push to NLA", default=False,
        description="Also put the new action on an NLA strip",
    )  # fmt: skip
    key_reduction: bpy.props.BoolProperty(
        name="Reduce keys", default=False,
        description="Key only the frames needed to stay within the tolerances below (off: a "
        "key on every frame)",
    )  # fmt: skip
    key_degrees: bpy.props.FloatProperty(
        name="Rotation tolerance", default=0.5, min=0.01, max=10.0, precision=2,
        description="Degrees any bone's rotation may differ from the full bake on any frame",
    )  # fmt: skip
    key_cm: bpy.props.FloatProperty(
        name="Location tolerance", default=0.5, min=0.01, max=10.0, precision=2,
        description="Centimetres any bone's location may differ from the full bake",
    )  # fmt: skip
    speed: bpy.props.FloatProperty(
        name="Speed", default=1.5, min=0.25, max=4.0, step=10, precision=2,
        description="Retime factor: 2 plays the variation twice as fast, 0.5 at half speed",
    )  # fmt: skip

    variation_list: bpy.props.CollectionProperty(type=KINETEXT_PG_variation)
    active_variation: bpy.props.IntProperty(name="Variation", default=0)

    segment_list: bpy.props.CollectionProperty(type=KINETEXT_PG_segment)
    active_segment: bpy.props.IntProperty(name="Segment", default=0)
    timeline_method: bpy.props.EnumProperty(name="Join", items=TIMELINE_METHODS, default="AUTO")
    range_prompt: bpy.props.StringProperty(
        name="Prompt", description="What the character does in the regenerated range"
    )
    range_source: bpy.props.EnumProperty(name="Range", items=RANGE_SOURCES, default="PREVIEW")
    range_start: bpy.props.IntProperty(
        name="Start", default=1, description="First frame to regenerate (scene frames)"
    )
    range_end: bpy.props.IntProperty(
        name="End", default=20, description="Last frame to regenerate (scene frames, included)"
    )


class KINETEXT_PG_runtime(bpy.types.PropertyGroup):
    running: bpy.props.BoolProperty(default=False)
    segments: bpy.props.IntProperty(default=0)  # segments of the running timeline (0: none)
    progress: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: bpy.props.StringProperty(default="")
    status_level: bpy.props.EnumProperty(items=STATUS_LEVELS, default="INFO")


def runtime(context: bpy.types.Context) -> KINETEXT_PG_runtime:
    return context.window_manager.kinetext


def settings(context: bpy.types.Context) -> KINETEXT_PG_settings:
    return context.scene.kinetext


def scene_fps(scene: bpy.types.Scene) -> float:
    """The scene's frame rate in frames per second (29.97 is 30 / 1.001)."""
    return scene.render.fps / scene.render.fps_base


def set_status(context: bpy.types.Context, text: str, level: str = "INFO") -> None:
    state = runtime(context)
    state.status = text
    state.status_level = level


classes = (KINETEXT_PG_variation, KINETEXT_PG_segment, KINETEXT_PG_settings, KINETEXT_PG_runtime)


register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    register_classes()
    bpy.types.Scene.kinetext = bpy.props.PointerProperty(type=KINETEXT_PG_settings)
    bpy.types.WindowManager.kinetext = bpy.props.PointerProperty(type=KINETEXT_PG_runtime)


def unregister() -> None:
    del bpy.types.WindowManager.kinetext
    del bpy.types.Scene.kinetext
    unregister_classes()
