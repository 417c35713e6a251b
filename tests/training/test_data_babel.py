"""BABEL frame labels met with HumanML3D clips through index.csv: path spellings, per-source
trims, start frames, null frame_ann, mirrors, and the labels of each latent step."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from data_layouts import coded_features, text_line, write_humanml3d

from engine.errors import MotionError
from training.data import LabelSpan, MotionDataset, load_babel_labels, load_frame_labels
from training.data.babel import amass_key, read_index, source_trim
from training.data.labels import SpanTable

INDEX = """source_path,start_frame,end_frame,new_name
./pose_data/CMU/01/01_01_poses.npy,0,300,000000.npy
./pose_data/CMU/01/01_01_poses.npy,100,300,000001.npy
./pose_data/MPI_HDM05/dg/HDM_dg_03-11_03_120_poses.npy,20,220,000002.npy
./pose_data/ACCAD/Female1General_c3d/A1 - Stand_poses.npy,0,100,000003.npy
./pose_data/BioMotionLab_NTroje/rub001/0001_treadmill_slow_poses.npy,0,80,000004.npy
./pose_data/humanact12/humanact12/P11G01R02F1812T1847A0402.npy,0,-1,000005.npy
"""


def label(text, start, end, cats=("locomotion",)):
    return {
        "raw_label": text.upper(),
        "proc_label": text,
        "act_cat": list(cats),
        "seg_id": f"seg-{text}",
        "start_t": start,
        "end_t": end,
    }


def sequence(sid, feat_p, dur, frame_labels=None, seq_labels=()):
    seq = [
        {k: v for k, v in label(t, 0, 0).items() if k not in ("start_t", "end_t")}
        for t in seq_labels
    ]
    return {
        "babel_sid": sid,
        "url": f"https://example.org/{sid}.mp4",
        "feat_p": feat_p,
        "dur": dur,
        "seq_ann": {"babel_lid": f"l{sid}", "mul_act": True, "labels": seq},
        "frame_ann": None if frame_labels is None else {"labels": frame_labels},
    }


@pytest.fixture
def babel(tmp_path) -> Path:
    """train.json / val.json in BABEL's layout, index.csv in HumanML3D's."""
    folder = tmp_path / "babel"
    folder.mkdir()
    train = {
        "7": sequence(
            7,
            "CMU/CMU/01/01_01_poses.npz",
            16.0,
            [label("walk", 1.0, 2.0), label("turn left", 6.0, 7.0, ("turn", "walk"))],
        ),
        "8": sequence(
            8,
            "MPIHDM05/MPI_HDM05/dg/HDM_dg_03-11_03_120_poses.npz",
            14.0,
            [label("jump", 4.0, 5.0), label("stand", 0.0, 3.5)],
        ),
        "9": sequence(9, "KIT/KIT/99/not_in_humanml3d_poses.npz", 3.0, [label("sit", 0, 3)]),
    }
    val = {
        "10": sequence(
            10,
            "ACCAD/ACCAD/Female1General_c3d/A1 - Stand_poses.npz",
            5.0,
            None,
            seq_labels=["stand", "look around"],
        ),
        "11": sequence(
            11,
            "BMLrub/BioMotionLab_NTroje/rub001/0001_treadmill_slow_poses.npz",
            4.0,
            [label("run", 0.5, 1.0)],
        ),
    }
    (folder / "train.json").write_text(json.dumps(train))
    (folder / "val.json").write_text(json.dumps(val))
    (tmp_path / "index.csv").write_text(INDEX)
    return folder


def spans_of(result, clip_id):
    return sorted((s.start, s.end, s.text) for s in result.spans.get(clip_id, []))


def test_path_spellings_and_trims():
    assert amass_key("./pose_data/CMU/01/01_01_poses.npy") == "cmu/01/01_01_poses"
    assert amass_key("CMU\\01\\01_01_poses.npz") == "cmu/01/01_01_poses"
    assert source_trim("./pose_data/Eyes_Japan_Dataset/aita/walk_poses.npy") == 3.0
    assert source_trim("./pose_data/MPI_HDM05/dg/x.npy") == 3.0
    assert source_trim("./pose_data/TotalCapture/s1/x.npy") == 1.0
    assert source_trim("./pose_data/MPI_Limits/03099/x.npy") == 1.0
    assert source_trim("./pose_data/Transitions_mocap/x.npy") == 0.5
    assert source_trim("./pose_data/CMU/01/x.npy") == 0.0


def test_babel_spans_in_clip_time(babel):
    result = load_babel_labels(babel, babel.parent / "index.csv")
    # CMU, no trim, clip from frame 0: times as they are, cut at the clip's 15 s
    assert spans_of(result, "000000") == [(1.0, 2.0, "walk"), (6.0, 7.0, "turn left")]
    # same file from frame 100 (5 s in): "walk" ended before the clip starts
    assert spans_of(result, "000001") == [(1.0, 2.0, "turn left")]
    # MPI_HDM05 drops 3 s, then frames from 20 (1 s): AMASS time 4.0 is clip time 0.0
    assert spans_of(result, "000002") == [(0.0, 1.0, "jump")]
    # frame_ann null: the sequence labels cover the whole clip (100 frames = 5 s)
    assert spans_of(result, "000003") == [(0.0, 5.0, "look around"), (0.0, 5.0, "stand")]
    # BABEL's "BMLrub" folder is HumanML3D's BioMotionLab_NTroje
    assert spans_of(result, "000004") == [(0.5, 1.0, "run")]
    assert "000005" not in result.spans  # humanact12: not AMASS, no BABEL labels
    assert result.matched_clips == 5
    assert result.unmatched_sequences == ["KIT/KIT/99/not_in_humanml3d_poses.npz"]


def test_mirror_ids_swap_left_and_right(babel):
    result = load_babel_labels(babel, babel.parent / "index.csv")
    assert spans_of(result, "M000001") == [(1.0, 2.0, "turn right")]
    assert spans_of(result, "M000002") == spans_of(result, "000002")
    assert "M000000" not in load_babel_labels(babel, babel.parent / "index.csv", mirror=False).spans


def test_label_fields(babel):
    raw = load_babel_labels(babel, babel.parent / "index.csv", label_field="raw_label")
    assert spans_of(raw, "000002") == [(0.0, 1.0, "JUMP")]
    cats = load_babel_labels(babel, babel.parent / "index.csv", label_field="act_cat")
    assert spans_of(cats, "000001") == [(1.0, 2.0, "turn"), (1.0, 2.0, "walk")]
    with pytest.raises(MotionError, match="label_field"):
        load_babel_labels(babel, babel.parent / "index.csv", label_field="nope")


def test_hand_worked_step_labels():
    # "walk" over 1.0-2.0 s = frames [20, 40): steps k whose frames [4k, 4k+4) overlap it
    table = SpanTable.of([LabelSpan(1.0, 2.0, "walk"), LabelSpan(0.0, math.inf, "person")])
    steps = table.step_labels(first_frame=0, steps=12, unit=4, fps=20)
    assert [k for k, s in enumerate(steps) if "walk" in s] == [5, 6, 7, 8, 9]
    assert all("person" in s for s in steps)
    # a crop starting at frame 18: step 0 = frames [18, 22) overlaps, step 5 = [38, 42) too
    steps = table.step_labels(first_frame=18, steps=8, unit=4, fps=20)
    assert [k for k, s in enumerate(steps) if "walk" in s] == [0, 1, 2, 3, 4, 5]


def test_dataset_items_carry_babel_step_labels(babel, tmp_path):
    lines = [text_line("a person walks then turns")]
    clips = {
        cid: (coded_features(n, k), lines)
        for k, (cid, n) in enumerate([("000000", 250), ("M000001", 120), ("000005", 60)])
    }
    root = write_humanml3d(tmp_path / "hml", clips, {"train": list(clips)})
    labels = load_frame_labels(root, babel=babel, index_csv=babel.parent / "index.csv")
    ds = MotionDataset(root, "train", labels=labels)
    for epoch in range(10):
        for index in range(len(ds)):
            item = ds[(index, epoch)]
            assert len(item.step_labels) == len(item.features) // 4
            truth = {
                "000000": [(1.0, 2.0, "walk"), (6.0, 7.0, "turn left")],
                "M000001": [(1.0, 2.0, "turn right")],
                "000005": [],
            }[item.id]
            for k, got in enumerate(item.step_labels):
                lo, hi = (item.start + 4 * k) / 20, (item.start + 4 * k + 4) / 20
                assert got == {text for a, b, text in truth if a < hi and b > lo}, (item.id, k)
    mirrored = next(i for i in range(len(ds)) if ds.item_id(i) == "M000001")
    item = ds[(mirrored, 0)]  # 120 frames fit whole: offset 0, 30 steps
    assert item.start == 0 and len(item.step_labels) == 30
    assert [k for k, s in enumerate(item.step_labels) if s] == [5, 6, 7, 8, 9]


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "humanml3d-reference"


@pytest.mark.skipif(not (SHARED / "index.csv").is_file(), reason="../shared data not present")
def test_real_index_meets_babel_spellings_of_every_trimmed_source(tmp_path):
    rows = read_index(SHARED / "index.csv")
    assert len(rows) == 14616 and len({r.clip_id for r in rows}) == 14616
    trims = Counter(source_trim(r.source) for r in rows)
    assert trims == {0.0: 12064, 3.0: 2236, 1.0: 206, 0.5: 110}
    # one AMASS file of each source that BABEL spells differently, or that is trimmed
    babel_top = {
        "BioMotionLab_NTroje": "BMLrub",
        "MPI_HDM05": "MPIHDM05",
        "MPI_Limits": "PosePrior",
        "Transitions_mocap": "Transitions",
        "Eyes_Japan_Dataset": "EyesJapanDataset",
        "TotalCapture": "TotalCapture",
        "KIT": "KIT",
    }
    chosen = {}
    for row in rows:
        source = row.source.split("/")[2]
        if source in babel_top and source not in chosen and row.start_frame == 0:
            chosen[source] = row
    table = {}
    for n, (source, row) in enumerate(sorted(chosen.items())):
        rest = row.source.split("/", 2)[2].removesuffix(".npy")
        feat_p = f"{babel_top[source]}/{rest}.npz"
        table[str(n)] = sequence(n, feat_p, 60.0, [label(f"move {n}", 2.0, 60.0)])
    (tmp_path / "train.json").write_text(json.dumps(table))
    result = load_babel_labels(tmp_path, SHARED / "index.csv", splits=("train",))
    assert result.unmatched_sequences == []
    assert len(chosen) == len(babel_top)
    for n, (_source, row) in enumerate(sorted(chosen.items())):
        spans = [s for s in result.spans[row.clip_id] if s.text == f"move {n}"]
        assert spans[0].start == pytest.approx(max(2.0 - source_trim(row.source), 0.0))
