"""Helpers for the extension tests: a tiny random checkpoint, the add-on enabled with its
preferences, and a clean scene.

The add-on is registered by calling ``register()`` on ``kinetext.addon`` (the ``addon_pkg``
fixture); Blender's add-on list then needs an entry named after the package ("kinetext")
for ``context.preferences.addons[...].preferences`` to exist, as it does once installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import torch

from engine.checkpoint import save_checkpoint
from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.text_encoder import TextEncoderConfig

ADDON_ID = "kinetext"
TEXT_DIM = 384  # the bundled MiniLM


def save_tiny_checkpoint(folder: Path) -> Path:
    """An untrained tiny MoLingo + autoencoder checkpoint (loads and samples in ms)."""
    torch.manual_seed(0)
    models = {
        "autoencoder": MotionAutoencoder(AutoencoderConfig.tiny().replace(text_dim=TEXT_DIM)),
        "molingo": MoLingo(MoLingoConfig.tiny().replace(text_dim=TEXT_DIM)),
    }
    rng = np.random.default_rng(0)
    return save_checkpoint(
        folder,
        models,
        text_encoder=TextEncoderConfig(),
        normalizer_mean=rng.normal(0, 0.1, 263),
        normalizer_std=rng.uniform(0.05, 0.2, 263),
        fps=20,
        license="random weights, no training data",
        attribution="kinetext tests",
    )


def preferences() -> bpy.types.AddonPreferences:
    """The add-on's preferences, adding its entry to Blender's add-on list if a factory reset
    (another test's fixture) removed it."""
    addons = bpy.context.preferences.addons
    if addons.get(ADDON_ID) is None:
        addons.new().module = ADDON_ID
    return addons[ADDON_ID].preferences


@contextlib.contextmanager
def enabled(addon_pkg: ModuleType, checkpoint: Path | None = None) -> Iterator[ModuleType]:
    """The add-on registered (and its preferences pointing at ``checkpoint``) while inside."""
    addon_pkg.register()
    try:
        if checkpoint is not None:
            use_checkpoint(checkpoint)
        yield addon_pkg
    finally:
        addon_pkg.unregister()
        entry = bpy.context.preferences.addons.get(ADDON_ID)
        if entry is not None:
            bpy.context.preferences.addons.remove(entry)


def use_checkpoint(folder: Path) -> None:
    prefs = preferences()
    prefs.checkpoint_source = "FOLDER"
    prefs.checkpoint_folder = str(folder)
    prefs.device = "CPU"


def clear_scene() -> bpy.types.Context:
    """No objects, actions or armatures; the panel at its defaults; the scene at 20 fps."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for collection in (bpy.data.actions, bpy.data.armatures, bpy.data.meshes):
        for block in list(collection):
            collection.remove(block)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    scene.frame_start = 1
    if hasattr(scene, "kinetext"):  # every panel setting back to its default
        for name in scene.kinetext.bl_rna.properties.keys():
            if name != "rna_type":
                scene.kinetext.property_unset(name)
    if hasattr(scene, "kinetext_bone_map"):
        scene.kinetext_bone_map.pairs.clear()
        scene.kinetext_bone_map.name = ""
    return bpy.context


def mixamo_rig(name: str = "Rig", drop: tuple[str, ...] = ()) -> bpy.types.Object:
    """A Mixamo-named armature (the canonical rest pose), without the bones in ``drop``."""
    from kinetext.addon.armature import create_canonical_armature
    from kinetext.engine.retarget import PRESETS

    obj = create_canonical_armature(bpy.context, name)
    bpy.ops.object.mode_set(mode="EDIT")
    for joint, bone in PRESETS["mixamo"].bones.items():
        edit_bone = obj.data.edit_bones[joint]
        if bone in drop:
            obj.data.edit_bones.remove(edit_bone)
        else:
            edit_bone.name = "mixamorig:" + bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj
