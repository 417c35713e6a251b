"""BVH reading and writing: round trips, a hand-computed pose, bad files, a real Bandai clip."""

import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from engine.errors import BVHError, MotionError
from engine.io.bvh import BVH, canonical_bvh, read_bvh, write_bvh
from engine.motion.rig_pose import forward_kinematics
from engine.motion.skeleton import CANONICAL_OFFSETS, JOINT_NAMES, PARENTS

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
BANDAI_TAR = SHARED / "data" / "bandai-namco-motion.tar.xz"
FIRST_BANDAI_BVH = "dataset-1_bye_feminine_001.bvh"  # the archive's first clip: cheap to reach


def random_bvh(rng: np.random.Generator, num_joints: int = 9, num_frames: int = 7) -> BVH:
    """A random tree in depth-first order with mixed channel layouts and End Sites on leaves."""
    parents = [-1]
    for j in range(1, num_joints):
        parents.append(int(rng.integers(max(0, j - 3), j)))  # depth first: parent among recent
    parents = _depth_first_relabel(parents)
    layouts = [
        ["Xposition", "Yposition", "Zposition"]
        + list(rng.permutation(["Xrotation", "Yrotation", "Zrotation"])),
        list(rng.permutation(["Xrotation", "Yrotation", "Zrotation"])),
        ["Zrotation", "Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation"],
        ["Yrotation", "Xrotation"],  # a subset of rotations
    ]
    channels = [[str(c) for c in layouts[0]]]
    channels += [[str(c) for c in layouts[rng.integers(1, 4)]] for _ in range(1, num_joints)]
    leaves = set(range(num_joints)) - set(parents)
    return BVH(
        names=[f"joint_{j}" for j in range(num_joints)],
        parents=parents,
        offsets=rng.normal(size=(num_joints, 3)) * 10,
        channels=channels,
        frame_time=1 / 30,
        motion=rng.uniform(-180, 180, size=(num_frames, sum(len(c) for c in channels))),
        end_sites={j: rng.normal(size=3) for j in sorted(leaves)},
    )


def _depth_first_relabel(parents: list[int]) -> list[int]:
    kids = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(parents))}
    order, todo = [], [0]
    while todo:
        j = todo.pop()
        order.append(j)
        todo.extend(reversed(kids[j]))
    new = {old: i for i, old in enumerate(order)}
    return [-1] + [new[parents[old]] for old in order[1:]]


def test_write_read_round_trip_of_random_hierarchies(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(5):
        bvh = random_bvh(rng)
        path = tmp_path / f"clip{trial}.bvh"
        write_bvh(path, bvh)
        back = read_bvh(path)
        assert back.names == bvh.names and back.parents == bvh.parents
        assert back.channels == bvh.channels
        assert back.frame_time == pytest.approx(bvh.frame_time, rel=1e-9)
        np.testing.assert_allclose(back.offsets, bvh.offsets, atol=1e-5)
        np.testing.assert_allclose(back.motion, bvh.motion, atol=1e-5)
        assert sorted(back.end_sites) == sorted(bvh.end_sites)
        for j, off in bvh.end_sites.items():
            np.testing.assert_allclose(back.end_sites[j], off, atol=1e-5)
        np.testing.assert_allclose(back.world_positions(), bvh.world_positions(), atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".bvh"]  # no temp files left


def test_writer_reorders_joints_listed_out_of_depth_first_order(tmp_path):
    rng = np.random.default_rng(1)
    bvh = random_bvh(rng, num_joints=4)
    bvh.parents = [-1, 0, 0, 1]  # joint 3 hangs under 1 but is listed after 2
    write_bvh(tmp_path / "x.bvh", bvh)
    back = read_bvh(tmp_path / "x.bvh")
    assert back.names == ["joint_0", "joint_1", "joint_3", "joint_2"]
    order = [bvh.names.index(n) for n in back.names]
    np.testing.assert_allclose(back.world_positions(), bvh.world_positions()[:, order], atol=1e-5)


TINY = (
    "HIERARCHY\r\nROOT hips\r\n{\r\n\tOFFSET 5 5 5\r\n"
    "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\r\n"
    "\tJOINT arm\r\n\t{\r\n\t\tOFFSET 0 10 0\r\n\t\tCHANNELS 3 Zrotation Xrotation Yrotation\r\n"
    "\t\tEnd Site\r\n\t\t{\r\n\t\t\tOFFSET 0 4 0\r\n\t\t}\r\n\t}\r\n}\r\n"
    "MOTION\r\nFrames: 2\r\nFrame Time:\t0.05\r\n"
    "1 2 3 90 0 0 0 0 0\r\n"
    "1 2 3 90 90 0 0 0 0\r\n"
)


def test_tiny_file_matches_hand_computed_pose(tmp_path):
    path = tmp_path / "tiny.bvh"
    path.write_bytes(TINY.encode())
    bvh = read_bvh(path)
    assert bvh.names == ["hips", "arm"] and bvh.parents == [-1, 0] and bvh.fps == pytest.approx(20)
    np.testing.assert_allclose(bvh.end_sites[1], [0, 4, 0])
    pos = bvh.world_positions()
    # Frame 0: the root sits at its position channels (not offset + channels); a 90 degree
    # turn about Z takes the arm's (0, 10, 0) to (-10, 0, 0).
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [-9, 2, 3]], atol=1e-12)
    # Frame 1: R = Rz(90) Rx(90): Rx takes (0, 10, 0) to (0, 0, 10), which Rz leaves alone.
    np.testing.assert_allclose(pos[1], [[1, 2, 3], [1, 2, 13]], atol=1e-12)


def test_position_channels_replace_the_offset_on_any_joint():
    bvh = BVH(
        names=["a", "b"],
        parents=[-1, 0],
        offsets=np.array([[0.0, 0, 0], [0, 10, 0]]),
        channels=[["Xrotation"], ["Yposition", "Xrotation"]],
        frame_time=0.1,
        motion=np.array([[0.0, 3.0, 0.0]]),
    )
    np.testing.assert_allclose(bvh.local_translations()[0, 1], [0, 3, 0])
    np.testing.assert_allclose(bvh.world_positions()[0, 1], [0, 3, 0])


def test_canonical_bvh_reproduces_rigid_joints(tmp_path):
    rng = np.random.default_rng(2)
    num_frames = 12
    local = rng.normal(size=(num_frames, 22, 4))
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    root = np.cumsum(rng.normal(scale=0.05, size=(num_frames, 3)), axis=0) + [0, 0.9, 0]
    joints = forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)
    for scale in (1.0, 100.0):
        path = tmp_path / f"canonical_{scale:g}.bvh"
        write_bvh(path, canonical_bvh(joints, fps=20, scale=scale))
        back = read_bvh(path)
        assert sorted(back.names) == sorted(JOINT_NAMES) and back.fps == pytest.approx(20)
        assert len(back.channels[0]) == 6 and all(len(c) == 3 for c in back.channels[1:])
        order = [back.names.index(n) for n in JOINT_NAMES]
        np.testing.assert_allclose(back.world_positions()[:, order] / scale, joints, atol=1e-5)


def test_canonical_bvh_fits_branch_bones_of_another_skeleton(tmp_path):
    """Hips spread 40 degrees below the canonical hip line (as a model trained on another
    skeleton holds them): the written BVH keeps every joint on its target, not a compromise
    that moves whole legs."""
    rng = np.random.default_rng(3)
    offsets = CANONICAL_OFFSETS.copy()
    down = np.radians(40)
    for hip in (1, 2):
        x = offsets[hip, 0]
        offsets[hip] = (x * np.cos(down), -abs(x) * np.sin(down), 0.0)
    local = rng.normal(size=(10, 22, 4)) * [4, 1, 1, 1]  # moderate rotations
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    joints = forward_kinematics(local, np.tile([0, 0.9, 0], (10, 1)), PARENTS, offsets)
    write_bvh(tmp_path / "other.bvh", canonical_bvh(joints))
    back = read_bvh(tmp_path / "other.bvh")
    order = [back.names.index(n) for n in JOINT_NAMES]
    np.testing.assert_allclose(back.world_positions()[:, order], joints, atol=1e-4)


def test_canonical_rest_pose_stands_on_the_floor():
    bvh = canonical_bvh(np.zeros((1, 22, 3)) + np.arange(22)[None, :, None] * 0.01)
    rest = forward_kinematics(
        np.tile([1.0, 0, 0, 0], (1, 22, 1)), bvh.offsets[0][None], bvh.parents, bvh.offsets
    )
    assert rest[0, :, 1].min() == pytest.approx(0.0, abs=1e-9)


GOOD_HEADER = (
    "HIERARCHY\nROOT hips\n{\n  OFFSET 0 0 0\n"  # lines 1-4
    "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"  # line 5
    "  JOINT arm\n  {\n    OFFSET 0 10 0\n"  # lines 6-8
    "    CHANNELS 3 Zrotation Xrotation Yrotation\n"  # line 9
    "    End Site\n    {\n      OFFSET 0 4 0\n    }\n  }\n}\n"  # lines 10-15
)
FRAME = "1 2 3 4 5 6 7 8 9\n"
GOOD = GOOD_HEADER + "MOTION\nFrames: 3\nFrame Time: 0.0333333\n" + FRAME * 3  # frames: 19-21


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD[: GOOD.rindex(FRAME)], 21, "truncated"),
        (GOOD + FRAME, 22, "more frame lines"),
        (
            GOOD[: GOOD.index(FRAME)] + FRAME + "1 2 3 4 5 6 7 8\n" + FRAME,
            20,
            "frame 2 has 8 values",
        ),
        (GOOD.replace("1 2 3 4 5 6 7 8 9\n", "1 2 3 4 5 6 7 8 x9\n", 2), 19, "'x9'"),
        (GOOD[: GOOD.rindex(FRAME)] + "1 2 3 nan 5 6 7 8 9\n", 21, "'nan'"),
        (GOOD.replace("CHANNELS 3 Zrotation", "CHANNELS 4 Zrotation"), 9, "declares 4"),
        (GOOD.replace("Xrotation Yrotation\n    End", "Xrot Yrotation\n    End"), 9, "'Xrot'"),
        (GOOD.replace("Frames: 3", "Frames: 0"), 17, "zero frames"),
        (GOOD.replace("MOTION", "MOVEMENT"), 21, "MOTION"),
        (GOOD.replace("HIERARCHY", "HIERARCHIES"), 1, "HIERARCHY"),
        (GOOD.replace("Frame Time: 0.0333333", "Frame Time: -1"), 18, "Frame Time"),
        (GOOD.replace("Frame Time: 0.0333333", "1 2 3 4 5 6 7 8 9"), 18, "Frame Time"),
        (GOOD.replace("    }\n  }\n}\n", "    }\n  }\n"), 15, "unbalanced"),
        (GOOD.replace("  }\n}\n", "  }\n}\n}\n"), 16, "unbalanced"),
        (GOOD.replace("OFFSET 0 10 0", "OFFSET 0 10"), 8, "OFFSET"),
        (GOOD.replace("MOTION", "ROOT two\n{\n  OFFSET 0 0 0\n}\nMOTION"), 16, "ROOT misplaced"),
        (GOOD.replace("    OFFSET 0 10 0\n", ""), 6, "no OFFSET"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "bad_clip.bvh"
    path.write_text(text)
    with pytest.raises(BVHError) as info:
        read_bvh(path)
    assert info.value.line == line, str(info.value)
    assert f"bad_clip.bvh:{line}:" in str(info.value) and words in str(info.value)


def test_good_fixture_reads(tmp_path):
    # The bad-file cases above are edits of this one, so it must itself be fine.
    path = tmp_path / "good.bvh"
    path.write_text(GOOD)
    assert read_bvh(path).motion.shape == (3, 9)


def test_missing_file_is_a_bvh_error(tmp_path):
    with pytest.raises(BVHError, match="nothere.bvh"):
        read_bvh(tmp_path / "nothere.bvh")


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.bvh"
    path.write_text(GOOD)
    bvh = read_bvh(path)
    bvh.motion = bvh.motion * 2

    def disk_full(fh, *args, **kwargs):
        fh.write("1 2 3")  # half a frame, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(np, "savetxt", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_bvh(path, bvh)
    assert path.read_text() == GOOD and [p.name for p in tmp_path.iterdir()] == ["keep.bvh"]


@pytest.mark.parametrize(
    ("where", "reason"),
    [("no/such/walk.bvh", "does not exist"), ("a_file/walk.bvh", "is a file, not a folder"),
     ("a_folder", "is a folder"), ("locked/walk.bvh", "cannot write in")],
)  # fmt: skip
def test_an_unwritable_path_is_named_as_given(tmp_path, monkeypatch, where, reason):
    """The error names the file asked for, never the hidden temporary file beside it."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "locked").mkdir()
    real_mkstemp = tempfile.mkstemp

    def refused(*args, dir=None, **kwargs):  # root may write anywhere: refuse as the OS would
        if Path(dir).name == "locked":
            raise PermissionError(13, "Permission denied", str(Path(dir) / ".walk.x1.bvh"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    target = tmp_path / where
    with pytest.raises(MotionError) as error:
        write_bvh(target, canonical_bvh(np.zeros((3, 22, 3))))
    message = str(error.value)
    assert message.startswith(f"{target}: ") and reason in message
    assert ".tmp" not in message and "/.walk" not in message


def test_writing_motion_that_does_not_fit_the_channels_is_refused(tmp_path):
    path = tmp_path / "x.bvh"
    path.write_text(GOOD)
    bvh = read_bvh(path)
    bvh.motion = bvh.motion[:, :5]
    with pytest.raises(MotionError, match="channels"):
        write_bvh(tmp_path / "y.bvh", bvh)


def extract_first_bandai_clip(tmp_path: Path) -> Path:
    """The archive's first BVH, written to tmp_path (skips when ../shared is absent)."""
    if not BANDAI_TAR.exists():
        pytest.skip("../shared data not present")
    with tarfile.open(BANDAI_TAR, "r:xz") as archive:
        for member in archive:
            if member.name.endswith(FIRST_BANDAI_BVH):
                target = tmp_path / FIRST_BANDAI_BVH
                target.write_bytes(archive.extractfile(member).read())
                return target
    pytest.fail(f"{FIRST_BANDAI_BVH} not in {BANDAI_TAR}")


def test_real_bandai_clip_reads_with_its_conventions(tmp_path):
    bvh = read_bvh(extract_first_bandai_clip(tmp_path))
    assert bvh.names[:3] == ["joint_Root", "Hips", "Spine"] and len(bvh.names) == 22
    assert all(len(c) == 6 for c in bvh.channels) and bvh.fps == pytest.approx(30, rel=1e-5)
    assert bvh.num_frames == 328
    trans = bvh.local_translations()
    # Below the Hips the position channels repeat the OFFSET; on the Hips they are the motion.
    np.testing.assert_allclose(
        trans[:, 2:], np.broadcast_to(bvh.offsets[2:], trans[:, 2:].shape), atol=1e-4
    )
    assert 80 < trans[:, 1, 1].mean() < 100  # Hips height in cm, not OFFSET + channel (~180)
    pos = bvh.world_positions()
    assert pos[:, bvh.names.index("Toes_L"), 1].min() == pytest.approx(4, abs=3)  # cm, floor y = 0
