"""CMU clips on the Character Creator skeleton: the folder's own format, captions true of
what is trained on, the credit line, and JSON joint maps through build-dataset's command line.

Fixture folders are written by the tests (tiny CC-named BVH files and a CMU listing); the
test on the real archive reads ``../shared/data/cmu-subjects-01-07.tar.xz`` and skips when
it is absent."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.io.bvh import canonical_bvh, write_bvh
from engine.motion.demo_clip import walk_cycle
from engine.motion.skeleton import JOINT_NAMES, PARENTS
from engine.retarget.joint_map import bvh_to_canonical
from engine.retarget.presets import PRESETS
from training.build_dataset import ReadOptions, process_clip
from training.captions import parse_text_line
from training.cli import main
from training.cmu import ATTRIBUTION, PHRASES, WHOLE_CLIP_S, discover_cmu

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CMU_TAR = SHARED / "data" / "cmu-subjects-01-07.tar.xz"
CC_NAMES = dict(PRESETS["character_creator"].bones)
INDEX = (
    '"Subject","Trial #","Motion Description","framerate","Frames 60fps","Status","Worked on by"\n'
    '1,8,"playground - climb, sit, dangle legs, rock back, lower self to ground",120,1305,"",""\n'
    '5,17,"dance - coupe dessous, grand jete en tourant",120,522,"",""\n'
    '6,10,"basketball - forward dribble, 90-degree left turns",120,557,"",""\n'
)


def write_named_bvh(path: Path, joints: np.ndarray, names: dict[str, str], fps: float = 60.0):
    """Canonical joints as a BVH in centimetres with each joint renamed by ``names``."""
    bvh = canonical_bvh(joints, fps=fps, scale=100.0)
    renamed = [names[n] for n in bvh.names]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bvh(path, type(bvh)(renamed, bvh.parents, bvh.offsets, bvh.channels, bvh.frame_time,
                              bvh.motion, bvh.end_sites))  # fmt: skip


def write_cmu_folder(root: Path) -> Path:
    """Three CC-named clips as the archive lays them out: a long playground take (12 s),
    a short dance (3 s) and a dribble with left turns (3 s), and the CMU listing."""
    for name, seconds in (("001_08", 12.0), ("005_17", 3.0), ("006_10", 3.0)):
        write_named_bvh(root / "bvh" / f"{name}.bvh", walk_cycle(seconds, fps=60), CC_NAMES)
    (root / "cmu-index.csv").write_text(INDEX, encoding="utf-8")
    return root


def captions_of(out: Path, clip_id: str) -> list[str]:
    """The whole-clip captions of a clip (not those of its timed parts)."""
    lines = (out / "texts" / f"{clip_id}.txt").read_text(encoding="utf-8").splitlines()
    parsed = [parse_text_line(line) for line in lines]
    return [x.caption for x in parsed if (x.start, x.end) == (0.0, 0.0)]


def test_cmu_folder_builds_from_the_command_line_with_true_captions_and_the_credit(
    tmp_path, capsys
):
    source, out = write_cmu_folder(tmp_path / "cmu"), tmp_path / "cmu-hml"
    assert main(["build-dataset", str(source), str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "joint map (detected from joint names): character_creator 3 files" in printed
    build = json.loads((out / "build.json").read_text())
    assert build["format"] == "cmu" and build["clips"]["built"] == 3
    assert build["attribution"] == ATTRIBUTION and "may not be resold" in build["licence"]
    assert build["read"]["map"] == {"character_creator": 3}
    labels = json.loads((out / "labels.json").read_text())
    ids = {entry["source"]: i for i, entry in labels.items() if entry["mirror_of"] is None}
    assert all(labels[i]["attribution"] == ATTRIBUTION for i in ids.values())
    assert ATTRIBUTION in (out / "README.md").read_text()

    # 12 s of "climb, sit, dangle legs, ...": a 9.8 s crop may hold any part of it, so only
    # captions true of every part; 3 s of dance: taken whole, so the sequence may be told.
    long_take = captions_of(out, ids["bvh/001_08.bvh"])
    playground = PHRASES[labels[ids["bvh/001_08.bvh"]]["labels"]["description"]]
    assert set(long_take) <= set(playground.any_window) and len(long_take) == 4
    dance = captions_of(out, ids["bvh/005_17.bvh"])
    assert "a dancer steps under and does a big turning leap" in dance and len(dance) >= 4
    turns = ids["bvh/006_10.bvh"]
    assert any("left" in c for c in captions_of(out, turns))
    mirrored = captions_of(out, "M" + turns)
    assert any("to the right" in c for c in mirrored) and not any("left" in c for c in mirrored)
    assert labels["M" + turns]["labels"]["description"].endswith("90-degree right turns")

    archive = tmp_path / "cmu.tar.gz"  # as shared: the folder packed under cmu/
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cmu")
    assert main(["build-dataset", str(archive), str(tmp_path / "from-tar"), "--workers", "1"]) == 0
    for name in ("labels.json", "texts/000000.txt", "new_joints/000001.npy", "train.txt"):
        assert (tmp_path / "from-tar" / name).read_bytes() == (out / name).read_bytes()


def test_every_listed_description_of_the_archive_has_captions_that_fit_a_crop():
    for description, phrases in PHRASES.items():
        assert len(set(phrases.any_window)) >= 3, description
        assert all(c == " ".join(c.split()) and "#" not in c for c in phrases.all_captions())
    assert WHOLE_CLIP_S < 196 / 20 + 0.6  # at most half a second left out of a crop


def unknown_skeleton_folder(root: Path, count: int = 3) -> Path:
    """``count`` clips of a studio skeleton no built-in map knows (``Studio_*`` names)."""
    names = {j: f"Studio_{j.title().replace('_', '')}" for j in JOINT_NAMES}
    for i in range(count):
        write_named_bvh(root / f"take{i}.bvh", walk_cycle(2.0, fps=30), names, fps=30.0)
        (root / f"take{i}.txt").write_text("a person walks forward\n")
    return root


def studio_map(path: Path, name: str = "studio") -> Path:
    """The studio's JSON joint map, with the spine joints left to be filled in between."""
    bones = {j: f"Studio_{j.title().replace('_', '')}" for j in JOINT_NAMES}
    del bones["spine2"]
    path.write_text(json.dumps({"name": name, "bones": bones}), encoding="utf-8")
    return path


def test_an_unknown_skeleton_is_one_short_line_naming_the_closest_map_and_the_flag(
    tmp_path, capsys
):
    source = unknown_skeleton_folder(tmp_path / "studio")
    status = main(["build-dataset", str(source), str(tmp_path / "out"), "--workers", "1"])
    assert status == 2  # nothing could be built
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert both.count("no joint map knows") == 1  # said once, not once per file and again
    line = next(line for line in both.splitlines() if "no joint map knows" in line)
    assert len(line) < 250 and "Studio_Pelvis" in line and "--map-file" in line
    assert "none of the 3 files could be built" in captured.err

    near = unknown_skeleton_folder(tmp_path / "near", count=2)  # SMPL names, loosely written
    for take in near.glob("*.bvh"):  # ... but for two joints
        text = take.read_text().replace("Studio_", "").replace("Spine1", "Belly")
        take.write_text(text.replace("LeftKnee", "KneeCapL"))
    assert main(["build-dataset", str(near), str(tmp_path / "out"), "--workers", "1"]) == 2
    captured = capsys.readouterr()
    assert "closest 'smpl' lacks spine1, left_knee. Write" in captured.out + captured.err


def test_a_json_map_file_or_a_map_in_the_user_folder_reads_the_studio_skeleton(
    tmp_path, capsys, monkeypatch
):
    source = unknown_skeleton_folder(tmp_path / "studio")
    map_file = studio_map(tmp_path / "studio_rig.json")
    out = tmp_path / "out"
    assert main(["build-dataset", str(source), str(out), "--map-file", str(map_file)]) == 0
    assert "joint map (given): studio 3 files" in capsys.readouterr().out
    build = json.loads((out / "build.json").read_text())
    assert build["read"]["map"] == {"studio": 3}
    assert build["settings"]["map_file"] == "studio_rig.json"

    folder = tmp_path / "maps"
    folder.mkdir()
    studio_map(folder / "studio.json", name="studio_saved")
    monkeypatch.setenv("KINETEXT_JOINT_MAPS", str(folder))  # the documented user folder
    assert main(["build-dataset", str(source), str(out)]) == 0
    assert "(detected from joint names): studio_saved 3 files" in capsys.readouterr().out
    assert main(["build-dataset", str(source), str(out), "--map", "studio_saved"]) == 0
    joints = np.load(out / "new_joints" / "000000.npy")
    assert joints.shape[1:] == (22, 3) and abs(joints[:, :, 1].min()) < 0.01  # on the floor


def test_a_bad_map_file_is_one_error_line_and_nothing_is_written(tmp_path, refused):
    source = unknown_skeleton_folder(tmp_path / "studio", count=1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"bones": {"pelvis": "Studio_Pelvis"}}')
    line = refused(main, ["build-dataset", str(source), str(tmp_path / "o"), "--map-file",
                          str(bad)], tmp_path)  # fmt: skip
    assert "bad.json" in line and "names no joint for left_hip" in line


# ---------------------------------------------------------------------------- real archive


@pytest.fixture(scope="module")
def cmu_archive(tmp_path_factory) -> Path:
    """The real archive unpacked once (about 150 MB of BVH text) into a temporary folder."""
    if not CMU_TAR.exists():
        pytest.skip("../shared/data/cmu-subjects-01-07.tar.xz not present")
    root = tmp_path_factory.mktemp("cmu")
    with tarfile.open(CMU_TAR) as archive:
        archive.extractall(root, filter="data")
    return next(p.parent for p in root.rglob("cmu-index.csv"))


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(T, 21) lengths of the canonical bones."""
    return np.linalg.norm(joints[:, 1:] - joints[:, PARENTS[1:]], axis=-1)


def test_every_clip_of_the_real_archive_is_found_and_captioned(cmu_archive):
    found = discover_cmu(cmu_archive)
    assert len(found.clips) == 61 and not found.skipped
    assert found.attribution == ATTRIBUTION
    assert all(len(c.captions) >= 4 for c in found.clips)
    groups = {c.group for c in found.clips}
    assert {"climb", "walk", "run", "jump", "punch", "dance", "basketball"} <= groups


@pytest.mark.parametrize(
    ("clip", "on_floor"),
    [("007_03", True), ("002_01", True), ("006_02", True), ("005_06", False), ("001_14", False)],
)
def test_real_clips_read_as_rigid_standing_bodies_with_feet_on_the_floor(
    cmu_archive, clip, on_floor
):
    """Walks, a dribble, a dance and a playground take: the character_creator map is
    detected, bones keep their length, the body stands along +Y, the feet touch the floor
    (walks and dribbles: the lowest foot within 5 cm in most frames, 10 cm in 95%), and the
    T-pose frame the conversion put in front of some takes (007_03) is gone."""
    path = cmu_archive / "bvh" / f"{clip}.bvh"
    raw = bvh_to_canonical(path)  # as read, before the builder canonicalises
    lengths = bone_lengths(raw)
    assert (lengths.std(axis=0) < 0.01).all()  # rigid to 1 cm (the blends are rigid too)
    data = process_clip(path, ReadOptions())
    assert data.read["map"] == "character_creator" and data.read["up"] == "Y"
    assert ("first_frame" in data.read) == (clip == "007_03")
    joints = data.joints  # canonical: floor at y = 0, metres
    head, pelvis = joints[:, 15, 1], joints[:, 0, 1]
    ankles = joints[:, [7, 8], 1].min(axis=1)
    assert np.median(head) > np.median(pelvis) > np.median(ankles)  # standing upright
    assert (1.3 if on_floor else 0.9) < np.median(head - ankles) < 1.8  # climbs crouch
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)
    assert steps.max() < 0.5  # no jump of half a metre in 1/20 s (no added T-pose frame)
    if on_floor:  # the lowest foot; subject 7's capture floor rises about 6 cm over 3 s
        feet = joints[:, [7, 8, 10, 11], 1].min(axis=1)
        assert np.median(feet) < 0.05 and np.percentile(feet, 95) < 0.1


def test_timed_parts_of_a_long_take_are_spans_the_loader_crops_within(tmp_path):
    """001_08's parts (walk up and climb, sit on top, climb down) are written as
    ``#start#end`` lines, cut to the clip (a 12 s fixture keeps two), mirrored, and the
    HumanML3D loader makes an item of each part that starts where the part does."""
    from training.data.humanml3d import MotionDataset

    source, out = write_cmu_folder(tmp_path / "cmu"), tmp_path / "hml"
    argv = ["build-dataset", str(source), str(out), "--workers", "1", "--split", "1,0,0"]
    assert main(argv) == 0
    labels = json.loads((out / "labels.json").read_text())
    take = next(i for i, e in labels.items() if e["source"] == "bvh/001_08.bvh")
    lines = [parse_text_line(x) for x in (out / "texts" / f"{take}.txt").read_text().splitlines()]
    parts = {(x.start, x.end) for x in lines if (x.start, x.end) != (0.0, 0.0)}
    assert parts == {(0.0, 6.0), (6.0, 12.0)}  # the third part (18.5-21.8 s) is past 12 s
    sitting = {x.caption for x in lines if x.start == 6.0}
    assert "a person sits up on a climbing frame with the legs dangling" in sitting
    mirror = (out / "texts" / f"M{take}.txt").read_text()
    assert "#6.0#12.0" in mirror
    data = MotionDataset(out, "train", mirror=False)
    starts = {
        data[i].start: set(data.captions(i)) for i in range(len(data)) if data.item_id(i) == take
    }
    assert starts[120] == sitting  # 6 s at 20 fps: the sitting part, whole (120 frames)
    assert any("walks to a climbing frame" in c for c in starts[0])
