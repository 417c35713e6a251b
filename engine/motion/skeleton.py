"""The canonical 22-joint skeleton (HumanML3D / SMPL body order): the one source of truth.

Names, parents and chains follow SMPL's body joints as HumanML3D uses them. Bone lengths
are read off frame 0 of HumanML3D's ``example_000612_new_joint_vecs.npy`` through
``recover_from_ric`` (a test re-measures them where ``../shared`` is present); bone
directions at rest are HumanML3D's ``t2m_raw_offsets``. Together they are the offsets every
clip is retargeted to before its features are taken.
"""

import numpy as np

FPS = 20
"""Frame rate of the feature representation and of every generated clip."""

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
NUM_JOINTS = len(JOINT_NAMES)

# Each joint's index by name, for code that picks joints (a test checks them against
# JOINT_NAMES): ``joints[:, HEAD]`` rather than ``joints[:, 15]``.
(
    PELVIS, LEFT_HIP, RIGHT_HIP, SPINE1, LEFT_KNEE, RIGHT_KNEE, SPINE2, LEFT_ANKLE, RIGHT_ANKLE,
    SPINE3, LEFT_FOOT, RIGHT_FOOT, NECK, LEFT_COLLAR, RIGHT_COLLAR, HEAD, LEFT_SHOULDER,
    RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST,
) = range(22)  # fmt: skip

PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)  # fmt: skip

KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),  # right leg
    (0, 1, 4, 7, 10),  # left leg
    (0, 3, 6, 9, 12, 15),  # spine and head
    (9, 14, 17, 19, 21),  # right arm
    (9, 13, 16, 18, 20),  # left arm
)

# Unit bone directions at rest (character faces +Z, Y up, its left is +X).
RAW_OFFSETS = np.array(
    [
        [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0],
        [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0],
        [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float64,
)  # fmt: skip

# Metres; entry i is the length of the bone from PARENTS[i] to i (0 for the root).
BONE_LENGTHS = np.array(
    [
        0.0, 0.10307398, 0.10988337, 0.13156822, 0.3936232, 0.39018821, 0.14319019,
        0.43243298, 0.4256434, 0.05736481, 0.1433818, 0.14941907, 0.21936002, 0.13748678,
        0.14338283, 0.1030392, 0.131614, 0.12298436, 0.25683986, 0.26309176, 0.26601184,
        0.26987634,
    ],
    dtype=np.float64,
)  # fmt: skip

CANONICAL_OFFSETS = RAW_OFFSETS * BONE_LENGTHS[:, None]
"""(22, 3) rest offsets of each joint from its parent, metres."""

FACE_JOINTS = (RIGHT_HIP, LEFT_HIP, RIGHT_SHOULDER, LEFT_SHOULDER)
"""Frame 0's facing is up x ((r_hip - l_hip) + (r_shoulder - l_shoulder))."""
FOOT_LEFT = (LEFT_ANKLE, LEFT_FOOT)
FOOT_RIGHT = (RIGHT_ANKLE, RIGHT_FOOT)
HIPS = (LEFT_HIP, RIGHT_HIP)
SHOULDERS = (LEFT_SHOULDER, RIGHT_SHOULDER)
COLLARS = (LEFT_COLLAR, RIGHT_COLLAR)
SPINE_UP = (HEAD, NECK, SPINE3, SPINE2, SPINE1)
"""The spine from the top down: the highest of these a rig has gives its up direction."""
LEG_SCALE_JOINTS = (RIGHT_KNEE, RIGHT_ANKLE)
"""Bones whose lengths set the scale when retargeting a clip to the canonical skeleton."""

MIRROR_INDEX: tuple[int, ...] = tuple(
    JOINT_NAMES.index(n.replace("left_", "@").replace("right_", "left_").replace("@", "right_"))
    for n in JOINT_NAMES
)
"""Joint i of a mirrored clip is joint MIRROR_INDEX[i] of the original with x negated."""
