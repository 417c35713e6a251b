"""The skeleton module's named joint indices say what JOINT_NAMES says."""

from __future__ import annotations

from engine.motion import skeleton


def test_every_joint_has_its_index_by_name():
    for index, name in enumerate(skeleton.JOINT_NAMES):
        assert getattr(skeleton, name.upper()) == index, name
    assert skeleton.NUM_JOINTS == 22


def test_the_named_groups_pick_the_joints_their_names_say():
    names = skeleton.JOINT_NAMES
    assert [names[j] for j in skeleton.FACE_JOINTS] == [
        "right_hip", "left_hip", "right_shoulder", "left_shoulder",
    ]  # fmt: skip
    assert [names[j] for j in skeleton.FOOT_LEFT + skeleton.FOOT_RIGHT] == [
        "left_ankle", "left_foot", "right_ankle", "right_foot",
    ]  # fmt: skip
    for group in (skeleton.HIPS, skeleton.SHOULDERS, skeleton.COLLARS):
        left, right = (names[j] for j in group)
        assert left.startswith("left_") and right == left.replace("left_", "right_")
    assert [names[j] for j in skeleton.SPINE_UP] == ["head", "neck", "spine3", "spine2", "spine1"]
    assert all(skeleton.PARENTS[a] == b for a, b in zip(skeleton.SPINE_UP, skeleton.SPINE_UP[1:],
                                                          strict=False))  # fmt: skip
