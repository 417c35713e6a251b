"""Mirror, loop and retime a clip: checked against what each means for the joints."""

import numpy as np
import pytest

from engine.edit.clip_edit import body_frames, loop, mirror, retime
from engine.errors import MotionError
from engine.motion.features import mirror_joints
from engine.motion.quaternion import axis_angle_to_quat
from engine.motion.rig_pose import forward_kinematics
from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS

FPS = 20


def walk(seconds=4.0, period=1.1, turn_rate=0.0) -> np.ndarray:
    """(T, 22, 3): legs and arms swinging with ``period`` s, walking forward (and turning)."""
    t = np.arange(int(seconds * FPS) + 1) / FPS
    local = np.tile([1.0, 0.0, 0.0, 0.0], (len(t), 22, 1))
    x = np.array([1.0, 0.0, 0.0])
    swing = 0.4 * np.sin(2 * np.pi * t / period)
    for joint, sign in ((1, -1), (2, 1), (16, 1), (17, -1)):
        local[:, joint] = axis_angle_to_quat(x, sign * swing)
    heading = turn_rate * t
    local[:, 0] = axis_angle_to_quat(np.array([0.0, 1.0, 0.0]), heading)
    step = np.stack([np.sin(heading), np.zeros_like(t), np.cos(heading)], 1) * 1.2 / FPS
    root = np.cumsum(step, axis=0) + [0.0, 0.9, 0.0]
    root[:, 1] += 0.02 * np.cos(4 * np.pi * t / period)
    return forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)


def contacts_of(joints):
    return (np.arange(len(joints))[:, None] % 10 < 5).astype(float) * [1, 1, 0, 0]


def test_mirror_swaps_sides_and_the_contacts():
    joints = walk()
    edit = mirror(joints, contacts_of(joints))
    np.testing.assert_allclose(edit.joints, mirror_joints(joints))
    np.testing.assert_array_equal(edit.contacts[:, [2, 3]], contacts_of(joints)[:, [0, 1]])


@pytest.mark.parametrize("factor", [2.0, 0.5, 1.5])
def test_retime_plays_the_same_poses_faster_or_slower(factor):
    joints = walk(2.0)
    edit = retime(joints, contacts_of(joints), FPS, factor)
    assert len(edit.joints) == int(np.floor((len(joints) - 1) / factor + 1e-2)) + 1
    for k in range(len(edit.joints)):  # frame k is source time k * factor
        src = k * factor
        lo = int(np.floor(src))
        hi = min(lo + 1, len(joints) - 1)
        want = joints[lo] + (src - lo) * (joints[hi] - joints[lo])
        np.testing.assert_allclose(edit.joints[k], want, atol=1e-12)
    assert edit.contacts.shape == (len(edit.joints), 4)


@pytest.mark.parametrize("turn_rate", [0.0, 0.4])
def test_a_loop_ends_in_its_first_pose_and_keeps_walking(turn_rate):
    joints = walk(turn_rate=turn_rate)
    edit = loop(joints, contacts_of(joints), FPS)
    local, place, _ = body_frames(edit.joints)
    np.testing.assert_allclose(local[-1], local[0], atol=1e-9)  # end meets start
    end = len(edit.joints) - 1
    assert abs(end - 22) <= 1  # the swing's period is 1.1 s = 22 frames: one cycle
    np.testing.assert_allclose(edit.joints[:10], joints[:10], atol=1e-9)  # start untouched
    travelled = np.linalg.norm(place[-1] - place[0])
    assert travelled == pytest.approx(1.2 * end / FPS, rel=0.05)  # the root motion is kept
    np.testing.assert_array_equal(edit.contacts[-1], edit.contacts[0])


def test_edits_refuse_what_they_cannot_do():
    with pytest.raises(MotionError, match="too short to loop"):
        loop(walk(0.5), None, FPS)
    with pytest.raises(MotionError, match="speed must be between"):
        retime(walk(1.0), None, FPS, 20.0)
    with pytest.raises(MotionError, match="joints"):
        mirror(np.zeros((5, 21, 3)), None)
