"""The DeepMimic adapter: a small DeepMimic character and motions written here, built through
the CLI; and (where ../shared is present) the real archive."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.errors import MotionError
from engine.motion.skeleton import JOINT_NAMES, PARENTS
from training.build_dataset import assign_splits
from training.cli import main
from training.deepmimic import read_character, read_deepmimic
from training.deepmimic_source import pin_rare_actions
from training.sources import ClipSource

ARCHIVE = Path(__file__).resolve().parents[2].parent / "shared/data/deepmimic-motions.tar.xz"
J = {name: i for i, name in enumerate(JOINT_NAMES)}
FEET = [J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]

# name, type, parent, offset (metres; the body faces +X, its right side is +Z)
JOINTS = [
    ("root", "none", -1, (0, 0, 0)),
    ("chest", "spherical", 0, (0, 0.25, 0)),
    ("neck", "spherical", 1, (0, 0.22, 0)),
    ("right_hip", "spherical", 0, (0, 0, 0.09)),
    ("right_knee", "revolute", 3, (0, -0.42, 0)),
    ("right_ankle", "spherical", 4, (0, -0.41, 0)),
    ("right_shoulder", "spherical", 1, (-0.02, 0.24, 0.18)),
    ("right_elbow", "revolute", 6, (0, -0.27, 0)),
    ("right_wrist", "fixed", 7, (0, -0.26, 0)),
    ("left_hip", "spherical", 0, (0, 0, -0.09)),
    ("left_knee", "revolute", 9, (0, -0.42, 0)),
    ("left_ankle", "spherical", 10, (0, -0.41, 0)),
    ("left_shoulder", "spherical", 1, (-0.02, 0.24, -0.18)),
    ("left_elbow", "revolute", 12, (0, -0.27, 0)),
    ("left_wrist", "fixed", 13, (0, -0.26, 0)),
]
ROOT_HEIGHT = 0.42 + 0.41 + 0.05  # straight legs, ankle 5 cm above the sole


def body(name: str, attach, params) -> dict:
    return {"Name": name, "AttachX": attach[0], "AttachY": attach[1], "AttachZ": attach[2],
            **{f"Param{i}": p for i, p in enumerate(params)}}  # fmt: skip


def write_character(folder: Path) -> Path:
    joints = [{"ID": i, "Name": n, "Type": t, "Parent": p, "AttachX": o[0], "AttachY": o[1],
               "AttachZ": o[2]} for i, (n, t, p, o) in enumerate(JOINTS)]  # fmt: skip
    bodies = [body("neck", (0, 0.17, 0), (0.2, 0.2, 0.2)),
              body("right_ankle", (0.045, -0.0225, 0), (0.18, 0.055, 0.09))]  # fmt: skip
    path = folder / "characters" / "humanoid3d.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Skeleton": {"Joints": joints}, "BodyDefs": bodies}))
    return path


def yaw_q(angle: float) -> list[float]:
    return [np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0]


def z_q(angle: float) -> list[float]:
    return [np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)]


def walk_frames(fps: float = 30, period: float = 1.0, speed: float = 1.2, yaw: float = 0.0):
    """One looping walk cycle: legs swinging about +Z (the body's side axis), knees bent,
    the root moving forward along the body's +X, turned by ``yaw`` about +Y."""
    rows = []
    for k in range(int(period * fps) + 1):
        t = k / fps
        swing = 0.4 * np.sin(2 * np.pi * t / period)
        forward = np.array([np.cos(yaw), 0.0, -np.sin(yaw)]) * speed * t
        row = [1 / fps, forward[0], ROOT_HEIGHT - 0.02, forward[2], *yaw_q(yaw)]
        row += [1, 0, 0, 0] * 2  # chest, neck
        for side in (1, -1):  # right leg and arm, then left
            row += z_q(side * swing) + [-0.15 + 0.1 * side * swing] + [1, 0, 0, 0]
            row += z_q(-side * 0.5 * swing) + [0.3]  # shoulder; elbow; the wrist has none
        rows.append(row)
    return rows


def write_motion(folder: Path, name: str, frames, loop: str = "wrap") -> Path:
    path = folder / "motions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Loop": loop, "Frames": frames}))
    return path


@pytest.fixture
def deepmimic(tmp_path) -> Path:
    root = tmp_path / "dm"
    write_character(root)
    write_motion(root, "humanoid3d_walk.txt", walk_frames(yaw=np.pi / 2))
    write_motion(root, "humanoid3d_cartwheel.txt", walk_frames(fps=16, period=1.5))
    write_motion(root, "sie/sie_humanoid3d_run_left03.txt", walk_frames(60, 3.0, 3.0), "none")
    (root / "motions/sie/LICENSE").write_text("CC BY-NC 4.0 text")
    (root / "LICENSE-MIT").write_text("MIT License text")
    write_motion(root, "long/humanoid3d_long_walk1_mirror.txt", walk_frames())
    write_motion(root, "humanoid3d_somersault_tango.txt", walk_frames())
    write_motion(root, "humanoid3d_run.txt", [[0.03] + [0.0] * 10] * 5)  # too few values
    return root


def built(out: Path, clip: str) -> tuple[dict, np.ndarray, str]:
    labels = json.loads((out / "labels.json").read_text())
    clip_id = next(i for i, e in labels.items() if e["source"] == clip and not e["mirror_of"])
    joints = np.load(out / "new_joints" / f"{clip_id}.npy")
    return labels[clip_id], joints, (out / "texts" / f"{clip_id}.txt").read_text()


def test_cli_builds_deepmimic_folder_with_captions_terms_and_reasons(deepmimic, tmp_path):
    out = tmp_path / "out"
    assert main(["build-dataset", str(deepmimic), str(out), "--workers", "1"]) == 0
    build = json.loads((out / "build.json").read_text())
    assert build["format"] == "deepmimic" and build["clips"]["built"] == 3  # auto-detected
    assert build["splits"]["train"]["clips"] == 3  # one clip per action: all of them train
    reasons = {s["file"]: s["reason"] for s in build["skipped"]}
    assert "mirrored copy" in reasons["motions/long/humanoid3d_long_walk1_mirror.txt"]
    assert "no captions known" in reasons["motions/humanoid3d_somersault_tango.txt"]
    assert "needs 44" in reasons["motions/humanoid3d_run.txt"]
    assert (
        "MIT" in build["attribution"] and "Sony Interactive Entertainment" in build["attribution"]
    )
    assert "CC BY-NC 4.0" in build["licence"] and set(build["terms"].values()) == {1, 2}
    licence = (out / "LICENSE").read_text()
    assert "MIT License text" in licence and "CC BY-NC 4.0 text" in licence
    entry, _, texts = built(out, "motions/humanoid3d_cartwheel.txt")
    assert "a person does a cartwheel" in texts and "flips sideways over their hands" in texts
    assert entry["labels"] == {"content": "cartwheel"} and entry["terms"].startswith("MIT")
    entry, _, texts = built(out, "motions/sie/sie_humanoid3d_run_left03.txt")
    assert entry["terms"].startswith("CC BY-NC 4.0") and "turns left" in texts
    mirror = next(
        i
        for i, e in json.loads((out / "labels.json").read_text()).items()
        if e["mirror_of"] == built_id(out, "motions/sie/sie_humanoid3d_run_left03.txt")
    )
    assert "turns right" in (out / "texts" / f"{mirror}.txt").read_text()


def built_id(out: Path, clip: str) -> str:
    labels = json.loads((out / "labels.json").read_text())
    return next(i for i, e in labels.items() if e["source"] == clip and not e["mirror_of"])


def test_walk_stands_on_the_floor_faces_forward_and_walks_forward(deepmimic, tmp_path):
    out = tmp_path / "out"
    assert main(["build-dataset", str(deepmimic), str(out), "--format", "deepmimic"]) == 0
    entry, joints, _ = built(out, "motions/humanoid3d_walk.txt")
    assert entry["read"]["cycles"] == 4 and entry["read"]["source_fps"] == pytest.approx(30)
    assert len(joints) == 81  # four 1 s cycles at 20 fps
    assert (joints[:, J["head"], 1] > joints[:, J["pelvis"], 1] + 0.3).all()  # Y up
    assert joints[..., 1].min() == pytest.approx(0, abs=1e-6)
    assert joints[:, FEET, 1].min(axis=1).max() < 0.07  # a foot near the floor every frame
    travel = joints[-1, 0] - joints[0, 0]
    assert travel[2] == pytest.approx(4 * 1.2, rel=0.05) and abs(travel[0]) < 0.1  # +Z forward
    for side in ("left", "right"):  # toes ahead of the ankles, knees bent forward
        assert (joints[:, J[f"{side}_foot"], 2] > joints[:, J[f"{side}_ankle"], 2]).all()
        knee, hip, ankle = (joints[0, J[f"{side}_{n}"]] for n in ("knee", "hip", "ankle"))
        assert knee[2] > (hip[2] + ankle[2]) / 2
    left_minus_right = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    assert (left_minus_right[:, 0] > 0.1).all()  # its left is +X, as in the canonical skeleton


def test_bones_stay_rigid_and_loops_join_smoothly(deepmimic):
    clip = read_deepmimic(deepmimic / "motions/humanoid3d_cartwheel.txt")
    joints = clip.joints  # before canonicalisation: the DeepMimic body's own proportions
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)
    assert np.ptp(bones, axis=0).max() < 1e-9
    assert clip.read["source_fps"] == pytest.approx(16) and clip.read["cycles"] == 3
    steps = np.linalg.norm(np.diff(joints[:, 0], axis=0), axis=-1)
    assert steps.max() < 1.5 * np.median(steps)  # no jump where one cycle meets the next


def test_rare_actions_always_train_the_rest_drawn(tmp_path):
    clips = [ClipSource(tmp_path / f"r{i}", f"run{i}", ("run",), group="run") for i in range(20)]
    clips.append(ClipSource(tmp_path / "c", "cartwheel", ("cartwheel",), group="cartwheel"))
    split = assign_splits(pin_rare_actions(clips), (0.8, 0.1, 0.1), seed=0)
    assert split["cartwheel"] == "train"
    assert Counter(split[f"run{i}"] for i in range(20)) == {"train": 16, "val": 2, "test": 2}


def test_short_one_shot_motion_holds_its_end_poses(tmp_path):
    write_character(tmp_path)
    path = write_motion(tmp_path, "humanoid3d_kick.txt", walk_frames(period=1.0), "none")
    clip = read_deepmimic(path)
    assert clip.read["held_ends"] and len(clip.joints) >= 48  # 2.4 s at 20 fps
    assert np.allclose(clip.joints[0], clip.joints[1]) and np.allclose(
        clip.joints[-1], clip.joints[-2]
    )


def test_bad_character_and_motion_files_are_clear_errors(tmp_path):
    write_character(tmp_path)
    path = tmp_path / "characters" / "humanoid3d.txt"
    data = json.loads(path.read_text())
    data["Skeleton"]["Joints"] = data["Skeleton"]["Joints"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(MotionError, match="lacks the joints left_wrist"):
        read_character(path)
    write_character(tmp_path)
    (tmp_path / "motions").mkdir()
    (tmp_path / "motions" / "x.txt").write_text("{not json")
    with pytest.raises(MotionError, match="not a readable DeepMimic JSON"):
        read_deepmimic(tmp_path / "motions" / "x.txt")


@pytest.mark.skipif(not ARCHIVE.is_file(), reason="../shared DeepMimic archive not present")
def test_real_archive_builds_upright_rigid_and_walking_forward(tmp_path):
    out = tmp_path / "dm"
    assert main(["build-dataset", str(ARCHIVE), str(out), "--workers", "2"]) == 0
    build = json.loads((out / "build.json").read_text())
    assert build["format"] == "deepmimic" and build["clips"]["built"] >= 50
    assert set(build["labels"]["content"]) >= {"backflip", "cartwheel", "crawl", "kick", "roll"}
    _, walk, _ = built(out, "deepmimic/motions/humanoid3d_walk.txt")
    assert walk[-1, 0, 2] - walk[0, 0, 2] > 3.0  # four cycles forward along +Z
    assert np.median(walk[:, J["head"], 1] - walk[:, J["pelvis"], 1]) > 0.4
    assert np.percentile(walk[:, FEET, 1].min(axis=1), 95) < 0.05
    _, flip, _ = built(out, "deepmimic/motions/humanoid3d_backflip.txt")
    assert flip[:, J["head"], 1].min() < flip[:, J["pelvis"], 1].min() + 0.2  # upside down
    assert flip[-1, 0, 2] - flip[0, 0, 2] < -1.0  # and it lands behind where it started
