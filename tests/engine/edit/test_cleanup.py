"""engine.edit.cleanup: a generator-like broken walk comes back as a rigid, grounded body."""

from __future__ import annotations

import numpy as np
import pytest

from engine.edit.cleanup import Cleanup, clean_joints, clean_motion, rigid_skeleton
from engine.edit.foot_cleanup import two_bone_ik
from engine.errors import MotionError
from engine.io.bvh import canonical_bvh
from engine.motion.demo_clip import walk_cycle
from engine.motion.features import FOOT_CONTACT, joints_to_features, recover_from_ric
from engine.motion.kinematics import bone_lengths
from engine.motion.quaternion import euler_to_quat
from engine.motion.rig_pose import forward_kinematics
from engine.motion.skeleton import BONE_LENGTHS, FPS, PARENTS
from training.evaluation.physical import CONTACT_HEIGHT, skating_counts

LEFT_TOE, LEFT_ANKLE = 10, 7
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))  # hip, knee, ankle, toe


@pytest.fixture(scope="module")
def walk():
    """A clean procedural walk (canonical bones, planted feet) and its foot contacts."""
    joints = walk_cycle(4.0, turn_degrees=0.0)
    features = joints_to_features(joints)  # (T-1, 263)
    contacts = np.concatenate([features[:, FOOT_CONTACT], features[-1:, FOOT_CONTACT]])
    return joints, contacts


def broken(joints: np.ndarray, seed: int = 0, planted: np.ndarray | None = None) -> np.ndarray:
    """What a generator hands over: bones that stretch and shrink by up to 15% over a
    second or two, the whole body 4 cm up, per-joint noise of 2 mm, and the left foot
    sliding 1 cm a frame during each of its ``planted`` runs (left contact columns)."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(joints))[:, None] / 20.0
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0]
    for j in range(1, 22):
        bone = joints[:, j] - joints[:, PARENTS[j]]
        scale = 1.0 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(1.0, 2.0) + rng.uniform(0, 6))
        out[:, j] = out[:, PARENTS[j]] + bone * scale
    out += rng.normal(0, 0.002, out.shape)
    out[..., 1] += 0.04
    if planted is not None:
        run = np.zeros(len(joints))
        for i in range(1, len(joints)):
            run[i] = run[i - 1] + 1 if planted[i] and planted[i - 1] else 0
        out[:, [LEFT_ANKLE, LEFT_TOE], 0] += 0.01 * run[:, None]
    return out


def broken_walk(walk, seed: int = 0) -> np.ndarray:
    """``broken`` applied to the walk fixture, its left foot sliding while planted."""
    joints, contacts = walk
    return broken(joints, seed, contacts[:, 0] > 0.5)


def test_bones_come_out_rigid_at_the_canonical_lengths(walk):
    joints, contacts = walk
    clean = clean_joints(broken_walk(walk), contacts)
    assert bone_lengths(broken_walk(walk)).std(axis=0).max() > 0.02  # it did stretch
    np.testing.assert_allclose(bone_lengths(clean), np.broadcast_to(BONE_LENGTHS, (len(clean), 22)),
                               atol=1e-9)  # fmt: skip
    median = clean_joints(broken_walk(walk), contacts, Cleanup(lengths="median"))
    assert bone_lengths(median).std(axis=0).max() < 1e-9


def test_planted_feet_touch_the_floor_and_nothing_goes_below(walk):
    joints, contacts = walk
    clean = clean_joints(broken_walk(walk), contacts)
    assert clean[..., 1].min() >= -1e-9
    down = (contacts[:, 1] > 0.5) & (contacts[:, 0] > 0.5)  # left foot flat on the floor
    lowest_left = clean[:, [LEFT_ANKLE, LEFT_TOE], 1].min(axis=1)
    assert np.median(lowest_left[down]) < 0.01  # was 4 cm up, and its leg stretched
    floored = clean_joints(broken_walk(walk), contacts, Cleanup(floor_feet=True))
    lowest_left = floored[:, [LEFT_ANKLE, LEFT_TOE], 1].min(axis=1)
    assert np.median(lowest_left[down]) < 0.002 and floored[..., 1].min() >= -1e-9
    # without contacts the clip's lowest joint goes on the floor (the swing clearance may then
    # lift that joint by micrometres where it was a moving toe)
    assert clean_joints(broken_walk(walk), None)[..., 1].min() == pytest.approx(0.0, abs=1e-4)


def test_a_planted_foot_stops_sliding(walk):
    joints, contacts = walk
    raw = broken_walk(walk)
    clean = clean_joints(raw, contacts)
    planted = np.flatnonzero(contacts[:, 0] > 0.5)
    runs = np.split(planted, np.flatnonzero(np.diff(planted) > 1) + 1)
    inner = max(runs, key=len)[4:-4]  # away from the eases in and out
    assert len(inner) >= 4
    slide_raw = np.ptp(raw[inner, LEFT_ANKLE, 0])
    slide_clean = np.ptp(clean[inner, LEFT_ANKLE, 0])
    assert slide_raw > 0.03 and slide_clean < 0.002


def test_held_pins_keep_the_whole_run_still_and_the_foot_continuous(walk):
    """pin_hold: no planted frame slides (the eased pins let it slide while the weight rose),
    and the correction carried outside the run fades instead of jumping."""
    joints, contacts = walk
    raw = broken_walk(walk)
    eased = clean_joints(raw, contacts)  # the default eases
    held = clean_joints(raw, contacts, Cleanup(pin_hold=True))
    planted = np.flatnonzero(contacts[:, 0] > 0.5)
    runs = [r for r in np.split(planted, np.flatnonzero(np.diff(planted) > 1) + 1) if len(r) > 2]
    leg = BONE_LENGTHS[4] + BONE_LENGTHS[7]  # a pin the straight leg cannot reach is not held
    for run in runs:
        reach = np.linalg.norm(held[run, LEFT_ANKLE] - held[run, 1], axis=-1) / leg
        within = run[reach < 0.999]
        assert len(within) >= len(run) - 3
        spread = np.ptp(held[within, LEFT_ANKLE], axis=0)
        assert spread[[0, 2]].max() < 1e-3  # no slide over the floor
        assert spread[1] < 1e-2  # lift_above_floor may raise the body (5 mm here): no slide
    step = lambda j: np.linalg.norm(np.diff(j[:, LEFT_ANKLE], axis=0), axis=-1)  # noqa: E731
    whole = np.concatenate(runs)
    assert np.ptp(eased[whole[:8], LEFT_ANKLE, 0]) > 1e-3  # the ease slid at the run's start
    # the foot never jumps more than the walk's own fastest step (with a centimetre of margin)
    assert step(held).max() < step(joints).max() + 0.01
    np.testing.assert_allclose(bone_lengths(held), bone_lengths(eased), atol=1e-9)


def raise_feet(joints: np.ndarray, rise) -> np.ndarray:
    """Both feet moved up by ``rise(toe, ankle)`` metres (T,) a frame, the knees re-bent by
    two-bone IK: every bone keeps its length and the feet their horizontal paths."""
    out = joints.copy()
    for hip, knee, ankle, toe in LEGS:
        up = rise(out[:, toe], out[:, ankle])[:, None] * np.array([0.0, 1.0, 0.0])
        foot = out[:, toe] - out[:, ankle]
        out[:, knee], out[:, ankle] = two_bone_ik(out[:, hip], out[:, knee], out[:, ankle],
                                                  out[:, ankle] + up, foot)  # fmt: skip
        out[:, toe] = out[:, ankle] + foot
    return out


def toe_speed(path: np.ndarray) -> np.ndarray:
    """(T,) m/s of a toe's path (T, 3): the slower horizontal step into or out of a frame."""
    step = np.linalg.norm(np.diff(path[:, ::2], axis=0), axis=-1) * FPS
    return np.minimum(np.concatenate([step[:1], step]), np.concatenate([step, step[-1:]]))


def test_a_dragging_foot_is_lifted_clear_and_nothing_else_moves(walk):
    """Swing feet lowered to a drag (toes 0.3 to 2.5 cm over the floor at walking speed):
    ``clearance`` turns each moving foot up at its ankle (and lifts it by its leg where that
    is not enough), so the toes stop skidding along the floor, while the planted frames, the
    ankles' paths over the floor, the feet's headings and every bone stay."""
    joints, contacts = walk
    drag = raise_feet(joints, lambda toe, ankle: -0.8 * np.minimum(toe[:, 1], ankle[:, 1]))
    base = clean_joints(drag, contacts, Cleanup(clearance=0.0))
    lifted = clean_joints(drag, contacts, Cleanup(clearance=0.06))
    assert skating_counts(base, FPS)[0] > 40  # the drag skids: 61 of 158 low toe steps
    assert skating_counts(lifted, FPS)[0] <= skating_counts(joints, FPS)[0]  # the walk's own
    for _, knee, ankle, toe in LEGS:
        moving = toe_speed(base[:, toe]) > 1.0
        assert moving.sum() >= 10
        lowest = np.minimum(lifted[:, toe, 1], lifted[:, ankle, 1])
        assert lowest[moving].min() > 0.045 and np.median(lowest[moving]) > CONTACT_HEIGHT
        still = toe_speed(base[:, toe]) < 1e-6
        assert still.sum() >= 12
        np.testing.assert_allclose(lifted[still][:, [knee, ankle, toe]],
                                   base[still][:, [knee, ankle, toe]], atol=1e-9)  # fmt: skip
        np.testing.assert_allclose(lifted[:, ankle, ::2], base[:, ankle, ::2], atol=1e-9)
        # the foot turned up on its own heading (a flexed ankle), not aside
        was, now = (j[:, toe, ::2] - j[:, ankle, ::2] for j in (base, lifted))
        np.testing.assert_allclose(was[:, 0] * now[:, 1] - was[:, 1] * now[:, 0], 0, atol=1e-9)
        assert ((was * now).sum(-1) > 0).all()
        turned = (
            lifted[:, toe, 1] - lifted[:, ankle, 1] > base[:, toe, 1] - base[:, ankle, 1] + 0.01
        )
        assert turned[moving].sum() >= 5  # and no further than level
        assert (lifted[turned, toe, 1] <= lifted[turned, ankle, 1] + 1e-9).all()
        # the lift comes and goes no faster than the walk's own foot accelerates
        lift = lifted[:, toe, 1] - base[:, toe, 1]
        foot = np.linalg.norm(np.diff(joints[:, toe], 2, axis=0), axis=-1)
        assert np.abs(np.diff(lift, 2)).max() < foot.max()
    np.testing.assert_allclose(bone_lengths(lifted), np.broadcast_to(BONE_LENGTHS, (len(drag), 22)),
                               atol=1e-9)  # fmt: skip
    assert lifted[..., 1].min() >= -1e-9
    np.testing.assert_array_equal(lifted[:, [0, 3, 6, 9, 12, 15]], base[:, [0, 3, 6, 9, 12, 15]])


def test_a_foot_that_clears_the_floor_is_left_alone(walk):
    """A high step (a foot 8 cm up whenever it moves) comes out as it does without
    ``clearance``: the step only adds what is missing."""
    joints, contacts = walk

    def high_step(toe: np.ndarray, ankle: np.ndarray) -> np.ndarray:
        lowest = np.minimum(toe[:, 1], ankle[:, 1])
        return np.where(toe_speed(toe) > 0.01, np.maximum(0.08 - lowest, 0.0), 0.0)

    high = raise_feet(joints, high_step)
    base = clean_joints(high, contacts, Cleanup(clearance=0.0))
    assert skating_counts(base, FPS)[0] == 0
    np.testing.assert_array_equal(clean_joints(high, contacts), base)  # the default's 5 cm


def test_smoothing_keeps_the_timing(walk):
    joints, contacts = walk
    clean = clean_joints(joints, contacts, Cleanup(smoothing=1.0, pin_feet=False, ground=False))

    # the left ankle's height peaks (mid swing) at the same frames
    def peaks(y: np.ndarray) -> list[int]:  # frames highest within 5 either side, mid swing
        return [t for t in range(len(y)) if y[t] > 0.05 and y[t] == y[max(t - 5, 0) : t + 6].max()]

    assert peaks(joints[:, LEFT_ANKLE, 1]) == peaks(clean[:, LEFT_ANKLE, 1])
    assert len(peaks(joints[:, LEFT_ANKLE, 1])) >= 3
    rough = joints + np.random.default_rng(1).normal(0, 0.005, joints.shape)
    acc = lambda x: np.linalg.norm(np.diff(x, 2, axis=0), axis=-1).mean()  # noqa: E731
    smooth = Cleanup(smoothing=1.0, pin_feet=False)
    assert acc(clean_joints(rough, contacts, smooth)) < 0.5 * acc(rough)


def test_one_clip_or_a_batch(walk):
    joints, contacts = walk
    batch = np.stack([broken_walk(walk, 0), broken_walk(walk, 1)])
    both = clean_joints(batch, np.stack([contacts, contacts]))
    assert both.shape == batch.shape
    np.testing.assert_allclose(both[1], clean_joints(batch[1], contacts), atol=1e-12)


def test_features_describe_the_cleaned_joints(walk):
    joints, contacts = walk
    raw = broken_walk(walk)[None].astype(np.float32)
    features = np.zeros(raw.shape[:2] + (263,), np.float32)
    features[..., FOOT_CONTACT] = contacts
    clean, feats = clean_motion(raw, features, Cleanup(), fps=20)
    assert clean.shape == raw.shape and feats.shape == features.shape
    np.testing.assert_allclose(recover_from_ric(feats), clean, atol=1e-5)
    assert bone_lengths(clean).std(axis=1).max() < 1e-5  # float32


def bvh_error(joints: np.ndarray) -> float:
    """Largest distance (metres) between a clip's joints and its canonical BVH's, posed."""
    bvh = canonical_bvh(joints)
    local = euler_to_quat(bvh.motion[:, 3:].reshape(len(joints), 22, 3), "ZXY")
    posed = forward_kinematics(local, bvh.motion[:, :3], PARENTS, bvh.offsets)
    return float(np.linalg.norm(posed - joints, axis=-1).max())


def test_a_bvh_of_a_cleaned_clip_is_the_clip(walk):
    """With rigid bones the BVH reproduces its joints to millimetres (a raw generated clip's
    was up to 9 cm off at the wrists); only the branches at the pelvis and chest, whose
    angles a BVH holds fixed, keep a few millimetres of the generator's noise."""
    joints, contacts = walk
    raw = broken_walk(walk)
    assert bvh_error(raw) > 0.03
    assert bvh_error(clean_joints(raw, contacts)) < 0.012


def test_rigid_skeleton_keeps_directions():
    rng = np.random.default_rng(3)
    joints = rng.normal(0, 0.3, (1, 5, 22, 3))
    rigid = rigid_skeleton(joints, np.broadcast_to(BONE_LENGTHS, (1, 22)))
    for j in range(1, 22):
        a = joints[0, :, j] - joints[0, :, PARENTS[j]]
        b = rigid[0, :, j] - rigid[0, :, PARENTS[j]]
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-12)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lengths": "mean"}, "canonical"),
        ({"smoothing": -1.0}, "between 0 and 20"),
        ({"ground_smoothing": float("nan")}, "between 0 and 20"),
        ({"pin_blend": -2}, "pin_blend"),
        ({"clearance": 0.5}, "clearance must be 0 to 0.2 metres"),
        ({"clearance": True}, "clearance"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(MotionError, match=message):
        Cleanup(**options)


def test_bad_inputs(walk):
    joints, contacts = walk
    with pytest.raises(MotionError, match="N, T, 22, 3"):
        clean_joints(joints[:, :21], contacts)
    with pytest.raises(MotionError, match="contacts"):
        clean_joints(joints, contacts[:-1])
    bad = joints.copy()
    bad[3, 4, 1] = np.inf
    with pytest.raises(MotionError, match="NaN or infinite"):
        clean_joints(bad, contacts)
