"""Retargeting maths without Blender: bone maps, rest-pose differences, twist, roots, feet.

Rigs are built here the way Blender stores them (armature space, Z up, bones along their
local +Y with any roll) and the tracks are played back with Blender's pose rule
pose_B = pose_parent @ rest_parent^-1 @ rest_B @ basis_B, written out independently.
"""

import numpy as np
import pytest

from engine.edit.foot_cleanup import LegChain, pin_feet, two_bone_ik
from engine.errors import MotionError
from engine.motion.quaternion import axis_angle_to_quat, qrot, quat_to_matrix
from engine.motion.rig_pose import canonical_rest_joints, forward_kinematics
from engine.motion.skeleton import CANONICAL_OFFSETS, FOOT_LEFT, FOOT_RIGHT, JOINT_NAMES, PARENTS
from engine.retarget.presets import (
    PRESETS,
    BoneMap,
    detect_preset,
    fuzzy_key,
    load_bone_map,
    resolve_bones,
    save_bone_map,
    suggest_bone_map,
)
from engine.retarget.rig import Y_UP_FROM_Z_UP, RestPose, retarget, rig_axes

ONE = np.array([1.0, 0.0, 0.0, 0.0])
TAIL_CHILD = {0: 3, 9: 12}  # pelvis and spine3 point at the spine, as most rigs draw them


def rest_joints(offsets=CANONICAL_OFFSETS) -> np.ndarray:
    """(22, 3) rest joints, Y up, the lowest joint (a toe) on the floor."""
    one = np.tile(ONE, (1, 22, 1))
    joints = forward_kinematics(one, np.array([[0, 0.95, 0]]), PARENTS, offsets)[0]
    return joints - np.array([0.0, joints[:, 1].min(), 0.0])


def t_pose(joints: np.ndarray) -> np.ndarray:
    """Arms (shoulder down) turned out to the sides: left along +X, right along -X."""
    out = joints.copy()
    for shoulder, chain, sign in ((16, (18, 20), 1.0), (17, (19, 21), -1.0)):
        turn = axis_angle_to_quat(np.array([0.0, 0.0, 1.0]), np.array(sign * np.pi / 2))
        for j in chain:
            out[j] = joints[shoulder] + qrot(turn, joints[j] - joints[shoulder])
    return out


def bone_frame(direction: np.ndarray, rng) -> np.ndarray:
    """A rest rotation with column 1 along the bone and a random roll."""
    y = direction / np.linalg.norm(direction)
    x = np.cross(y, rng.normal(size=3))
    x /= np.linalg.norm(x)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def make_rig(joints_y_up, names, object_matrix=None, scale=1.0, extra=(), seed=0):
    """RestPose of a rig whose bone for joint j is names[j] (None: no bone), heads at joints.

    joints_y_up: (22, 3) metres. extra: (name, parent name, head offset from parent head in
    metres Y up, "split" to insert the bone between the parent and its mapped child).
    """
    rng = np.random.default_rng(seed)
    object_matrix = np.eye(4) if object_matrix is None else object_matrix
    lin = object_matrix[:3, :3]
    to_arm = np.linalg.inv(lin) @ Y_UP_FROM_Z_UP.T * scale
    heads, parents, bone_names, dirs = [], [], [], []
    index = {}
    for j, name in enumerate(names):
        if name is None:
            continue
        p = PARENTS[j]
        while p >= 0 and names[p] is None:
            p = PARENTS[p]
        kids = [c for c, q in enumerate(PARENTS) if q == j and names[c] is not None]
        child = TAIL_CHILD.get(j, kids[0] if kids else None)
        direction = (
            joints_y_up[child] - joints_y_up[j]
            if child is not None
            else joints_y_up[j] - joints_y_up[PARENTS[j]]
        )
        index[name] = len(bone_names)
        bone_names.append(name)
        parents.append(-1 if p < 0 else index[names[p]])
        heads.append(to_arm @ joints_y_up[j])
        dirs.append(to_arm @ direction)
    for name, parent, offset, _ in extra:
        index[name] = len(bone_names)
        bone_names.append(name)
        parents.append(index[parent])
        heads.append(heads[index[parent]] + to_arm @ np.asarray(offset))
        dirs.append(to_arm @ np.asarray(offset))
    rotations = [bone_frame(d, rng) for d in dirs]
    for name, parent, _, split in extra:  # re-parent the mapped child under the inserted bone
        if split:
            child = next(b for b, p in enumerate(parents) if p == index[parent] and b < index[name])
            parents[child] = index[name]
    order = _topological(parents)
    remap = {old: new for new, old in enumerate(order)}
    return RestPose(
        names=[bone_names[b] for b in order],
        parents=[-1 if parents[b] < 0 else remap[parents[b]] for b in order],
        heads=np.array(heads)[order],
        rotations=np.array(rotations)[order],
        object_matrix=object_matrix,
    )


def _topological(parents):
    order, todo = [], [b for b, p in enumerate(parents) if p < 0]
    while todo:
        b = todo.pop(0)
        order.append(b)
        todo += [c for c, p in enumerate(parents) if p == b]
    return order


def play(rest: RestPose, tracks) -> np.ndarray:
    """(T, B, 3) world heads (Z up) by Blender's pose rule; untracked bones at rest."""
    col = {n: i for i, n in enumerate(tracks.bone_names)}
    num_frames, num_bones = tracks.num_frames, len(rest.names)
    rest_m = np.tile(np.eye(4), (num_bones, 1, 1))
    rest_m[:, :3, :3], rest_m[:, :3, 3] = rest.rotations, rest.heads
    pose = np.zeros((num_frames, num_bones, 4, 4))
    for b, name in enumerate(rest.names):
        basis = np.tile(np.eye(4), (num_frames, 1, 1))
        if name in col:
            basis[:, :3, :3] = quat_to_matrix(tracks.rotations[:, col[name]])
        if name in tracks.locations:
            basis[:, :3, 3] = tracks.locations[name]
        p = rest.parents[b]
        pose[:, b] = (
            rest_m[b] @ basis
            if p < 0
            else pose[:, p] @ np.linalg.inv(rest_m[p]) @ rest_m[b] @ basis
        )
    world = rest.object_matrix @ pose
    return world[:, :, :3, 3]


def motion(num_frames=40, seed=1, elbow=(0.5, 1.4), offsets=CANONICAL_OFFSETS) -> np.ndarray:
    """Rigid joints (T, 22, 3) Y up: random joint turns, knees and elbows bent, root moving."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(num_frames, 22, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    local = axis_angle_to_quat(axes, rng.uniform(0.0, 0.5, size=(num_frames, 22)))
    x_axis = np.array([1.0, 0.0, 0.0])
    for knee in (4, 5):
        local[:, knee] = axis_angle_to_quat(x_axis, rng.uniform(0.4, 1.2, num_frames))
    for el in (18, 19):
        local[:, el] = axis_angle_to_quat(x_axis, -rng.uniform(*elbow, num_frames))
    t = np.arange(num_frames)
    root = np.stack([0.03 * t, 0.9 + 0.03 * np.sin(t / 3), 0.02 * t], axis=1)
    return on_floor(forward_kinematics(local, root, PARENTS, offsets))


def on_floor(joints: np.ndarray) -> np.ndarray:
    """The clip moved up or down so its lowest foot clearance is 0, as HumanML3D floors it."""
    feet = list(FOOT_LEFT + FOOT_RIGHT)
    clearance = joints[:, feet, 1] - canonical_rest_joints()[feet, 1]
    return joints - np.array([0.0, clearance.min(), 0.0])


def z_up(p: np.ndarray) -> np.ndarray:
    return p @ Y_UP_FROM_Z_UP


FBX = np.diag([0.01, 0.01, 0.01, 1.0]) @ np.array(
    [[1, 0, 0, 0.4], [0, 0, -1, -0.2], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float
)
"""Object matrix of an FBX import: Y-up centimetre armature space turned to Z up, moved."""

MIXAMO_NAMES = ["mixamorig:" + PRESETS["mixamo"].bones[n] for n in JOINT_NAMES]


def test_canonical_rig_with_any_rolls_reproduces_the_joints_exactly():
    joints = motion()
    rest = make_rig(rest_joints(), list(JOINT_NAMES))
    tracks = retarget(joints, rest, PRESETS["smplx"])
    np.testing.assert_allclose(play(rest, tracks), z_up(joints), atol=1e-9)
    np.testing.assert_allclose(tracks.heads, z_up(joints), atol=1e-9)  # what it says it does


def test_mixamo_t_pose_in_fbx_space_puts_end_effectors_on_the_scaled_joints():
    """Different rest pose (T-pose), bone lengths x1.15, rolls, object transform, extra bones."""
    joints = motion()
    extra = [
        ("mixamorig:HeadTop_End", "mixamorig:Head", (0, 0.2, 0), False),
        ("mixamorig:LeftHandIndex1", "mixamorig:LeftHand", (0.1, 0, 0.02), False),
        ("mixamorig:LeftUpLegRoll", "mixamorig:LeftUpLeg", (0, -0.2, 0), True),
    ]
    rest = make_rig(t_pose(rest_joints() * 1.15), MIXAMO_NAMES, FBX, scale=1.0, extra=extra)
    tracks = retarget(joints, rest, detect_preset(rest.names), root_motion="hips")
    heads = play(rest, tracks)
    want = z_up(joints * 1.15) + FBX[:3, 3]  # the motion plays at the object's location
    for joint in ("head", "left_wrist", "right_wrist", "left_foot", "right_foot", "left_ankle"):
        bone = rest.names.index("mixamorig:" + PRESETS["mixamo"].bones[joint])
        np.testing.assert_allclose(heads[:, bone], want[:, JOINT_NAMES.index(joint)], atol=1e-6)
    assert "mixamorig:LeftUpLegRoll" in tracks.bone_names  # keyed at rest between mapped bones
    np.testing.assert_allclose(
        tracks.rotations[:, tracks.bone_names.index("mixamorig:LeftUpLegRoll")],
        np.tile(ONE, (len(joints), 1)),
        atol=1e-9,
    )


def delta_rotation(rest: RestPose, tracks, name: str) -> np.ndarray:
    """(T, 3, 3) rotation taking the bone from rest to pose: product of rest @ basis @ rest^T."""
    col = {n: i for i, n in enumerate(tracks.bone_names)}
    chain, b = [], rest.names.index(name)
    while b >= 0:
        chain.insert(0, b)
        b = rest.parents[b]
    out = np.eye(3)[None]
    for b in chain:
        basis = quat_to_matrix(tracks.rotations[:, col[rest.names[b]]])
        out = out @ rest.rotations[b] @ basis @ rest.rotations[b].T
    return out


def test_twist_from_bend_plane_turns_a_t_posed_hand_like_the_canonical_one():
    """A point on the hand (the thumb, forward of the wrist) lands where it does on the
    canonical skeleton while the elbow is bent: the T-pose's elbow axis is its own."""
    joints = motion(elbow=(0.6, 1.5))
    thumb = z_up(np.array([0.0, 0.0, 0.05]))
    placed = []
    for rest in (
        make_rig(rest_joints(), list(JOINT_NAMES)),
        make_rig(t_pose(rest_joints()), list(JOINT_NAMES), seed=3),
    ):
        tracks = retarget(joints, rest, PRESETS["smplx"])
        placed.append(delta_rotation(rest, tracks, "left_wrist") @ thumb)
    np.testing.assert_allclose(placed[1], placed[0], atol=1e-6)
    assert np.abs(placed[0] - thumb).max() > 0.02  # the hand really turned


def test_other_bone_lengths_keep_every_bone_direction_and_scale_the_root_by_leg_length():
    rng = np.random.default_rng(5)
    lengths = rng.uniform(0.7, 1.3, size=(22, 1))
    rest = make_rig(rest_joints(CANONICAL_OFFSETS * lengths), list(JOINT_NAMES))
    joints = motion()
    tracks = retarget(joints, rest, PRESETS["smplx"])
    heads = play(rest, tracks)
    ratio = (
        lengths[5] * np.linalg.norm(CANONICAL_OFFSETS[5])
        + lengths[8] * np.linalg.norm(CANONICAL_OFFSETS[8])
    ) / (np.linalg.norm(CANONICAL_OFFSETS[5]) + np.linalg.norm(CANONICAL_OFFSETS[8]))
    want = z_up(joints[:, 0] * ratio)
    np.testing.assert_allclose(heads[:, 0, :2], want[:, :2], atol=1e-9)  # floor path scaled
    shift = heads[:, 0, 2] - want[:, 2]  # height scaled too, then one shift onto the rig's floor
    assert np.ptp(shift) < 1e-9 and abs(shift[0]) > 1e-3
    for j, p in enumerate(PARENTS):
        if p < 0 or p in (0, 9):  # branching joints are fitted, not exact
            continue
        want = z_up(joints[:, j] - joints[:, p])
        got = heads[:, j] - heads[:, p]
        cos = (want * got).sum(-1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.min() > 1 - 1e-9, JOINT_NAMES[j]
        np.testing.assert_allclose(
            np.linalg.norm(got, axis=-1), np.linalg.norm(rest.heads[j] - rest.heads[p])
        )


def test_a_map_without_a_spine_bone_poses_the_rest_of_the_rig():
    """Bandai Namco naming has no bone at spine2: the chest hangs from the spine directly."""
    names = [
        PRESETS["bandai_namco"].bones[n] if n in PRESETS["bandai_namco"].bones else None
        for n in JOINT_NAMES
    ]
    rest = make_rig(rest_joints(), names)
    joints = motion()
    tracks = retarget(joints, rest, detect_preset(rest.names))
    heads = play(rest, tracks)
    for joint in ("left_foot", "right_foot", "left_knee"):  # the legs are whole chains
        bone = rest.names.index(PRESETS["bandai_namco"].bones[joint])
        np.testing.assert_allclose(
            heads[:, bone], z_up(joints[:, JOINT_NAMES.index(joint)]), atol=1e-9
        )
    chest, spine = rest.names.index("Chest"), rest.names.index("Spine")
    want = z_up(joints[:, 9] - joints[:, 3])
    got = heads[:, chest] - heads[:, spine]
    cos = (want * got).sum(-1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
    assert cos.min() > 1 - 1e-9


def unreal_rig():
    names = [PRESETS["unreal"].bones[n] for n in JOINT_NAMES]
    rest = make_rig(rest_joints(), names)
    # A root bone on the floor above the pelvis, as the mannequin has.
    return RestPose(
        names=["root"] + rest.names,
        parents=[-1] + [p + 1 for p in rest.parents],
        heads=np.concatenate([[[0.0, 0.0, 0.0]], rest.heads]),
        rotations=np.concatenate([[np.eye(3)], rest.rotations]),
    )


def test_root_motion_modes_move_the_same_body_from_different_bones():
    joints = motion()
    rest = unreal_rig()
    hips = retarget(joints, rest, PRESETS["unreal"], root_motion="hips")
    root = retarget(joints, rest, PRESETS["unreal"], root_motion="root_bone")
    in_place = retarget(joints, rest, PRESETS["unreal"], root_motion="in_place")
    body = slice(1, None)  # every bone but the root, which only moves in root_bone mode
    np.testing.assert_allclose(play(rest, root)[:, body], play(rest, hips)[:, body], atol=1e-9)
    # root_bone: the root carries the floor path, the pelvis only what is left (its height).
    floor = z_up(joints[:, 0] * np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(root.locations["root"], floor, atol=1e-9)  # root rest = world axes
    assert set(hips.locations) == {"pelvis"}
    # in place: the pelvis keeps its height, not its path over the floor.
    pelvis = play(rest, in_place)[:, rest.names.index("pelvis")]
    np.testing.assert_allclose(pelvis[:, :2], 0.0, atol=1e-9)
    np.testing.assert_allclose(pelvis[:, 2], z_up(joints[:, 0])[:, 2], atol=1e-9)


def test_root_bone_mode_without_a_bone_above_the_hips_says_so():
    rest = make_rig(rest_joints(), list(JOINT_NAMES))
    with pytest.raises(MotionError, match="above the hips"):
        retarget(motion(4), rest, PRESETS["smplx"], root_motion="root_bone")


def test_quaternion_signs_stay_continuous_through_full_turns():
    t = np.linspace(0, 4 * np.pi, 80)
    spin = axis_angle_to_quat(np.array([0.0, 1.0, 0.0]), t)  # two full turns about up
    local = np.tile(ONE, (80, 22, 1))
    local[:, 0] = spin
    joints = forward_kinematics(local, np.tile([0, 0.9, 0], (80, 1)), PARENTS, CANONICAL_OFFSETS)
    rest = make_rig(rest_joints(), list(JOINT_NAMES))
    tracks = retarget(joints, rest, PRESETS["smplx"])
    dots = (tracks.rotations[1:] * tracks.rotations[:-1]).sum(-1)
    assert dots.min() > 0.9


def test_missing_mapped_bones_are_listed():
    names = [n for n in MIXAMO_NAMES if not n.endswith(("LeftHand", "RightToeBase"))]
    with pytest.raises(MotionError) as err:
        resolve_bones(PRESETS["mixamo"], names)
    assert "LeftHand (left_wrist)" in str(err.value) and "RightToeBase (right_foot)" in str(
        err.value
    )
    rest = make_rig(rest_joints(), [n if n in names else None for n in MIXAMO_NAMES])
    with pytest.raises(MotionError, match="LeftHand"):
        retarget(motion(4), rest, PRESETS["mixamo"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_is_detected_from_its_bone_names(preset):
    names = list(PRESETS[preset].bones.values()) + ["Camera_target", "prop"]
    if preset == "mixamo":
        names = ["mixamorig1:" + n for n in names]
    assert detect_preset(names).name == preset


def _side_suffix(name: str) -> str:
    """Mixamo's "LeftUpLeg" written "UpLeg.L" (Blender's own side convention)."""
    for side, suffix in (("Left", ".L"), ("Right", ".R")):
        if name.startswith(side):
            return name[len(side) :] + suffix
    return name


NAMING_SCHEMES = {  # how real rigs spell the same skeleton, and the preset they are
    "mixamo, second character's prefix": ("mixamo", lambda n: "mixamorig2:" + n),
    "mixamo, colon flattened to _": ("mixamo", lambda n: "mixamorig_" + n),
    "mixamo, sides as .L/.R": ("mixamo", _side_suffix),
    "mixamo, lower snake case": ("mixamo", lambda n: _side_suffix(n).lower().replace(".", "_")),
    "unreal, capitalised": ("unreal", lambda n: n.upper()),
    "bandai, sides first": ("bandai_namco", lambda n: "_".join(n.rsplit("_", 1)[::-1])),
    "biped, Bip001": ("biped", lambda n: n.replace("Bip01", "Bip001")),
    "biped, flattened": ("biped", lambda n: n.replace(" ", "_")),
}


@pytest.mark.parametrize("scheme", sorted(NAMING_SCHEMES))
def test_common_naming_schemes_are_detected_loosely_bone_for_bone(scheme):
    preset, spell = NAMING_SCHEMES[scheme]
    bones = PRESETS[preset].bones
    names = [spell(b) for b in bones.values()] + ["Camera_target", spell(bones["head"]) + "_end"]
    detected = detect_preset(names)
    assert detected.name == preset
    assert dict(detected.bones) == {j: spell(b) for j, b in bones.items()}
    assert resolve_bones(PRESETS[preset], names) == dict(detected.bones)


def test_fuzzy_keys_read_sides_prefixes_case_and_numbers():
    for name in ("mixamorig1:LeftUpLeg", "UpLeg.L", "upleg_l", "L_UpLeg", "Left Up Leg"):
        assert fuzzy_key(name) == "l:upleg", name
    assert fuzzy_key("Bip01 R Calf") == fuzzy_key("calf_r") == "r:calf"
    assert fuzzy_key("spine_01") == fuzzy_key("Spine1") != fuzzy_key("Spine")
    assert fuzzy_key("DEF-thigh.L") != fuzzy_key("DEF-thigh.L.001")  # a twist bone stays apart
    assert fuzzy_key("Bip01") == ""


def test_detection_prefers_a_preset_whose_bones_can_take_keys():
    """A Rigify rig has both deform (DEF-) and FK control bones; constrained DEF bones
    would not show keys, so its FK controls are chosen."""
    names = list(PRESETS["rigify"].bones.values()) + list(PRESETS["rigify_fk"].bones.values())
    assert detect_preset(names).name == "rigify"  # nothing blocked: the deform bones
    blocked = set(PRESETS["rigify"].bones.values())
    assert detect_preset(names, blocked).name == "rigify_fk"


def test_detection_failure_names_the_closest_preset_and_what_it_misses():
    names = [n for n in PRESETS["unreal"].bones.values() if n not in ("hand_l", "ball_r")]
    with pytest.raises(MotionError, match="'unreal', misses 2 bone.*ball_r, hand_l"):
        detect_preset(names)


def test_a_suggested_map_keeps_the_closest_presets_bones_the_rig_has():
    names = [n for n in MIXAMO_NAMES if not n.endswith(("LeftHand", "Neck"))] + ["mixamorig:Wing"]
    suggested = suggest_bone_map(names, "my mixamo")
    assert suggested.bones == {
        j: b
        for j, b in zip(JOINT_NAMES, MIXAMO_NAMES, strict=True)
        if j not in ("left_wrist", "neck")
    }
    with pytest.raises(MotionError, match="pelvis"):
        suggest_bone_map(["Bone", "Bone.001"], "nothing")


def test_user_maps_round_trip_through_json(tmp_path):
    custom = BoneMap(
        "my rig", {"pelvis": "Bassin", "spine1": "Dos", "left_hip": "Cuisse.G"}, root="Racine"
    )
    save_bone_map(custom, tmp_path / "rig.json")
    assert load_bone_map(tmp_path / "rig.json") == custom


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a JSON bone map"),
        ('{"bones": {"pelvis": "a", "elbow": "b"}}', "unknown joints: elbow"),
        ('{"bones": {"spine1": "a"}}', "must map pelvis"),
        ('{"bones": {"pelvis": "a", "spine1": "A"}}', "gives bone 'A' to both pelvis and spine1"),
        ('{"bones": {"pelvis": "a"}, "colour": 1}', "unknown keys.*colour"),
    ],
)
def test_bad_user_maps_are_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(MotionError, match=message):
        load_bone_map(tmp_path / "bad.json")


def turn_about_up(degrees: float, location=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Object matrix of an armature turned about Blender's Z and moved."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    out = np.eye(4)
    out[:2, :2] = [[c, -s], [s, c]]
    out[:3, 3] = location
    return out


@pytest.mark.parametrize("object_matrix", [turn_about_up(90, (2, 1, 0)), turn_about_up(-135)])
def test_a_turned_and_moved_rig_walks_along_its_own_forward_from_its_own_origin(object_matrix):
    joints = motion()
    upright = make_rig(rest_joints(), MIXAMO_NAMES)  # armature space: Z up, facing -Y
    turned = make_rig(rest_joints(), MIXAMO_NAMES)
    turned.object_matrix = object_matrix
    heads = play(turned, retarget(joints, turned, PRESETS["mixamo"]))
    in_place = play(upright, retarget(joints, upright, PRESETS["mixamo"]))
    np.testing.assert_allclose(heads, in_place @ object_matrix[:3, :3].T + object_matrix[:3, 3],
                               atol=1e-9)  # fmt: skip


def test_rig_axes_come_from_the_rest_pose_and_snap_to_the_armature_axes():
    rest = rest_joints()
    rest[15] += [0.0, 0.0, 0.05]  # a head leaning 10 degrees forward still means up = Y
    fbx_heads = rest * 100.0  # Y-up armature space (an FBX import)
    axes = rig_axes(fbx_heads, list(range(22)))
    np.testing.assert_allclose(axes, np.eye(3), atol=1e-12)  # left X, up Y, forward Z
    blender = z_up(rest)
    np.testing.assert_allclose(rig_axes(blender, list(range(22))), Y_UP_FROM_Z_UP, atol=1e-12)
    assert rig_axes(blender[[0]], [0]) is None  # only a pelvis: nothing to tell the axes by


def planted_walk(num_frames=60):
    """A grounded stepping clip (T, 22, 3) and its contacts (T, 4): each foot planted while
    the other swings, the planted toe on y = 0."""
    t = np.arange(num_frames) / 20.0
    local = np.tile(ONE, (num_frames, 22, 1))
    x = np.array([1.0, 0.0, 0.0])
    swing = 0.45 * np.sin(2 * np.pi * t)  # hips swing in opposition
    local[:, 1] = axis_angle_to_quat(x, -swing)
    local[:, 2] = axis_angle_to_quat(x, swing)
    local[:, 4] = axis_angle_to_quat(x, 0.5 * np.clip(swing, 0, None))  # the forward leg bends
    local[:, 5] = axis_angle_to_quat(x, 0.5 * np.clip(-swing, 0, None))
    local[:, 7] = axis_angle_to_quat(x, swing - 0.5 * np.clip(swing, 0, None))  # feet flat
    local[:, 8] = axis_angle_to_quat(x, -swing - 0.5 * np.clip(-swing, 0, None))
    root = np.tile([0.0, 0.9, 0.0], (num_frames, 1))
    joints = forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)
    feet = list(FOOT_LEFT + FOOT_RIGHT)
    clearance = joints[:, feet, 1] - canonical_rest_joints()[feet, 1]
    joints[..., 1] -= clearance.min(axis=1)[:, None]  # the lower foot on the floor each frame
    low_left = clearance[:, :2].min(1) <= clearance[:, 2:].min(1)
    toe = np.where(low_left[:, None], joints[:, FOOT_LEFT[1]], joints[:, FOOT_RIGHT[1]])
    step = np.diff(toe, axis=0) * [1.0, 0.0, 1.0]  # the planted toe would slide by this ...
    step = np.where(low_left[1:, None] == low_left[:-1, None], step, 0.0)
    joints += np.concatenate([[[0.0, 0.0, 0.0]], -np.cumsum(step, axis=0)])[:, None]  # ... not
    contacts = np.stack([low_left, low_left, ~low_left, ~low_left], axis=1).astype(float)
    return joints, contacts


@pytest.mark.parametrize("lift", [0.0, 0.035, -0.02])  # on its floor, floating, sinking
def test_planted_feet_stand_at_the_rigs_own_rest_toe_height(lift):
    """A rig with bigger feet and longer shins standing 2 cm up (its toe joints at 2 cm)."""
    lengths = np.ones(22)
    lengths[[7, 8, 10, 11]] = (1.15, 1.15, 1.4, 1.4)  # longer shins, bigger feet
    rig_rest = rest_joints(CANONICAL_OFFSETS * lengths[:, None]) + [0.0, 0.02, 0.0]
    rest = make_rig(rig_rest, MIXAMO_NAMES)
    joints, contacts = planted_walk()
    joints = joints + [0.0, lift, 0.0]
    heads = play(rest, retarget(joints, rest, PRESETS["mixamo"], contacts=contacts))
    toes = heads[:, [10, 11], 2] - rig_rest[[10, 11], 1]  # Blender Z: over the rest height
    planted = contacts[:, [1, 3]] > 0.5
    np.testing.assert_allclose(toes[planted], 0.0, atol=0.005)
    assert toes.min() > -0.005  # no foot sinks through the floor


def test_mirrored_armature_objects_are_refused():
    rest = make_rig(rest_joints(), list(JOINT_NAMES))
    rest.object_matrix = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(MotionError, match="mirrored"):
        retarget(motion(4), rest, PRESETS["smplx"])


# ----------------------------------------------------------------------------- feet


def test_two_bone_ik_reaches_the_target_and_keeps_the_bone_lengths():
    rng = np.random.default_rng(2)
    hip = rng.normal(size=(50, 3))
    knee = hip + rng.normal(size=(50, 3)) * 0.4
    ankle = knee + rng.normal(size=(50, 3)) * 0.4
    target = hip + rng.normal(size=(50, 3)) * 0.3
    new_knee, new_ankle = two_bone_ik(hip, knee, ankle, target)
    thigh, shin = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(ankle - knee, axis=-1)
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=-1), thigh)
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), shin)
    reachable = np.linalg.norm(target - hip, axis=-1) < thigh + shin
    reachable &= np.linalg.norm(target - hip, axis=-1) > np.abs(thigh - shin)
    np.testing.assert_allclose(new_ankle[reachable], target[reachable], atol=1e-9)
    # Asked for the ankle where it already is, the knee does not move either.
    same_knee, _ = two_bone_ik(hip, knee, ankle, ankle)
    np.testing.assert_allclose(same_knee, knee, atol=1e-9)


def sliding_walk(num_frames=30):
    """Joints with the left foot sliding 1 cm a frame while its contact says planted."""
    local = np.tile(ONE, (num_frames, 22, 1))
    local[:, 4] = axis_angle_to_quat(np.array([1.0, 0.0, 0.0]), np.full(num_frames, 0.5))
    root = np.stack(
        [np.zeros(num_frames), np.full(num_frames, 0.85), 0.01 * np.arange(num_frames)], 1
    )
    joints = forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)
    contacts = np.zeros((num_frames, 4))
    contacts[5:20, :2] = 1.0  # left ankle and toe planted
    return joints, contacts


def test_pin_feet_holds_a_planted_ankle_and_eases_back():
    joints, contacts = sliding_walk()
    legs = [LegChain(1, 4, 7, 10, 0, 1)]
    pinned = pin_feet(joints, contacts, legs, blend=3)
    np.testing.assert_allclose(pinned[5:20, 7], pinned[5:6, 7].repeat(15, 0), atol=1e-9)
    np.testing.assert_allclose(pinned[:1], joints[:1], atol=1e-9)  # far from the run: untouched
    np.testing.assert_allclose(pinned[24:], joints[24:], atol=1e-9)
    for a, b in ((1, 4), (4, 7)):
        np.testing.assert_allclose(
            np.linalg.norm(pinned[:, b] - pinned[:, a], axis=-1),
            np.linalg.norm(CANONICAL_OFFSETS[b]),
        )
    np.testing.assert_allclose(pinned[:, 1], joints[:, 1])  # the hip path is kept


@pytest.mark.parametrize(("lift", "on_floor"), [(0.03, True), (-0.02, True), (0.25, False)])
def test_a_planted_foot_near_the_floor_is_put_on_it_one_on_a_step_keeps_its_height(lift, on_floor):
    joints, contacts = sliding_walk()
    joints = joints + [0.0, lift, 0.0]  # hovering, sinking, or standing on a 25 cm step
    floor = float(canonical_rest_joints()[10, 1])
    legs = [LegChain(1, 4, 7, 10, 0, 1, ankle_floor=floor, toe_floor=floor)]
    pinned = pin_feet(joints, contacts, legs, blend=3)
    held = pinned[5:20, 10, 1]  # the planted toe's height
    want = floor if on_floor else joints[5:20, 10, 1].mean()
    np.testing.assert_allclose(held, want, atol=1e-9)
    np.testing.assert_allclose(  # the foot keeps its length
        np.linalg.norm(pinned[:, 10] - pinned[:, 7], axis=-1),
        np.linalg.norm(CANONICAL_OFFSETS[10]),
    )


def test_retarget_with_contacts_keeps_the_rigs_planted_foot_still():
    joints, contacts = sliding_walk()
    rest = make_rig(t_pose(rest_joints() * 1.1), MIXAMO_NAMES, FBX)
    ankle = rest.names.index("mixamorig:LeftFoot")
    loose = play(rest, retarget(joints, rest, PRESETS["mixamo"]))[5:20, ankle]
    clean = play(rest, retarget(joints, rest, PRESETS["mixamo"], contacts=contacts[:-1]))[
        5:20, ankle
    ]
    assert np.ptp(loose, axis=0).max() > 0.1  # it slid 15 cm
    assert np.ptp(clean, axis=0).max() < 1e-6
    skipped = retarget(joints, rest, PRESETS["mixamo"], contacts=contacts, root_motion="in_place")
    assert any("feet must slide" in n for n in skipped.notes)
