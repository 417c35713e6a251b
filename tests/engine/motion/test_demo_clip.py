"""The procedural walk: canonical, on the floor, feet planted, at the speed and turn asked."""

import numpy as np
import pytest

from engine.errors import MotionError
from engine.motion.demo_clip import walk_cycle
from engine.motion.features import FOOT_CONTACT, canonicalize_joints, joints_to_features
from engine.motion.kinematics import bone_lengths
from engine.motion.skeleton import BONE_LENGTHS, FOOT_LEFT, FOOT_RIGHT

FEET = list(FOOT_LEFT + FOOT_RIGHT)


@pytest.fixture(scope="module")
def walk():
    return walk_cycle(seconds=4.0, fps=20, turn_degrees=90.0, speed=1.2)


def test_length_and_canonical_bones(walk):
    assert walk.shape == (80, 22, 3)
    np.testing.assert_allclose(
        bone_lengths(walk), np.broadcast_to(BONE_LENGTHS, (80, 22)), atol=1e-9
    )
    assert walk_cycle(seconds=1.5, fps=30).shape == (45, 22, 3)


def test_already_in_humanml3d_canonical_frame(walk):
    """Root at the XZ origin facing +Z on frame 0, lowest joint on the floor: canonicalising
    (retarget, floor, centre, turn) moves nothing by more than a few millimetres."""
    np.testing.assert_allclose(walk[0, 0, [0, 2]], 0.0, atol=1e-12)
    assert np.abs(canonicalize_joints(walk) - walk).max() < 0.01


def test_a_foot_is_on_the_floor_in_every_frame_and_none_below(walk):
    lowest = walk[:, FEET, 1].min(axis=1)
    np.testing.assert_allclose(lowest, 0.0, atol=1e-9)
    assert walk[..., 1].min() > -1e-9
    assert walk[:, 15, 1].min() > 1.25  # upright: the head stays high in every frame


def test_planted_feet_do_not_slide(walk):
    """Wherever a foot joint stays on the floor from one frame to the next, it stays put."""
    on_floor = walk[:, FEET, 1] < 1e-6  # (T, 4)
    planted = on_floor[:-1] & on_floor[1:]
    moved = np.linalg.norm(np.diff(walk[:, FEET][..., [0, 2]], axis=0), axis=-1)  # (T-1, 4)
    assert planted.sum(axis=0).min() >= 10  # every foot joint spends frames planted
    assert moved[planted].max() < 1e-3


def test_feet_alternate_and_swing_clear_of_the_floor(walk):
    left = (walk[:, FOOT_LEFT, 1] < 1e-6).any(axis=1)
    right = (walk[:, FOOT_RIGHT, 1] < 1e-6).any(axis=1)
    assert (left & ~right).sum() > 10 and (right & ~left).sum() > 10
    assert walk[:, FOOT_LEFT[0], 1].max() > 0.08 and walk[:, FOOT_RIGHT[0], 1].max() > 0.08
    # HumanML3D's own contact labels see a walk: each foot planted about 60% of the time
    contacts = joints_to_features(walk)[:, FOOT_CONTACT].mean(axis=0)
    assert np.all((contacts > 0.4) & (contacts < 0.8)), contacts


def test_speed_and_turn(walk):
    step = np.diff(walk[:, 0, :], axis=0)  # (T-1, 3) root displacement per frame
    speed = np.linalg.norm(step[:, [0, 2]], axis=1) * 20
    np.testing.assert_allclose(speed, 1.2, rtol=1e-3)
    start, end = (np.degrees(np.arctan2(s[0], s[2])) for s in (step[0], step[-1]))
    assert abs((end - start) - 90.0 * 78 / 79) < 0.5  # heading turns steadily, towards +X
    straight = walk_cycle(seconds=2.0, turn_degrees=0.0, speed=0.8)
    np.testing.assert_allclose(straight[:, 0, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(straight[-1, 0, 2], 0.8 * 39 / 20, rtol=1e-9)


def test_pelvis_bobs_a_few_centimetres(walk):
    height = walk[:, 0, 1]
    assert 0.02 < np.ptp(height) < 0.08
    assert np.abs(np.diff(height)).max() < 0.02  # no jolts between frames


@pytest.mark.parametrize(
    "kwargs", [{"seconds": 0.05}, {"fps": 0.0}, {"speed": 5.0}, {"seconds": float("nan")}]
)
def test_bad_arguments_raise_motion_error(kwargs):
    with pytest.raises(MotionError, match="walk_cycle"):
        walk_cycle(**kwargs)
