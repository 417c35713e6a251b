"""HumanML3D features: round trips, known clips, the real data set's example, mirroring."""

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import MotionError
from engine.motion.features import (
    FEATURE_DIM,
    FEATURE_GROUPS,
    FOOT_CONTACT,
    LOCAL_VEL,
    RIC,
    ROOT_LIN_VEL,
    ROOT_ROT_VEL,
    ROT6D,
    Normalizer,
    canonicalize_joints,
    joints_to_features,
    mirror_features,
    mirror_joints,
    recover_from_ric,
    recover_root,
)
from engine.motion.kinematics import (
    bone_lengths,
    chain_forward_kinematics,
    facing_direction,
    offsets_from_joints,
)
from engine.motion.quaternion import (
    axis_angle_to_quat,
    cont6d_to_matrix,
    matrix_to_quat,
    qinv,
    qmul,
    qrot,
)
from engine.motion.skeleton import (
    BONE_LENGTHS,
    CANONICAL_OFFSETS,
    FACE_JOINTS,
    FOOT_LEFT,
    FOOT_RIGHT,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
REFERENCE = SHARED / "data" / "humanml3d-reference"
Y = np.array([0.0, 1.0, 0.0])


def synthetic_clip(frames=60, heading0=0.0, turn=1.0, seed=0):
    """(T, 22, 3) joints: smooth random joint rotations, a turning root on a curved path.

    heading0 = pi starts the character facing -Z; |turn| > pi makes its heading pass the
    opposite of where it started.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, frames)[:, None, None]  # (T, 1, 1)
    amp = rng.uniform(-0.35, 0.35, (1, 22, 3))
    freq = rng.uniform(0.5, 2.0, (1, 22, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, 22, 3))
    rotvec = amp * np.sin(2 * np.pi * freq * t + phase)  # (T, 22, 3)
    angle = np.linalg.norm(rotvec, axis=-1)
    quats = axis_angle_to_quat(rotvec / angle[..., None], angle)
    yaw = axis_angle_to_quat(Y, heading0 + turn * t[:, 0, 0])
    quats[:, 0] = qmul(yaw, quats[:, 0])
    s = t[:, 0]  # (T, 1)
    root = np.concatenate([0.8 * np.sin(3 * s) + 0.3, 0.9 + 0.03 * np.sin(9 * s), 1.5 * s - 2], -1)
    return chain_forward_kinematics(quats, root, CANONICAL_OFFSETS)


def rest_pose() -> np.ndarray:
    return chain_forward_kinematics(
        np.tile([1.0, 0.0, 0.0, 0.0], (22, 1)), np.zeros(3), CANONICAL_OFFSETS
    )


def test_layout_covers_263_dims_in_order():
    sizes = {name: part.stop - part.start for name, part in FEATURE_GROUPS.items()}
    assert sizes == {
        "root_rot_vel": 1,
        "root_lin_vel": 2,
        "root_y": 1,
        "ric": 63,
        "rot6d": 126,
        "local_vel": 66,
        "foot_contact": 4,
    }
    parts = list(FEATURE_GROUPS.values())
    assert parts[0].start == 0 and parts[-1].stop == FEATURE_DIM == 263
    assert all(a.stop == b.start for a, b in zip(parts[:-1], parts[1:], strict=True))


@pytest.mark.parametrize("heading0, turn", [(0.0, 1.0), (np.pi, 1.0), (np.pi, 5.0), (2.0, -4.0)])
def test_recover_from_ric_inverts_joints_to_features(heading0, turn):
    joints = synthetic_clip(heading0=heading0, turn=turn)
    features = joints_to_features(joints)
    assert features.shape == (59, 263) and features.dtype == np.float64
    np.testing.assert_allclose(
        recover_from_ric(features), canonicalize_joints(joints)[:-1], rtol=0, atol=1e-8
    )


def test_canonical_clip_is_retargeted_floored_centred_and_faces_plus_z():
    out = canonicalize_joints(synthetic_clip(heading0=np.pi))  # starts facing -Z
    np.testing.assert_allclose(bone_lengths(out), np.tile(BONE_LENGTHS, (60, 1)), atol=1e-12)
    assert abs(out[..., 1].min()) < 1e-12
    np.testing.assert_allclose(out[0, 0, [0, 2]], 0.0, atol=1e-12)
    np.testing.assert_allclose(facing_direction(out[0], FACE_JOINTS), [0, 0, 1], atol=1e-12)


def test_features_ignore_where_the_clip_is_how_big_and_where_it_faces():
    joints = synthetic_clip(turn=2.0)
    turn = axis_angle_to_quat(Y, np.array(2.5))
    moved = 1.25 * qrot(turn, joints) + np.array([3.0, 0.4, -7.0])
    np.testing.assert_allclose(canonicalize_joints(moved), canonicalize_joints(joints), atol=1e-10)
    np.testing.assert_allclose(joints_to_features(moved), joints_to_features(joints), atol=1e-9)


@pytest.mark.parametrize("speed, contact", [(0.04, 1.0), (0.05, 0.0)])
def test_rigid_walk_forward_gives_known_features(speed, contact):
    frames = 6
    pose = rest_pose()
    joints = pose[None] + speed * np.arange(frames)[:, None, None] * np.array([0.0, 0.0, 1.0])
    f = joints_to_features(joints)
    np.testing.assert_allclose(f[:, ROOT_ROT_VEL], 0.0, atol=1e-12)
    np.testing.assert_allclose(f[:, ROOT_LIN_VEL], np.tile([0.0, speed], (5, 1)), atol=1e-12)
    np.testing.assert_allclose(f[:, 3], -pose[:, 1].min(), atol=1e-12)
    ric = (pose[1:] - pose[:, 1].min() * Y).reshape(-1)
    np.testing.assert_allclose(f[:, RIC], np.tile(ric, (5, 1)), atol=1e-12)
    identity6d = np.tile([1.0, 0, 0, 0, 1, 0], 21)
    np.testing.assert_allclose(f[:, ROT6D], np.tile(identity6d, (5, 1)), atol=1e-12)
    np.testing.assert_allclose(f[:, LOCAL_VEL], np.tile([0, 0, speed], (5, 22)), atol=1e-12)
    # Squared step 0.0016 or 0.0025 against the 0.002 threshold.
    np.testing.assert_array_equal(f[:, FOOT_CONTACT], contact)
    assert (joints_to_features(joints, feet_threshold=0.003)[:, FOOT_CONTACT] == 1).all()


def assert_layout_consistent(features: np.ndarray, atol: float) -> None:
    """rot6d, local velocities and contacts agree with the joints recovered from ric."""
    joints = recover_from_ric(features)  # (T, 22, 3), world frame of the clip
    r_rot, r_pos = recover_root(features)
    local = matrix_to_quat(cont6d_to_matrix(features[:, ROT6D].reshape(-1, 21, 6)))
    quats = np.concatenate([r_rot[:, None], local], axis=1)  # (T, 22, 4)
    rebuilt = chain_forward_kinematics(quats, r_pos, offsets_from_joints(joints[0]))
    np.testing.assert_allclose(rebuilt, joints, rtol=0, atol=atol)
    step = qrot(r_rot[:-1, None], joints[1:] - joints[:-1])  # (T-1, 22, 3)
    np.testing.assert_allclose(features[:-1, LOCAL_VEL].reshape(-1, 22, 3), step, atol=atol)
    feet = list(FOOT_LEFT) + list(FOOT_RIGHT)
    moved = ((joints[1:, feet] - joints[:-1, feet]) ** 2).sum(-1)
    np.testing.assert_array_equal(features[:-1, FOOT_CONTACT], moved < 0.002)


def test_mirror_features_is_the_mirrored_clip():
    features = joints_to_features(synthetic_clip(heading0=np.pi, turn=1.5, seed=3))
    mirrored = mirror_features(features)
    np.testing.assert_array_equal(mirror_features(mirrored), features)
    np.testing.assert_allclose(
        recover_from_ric(mirrored), mirror_joints(recover_from_ric(features)), rtol=0, atol=1e-12
    )
    assert_layout_consistent(features, atol=1e-9)
    assert_layout_consistent(mirrored, atol=1e-9)
    assert (mirrored[:, FOOT_CONTACT] != features[:, FOOT_CONTACT]).any()


def test_mirror_joints_swaps_sides_and_negates_x():
    pose = rest_pose()
    mirrored = mirror_joints(pose)
    np.testing.assert_allclose(mirrored[1], pose[2] * [-1, 1, 1])  # left hip <- right hip
    np.testing.assert_array_equal(mirror_joints(mirrored), pose)
    got = mirror_joints(torch.from_numpy(pose))
    np.testing.assert_array_equal(got.numpy(), mirrored)


def test_recover_from_ric_batched_numpy_and_torch_agree():
    clips = np.stack([joints_to_features(synthetic_clip(frames=30, seed=s)) for s in range(3)])
    expected = recover_from_ric(clips)  # (3, 29, 22, 3)
    assert expected.shape == (3, 29, 22, 3)
    for b in range(3):
        np.testing.assert_allclose(expected[b], recover_from_ric(clips[b]), rtol=0, atol=1e-12)
    got = recover_from_ric(torch.from_numpy(clips))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    single = recover_from_ric(clips.astype(np.float32))
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, atol=1e-4)
    mirrored = mirror_features(torch.from_numpy(clips))
    np.testing.assert_array_equal(mirrored.numpy(), mirror_features(clips))


def test_recover_from_ric_is_differentiable():
    # Autoencoder losses on joints back-propagate through it.
    features = torch.from_numpy(joints_to_features(synthetic_clip(frames=12))).requires_grad_()
    recover_from_ric(features).square().sum().backward()
    assert torch.isfinite(features.grad).all()
    assert features.grad[:, :67].abs().sum() > 0 and (features.grad[:, 67:] == 0).all()


def test_recover_from_ric_stays_on_the_tensors_device():
    # The meta device holds no data: any detour through numpy would fail here.
    features = torch.zeros(2, 10, FEATURE_DIM, device="meta")
    joints = recover_from_ric(features)
    assert joints.device.type == "meta" and joints.shape == (2, 10, 22, 3)
    assert mirror_features(features).device.type == "meta"


@pytest.mark.parametrize(
    "joints, message",
    [
        (np.zeros((10, 22)), "shape"),
        (np.zeros((10, 21, 3)), "shape"),
        (np.zeros((1, 22, 3)), "at least 2 frames"),
    ],
)
def test_bad_joints_are_rejected(joints, message):
    with pytest.raises(MotionError, match=message):
        joints_to_features(joints)


def test_non_finite_joints_name_the_frame():
    joints = synthetic_clip(frames=8)
    joints[3, 5, 1] = np.nan
    with pytest.raises(MotionError, match=r"NaN.*\[3\]"):
        joints_to_features(joints)
    joints[3, 5, 1] = np.inf
    with pytest.raises(MotionError, match="infinite"):
        canonicalize_joints(joints)


def test_pose_without_facing_direction_is_rejected():
    # Hips, collars and shoulders all vertical: across = r - l hips + r - l shoulders is
    # vertical, so up x across has no direction to turn to +Z.
    pose = rest_pose()
    pose[[1, 2]] = [0.0, -0.1, 0.0]
    pose[[13, 14]] = pose[9] + [0.0, 0.05, 0.0]
    pose[[16, 17]] = pose[9] - [0.0, 0.05, 0.0]
    with pytest.raises(MotionError, match="facing direction"):
        joints_to_features(np.stack([pose, pose]))


def test_bad_features_are_rejected():
    with pytest.raises(MotionError, match="263"):
        recover_from_ric(np.zeros((5, 262)))
    with pytest.raises(MotionError, match="263"):
        mirror_features(np.zeros(263))


# The real data set's example (skipped where ../shared is absent).


@pytest.fixture(scope="module")
def example() -> np.ndarray:
    path = REFERENCE / "example_000612_new_joint_vecs.npy"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return np.load(path)


def test_example_measures_the_canonical_skeleton(example):
    joints = recover_from_ric(example)
    lengths = bone_lengths(joints)  # (199, 22)
    assert lengths.std(axis=0).max() < 1e-5
    np.testing.assert_allclose(lengths[0], BONE_LENGTHS, rtol=0, atol=1e-7)
    feet = list(FOOT_LEFT) + list(FOOT_RIGHT)
    assert abs(joints[..., feet, 1].min()) < 1e-6  # feet on the floor
    assert joints[..., 1].min() > -1e-6
    np.testing.assert_allclose(facing_direction(joints[0], FACE_JOINTS), [0, 0, 1], atol=1e-3)


def repair_heading_sign(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip the sign of root rotation velocities that disagree with both neighbours."""
    vel = features[:, 0]
    glitch = 1 + np.flatnonzero(
        (np.sign(vel[1:-1]) != np.sign(vel[:-2]))
        & (np.sign(vel[1:-1]) != np.sign(vel[2:]))
        & (np.abs(vel[1:-1]) > 0.01)
    )
    repaired = features.copy()
    repaired[glitch, 0] *= -1
    return repaired, glitch


def test_our_extraction_reproduces_the_example(example):
    # The reference's arcsin loses the sign of the heading change where the heading passes
    # 180 degrees (see engine.motion.features._heading_velocity); the example turns through it once.
    repaired, glitch = repair_heading_sign(example)
    assert len(glitch) == 1
    half_angle = np.concatenate([[0.0], np.cumsum(repaired[:, 0])])
    crossing = np.flatnonzero(np.sign(np.cos(half_angle[1:])) != np.sign(np.cos(half_angle[:-1])))
    np.testing.assert_array_equal(crossing, glitch)
    # 199 feature rows hold 200 joint frames: ric gives the first 199, and the last one is
    # frame 198 plus its local velocity. With the whole clip, the Gaussian smoothing of the
    # facing direction (sigma 20 frames) sees what the reference saw, up to the last frame.
    joints = recover_from_ric(repaired)
    r_rot, _ = recover_root(repaired)
    last_step = qrot(qinv(r_rot[-1:, None]), repaired[-1:, LOCAL_VEL].reshape(1, 22, 3))
    joints = np.concatenate([joints, joints[-1:] + last_step])
    ours = joints_to_features(joints)
    assert ours.shape == example.shape
    for name, part in FEATURE_GROUPS.items():
        np.testing.assert_allclose(
            ours[:, part], repaired[:, part], rtol=0, atol=1e-4, err_msg=name
        )
    np.testing.assert_array_equal(ours[:, FOOT_CONTACT], example[:, FOOT_CONTACT])
    assert_layout_consistent(repaired, atol=1e-4)


# Normalisation.


@pytest.fixture(scope="module")
def feature_clips() -> list[np.ndarray]:
    return [joints_to_features(synthetic_clip(frames=20 + 5 * s, seed=s)) for s in range(3)]


def test_normalizer_fit_shares_one_std_per_group(feature_clips):
    norm = Normalizer.fit(feature_clips)
    data = np.concatenate(feature_clips)
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=0, atol=1e-12)
    per_dim = data.std(axis=0)
    for name, part in FEATURE_GROUPS.items():
        assert np.ptp(norm.std[part]) == 0, name
        np.testing.assert_allclose(norm.std[part][0], per_dim[part].mean(), rtol=1e-12)
    # Single-dimension groups come out with unit variance.
    scaled = norm.normalize(data)
    np.testing.assert_allclose(scaled[:, [0, 3]].std(axis=0), 1.0, rtol=1e-9)


def test_normalizer_round_trips_numpy_and_torch(feature_clips, tmp_path):
    norm = Normalizer.fit(feature_clips)
    x = feature_clips[1]
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, rtol=0, atol=1e-12)
    xt = torch.from_numpy(x).float()
    yt = norm.normalize(xt)
    assert yt.dtype == torch.float32
    np.testing.assert_allclose(yt.numpy(), norm.normalize(x), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(norm.denormalize(yt).numpy(), x, atol=1e-5)
    norm.save(tmp_path / "stats")
    loaded = Normalizer.load(tmp_path / "stats")
    np.testing.assert_allclose(loaded.mean, norm.mean, rtol=1e-6)
    np.testing.assert_allclose(loaded.std, norm.std, rtol=1e-6)


def test_normalizer_floors_a_group_that_never_varies(feature_clips):
    still = [c.copy() for c in feature_clips]
    for clip in still:
        clip[:, FOOT_CONTACT] = 1.0
    norm = Normalizer.fit(still, min_std=1e-3)
    np.testing.assert_array_equal(norm.std[FOOT_CONTACT], 1e-3)
    np.testing.assert_array_equal(norm.normalize(still[0])[:, FOOT_CONTACT], 0.0)


def test_normalizer_rejects_bad_input(tmp_path):
    with pytest.raises(MotionError, match="at least one clip"):
        Normalizer.fit([])
    with pytest.raises(MotionError, match="clip 1"):
        Normalizer.fit([np.zeros((3, 263)), np.zeros((3, 262))])
    with pytest.raises(MotionError, match="std must have shape"):
        Normalizer(mean=np.zeros(263), std=np.ones(262))
    with pytest.raises(MotionError, match="positive"):
        Normalizer(mean=np.zeros(263), std=np.zeros(263))
    with pytest.raises(MotionError, match="Mean.npy"):
        Normalizer.load(tmp_path)
    with pytest.raises(MotionError, match="263"):
        Normalizer(mean=np.zeros(263), std=np.ones(263)).normalize(np.zeros((4, 67)))


def test_released_statistics_share_our_groups(example):
    # HumanML3D's own Std.npy is constant within each of our groups: same layout, same
    # grouping; its foot-contact std (0.36) shows no feat_bias division.
    norm = Normalizer.load(REFERENCE)
    for name, part in FEATURE_GROUPS.items():
        assert np.ptp(norm.std[part]) < 1e-6 * norm.std[part][0], name
    assert 0.3 < norm.std[FOOT_CONTACT][0] <= 0.5
    # The example is stored denormalised: normalised, every group is of order one.
    scaled = norm.normalize(example)
    for name, part in FEATURE_GROUPS.items():
        assert 0.05 < np.sqrt((scaled[:, part] ** 2).mean()) < 5.0, name


def test_a_batch_of_clips_gives_each_clips_own_features():
    """Generated clips are taken to features in one batch; each must be as if alone."""
    from engine.motion.demo_clip import walk_cycle

    clips = np.stack([walk_cycle(2.0, turn_degrees=t, speed=s) for t, s in ((0, 1.2), (90, 1.6))])
    clips[1] += np.array([0.5, 0.1, -2.0])  # elsewhere on the floor, lifted: canonicalised apart
    batched = joints_to_features(clips)
    assert batched.shape == (2, len(clips[0]) - 1, 263)
    for clip, features in zip(clips, batched, strict=True):
        np.testing.assert_allclose(features, joints_to_features(clip), atol=1e-12)
