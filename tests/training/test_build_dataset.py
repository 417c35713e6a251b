"""The data-set builder: HumanML3D layout, mirrors, splits, skipped files, atomic and
reproducible builds, statistics. Fixture clips are canonical skeletons written as BVH."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.errors import MotionError
from engine.io.bvh import canonical_bvh, write_bvh
from engine.motion.features import FEATURE_DIM, FEATURE_GROUPS
from engine.motion.skeleton import CANONICAL_OFFSETS, JOINT_NAMES, PARENTS
from training.build_dataset import (
    SPLITS,
    BuildSettings,
    ProcessedClip,
    assign_splits,
    build_dataset,
)
from training.captions import parse_text_line
from training.cli import main
from training.sources import ClipSource, discover_folder

LEFT_WRIST, RIGHT_WRIST = JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")


def rest_pose() -> np.ndarray:
    """(22, 3) canonical rest pose, feet on the floor, facing +Z."""
    pos = np.zeros((len(PARENTS), 3))
    for j, parent in enumerate(PARENTS):
        if parent >= 0:
            pos[j] = pos[parent] + CANONICAL_OFFSETS[j]
    pos[:, 1] -= pos[:, 1].min()
    return pos


def walking_joints(frames: int, raise_left_hand: bool = False, speed: float = 1.2) -> np.ndarray:
    """(frames, 22, 3) at 30 fps: the rest pose gliding along +Z and bobbing 3 cm up and down
    twice a second, optionally with the left arm up."""
    joints = np.repeat(rest_pose()[None], frames, axis=0)
    seconds = np.arange(frames)[:, None] / 30
    joints[..., 2] += speed * seconds
    joints[..., 1] += 0.03 * (1 - np.cos(4 * np.pi * seconds))
    if raise_left_hand:
        up = np.array([0.0, 1.0, 0.0])
        joints[:, 18] = joints[:, 16] + up * np.linalg.norm(CANONICAL_OFFSETS[18])
        joints[:, 20] = joints[:, 18] + up * np.linalg.norm(CANONICAL_OFFSETS[20])
    return joints


def write_clip(folder: Path, name: str, captions: list[str], **motion) -> Path:
    path = folder / f"{name}.bvh"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bvh(path, canonical_bvh(walking_joints(motion.pop("frames", 30), **motion), fps=30))
    path.with_suffix(".txt").write_text("\n".join(captions) + "\n")
    return path


@pytest.fixture
def source(tmp_path) -> Path:
    """Four small clips with sidecar captions, one raising its left hand."""
    folder = tmp_path / "mocap"
    write_clip(folder, "a_walk", ["a person walks forward", "someone walks ahead"])
    write_clip(folder, "b_wave", ["a person raises the left hand"], raise_left_hand=True)
    write_clip(folder, "c_fast", ["a person walks quickly"], speed=2.0, frames=40)
    write_clip(folder / "sub", "d_slow", ["someone strolls forward"], speed=0.5)
    return folder


def folder_settings(**kw) -> BuildSettings:
    return BuildSettings(format="folder", workers=1, **kw)


def read_ids(out: Path, name: str) -> list[str]:
    return (out / f"{name}.txt").read_text().split()


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if
            p.is_file()}  # fmt: skip


def test_layout_shapes_and_text_lines(source, tmp_path):
    out = tmp_path / "ds"
    report = build_dataset(source, out, folder_settings(), progress=False)
    assert report.built == 4 and not report.skipped
    ids = read_ids(out, "all")
    assert len(ids) == 8
    for clip_id in ids:
        joints = np.load(out / "new_joints" / f"{clip_id}.npy")
        features = np.load(out / "new_joint_vecs" / f"{clip_id}.npy")
        assert joints.dtype == features.dtype == np.float32
        assert joints.shape[1:] == (22, 3) and features.shape == (len(joints) - 1, FEATURE_DIM)
        # canonical: floor at y = 0, frame 0's root at the XZ origin
        assert abs(joints[..., 1].min()) < 1e-5 and np.abs(joints[0, 0, [0, 2]]).max() < 1e-5
        for line in (out / "texts" / f"{clip_id}.txt").read_text().splitlines():
            text = parse_text_line(line)
            assert text.caption and text.tokens and (text.start, text.end) == (0.0, 0.0)
            assert all("/" in token for token in text.tokens)
    # 30 frames at 30 fps last 29/30 s: 20 frames at 20 fps (40 frames, 1.3 s -> 27)
    labels = json.loads((out / "labels.json").read_text())
    assert labels["000000"]["frames"] == 20 and labels["000002"]["frames"] == 27
    assert labels["000003"]["source"] == "sub/d_slow.bvh"
    build = json.loads((out / "build.json").read_text())
    assert build["clips"] == {"found": 4, "built": 4, "skipped": 0, "with_mirrors": 8}
    # how each file was read, per clip and counted (map, unit, source rate, up axis)
    assert labels["000000"]["read"]["map"] == "smpl" and labels["000000"]["read"]["up"] == "Y"
    assert build["read"]["source_fps"] == {"30.0": 4} and build["read"]["up"] == {"Y": 4}
    assert build["frames"]["total"] == 20 + 20 + 27 + 20
    assert build["hours"] == round(87 / 20 / 3600, 4)


def test_mirrors_swap_sides_in_motion_captions_and_labels(source, tmp_path):
    out = tmp_path / "ds"
    build_dataset(source, out, folder_settings(), progress=False)
    ids = read_ids(out, "all")
    assert sorted(i for i in ids if i.startswith("M")) == sorted("M" + i for i in ids if
                                                                 not i.startswith("M"))  # fmt: skip
    wave = np.load(out / "new_joints" / "000001.npy")
    mirror = np.load(out / "new_joints" / "M000001.npy")
    assert (wave[:, LEFT_WRIST, 1] > wave[:, RIGHT_WRIST, 1] + 0.5).all()
    assert (mirror[:, RIGHT_WRIST, 1] > mirror[:, LEFT_WRIST, 1] + 0.5).all()
    # the raised hand is on the character's left (+x) in the original, right (-x) mirrored
    assert wave[0, LEFT_WRIST, 0] > 0 > mirror[0, RIGHT_WRIST, 0]
    caption = parse_text_line((out / "texts" / "M000001.txt").read_text().splitlines()[0])
    assert caption.caption == "a person raises the right hand"
    assert "right/ADJ" in caption.tokens
    labels = json.loads((out / "labels.json").read_text())
    assert labels["M000001"]["mirror_of"] == "000001" and labels["000001"]["mirror_of"] is None


def fake_process(path: Path, map_name: str | None) -> ProcessedClip:
    """A stand-in for the BVH -> features work: shapes right, values from the file name."""
    rng = np.random.default_rng(sum(path.name.encode()))
    frames = 10 + len(path.stem) % 5
    joints, features = rng.normal(size=(frames, 22, 3)), rng.normal(size=(frames - 1, 263))
    return ProcessedClip(*(a.astype(np.float32) for a in (joints, features, -joints, -features)))


def empty_bvh_folder(folder: Path, count: int) -> Path:
    """``count`` BVH files (unreadable, which fake_process does not mind) with captions."""
    folder.mkdir()
    for i in range(count):
        (folder / f"clip{i:02d}.bvh").write_text("not read by fake_process")
        (folder / f"clip{i:02d}.txt").write_text(f"a person does move number {i}\n")
    return folder


def test_splits_are_disjoint_and_keep_mirrors_with_their_clip(tmp_path):
    src = empty_bvh_folder(tmp_path / "src", 20)
    out = tmp_path / "ds"
    build_dataset(src, out, folder_settings(seed=3), process=fake_process, progress=False)
    splits = {s: set(read_ids(out, s)) for s in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [32, 4, 4]  # 16/2/2 clips, each with its mirror
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"]
                or splits["val"] & splits["test"])  # fmt: skip
    assert set().union(*splits.values()) == set(read_ids(out, "all"))
    for ids in splits.values():
        assert {i.removeprefix("M") for i in ids} == {i for i in ids if not i.startswith("M")}


def test_assign_splits_proportions_groups_and_seed():
    clips = [ClipSource(Path(f"{g}{i}.bvh"), f"{g}{i}.bvh", ("x",), group=g) for g in "ab"
             for i in range(30)]  # fmt: skip
    first = assign_splits(clips, (0.8, 0.1, 0.1), seed=0)
    assert assign_splits(clips, (0.8, 0.1, 0.1), seed=0) == first
    assert [list(first.values()).count(s) for s in SPLITS] == [48, 6, 6]
    for group in "ab":  # each group spread over the splits in proportion
        in_group = [first[c.name] for c in clips if c.group == group]
        assert [in_group.count(s) for s in SPLITS] == [24, 3, 3]
    assert assign_splits(clips, (0.8, 0.1, 0.1), seed=1) != first
    no_test = assign_splits(clips, (0.9, 0.1, 0.0), seed=0)
    assert "test" not in no_test.values() and list(no_test.values()).count("val") == 6


def test_broken_bvh_is_skipped_and_named_while_the_rest_builds(source, tmp_path):
    broken = source / "broken.bvh"
    broken.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n}\nMOTION\nFrames: 1\n")
    broken.with_suffix(".txt").write_text("a person falls over\n")
    (source / "no_caption.bvh").write_text("never read")
    out = tmp_path / "ds"
    report = build_dataset(source, out, folder_settings(), progress=False)
    assert report.built == 4
    build = json.loads((out / "build.json").read_text())
    reasons = {s["file"]: s["reason"] for s in build["skipped"]}
    assert set(reasons) == {"broken.bvh", "no_caption.bvh"}
    assert "broken.bvh" in reasons["broken.bvh"] and "caption" in reasons["no_caption.bvh"]
    assert build["clips"]["skipped"] == 2
    assert "000002" not in read_ids(out, "all")  # broken.bvh sorts third: its id stays unused


def interrupt_on_third_clip():
    calls = []

    def process(path, map_name):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fake_process(path, map_name)

    return process


def test_interrupted_build_leaves_no_output_and_keeps_the_old_one(tmp_path):
    src = empty_bvh_folder(tmp_path / "src", 6)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(src, out, folder_settings(), process=interrupt_on_third_clip(),
                      progress=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    build_dataset(src, out, folder_settings(), process=fake_process, progress=False)
    before = tree_bytes(out)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(src, out, folder_settings(seed=1), process=interrupt_on_third_clip(),
                      progress=False)  # fmt: skip
    assert tree_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]


def test_two_builds_are_byte_identical_whatever_the_workers(source, tmp_path):
    build_dataset(source, tmp_path / "one", folder_settings(), progress=False)
    build_dataset(source, tmp_path / "two", BuildSettings("folder", workers=2), progress=False)
    first, second = tree_bytes(tmp_path / "one"), tree_bytes(tmp_path / "two")
    assert first == second and len(first) == 3 * 8 + 9  # 3 files per id + 9 tables
    build_dataset(source, tmp_path / "one", folder_settings(), progress=False)  # rebuild in place
    assert tree_bytes(tmp_path / "one") == first


def test_mean_std_come_from_the_train_split_with_group_constant_std(source, tmp_path):
    out = tmp_path / "ds"
    build_dataset(source, out, folder_settings(split=(0.5, 0.25, 0.25)), progress=False)
    mean, std = np.load(out / "Mean.npy"), np.load(out / "Std.npy")
    assert mean.shape == std.shape == (FEATURE_DIM,) and (std > 0).all()
    for part in FEATURE_GROUPS.values():
        assert np.ptp(std[part]) == 0
    train = np.concatenate([np.load(out / "new_joint_vecs" / f"{i}.npy").astype(np.float64)
                            for i in sorted(read_ids(out, "train"))])  # fmt: skip
    assert len(read_ids(out, "train")) == 4  # 2 clips and their mirrors
    np.testing.assert_allclose(mean, train.mean(axis=0), atol=1e-6)
    assert train[:, 3].std() > 0.005  # root height (a group of one) varies...
    np.testing.assert_allclose(std[3], train[:, 3].std(), rtol=1e-5)  # ...and sets its std


def test_archive_source_builds_the_same_data_and_cleans_up(source, tmp_path):
    archive = tmp_path / "mocap.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=".")
    build_dataset(source, tmp_path / "from_folder", folder_settings(), progress=False)
    build_dataset(archive, tmp_path / "from_archive", folder_settings(), progress=False)
    a, b = tree_bytes(tmp_path / "from_folder"), tree_bytes(tmp_path / "from_archive")
    differ = {k for k in a if a[k] != b.get(k)}
    assert a.keys() == b.keys() and differ == {"build.json", "README.md"}  # they name the source
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "from_archive", "from_folder", "mocap", "mocap.tar.gz"]  # fmt: skip


def test_an_unrelated_out_folder_is_never_replaced(source, tmp_path):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(MotionError, match="not a data set"):
        build_dataset(source, out, folder_settings(), progress=False)
    assert (out / "thesis.txt").read_text() == "precious"


def test_folder_captions_from_sidecar_csv_and_labels_json(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for name in ("walk", "jump", "idle"):
        (root / f"{name}.bvh").write_text("")
    (root / "walk.txt").write_text("a person walks\n\nsomeone walks#tokens#0.0#0.0\n")
    (root / "captions.csv").write_text(
        "file,caption,content\nwalk.bvh,a person walks,walk\njump.bvh,a person jumps,jump\n"
        "jump.bvh,someone hops,\n"
    )
    (root / "labels.json").write_text(json.dumps({"jump.bvh": {"captions": ["a jump"],
                                                  "labels": {"style": "happy"}}}))  # fmt: skip
    found = discover_folder(root)
    by_name = {c.name: c for c in found.clips}
    assert by_name["walk.bvh"].captions == ("a person walks", "someone walks")
    assert by_name["jump.bvh"].captions == ("a person jumps", "someone hops", "a jump")
    assert by_name["jump.bvh"].labels == {"content": "jump", "style": "happy"}
    assert [s.file for s in found.skipped] == ["idle.bvh"]


def test_cli_builds_and_reports_bad_input(source, tmp_path, capsys):
    out = tmp_path / "ds"
    argv = ["build-dataset", str(source), str(out), "--format", "folder", "--workers", "1"]
    assert main(argv + ["--seed", "2", "--split", "0.5,0.5,0"]) == 0
    assert "built 4 clips" in capsys.readouterr().out
    assert json.loads((out / "build.json").read_text())["settings"]["split"] == [0.5, 0.5, 0.0]
    assert main(["build-dataset", str(tmp_path / "missing"), str(out)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(argv + ["--split", "0.5,0.2,0.2"]) == 2
    assert main(argv + ["--map", "no_such_rig"]) == 2
    assert "no_such_rig" in capsys.readouterr().err
    assert main(argv + ["--map", "smpl"]) == 0  # the fixtures' skeleton, named


def test_units_are_told_from_the_skeleton_or_given(tmp_path, capsys):
    # The same clips written in metres and in centimetres build the same joints; a skeleton
    # too small for any unit fails under auto, naming --units, and builds once it is given.
    metres, centi, tiny = tmp_path / "m", tmp_path / "cm", tmp_path / "tiny"
    for folder, scale in ((metres, 1.0), (centi, 100.0), (tiny, 0.1)):
        folder.mkdir()
        clip = canonical_bvh(walking_joints(30), fps=30, scale=scale)
        write_bvh(folder / "walk.bvh", clip)
        (folder / "walk.txt").write_text("a person walks forward\n")
    built = {}
    for name, folder, units in (("m", metres, "auto"), ("cm", centi, "auto"), ("cm2", centi, "cm")):
        out = tmp_path / f"ds-{name}"
        build_dataset(folder, out, folder_settings(units=units), progress=False)
        built[name] = np.load(out / "new_joints" / "000000.npy")
    np.testing.assert_allclose(built["cm"], built["m"], atol=1e-5)
    np.testing.assert_allclose(built["cm2"], built["m"], atol=1e-5)
    argv = ["build-dataset", str(tiny), str(tmp_path / "ds-tiny"), "--format", "folder",
            "--workers", "1"]  # fmt: skip
    assert main(argv) == 2  # the only clip is skipped (said on stdout): nothing to build
    said = capsys.readouterr()
    assert "cannot tell the units" in said.out and "--units" in said.out and said.err
    assert main(argv + ["--units", "0.1"]) == 0
    tiny_joints = np.load(tmp_path / "ds-tiny" / "new_joints" / "000000.npy")
    np.testing.assert_allclose(tiny_joints, built["m"], atol=1e-5)
    with pytest.raises(MotionError, match="units"):
        folder_settings(units="furlongs")


def test_one_bandai_named_file_does_not_make_a_studio_folder_the_release(source, tmp_path):
    """Auto format: a folder that only holds one clip named like the release's is a folder."""
    write_clip(source, "dataset-1_walk_normal_001", ["our actor walks to the mark"])
    out = tmp_path / "ds"
    report = build_dataset(source, out, BuildSettings(workers=1), progress=False)
    assert report.built == 5 and not report.skipped  # every clip, none replaced or skipped
    assert json.loads((out / "build.json").read_text())["format"] == "folder"
    captions = [(out / "texts" / f"{i}.txt").read_text() for i in read_ids(out, "all")]
    assert any("our actor walks to the mark" in text for text in captions)


def test_captions_saved_by_excel_and_a_latin1_sidecar(source, tmp_path):
    """A CSV with a byte-order mark reads; a sidecar that is not UTF-8 skips its clip only."""
    (source / "captions.csv").write_bytes(
        "\ufefffile,caption\na_walk.bvh,a person walks calmly\n".encode()
    )
    (source / "b_wave.txt").write_bytes("a person waves \xe0 la fran\xe7aise\n".encode("latin-1"))
    out = tmp_path / "ds"
    report = build_dataset(source, out, folder_settings(), progress=False)
    assert report.built == 3
    assert [s.file for s in report.skipped] == ["b_wave.bvh"]
    assert "not UTF-8" in report.skipped[0].reason and "b_wave.txt" in report.skipped[0].reason
    walk = (out / "texts" / "000000.txt").read_text()
    assert "a person walks calmly" in walk and "a person walks forward" in walk


def test_caption_spans_are_kept_as_humanml3d_keeps_them(tmp_path):
    """A caption for part of a clip (sidecar ``#start#end``, captions.csv ``start``/``end``,
    labels.json objects) is written with its span and trained on as an item of its own."""
    from training.data import MotionDataset

    folder = tmp_path / "mocap"
    write_clip(folder, "long", ["a person walks forward", "a person waves#1.0#3.0"], frames=150)
    write_clip(folder, "other", ["someone strolls"], frames=150)
    (folder / "captions.csv").write_text(
        "file,caption,start,end\nother.bvh,a person turns around,0.5,2.5\n"
        "other.bvh,a person keeps walking,,\n"
    )
    (folder / "labels.json").write_text(
        json.dumps({"long.bvh": [{"caption": "a person stops", "start": 3, "end": 4.5}]})
    )
    out = tmp_path / "ds"
    build_dataset(folder, out, folder_settings(split=(1.0, 0.0, 0.0)), progress=False)
    texts = {}
    for path in sorted((out / "texts").iterdir()):
        lines = [parse_text_line(line) for line in path.read_text().splitlines()]
        texts[path.stem] = {(t.caption, t.start, t.end) for t in lines}
    assert texts["000000"] == {
        ("a person walks forward", 0.0, 0.0),
        ("a person waves", 1.0, 3.0),
        ("a person stops", 3.0, 4.5),
    }
    assert texts["000001"] == {
        ("someone strolls", 0.0, 0.0),
        ("a person turns around", 0.5, 2.5),
        ("a person keeps walking", 0.0, 0.0),
    }
    assert ("a person waves", 1.0, 3.0) in texts["M000000"]  # mirrors keep the span
    data = MotionDataset(out, "train", min_frames=20, max_frames=196)
    items = {data.captions(i): data.crop_length(i) for i in range(len(data))}
    assert items[("a person waves",)] == 40  # its own item: 1.0-3.0 s at 20 fps
    assert items[("a person stops",)] == 28  # 3.0-4.5 s: 30 frames, whole latent steps


def test_a_bad_caption_span_skips_its_clip_with_the_reason(tmp_path):
    folder = tmp_path / "mocap"
    write_clip(folder, "good", ["a person walks"])
    write_clip(folder, "bad", ["a person waves#3.0#1.0"])
    found = discover_folder(folder)
    assert [c.name for c in found.clips] == ["good.bvh"]
    assert "0 <= start < end" in found.skipped[0].reason
