"""HumanML3D-layout data sets: crops in whole latent steps, caption draws, sub-clip captions,
normalisation, mirrors, broken clips left out, and folders written by build-dataset."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from data_layouts import (
    MEAN,
    STD,
    coded_features,
    text_line,
    write_humanml3d,
    write_labels_json,
)

from engine.errors import MotionError
from engine.motion.features import FEATURE_DIM, Normalizer, mirror_features
from training.data import MotionDataset, load_frame_labels, make_loader, set_epoch
from training.data.clips import read_npy_layout, read_rows, thread_map

EPOCHS = range(24)


@pytest.fixture
def root(tmp_path) -> Path:
    """Whole clips (one longer than 196 frames, with its mirror), sub-clip captions, a clip
    only described in parts, and clips or spans too short to train on."""
    walk = ["a person walks forward", "someone strolls ahead", "a man walks"]
    clips = {
        "000000": (coded_features(250, 0), [text_line(c) for c in walk]),
        "M000000": (coded_features(250, 100), [text_line("a person walks forward")]),
        "000001": (
            coded_features(101, 1),
            [
                text_line("a person jumps"),
                text_line("a person kicks", 1.0, 4.0),  # frames [20, 80)
                text_line("a person waves", 0.5, 2.0),  # 30 frames: too short
            ],
        ),
        "000002": (coded_features(30, 2), [text_line("a short clip")]),
        "000003": (coded_features(150, 3), [text_line("a person spins", 2.0, 5.5)]),  # [40, 110)
    }
    return write_humanml3d(tmp_path / "hml", clips, {"train": list(clips), "val": ["000001"]})


def raw_rows(item) -> np.ndarray:
    """The denormalised crop: column 0 is the source frame number, column 1 the clip code."""
    return item.features * STD + MEAN


def test_items_are_clips_and_captioned_spans_of_enough_frames(root):
    ds = MotionDataset(root, "train")
    spans = sorted((ds.item_id(i), ds.captions(i)) for i in range(len(ds)))
    assert spans == [
        ("000000", ("a person walks forward", "someone strolls ahead", "a man walks")),
        ("000001", ("a person jumps",)),
        ("000001", ("a person kicks",)),
        ("000003", ("a person spins",)),
        ("M000000", ("a person walks forward",)),
    ]
    assert ds.too_short == 2 and ds.problems == []


def test_crops_are_whole_latent_steps_within_40_to_196_frames(root):
    ds = MotionDataset(root, "train")
    starts = {}
    for epoch in EPOCHS:
        for index in range(len(ds)):
            item = ds[(index, epoch)]
            length = len(item.features)
            assert length % 4 == 0 and 40 <= length <= 196
            rows = raw_rows(item)
            np.testing.assert_allclose(
                rows[:, 0], np.arange(item.start, item.start + length), atol=1e-4
            )
            starts.setdefault((item.id, item.caption), set()).add(item.start)
    long_starts = starts[("000000", "a person walks forward")] | starts[("000000", "a man walks")]
    assert len(long_starts) > 5 and max(long_starts) <= 250 - 196
    assert starts[("000001", "a person jumps")] == {0, 1}  # 101 frames -> 100 at offset 0 or 1
    assert len(ds[0].features) == 196


def test_sub_clip_caption_is_an_item_of_its_span_only(root):
    ds = MotionDataset(root, "train")
    kicks = next(i for i in range(len(ds)) if ds.captions(i) == ("a person kicks",))
    spins = next(i for i in range(len(ds)) if ds.captions(i) == ("a person spins",))
    for epoch in EPOCHS:
        item = ds[(kicks, epoch)]  # 1.0 s to 4.0 s at 20 fps: frames [20, 80)
        assert (item.start, len(item.features), item.caption) == (20, 60, "a person kicks")
        item = ds[(spins, epoch)]  # [40, 110): 70 frames -> 68, at offset 0 to 2
        assert len(item.features) == 68 and 40 <= item.start <= 42


def test_caption_and_crop_draws_are_deterministic_per_seed(root):
    def draws(seed):
        ds = MotionDataset(root, "train", seed=seed)
        return [(ds[(i, e)].caption, ds[(i, e)].start) for e in EPOCHS for i in range(len(ds))]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    ds = MotionDataset(root, "train", seed=3)
    walk = next(i for i in range(len(ds)) if ds.item_id(i) == "000000")
    drawn = {ds[(walk, e)].caption for e in EPOCHS}
    assert drawn == set(ds.captions(walk))
    ds.set_epoch(5)
    assert ds[walk].caption == ds[(walk, 5)].caption


def test_features_are_normalised_with_the_folder_statistics(root):
    ds = MotionDataset(root, "train")
    item = ds[(0, 0)]
    raw = np.load(root / "new_joint_vecs" / f"{item.id}.npy")[item.start : item.start + 196]
    assert item.features.dtype == np.float32
    np.testing.assert_allclose(item.features, (raw - MEAN) / STD, rtol=1e-5, atol=1e-5)
    plain = Normalizer(np.zeros(FEATURE_DIM), np.ones(FEATURE_DIM))
    item = MotionDataset(root, "train", normalizer=plain)[(0, 0)]
    np.testing.assert_allclose(item.features[:, 0], np.arange(item.start, item.start + 196))


def test_mirror_ids_are_kept_or_left_out(root):
    with_mirrors = MotionDataset(root, "train")
    without = MotionDataset(root, "train", mirror=False)
    ids = {with_mirrors.item_id(i) for i in range(len(with_mirrors))}
    assert "M000000" in ids
    assert {without.item_id(i) for i in range(len(without))} == ids - {"M000000"}
    mirrored = next(i for i in range(len(with_mirrors)) if with_mirrors.item_id(i) == "M000000")
    np.testing.assert_allclose(raw_rows(with_mirrors[mirrored])[:, 1], 100, atol=1e-4)


@pytest.mark.parametrize("cache", [True, False])
def test_broken_clips_are_reported_once_and_left_out(tmp_path, caplog, cache):
    good = {
        f"{n:06d}": (coded_features(60 + n, n), [text_line("a person walks")]) for n in range(4)
    }
    nan = coded_features(80, 9)
    nan[33, 200] = np.nan
    inf = coded_features(80, 9)
    inf[5, 3] = np.inf
    broken = {
        "100000": (nan, [text_line("a person walks")]),
        "100001": (inf, [text_line("a person walks")]),
        "100002": (coded_features(80, 9)[:, :262], [text_line("a person walks")]),
        "100003": (coded_features(80, 9), None),  # no text file
        "100004": (None, [text_line("a person walks")]),  # no feature file
        "100005": (coded_features(80, 9), ["", "#only/NOUN#0.0#0.0"]),  # no caption
    }
    root = write_humanml3d(tmp_path / "hml", {**good, **broken}, {"train": [*good, *broken]})
    with caplog.at_level(logging.WARNING, logger="training.data"):
        ds = MotionDataset(root, "train", cache=cache)
        loader = make_loader(ds, batch_size=2, seed=0)
        for epoch in range(3):
            set_epoch(loader, epoch)
            seen = [clip_id for batch in loader for clip_id in batch.ids]
            assert sorted(seen) == sorted(good)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert all(clip_id in warnings[0].getMessage() for clip_id in broken)
    assert {p.id for p in ds.problems} == set(broken)
    reasons = {p.id: p.reason for p in ds.problems}
    assert "NaN" in reasons["100000"] and "(80, 262)" in reasons["100002"]
    assert "missing text" in reasons["100003"] and "missing feature" in reasons["100004"]


def test_memory_cache_and_files_give_the_same_items(root):
    cached = MotionDataset(root, "train", cache=True, seed=1)
    files = MotionDataset(root, "train", cache=False, seed=1)
    assert cached.cached and not files.cached
    for index in range(len(cached)):
        a, b = cached[(index, 2)], files[(index, 2)]
        assert (a.id, a.caption, a.start) == (b.id, b.caption, b.start)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-6, atol=1e-6)


def test_bad_arguments_and_empty_splits_raise(root):
    with pytest.raises(MotionError, match="split file"):
        MotionDataset(root, "test")
    with pytest.raises(MotionError, match="no usable item"):
        MotionDataset(root, "val", min_frames=120)


def test_per_clip_labels_cover_every_step(root):
    write_labels_json(
        root,
        {
            "000000": {"content": "walk-turn-left", "style": "happy"},
            "M000000": {"content": "walk-turn-right", "style": "happy"},
        },
    )
    ds = MotionDataset(root, "train", labels=load_frame_labels(root))
    for index in range(len(ds)):
        item = ds[(index, 1)]
        assert len(item.step_labels) == len(item.features) // 4
        want = {
            "000000": {"walk turn left", "happy"},
            "M000000": {"walk turn right", "happy"},
        }.get(item.id, set())
        assert all(labels == want for labels in item.step_labels)
    assert MotionDataset(root, "train")[0].step_labels is None


def test_build_dataset_output_loads_with_its_labels(tmp_path):
    from training.build_dataset import BuildSettings, ProcessedClip, build_dataset

    source = tmp_path / "mocap"
    source.mkdir()
    names = ["wave_left", "walk_a", "walk_b", "walk_c"]
    for name in names:
        (source / f"{name}.bvh").write_text("not read: the test's process makes the motion\n")
    labels = {
        f"{n}.bvh": {
            "captions": [f"a person does {n.replace('_', ' ')}"],
            "labels": {"content": "wave-left-hand" if n.startswith("wave") else "walk"},
        }
        for n in names
    }
    (source / "labels.json").write_text(json.dumps(labels))

    def process(path, map_name):
        n = 60 + 10 * names.index(path.stem)
        features = coded_features(n, names.index(path.stem), np.float32)
        joints = np.zeros((n + 1, 22, 3), dtype=np.float32)
        return ProcessedClip(joints, features, joints, features + 1)

    out = tmp_path / "built"
    settings = BuildSettings(format="folder", workers=1, split=(0.5, 0.25, 0.25))
    build_dataset(source, out, settings, process=process, progress=False)
    train_ids = (out / "train.txt").read_text().split()
    ds = MotionDataset(out, "train", labels=load_frame_labels(out))
    assert sorted({ds.item_id(i) for i in range(len(ds))}) == sorted(train_ids)
    assert any(i.startswith("M") for i in train_ids)
    sources = {k: v["source"] for k, v in json.loads((out / "labels.json").read_text()).items()}
    for index in range(len(ds)):
        item = ds[(index, 0)]
        content = "wave left hand" if sources[item.id].startswith("wave") else "walk"
        if item.id.startswith("M") and content == "wave left hand":
            content = "wave right hand"
        assert all(labels == {content} for labels in item.step_labels)


def test_row_reads_match_numpy_for_every_layout(tmp_path):
    features = coded_features(50, 4)
    for name, array in {
        "f64": features,
        "f32": features.astype(np.float32),
        "fortran": np.asfortranarray(features),
    }.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        layout = read_npy_layout(path)
        assert layout.shape == (50, FEATURE_DIM) and layout.dtype == array.dtype
        np.testing.assert_array_equal(read_rows(path, layout, 7, 20), array[7:27])
    assert thread_map(lambda x: x * x, range(1000), workers=3) == [x * x for x in range(1000)]


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "humanml3d-reference"


@pytest.mark.skipif(not (SHARED / "Mean.npy").is_file(), reason="../shared data not present")
def test_real_humanml3d_clip_and_statistics(tmp_path):
    example = np.load(SHARED / "example_000612_new_joint_vecs.npy")  # (199, 263) float64
    clips = {
        "000612": (example, [text_line("a person walks")]),
        "M000612": (mirror_features(example), [text_line("a person walks")]),
    }
    root = write_humanml3d(tmp_path / "hml", clips, {"train": list(clips)})
    for name in ("Mean.npy", "Std.npy"):
        (root / name).write_bytes((SHARED / name).read_bytes())
    stats = Normalizer.load(SHARED)
    ds = MotionDataset(root, "train")
    for index in range(len(ds)):
        item = ds[(index, 0)]
        assert len(item.features) == 196 and item.start in range(4)  # 199 frames
        source = clips[item.id][0][item.start : item.start + 196]
        np.testing.assert_allclose(stats.denormalize(item.features), source, atol=1e-4)
