"""Editing a bone map in the panel: load rows for a rig, fill what is missing, save, bake."""

from __future__ import annotations

import json

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import clear_scene, enabled, mixamo_rig, save_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def addon(addon_pkg, tmp_path_factory):
    checkpoint = save_tiny_checkpoint(tmp_path_factory.mktemp("maps") / "tiny")
    with enabled(addon_pkg, checkpoint):
        yield addon_pkg


@pytest.fixture
def rig(addon):
    """A Mixamo-named rig whose hands were renamed, so no preset fits it any more."""
    clear_scene()
    obj = mixamo_rig()
    obj.data.bones["mixamorig:LeftHand"].name = "palm.L"
    obj.data.bones["mixamorig:RightHand"].name = "palm.R"
    bpy.context.scene.kinetext.target = obj
    return obj


def rows() -> dict[str, str]:
    return {p.joint: p.bone for p in bpy.context.scene.kinetext_bone_map.pairs}


def test_load_fills_rows_with_the_rigs_own_names(rig):
    assert bpy.ops.motion.bone_map_load() == {"FINISHED"}  # "Detect": the closest preset
    loaded = rows()
    assert len(loaded) == 22 and loaded["pelvis"] == "mixamorig:Hips"
    assert loaded["left_elbow"] == "mixamorig:LeftForeArm"
    assert loaded["left_wrist"] == "" and loaded["right_wrist"] == ""  # for the user to pick
    assert bpy.context.scene.kinetext_bone_map.name == "Rig map"


def test_saved_map_appears_in_the_list_and_bakes_the_rig(rig):
    from kinetext.addon.bake import user_map_folder

    bpy.ops.motion.generate(prompt="a person waves", seconds=1.0, steps=1, variations=1)
    with pytest.raises(RuntimeError, match="lacks 2 bone"):
        bpy.ops.motion.bake(preset="mixamo")
    bpy.ops.motion.bone_map_load()
    pairs = bpy.context.scene.kinetext_bone_map.pairs
    pairs[list(rows()).index("left_wrist")].bone = "palm.L"
    pairs[list(rows()).index("right_wrist")].bone = "palm.R"
    bpy.context.scene.kinetext_bone_map.name = "my rig"
    assert bpy.ops.motion.bone_map_save() == {"FINISHED"}
    saved = json.loads((user_map_folder() / "my rig.json").read_text(encoding="utf-8"))
    assert saved["bones"]["left_wrist"] == "palm.L" and len(saved["bones"]) == 22
    assert bpy.context.scene.kinetext.preset == "my rig"  # chosen for the next bake
    assert bpy.ops.motion.bake() == {"FINISHED"}
    assert rig.animation_data.action.name == "a person waves"


def test_saving_refuses_bad_maps(rig):
    editor = bpy.context.scene.kinetext_bone_map
    with pytest.raises(RuntimeError, match="press Load first"):
        bpy.ops.motion.bone_map_save()
    bpy.ops.motion.bone_map_load()
    editor.name = "mixamo"
    with pytest.raises(RuntimeError, match="is a preset's name"):
        bpy.ops.motion.bone_map_save()
    editor.name = "no pelvis"
    editor.pairs[0].bone = ""
    with pytest.raises(RuntimeError, match="must map pelvis"):
        bpy.ops.motion.bone_map_save()


def test_load_needs_an_armature(addon):
    clear_scene()
    with pytest.raises(RuntimeError, match="no armature selected"):
        bpy.ops.motion.bone_map_load()
