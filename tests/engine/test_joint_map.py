"""Joint maps to the canonical skeleton, resampling, and BVH files to canonical joints."""

import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.bvh import canonical_bvh, write_bvh
from engine.errors import MotionError
from engine.joint_map import (
    BANDAI_NAMCO,
    JOINT_MAPS,
    SMPL,
    JointMap,
    bvh_to_canonical,
    detect_joint_map,
    read_canonical,
    resample,
    to_canonical,
)
from engine.rig_pose import forward_kinematics
from engine.skeleton import CANONICAL_OFFSETS, JOINT_NAMES, PARENTS

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
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
    assert set(JOINT_MAPS) == {"bandai_namco", "smpl"}


def test_unknown_skeleton_lists_maps_and_missing_joints():
    with pytest.raises(MotionError) as info:
        detect_joint_map([n for n in BANDAI_NAMES if n != "Chest"] + ["Tail"])
    message = str(info.value)
    assert "bandai_namco is missing Chest" in message and "smpl is missing pelvis" in message


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
    from engine.quaternion import euler_to_quat, matrix_to_quat, qinv, qmul, quat_to_euler

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
    from engine.demo_clip import walk_cycle

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
