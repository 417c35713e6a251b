"""Joint maps to the canonical skeleton, resampling, and BVH files to canonical joints."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.errors import MotionError
from engine.io.bvh import canonical_bvh, write_bvh
from engine.motion.rig_pose import forward_kinematics
from engine.motion.skeleton import CANONICAL_OFFSETS, JOINT_NAMES, PARENTS
from engine.retarget.joint_map import (
    BANDAI_NAMCO,
    INPUT_PRESETS,
    JOINT_MAPS,
    SMPL,
    JointMap,
    bvh_to_canonical,
    detect_joint_map,
    load_joint_map,
    read_canonical,
    resample,
    to_canonical,
    user_joint_maps,
)
from engine.retarget.presets import PRESETS

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
BANDAI_TAR = SHARED / "data" / "bandai-namco-motion.tar.xz"
BANDAI_NAMES = [
    "joint_Root", "Hips", "Spine", "Chest", "Neck", "Head", "Shoulder_L", "UpperArm_L",
    "LowerArm_L", "Hand_L", "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R", "UpperLeg_L",
    "LowerLeg_L", "Foot_L", "Toes_L", "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R",
]  # fmt: skip


def test_detects_the_map_from_joint_names():
    assert detect_joint_map(BANDAI_NAMES) is BANDAI_NAMCO
    assert detect_joint_map(list(JOINT_NAMES)) is SMPL
    assert detect_joint_map(["rig:" + n.upper() for n in BANDAI_NAMES]) is BANDAI_NAMCO
    assert set(JOINT_MAPS) == {"bandai_namco", "smpl", *INPUT_PRESETS}


def test_unknown_skeleton_is_one_short_line_with_the_closest_map_and_the_flag():
    names = [n for n in BANDAI_NAMES if n != "Chest"] + ["Tail"] + [f"Finger{i}" for i in range(80)]
    with pytest.raises(MotionError) as info:
        detect_joint_map(names)
    message = str(info.value)
    assert "closest 'bandai_namco' lacks Chest." in message and "--map-file" in message
    assert len(message) < 250 and "\n" not in message  # not 2 KB of every map's joints


@pytest.mark.parametrize("name", sorted(INPUT_PRESETS))
def test_retargeting_presets_read_bvh_with_their_own_bone_names(name):
    """One naming per rig: the input map reads exactly the preset's bones (with its blends),
    and a skeleton of those bones (plus fingers, in a namespace) is detected as that map."""
    preset = PRESETS[name]
    joint_map = JOINT_MAPS[name]
    assert set(joint_map.source_names()) == set(preset.bones.values())
    names = ["ns:" + b for b in preset.bones.values()] + ["ns:Finger1", "ns:Finger2"]
    found = detect_joint_map(names)
    assert found.joints == joint_map.joints  # smplx's names are smpl's: either is the same map
    weights = joint_map.weights(names)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    for j, joint in enumerate(JOINT_NAMES):
        if joint not in INPUT_PRESETS[name].get("blends", {}):
            assert weights[j, names.index("ns:" + preset.bones[joint])] == 1.0


CC_NAMES = dict(PRESETS["character_creator"].bones)


def character_creator_bvh(joints: np.ndarray, fps: float = 60.0):
    """A tiny CC3/CC4 export: canonical joints as a BVH in centimetres with the joints named
    CC_Base_* (as Character Creator and iClone write them)."""
    bvh = canonical_bvh(joints, fps=fps, scale=100.0)
    names = [CC_NAMES[n] for n in bvh.names]
    return type(bvh)(names, bvh.parents, bvh.offsets, bvh.channels, bvh.frame_time,
                     bvh.motion, bvh.end_sites)  # fmt: skip


def test_a_character_creator_bvh_is_detected_and_its_torso_moved_to_smpl_heights(tmp_path):
    from engine.motion.demo_clip import walk_cycle

    path, same = tmp_path / "cc.bvh", tmp_path / "smpl.bvh"
    write_bvh(path, character_creator_bvh(walk_cycle(1.0), fps=20.0))
    write_bvh(same, canonical_bvh(walk_cycle(1.0), fps=20.0, scale=100.0))  # SMPL names
    clip = read_canonical(path)
    assert clip.joint_map.name == "character_creator" and clip.units.to_metres == 0.01
    at = dict(zip(JOINT_NAMES, read_canonical(same).joints.transpose(1, 0, 2), strict=True))
    pelvis = 0.2 * at["pelvis"] + 0.8 * at["spine1"]
    spine3 = 0.72 * at["spine3"] + 0.28 * at["neck"]
    np.testing.assert_allclose(clip.joints[:, 0], pelvis, atol=1e-9)
    np.testing.assert_allclose(clip.joints[:, 9], spine3, atol=1e-9)
    for limb in ("left_knee", "right_foot", "left_collar", "right_wrist", "head"):
        np.testing.assert_allclose(clip.joints[:, JOINT_NAMES.index(limb)], at[limb], atol=1e-9)


def test_an_added_t_pose_first_frame_is_dropped_only_when_asked(tmp_path):
    from engine.motion.demo_clip import walk_cycle

    joints = walk_cycle(1.0)
    posed = np.concatenate([joints[:1] + np.array([3.0, 0.0, 0.0]), joints])  # 3 m away
    path = tmp_path / "posed.bvh"
    write_bvh(path, canonical_bvh(posed, fps=20))
    kept = read_canonical(path, "smpl")
    dropped = read_canonical(path, "smpl", drop_added_first_frame=True)
    assert not kept.dropped_first_frame and len(kept.joints) == len(joints) + 1
    assert dropped.dropped_first_frame
    np.testing.assert_allclose(dropped.joints, kept.joints[1:], atol=1e-12)
    write_bvh(path, canonical_bvh(joints, fps=20))  # an ordinary first frame stays
    assert not read_canonical(path, "smpl", drop_added_first_frame=True).dropped_first_frame


def test_json_joint_maps_with_blends_and_an_addon_bone_map_read_the_same(tmp_path):
    from engine.retarget.presets import save_bone_map

    save_bone_map(PRESETS["character_creator"], tmp_path / "saved_in_blender.json")
    plain = load_joint_map(tmp_path / "saved_in_blender.json")  # the add-on's format
    assert set(plain.source_names()) == set(JOINT_MAPS["character_creator"].source_names())
    own = {j: f"bone_{j}" for j in JOINT_NAMES if j not in ("spine2", "spine3")}
    own["pelvis"] = {"bone_pelvis": 0.25, "bone_spine1": 0.75}
    (tmp_path / "studio.json").write_text(json.dumps({"name": "studio", "bones": own}))
    studio = load_joint_map(tmp_path / "studio.json")
    weights = studio.weights([f"bone_{j}" for j in JOINT_NAMES if j not in ("spine2", "spine3")])
    assert weights[0, 0] == 0.25 and weights[0, 3] == 0.75  # the pelvis blend (3: spine1)
    spine2 = dict(studio.joints[6])
    assert spine2 == {"bone_spine1": 0.5, "bone_neck": 0.5}
    assert user_joint_maps(tmp_path)[1].name == "studio"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not a JSON joint map"),
        ('{"bones": {"pelvis": "a", "elbow": "b"}}', "unknown keys elbow"),
        ('{"bones": {"pelvis": 3}}', '"pelvis" must be a joint name'),
        ('{"bones": {"pelvis": "hips"}}', "names no joint for left_hip"),
        ('{"bones": {"pelvis": {"a": 0.5, "b": 0.4}}}', "weights for pelvis do not sum to 1"),
    ],
)
def test_a_broken_json_map_names_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "mine.json"
    path.write_text(text)
    with pytest.raises(MotionError, match="mine.json") as info:
        load_joint_map(path)
    assert problem in str(info.value)


def test_bandai_positions_map_with_blends_and_units():
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(3, len(BANDAI_NAMES), 3)) * 100  # cm
    got = to_canonical(positions, BANDAI_NAMES, BANDAI_NAMCO)
    at = {n: positions[:, i] * 0.01 for i, n in enumerate(BANDAI_NAMES)}
    np.testing.assert_allclose(got[:, 0], 0.7 * at["Hips"] + 0.3 * at["Spine"])
    np.testing.assert_allclose(got[:, 3], 0.25 * at["Hips"] + 0.75 * at["Spine"])
    np.testing.assert_allclose(got[:, 6], 0.3 * at["Spine"] + 0.7 * at["Chest"])
    np.testing.assert_allclose(got[:, 9], at["Chest"])
    np.testing.assert_allclose(got[:, 10], at["Toes_L"])  # SMPL's foot is the toe base
    np.testing.assert_allclose(got[:, 21], at["Hand_R"])


def test_z_up_sources_are_turned_to_y_up():
    z_up = JointMap("z_up", "test", tuple(JOINT_NAMES), units_to_metres=1.0, up_axis="Z")
    positions = np.zeros((1, 22, 3))
    positions[0, 15] = [0.0, -1.0, 2.0]  # head 2 up, 1 forward (Blender faces -Y)
    np.testing.assert_allclose(to_canonical(positions, JOINT_NAMES, z_up)[0, 15], [0, 2, 1])


def test_joint_map_rejects_bad_weights():
    joints = list(JOINT_NAMES)
    joints[0] = (("a", 0.5), ("b", 0.4))
    with pytest.raises(ValueError, match="pelvis"):
        JointMap("bad", "weights sum to 0.9", tuple(joints))


def test_resample_of_a_linear_trajectory_is_exact():
    start, velocity = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])  # per second
    src = start + velocity * (np.arange(31) / 30.0)[:, None, None]  # (31, 1, 3): 1 s at 30 fps
    out = resample(src.repeat(2, axis=1), 30, 20)
    assert out.shape == (21, 2, 3)
    expected = start + velocity * (np.arange(21) / 20.0)[:, None, None]
    np.testing.assert_allclose(out, expected.repeat(2, axis=1), atol=1e-12)
    np.testing.assert_allclose(resample(src, 30, 30), src)
    assert resample(src[:16], 30, 20).shape[0] == 11  # 0.5 s: frames at 0, 0.05 .. 0.5


def test_canonical_bvh_file_comes_back_as_the_same_joints(tmp_path):
    rng = np.random.default_rng(1)
    local = rng.normal(size=(30, 22, 4))
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    joints = forward_kinematics(local, rng.normal(size=(30, 3)), PARENTS, CANONICAL_OFFSETS)
    path = tmp_path / "gen.bvh"
    write_bvh(path, canonical_bvh(joints, fps=20))
    np.testing.assert_allclose(bvh_to_canonical(path), joints, atol=1e-5)
    write_bvh(path, canonical_bvh(joints, fps=40))  # twice the rate: every other frame back
    np.testing.assert_allclose(bvh_to_canonical(path, "smpl"), joints[::2], atol=1e-5)
    with pytest.raises(MotionError, match="bandai_namco"):
        bvh_to_canonical(path, "nope")
    with pytest.raises(MotionError, match="gen.bvh"):
        bvh_to_canonical(path, "bandai_namco")


def first_bandai_clip(tmp_path: Path) -> Path:
    """The archive's first BVH (cheap: xz decompresses only up to it), in tmp_path."""
    if not BANDAI_TAR.exists():
        pytest.skip("../shared data not present")
    with tarfile.open(BANDAI_TAR, "r:xz") as archive:
        for member in archive:
            if member.name.endswith(".bvh"):
                target = tmp_path / Path(member.name).name
                target.write_bytes(archive.extractfile(member).read())
                return target
    pytest.fail(f"no BVH in {BANDAI_TAR}")


def test_real_bandai_clip_maps_to_a_plausible_body(tmp_path):
    joints = bvh_to_canonical(first_bandai_clip(tmp_path))  # (T, 22, 3) metres
    assert joints.shape == (219, 22, 3)  # 328 frames at 30 fps = 10.9 s -> 219 at 20 fps
    assert 1.3 < joints[:, 15, 1].mean() < 1.7  # head joint: a 1.5-1.6 m performer
    toes = joints[:, [10, 11], 1].min(axis=0)
    assert (np.abs(toes - 0.03) < 0.03).all()  # toe bases a few cm above the floor
    hips_mid = (joints[:, 1] + joints[:, 2]) / 2
    assert np.abs(joints[:, 0, [0, 2]] - hips_mid[:, [0, 2]]).max() < 0.03
    assert (joints[:, 0, 1] > hips_mid[:, 1]).all()  # SMPL's pelvis sits above the hip joints
    left = joints[:, 1] - joints[:, 2] + joints[:, 16] - joints[:, 17]
    forward = np.cross(left, [0.0, 1.0, 0.0])  # facing from the hip and shoulder lines
    toes_ahead = ((joints[:, 10] - joints[:, 7]) * forward).sum(-1)
    assert (toes_ahead > 0).mean() > 0.95  # left and right are not swapped


def turned_bvh(bvh, turn: np.ndarray):
    """The same clip with its whole skeleton turned by the rotation matrix ``turn``: rest
    offsets, root path and every joint's local rotation (conjugated), as a DCC exporting
    with another up axis writes it."""
    from engine.motion.quaternion import euler_to_quat, matrix_to_quat, qinv, qmul, quat_to_euler

    q = matrix_to_quat(turn)
    frames = len(bvh.motion)
    euler = bvh.motion[:, 3:].reshape(frames, 22, 3)  # canonical_bvh: ZXY degrees, root first
    local = euler_to_quat(euler, "ZXY")
    turn_q, back = np.broadcast_to(q, local.shape), np.broadcast_to(qinv(q), local.shape)
    local = qmul(qmul(turn_q, local), back)
    motion = np.concatenate(
        [bvh.motion[:, :3] @ turn.T, quat_to_euler(local, "ZXY").reshape(frames, -1)], axis=1
    )
    ends = {j: turn @ v for j, v in bvh.end_sites.items()}
    return type(bvh)(bvh.names, bvh.parents, bvh.offsets @ turn.T, bvh.channels,
                     bvh.frame_time, motion, ends)  # fmt: skip


def test_a_z_up_export_comes_back_standing_and_sideways_is_refused(tmp_path, capsys):
    from engine.cli import main
    from engine.motion.demo_clip import walk_cycle

    joints = walk_cycle(2.0)
    y_up = canonical_bvh(joints)
    to_z_up = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # head to +Z
    path = tmp_path / "z_up.bvh"
    write_bvh(path, turned_bvh(y_up, to_z_up))
    clip = read_canonical(path, "smpl")
    assert clip.up == "Z"
    np.testing.assert_allclose(clip.joints, joints, atol=1e-3)  # standing, facing as before
    write_bvh(tmp_path / "y_up.bvh", y_up)
    assert read_canonical(tmp_path / "y_up.bvh", "smpl").up == "Y"
    assert main(["bvh2joints", str(path), str(tmp_path / "j.npy"), "--map", "smpl"]) == 0
    assert "stands Z up; turned to Y up" in capsys.readouterr().err
    sideways = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # head to -X
    write_bvh(path, turned_bvh(y_up, sideways))
    with pytest.raises(MotionError, match="stands along X.*export the BVH with Y or Z up"):
        read_canonical(path, "smpl")


def test_engine_cli_reads_a_studio_skeleton_with_a_json_map_file_or_the_user_folder(
    tmp_path, monkeypatch, capsys
):
    from engine.cli import main
    from engine.motion.demo_clip import walk_cycle

    names = {j: f"Rig_{i:02d}" for i, j in enumerate(JOINT_NAMES)}
    bvh = canonical_bvh(walk_cycle(1.0))
    path = tmp_path / "studio.bvh"
    write_bvh(path, type(bvh)([names[n] for n in bvh.names], bvh.parents, bvh.offsets,
                              bvh.channels, bvh.frame_time, bvh.motion, bvh.end_sites))  # fmt: skip
    out = tmp_path / "joints.npy"
    assert main(["bvh2joints", str(path), str(out)]) == 2
    assert "no joint map knows any of its joint names" in capsys.readouterr().err
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "rig.json").write_text(json.dumps({"name": "rig", "bones": names}))
    assert main(["bvh2joints", str(path), str(out), "--map-file", str(maps / "rig.json")]) == 0
    direct = read_canonical(path, load_joint_map(maps / "rig.json")).joints
    np.testing.assert_allclose(np.load(out), direct)
    monkeypatch.setenv("KINETEXT_JOINT_MAPS", str(maps))
    out.unlink()
    assert main(["bvh2joints", str(path), str(out)]) == 0 and out.exists()  # detected
