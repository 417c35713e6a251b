"""Retargeting onto rigs built here in Blender: other names, rest poses, sizes and axes.

The Mixamo-like rig stands in a T-pose (the clip's skeleton hangs its arms), its bones are
connected chains with rolls of their own, and it sits in an FBX import's object transform
(Y-up centimetre armature space turned to Z up, scale 0.01). What is checked is what
Blender evaluates after ``frame_set``.
"""

import importlib

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import MIXAMO, build_rig, rest_joints  # noqa: E402

bake_mod = importlib.import_module("kinetext.addon.bake")
errors = importlib.import_module("kinetext.engine.errors")
presets = importlib.import_module("kinetext.engine.retarget.presets")
quaternion = importlib.import_module("kinetext.engine.motion.quaternion")
rig_pose = importlib.import_module("kinetext.engine.motion.rig_pose")
skeleton = importlib.import_module("kinetext.engine.motion.skeleton")

NAMES, PARENTS = skeleton.JOINT_NAMES, skeleton.PARENTS
END_EFFECTORS = (
    "head",
    "left_wrist",
    "right_wrist",
    "left_ankle",
    "right_ankle",
    "left_foot",
    "right_foot",
)


def clip(num_frames=20, seed=3) -> np.ndarray:
    """Rigid canonical joints (T, 22, 3): joints turning, knees and elbows bent, walking."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(num_frames, 22, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    local = quaternion.axis_angle_to_quat(axes, rng.uniform(0, 0.5, size=(num_frames, 22)))
    x = np.array([1.0, 0, 0])
    local[:, [4, 5]] = quaternion.axis_angle_to_quat(x, rng.uniform(0.3, 1.0, (num_frames, 2)))
    local[:, [18, 19]] = quaternion.axis_angle_to_quat(x, -rng.uniform(0.4, 1.4, (num_frames, 2)))
    t = np.arange(num_frames)
    root = np.stack([0.02 * t, 0.9 + 0.02 * np.sin(t), 0.05 * t], axis=1)
    joints = rig_pose.forward_kinematics(local, root, PARENTS, skeleton.CANONICAL_OFFSETS)
    feet = list(skeleton.FOOT_LEFT + skeleton.FOOT_RIGHT)  # the lowest foot on the floor
    clearance = joints[:, feet, 1] - rig_pose.canonical_rest_joints()[feet, 1]
    return joints - np.array([0.0, clearance.min(), 0.0])


def world_heads(context, obj, bone_names, frames) -> np.ndarray:
    out = np.zeros((len(frames), len(bone_names), 3))
    for t, frame in enumerate(frames):
        context.scene.frame_set(frame)
        for j, name in enumerate(bone_names):
            out[t, j] = obj.matrix_world @ obj.pose.bones[name].head
    return out


def z_up(p: np.ndarray) -> np.ndarray:
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


@pytest.fixture
def scene(empty_scene):
    empty_scene.scene.render.fps = 20
    return empty_scene


def test_mixamo_t_pose_rig_keeps_end_effectors_on_the_scaled_targets(scene):
    """Tolerance 1 mm: a rig of the clip's proportions (x1.1) must follow it exactly,
    whatever its rest pose, bone rolls and object transform."""
    obj = build_rig(scene, MIXAMO, rest_joints() * 1.1, fbx=True)
    joints = clip()
    bake_mod.bake(scene, armature=obj, joints=joints, foot_cleanup=False, action_name="walk")
    heads = world_heads(scene, obj, [MIXAMO[j] for j in END_EFFECTORS], range(1, 21))
    want = z_up(joints[:, [NAMES.index(j) for j in END_EFFECTORS]] * 1.1) + np.array(obj.location)
    assert np.abs(heads - want).max() < 1e-3
    action = obj.animation_data.action
    keyed = {
        f.data_path
        for f in bake_mod.anim_utils.action_get_channelbag_for_slot(action, action.slots[0]).fcurves
    }
    assert not any("HeadTop_End" in p for p in keyed)  # bones past the mapped ones: untouched


def test_other_proportions_keep_each_bones_direction_and_scale_the_root_by_leg_length(scene):
    lengths = np.ones(22)
    lengths[[4, 5, 7, 8]] = 1.2  # longer legs
    lengths[[18, 19, 20, 21]] = 0.85  # shorter arms
    rest = rest_joints(lengths)
    obj = build_rig(scene, MIXAMO, rest, fbx=False)
    joints = clip()
    bake_mod.bake(scene, armature=obj, joints=joints, foot_cleanup=False, action_name="walk")
    heads = world_heads(scene, obj, [MIXAMO[j] for j in NAMES], range(1, 21))
    for j, p in enumerate(PARENTS):
        if p < 0 or p in (0, 9):  # the pelvis and chest are best fits over three children
            continue
        want, got = z_up(joints[:, j] - joints[:, p]), heads[:, j] - heads[:, p]
        cos = (want * got).sum(-1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.min() > 0.99999, NAMES[j]
    legs = np.linalg.norm(rest[[5, 8]] - rest[[2, 5]], axis=-1).sum()
    ratio = legs / np.linalg.norm(skeleton.CANONICAL_OFFSETS[[5, 8]], axis=-1).sum()
    assert ratio == pytest.approx(1.2)
    want = z_up(joints[:, 0] * ratio) + np.array(obj.location)
    np.testing.assert_allclose(heads[:, 0, :2], want[:, :2], atol=1e-5)
    assert np.ptp(heads[:, 0, 2] - want[:, 2]) < 1e-5  # one height shift: feet on the floor


def test_a_rig_missing_mapped_bones_is_refused_with_their_names(scene):
    names = {**MIXAMO, "left_wrist": "mixamorig:LeftPalm", "right_foot": "mixamorig:RToe"}
    obj = build_rig(scene, names, rest_joints(), fbx=True)
    with pytest.raises(errors.MotionError) as err:
        bake_mod.bake(scene, armature=obj, joints=clip(4), preset="mixamo")
    assert "LeftHand (left_wrist)" in str(err.value) and "RightToeBase (right_foot)" in str(
        err.value
    )
    assert obj.animation_data is None and not bpy.data.actions
    with pytest.raises(errors.MotionError, match="closest, 'mixamo', misses 2"):
        bake_mod.bake(scene, armature=obj, joints=clip(4))  # detection says the same


def test_root_bone_mode_moves_the_unreal_root_over_the_floor(scene):
    unreal = dict(presets.PRESETS["unreal"].bones)
    obj = build_rig(scene, unreal, rest_joints(), fbx=False, root="root")
    joints = clip()
    action = bake_mod.bake(
        scene, armature=obj, joints=joints, root_motion="ROOT_BONE", foot_cleanup=False
    )
    bag = bake_mod.anim_utils.action_get_channelbag_for_slot(action, action.slots[0])
    assert {'pose.bones["root"].location', 'pose.bones["pelvis"].location'} <= {
        f.data_path for f in bag.fcurves
    }
    root = world_heads(scene, obj, ["root", "pelvis"], range(1, 21))
    floor = z_up(joints[:, 0] * np.array([1.0, 0, 1])) + np.array(obj.location)
    np.testing.assert_allclose(root[:, 0], floor, atol=1e-5)
    np.testing.assert_allclose(root[:, 1], z_up(joints[:, 0]) + np.array(obj.location), atol=1e-5)


def test_a_saved_user_map_is_found_by_name(scene):
    names = {j: f"os_{i:02d}" for i, j in enumerate(NAMES)}
    custom = presets.BoneMap("test rig map", names)
    path = bake_mod.save_user_bone_map(custom)
    try:
        assert "test rig map" in bake_mod.user_map_names()
        obj = build_rig(scene, names, rest_joints(), fbx=False)
        joints = clip()
        bake_mod.bake(scene, armature=obj, joints=joints, preset="test rig map", foot_cleanup=False)
        heads = world_heads(scene, obj, [names["left_wrist"]], range(1, 21))[:, 0]
        np.testing.assert_allclose(heads, z_up(joints[:, 20]) + np.array(obj.location), atol=1e-5)
    finally:
        path.unlink()


def test_a_character_creator_rig_is_detected_and_baked_in_its_own_centimetres(scene):
    """A CC3/CC4 character as its FBX import stands (CC_Base_* bones, Y-up centimetres under
    the importer's 0.01 scale): "Detect" takes the character_creator preset and the end
    effectors land on the clip's joints."""
    cc = dict(presets.PRESETS["character_creator"].bones)
    assert presets.detect_preset(list(cc.values())).name == "character_creator"
    obj = build_rig(scene, cc, rest_joints(), fbx=True)
    joints = clip()
    bake_mod.bake(scene, armature=obj, joints=joints, foot_cleanup=False, action_name="cc")
    heads = world_heads(scene, obj, [cc[j] for j in END_EFFECTORS], range(1, 21))
    want = z_up(joints[:, [NAMES.index(j) for j in END_EFFECTORS]]) + np.array(obj.location)
    assert np.abs(heads - want).max() < 1e-3
