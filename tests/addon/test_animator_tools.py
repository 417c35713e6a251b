"""What an animator does with a clip on a real rig, through the operators and the panel:
feet on the rig's floor, a turned rig, control rigs (Rigify), fuzzy bone names, key
reduction, BVH at the scene's rate, variations kept in the .blend, mirror / loop / speed.

Clips are put in the variation list the way Generate puts them (``operators.list_clip``);
the walk is the engine's procedural one (feet planted flat, toes rolling), its foot
contacts from the HumanML3D features of its joints, as a generated clip carries them.
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import (  # noqa: E402
    MIXAMO,
    build_rig,
    clear_scene,
    draw,
    enabled,
    rest_joints,
)
from kinetext.engine.edit import clip_edit  # noqa: E402
from kinetext.engine.io.bvh import read_bvh  # noqa: E402
from kinetext.engine.motion import features  # noqa: E402
from kinetext.engine.motion.demo_clip import walk_cycle  # noqa: E402
from kinetext.engine.motion.skeleton import JOINT_NAMES  # noqa: E402
from kinetext.engine.retarget import joint_map, presets  # noqa: E402

TOES = {"left": MIXAMO["left_foot"], "right": MIXAMO["right_foot"]}
CM = 0.01


@pytest.fixture(scope="module")
def addon(addon_pkg):
    with enabled(addon_pkg):
        yield addon_pkg


@pytest.fixture
def scene(addon):
    return clear_scene()


def walk(seconds=4.0, turn=0.0) -> tuple[np.ndarray, np.ndarray]:
    """The procedural walk (T, 22, 3) and its foot contacts (T, 4)."""
    joints = walk_cycle(seconds=seconds, turn_degrees=turn)
    contacts = features.joints_to_features(joints)[:, features.FOOT_CONTACT]
    return joints, np.concatenate([contacts, contacts[-1:]])


def standing(frames=20) -> tuple[np.ndarray, np.ndarray]:
    """The canonical rest pose held still, toes on the floor, both feet planted."""
    from kinetext.engine.motion.rig_pose import canonical_rest_joints

    return np.tile(canonical_rest_joints(), (frames, 1, 1)), np.ones((frames, 4))


def put_variation(joints, contacts, prompt="a person walks forward") -> int:
    """List a clip as Generate does; its index."""
    from kinetext.addon import operators, results

    clip = results.Clip(joints.astype(np.float32), None, 20, prompt, 0, {},
                        contacts.astype(np.float32))  # fmt: skip
    return operators.list_clip(bpy.context, clip, prompt)


def world_heads(obj, names, frames) -> np.ndarray:
    """(T, N, 3) world heads as Blender evaluates them (constraints included)."""
    out = np.zeros((len(frames), len(names), 3))
    for t, frame in enumerate(frames):
        bpy.context.scene.frame_set(frame)
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        for j, name in enumerate(names):
            out[t, j] = np.array(evaluated.matrix_world @ evaluated.pose.bones[name].head)
    return out


def mixamo_on_its_toes(name="Rig"):
    """A Mixamo FBX import whose toe joints sit 2 cm up (the sole below them), with bigger
    feet and longer shins than the clip's skeleton."""
    lengths = np.ones(22)
    lengths[[7, 8, 10, 11]] = (1.15, 1.15, 1.4, 1.4)
    rest = rest_joints(lengths) + [0.0, 0.02, 0.0]
    obj = build_rig(bpy.context, MIXAMO, rest, fbx=True)
    obj.name = name
    obj.location = (0.0, 0.0, 0.0)
    return obj, rest


# ---- issue 12.3: the rig's floor and the rig's own frame ------------------------------------


@pytest.mark.parametrize("clip", ["walk", "standing"])
def test_planted_toes_stand_at_the_rigs_own_rest_toe_height(scene, clip):
    joints, contacts = walk() if clip == "walk" else standing()
    rig, rest = mixamo_on_its_toes()
    index = put_variation(joints, contacts)
    assert bpy.ops.motion.bake(armature=rig.name, variation=index) == {"FINISHED"}
    toes = world_heads(rig, list(TOES.values()), range(1, len(joints) + 1))[..., 2]  # (T, 2)
    above = toes - rest[[10, 11], 1]  # over each toe's rest height
    planted = contacts[:, [1, 3]] > 0.5
    assert planted.sum() > len(joints) / 2
    assert np.abs(above[planted]).max() < 0.5 * CM
    assert above.min() > -0.5 * CM  # no toe through the floor


def test_a_turned_and_moved_rig_walks_along_its_own_forward(scene):
    joints, contacts = walk(3.0)
    index = put_variation(joints, contacts)
    upright, _ = mixamo_on_its_toes("Upright")
    turned, _ = mixamo_on_its_toes("Turned")
    turned.rotation_euler = (np.pi / 2, 0.0, np.pi / 2)  # the FBX's X turn, then 90 deg left
    turned.location = (2.0, 1.0, 0.0)
    for rig in (upright, turned):
        assert bpy.ops.motion.bake(armature=rig.name, variation=index) == {"FINISHED"}
    names = list(MIXAMO.values())
    frames = range(1, len(joints) + 1)
    a, b = world_heads(upright, names, frames), world_heads(turned, names, frames)
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # +90 deg about Z
    np.testing.assert_allclose(b, a @ turn.T + [2.0, 1.0, 0.0], atol=1e-4)
    travel = b[-1, 0] - b[0, 0]
    assert travel[0] > 2.0 and abs(travel[1]) < 0.1  # faces world +X: its -Y turned 90 deg


# ---- issue 13.3: control rigs -----------------------------------------------------------------


def rigify_like_rig():
    """A Rigify-like rig: FK controls (torso, thigh_fk.L ...), ORG bones copying them and DEF
    bones copying the ORG bones by Copy Transforms constraints, as Rigify generates."""
    deform = presets.PRESETS["rigify"].bones
    controls = presets.PRESETS["rigify_fk"].bones
    joints = rest_joints()
    data = bpy.data.armatures.new("rigify")
    obj = bpy.data.objects.new("rigify", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    z_up = lambda p: (p[0], -p[2], p[1])  # noqa: E731
    bpy.ops.object.mode_set(mode="EDIT")
    root = data.edit_bones.new("root")
    root.head, root.tail = (0, 0, 0), (0, -0.3, 0)
    layers = {"DEF": deform, "ORG": {j: "ORG-" + b[4:] for j, b in deform.items()}, "": controls}
    for names in layers.values():
        for joint, name in names.items():
            j = JOINT_NAMES.index(joint)
            kids = [c for c in range(22) if _parent(c) == j]
            tail = joints[{0: 3, 9: 12}.get(j, kids[0])] if kids else joints[j] + [0, 0.08, 0.02]
            bone = data.edit_bones.new(name)
            bone.head, bone.tail = z_up(joints[j]), z_up(tail)
            parent = _parent(j)
            while parent >= 0 and JOINT_NAMES[parent] not in names:
                parent = _parent(parent)
            bone.parent = data.edit_bones[names[JOINT_NAMES[parent]]] if parent >= 0 else root
    bpy.ops.object.mode_set(mode="POSE")
    for j, name in layers["ORG"].items():
        if j in controls:
            _copy_transforms(obj, name, controls[j])
        _copy_transforms(obj, deform[j], name)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def _parent(j: int) -> int:
    from kinetext.engine.motion.skeleton import PARENTS

    return PARENTS[j]


def _copy_transforms(obj, bone: str, target: str) -> None:
    con = obj.pose.bones[bone].constraints.new("COPY_TRANSFORMS")
    con.target, con.subtarget = obj, target


def test_a_bake_onto_constrained_deform_bones_is_refused_naming_them(scene):
    rig = rigify_like_rig()
    index = put_variation(*walk(1.0))
    with pytest.raises(RuntimeError) as error:
        bpy.ops.motion.bake(armature=rig.name, preset="rigify", variation=index)
    message = str(error.value)
    assert "22 bone(s) of the 'rigify' map are posed by constraints" in message
    assert "DEF-thigh.L (Copy Transforms constraint from ORG-thigh.L)" in message
    assert "Rigify FK controls" in message and "IK-FK" in message
    assert rig.animation_data is None and not bpy.data.actions


def test_detect_bakes_a_rigify_rig_onto_its_fk_controls_and_the_deform_bones_follow(scene):
    rig = rigify_like_rig()
    bpy.context.scene.kinetext.target = rig
    layout = draw(_bake_panel())
    assert "Detected: Rigify FK controls, 21 joints" in layout.texts()
    assert "Not Rigify deform bones: its bones are posed by constraints" in layout.texts()
    joints, contacts = walk(1.5)
    index = put_variation(joints, contacts)
    bpy.context.scene.kinetext.foot_cleanup = False  # the limbs exactly as the clip has them
    assert bpy.ops.motion.bake(variation=index) == {"FINISHED"}
    action = rig.animation_data.action
    bag = action.layers[0].strips[0].channelbag(rig.animation_data.action_slot)
    keyed = {fc.data_path.split('"')[1] for fc in bag.fcurves}
    assert "thigh_fk.L" in keyed and not any(b.startswith(("DEF-", "ORG-")) for b in keyed)
    limbs = [("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
             ("right_hip", "right_knee"), ("right_knee", "right_ankle")]  # fmt: skip
    deform = presets.PRESETS["rigify"].bones
    names = [deform[j] for pair in limbs for j in pair]
    heads = world_heads(rig, names, range(1, len(joints) + 1)).reshape(len(joints), -1, 2, 3)
    z_up = np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], -1)
    for k, (a, b) in enumerate(limbs):  # what the deform bones show is the clip's limbs
        want = z_up[:, JOINT_NAMES.index(b)] - z_up[:, JOINT_NAMES.index(a)]
        got = heads[:, k, 1] - heads[:, k, 0]
        cos = (want * got).sum(-1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.min() > 0.9999, (a, b)


def test_a_rigify_limb_left_in_ik_is_named_after_an_fk_bake(scene):
    from kinetext.addon import bake

    rig = rigify_like_rig()
    rig.pose.bones["thigh_fk.L"]["IK_FK"] = 0.0  # Rigify's switch: 0 = IK, 1 = FK
    rig.pose.bones["upper_arm_fk.L"]["IK_FK"] = 1.0
    said = []
    joints, contacts = walk(1.0)
    bake.bake(bpy.context, armature=rig, joints=joints, contacts=contacts,
              report=lambda level, text: said.append((level, text)))  # fmt: skip
    warnings = [text for level, text in said if level == {"WARNING"}]
    assert warnings == ["the FK keys show once the IK-FK switches are at 1 (FK); now below 1 "
                        "on: thigh_fk.L"]  # fmt: skip


def test_a_driver_on_a_mapped_bone_is_named_before_baking(scene):
    rig, _ = mixamo_on_its_toes()
    fcurve = rig.driver_add(f'pose.bones["{MIXAMO["left_elbow"]}"].rotation_quaternion', 1)
    fcurve.driver.expression = "0.2"
    index = put_variation(*walk(1.0))
    with pytest.raises(RuntimeError, match=r"LeftForeArm \(driver on its rotation quaternion\)"):
        bpy.ops.motion.bake(armature=rig.name, variation=index)


# ---- issue 13.7: fuzzy bone names, shown for confirmation ---------------------------------


def test_a_rig_with_other_spellings_is_detected_shown_and_baked(scene):
    spell = {j: "Bip01 " + b.replace("Left", "L ").replace("Right", "R ")
             for j, b in presets.PRESETS["mixamo"].bones.items()}  # fmt: skip
    rig = build_rig(bpy.context, spell, rest_joints(), fbx=False)
    bpy.context.scene.kinetext.target = rig
    texts = draw(_bake_panel()).texts()
    assert "Detected: Mixamo, 22 joints" in texts
    assert "found by loose names, e.g. pelvis -> Bip01 Hips" in texts
    assert bpy.ops.motion.bone_map_load() == {"FINISHED"}  # Edit Bone Map: every row filled
    rows = {p.joint: p.bone for p in bpy.context.scene.kinetext_bone_map.pairs}
    assert rows == {j: spell[j] for j in JOINT_NAMES}
    joints, contacts = walk(1.0)
    assert bpy.ops.motion.bake(variation=put_variation(joints, contacts)) == {"FINISHED"}
    assert rig.animation_data.action is not None


def _bake_panel():
    from kinetext.addon.panel import KINETEXT_PT_bake

    return KINETEXT_PT_bake


# ---- issue 13.6: keys, BVH frame rate, the .blend --------------------------------------------


def local_poses(rig, frames) -> np.ndarray:
    """(T, B, 4, 4) every pose bone's matrix_basis as Blender plays it."""
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        out.append([np.array(pb.matrix_basis) for pb in rig.pose.bones])
    return np.array(out)


@pytest.mark.parametrize(("degrees", "cm"), [(0.5, 0.5), (2.0, 1.0)])
def test_key_reduction_saves_keys_and_every_frame_stays_within_the_tolerance(scene, degrees, cm):
    from kinetext.addon import bake

    rig, _ = mixamo_on_its_toes()
    joints, contacts = walk(4.0)
    index = put_variation(joints, contacts)
    frames = range(1, len(joints) + 1)
    assert bpy.ops.motion.bake(armature=rig.name, variation=index) == {"FINISHED"}
    full, full_keys = local_poses(rig, frames), _key_count(rig)
    panel = bpy.context.scene.kinetext
    panel.key_reduction, panel.key_degrees, panel.key_cm = True, degrees, cm
    assert bpy.ops.motion.bake(armature=rig.name, variation=index) == {"FINISHED"}
    reduced, reduced_keys = local_poses(rig, frames), _key_count(rig)
    assert reduced_keys < full_keys / 2
    rel = np.swapaxes(full[..., :3, :3], -1, -2) @ reduced[..., :3, :3]
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert angle.max() <= degrees + 0.02
    moved = np.linalg.norm(full[..., :3, 3] - reduced[..., :3, 3], axis=-1) * 0.01  # cm units
    assert moved.max() * 100 <= cm + 0.01  # the rig's pose units are centimetres (FBX)
    said = []
    bake.bake(bpy.context, armature=rig, joints=joints, contacts=contacts,
              key_tolerance=bake.KeyTolerance(degrees, cm),
              report=lambda level, text: said.append(text))  # fmt: skip
    (line,) = [s for s in said if s.startswith("key reduction")]
    assert (
        f"kept {reduced_keys:,} of {full_keys:,} keys (saved {full_keys - reduced_keys:,}" in line
    )


def _key_count(rig) -> int:
    action = rig.animation_data.action
    bag = action.layers[0].strips[0].channelbag(rig.animation_data.action_slot)
    return sum(len(fc.keyframe_points) for fc in bag.fcurves)


@pytest.mark.parametrize(("fps", "base"), [(24, 1.0), (30, 1.0), (30, 1.001)])
def test_bvh_export_writes_the_scenes_frame_rate(scene, tmp_path, fps, base):
    joints, contacts = walk(2.0)
    index = put_variation(joints, contacts)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, base
    path = tmp_path / "walk.bvh"
    assert bpy.ops.motion.export_bvh(filepath=str(path), variation=index) == {"FINISHED"}
    data = read_bvh(path)
    rate = fps / base
    assert data.frame_time == pytest.approx(1.0 / rate, rel=1e-6)
    want = joint_map.resample(joints, 20, rate)
    assert data.num_frames == len(want) == int((len(joints) - 1) / 20 * rate + 0.01) + 1
    root = data.world_positions()[:, data.names.index("pelvis")]
    np.testing.assert_allclose(root, want[:, 0], atol=1e-5)
    assert bpy.ops.motion.export_bvh(filepath=str(path), variation=index, fps=20) == {"FINISHED"}
    assert read_bvh(path).num_frames == len(joints)  # an explicit rate still wins


def test_a_saved_file_keeps_its_variations_without_the_cache(scene, tmp_path):
    from kinetext.addon import operators, results

    joints, contacts = walk(2.0)
    put_variation(joints, contacts)
    key = bpy.context.scene.kinetext.variation_list[0].key
    path = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    (operators.results_folder() / f"{key}.npz").unlink()  # another computer: no cache,
    results.clear_memory()  # no memory
    bpy.ops.wm.open_mainfile(filepath=str(path))
    _, clip = operators.variation(bpy.context, 0)
    np.testing.assert_array_equal(clip.joints, joints.astype(np.float32))
    np.testing.assert_array_equal(clip.foot_contacts, contacts.astype(np.float32))
    rig, _ = mixamo_on_its_toes()
    assert bpy.ops.motion.bake(armature=rig.name, variation=0) == {"FINISHED"}


# ---- issue 13.7: mirror, loop, speed ----------------------------------------------------------


def test_mirror_loop_and_speed_add_edited_variations_that_bake(scene):
    from kinetext.addon import operators

    joints, contacts = walk(4.0, turn=30.0)
    put_variation(joints, contacts)
    panel = bpy.context.scene.kinetext
    assert bpy.ops.motion.edit_variation(edit="MIRROR", variation=0) == {"FINISHED"}
    assert bpy.ops.motion.edit_variation(edit="LOOP", variation=0) == {"FINISHED"}
    panel.speed = 2.0
    assert bpy.ops.motion.edit_variation(edit="SPEED", variation=0) == {"FINISHED"}
    names = [v.name for v in panel.variation_list]
    assert names[1:] == [f"{names[0]} (mirrored left/right)",
                         f"{names[0]} ({clip_edit.loop(joints, None, 20).note})",
                         f"{names[0]} (2x speed)"]  # fmt: skip
    assert panel.active_variation == 3
    clips = [operators.variation(bpy.context, i)[1] for i in range(4)]
    np.testing.assert_allclose(clips[1].joints, features.mirror_joints(joints), atol=1e-6)
    np.testing.assert_array_equal(clips[1].foot_contacts, contacts[:, [2, 3, 0, 1]])
    local, _, _ = clip_edit.body_frames(clips[2].joints.astype(np.float64))
    np.testing.assert_allclose(local[-1], local[0], atol=1e-5)  # the loop meets its start
    assert clips[3].frames == (len(joints) - 1) // 2 + 1
    np.testing.assert_allclose(clips[3].joints, joints[::2], atol=1e-6)
    rig, _ = mixamo_on_its_toes()
    for i in (1, 2, 3):
        assert bpy.ops.motion.bake(armature=rig.name, variation=i) == {"FINISHED"}
    layout = draw(_variations_panel())
    edits = [c for c in layout.log if c[:3] == ("set", "motion.edit_variation", "edit")]
    assert [c[3] for c in edits] == ["MIRROR", "LOOP", "SPEED"] and "speed" in layout.props()


def _variations_panel():
    from kinetext.addon.panel import KINETEXT_PT_variations

    return KINETEXT_PT_variations


def test_bake_panel_shows_the_key_reduction_tolerances_when_on(scene):
    layout = draw(_bake_panel())
    assert "key_reduction" in layout.props() and "key_degrees" not in layout.props()
    bpy.context.scene.kinetext.key_reduction = True
    assert {"key_degrees", "key_cm"} <= set(draw(_bake_panel()).props())
