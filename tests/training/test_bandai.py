"""Bandai Namco adapter: file-name labels, JSON cross-check, captions from the phrase tables,
and (where ../shared is present) a few real clips built end to end."""

import json
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest

from training.bandai import (
    ATTRIBUTION,
    CONTENT_PHRASES,
    STYLE_PHRASES,
    bandai_captions,
    clip_rng,
    discover_bandai,
    parse_name,
)
from training.build_dataset import BuildSettings, build_dataset
from training.captions import mirror_caption

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ARCHIVE = SHARED / "data" / "bandai-namco-motion.tar.xz"


def test_parse_name():
    labels = parse_name("dataset-2_wave-left-hand_not-confident_017")
    assert (labels.release, labels.content, labels.style) == (
        "dataset-2", "wave-left-hand", "not-confident")  # fmt: skip
    with pytest.raises(ValueError, match="dataset-N"):
        parse_name("walk_happy_001")


def test_captions_say_the_content_and_the_style():
    captions = bandai_captions("wave-left-hand", "tired", random.Random(0))
    assert 3 <= len(captions) <= 5 and len(set(captions)) == len(captions)
    tired_words = set(STYLE_PHRASES["tired"].adjectives) | {"wearily", "tiredly", "tired,"}
    for caption in captions:
        assert "left" in caption and "wave" in caption and "right" not in caption
        assert tired_words & set(caption.split()), caption
    for caption in bandai_captions("bow", "old", random.Random(1)):
        assert "bow" in caption
    # the neutral style may go unsaid but never names another style
    for caption in bandai_captions("walk", "normal", random.Random(2)):
        assert not {"happy", "sad", "old", "tired"} & set(caption.split())


def test_captions_are_reproducible_per_clip_and_vary_between_clips():
    a = bandai_captions("run", "happy", clip_rng(0, "x/dataset-2_run_happy_001.bvh"))
    assert a == bandai_captions("run", "happy", clip_rng(0, "x/dataset-2_run_happy_001.bvh"))
    others = [bandai_captions("run", "happy", clip_rng(0, f"x/dataset-2_run_happy_{i:03d}.bvh"))
              for i in range(2, 8)]  # fmt: skip
    assert any(o != a for o in others)
    assert bandai_captions("run", "happy", clip_rng(1, "x/dataset-2_run_happy_001.bvh")) != a


def test_every_label_pair_gets_three_to_five_distinct_captions():
    for content in CONTENT_PHRASES:
        for style in STYLE_PHRASES:
            captions = bandai_captions(content, style, clip_rng(0, content + style))
            assert 3 <= len(set(captions)) == len(captions) <= 5, (content, style)
            assert all("#" not in c and c == c.strip() for c in captions)


def test_right_handed_phrases_mirror_the_left_handed_ones():
    for left in ("walk-left", "walk-turn-left", "wave-left-hand", "raise-up-left-hand"):
        right = left.replace("left", "right")
        assert CONTENT_PHRASES[right] == tuple(mirror_caption(p) for p in CONTENT_PHRASES[left])
        assert all("right" in p and "left" not in p for p in CONTENT_PHRASES[right])


def fake_release(root: Path) -> Path:
    """A release tree with cfg tables and empty BVH files (discovery never opens them)."""
    release = root / "Bandai-Namco-Research-Motiondataset-2"
    (release / "cfg").mkdir(parents=True)
    (release / "data").mkdir()
    (release / "cfg" / "content_label.txt").write_text("dataset-2_walk\ndataset-2_run")
    (release / "cfg" / "style_label.txt").write_text("dataset-2_active\ndataset-2_elderly\n")
    (release / "LICENSE").write_text("CC BY-NC 4.0")
    clips = {"dataset-2_walk_active_001": (0, 0), "dataset-2_run_elderly_001": (1, 1),
             "dataset-2_run_active_002": (0, 0),  # JSON says walk: contradicts the name
             "dataset-2_moonwalk_active_001": None, "dataset-2_walk_elderly_003": None}  # fmt: skip
    for stem, indices in clips.items():
        (release / "data" / f"{stem}.bvh").write_text("")
        if indices is not None:
            content, style = indices
            (release / "data" / f"{stem}.json").write_text(json.dumps(
                {"content": content, "style": style}))  # fmt: skip
    (release / "data" / "dataset-2_walk_active_009.json").write_text('{"content": 0, "style": 0}')
    return root


def test_discovery_reads_labels_and_reports_what_it_leaves_out(tmp_path):
    found = discover_bandai(fake_release(tmp_path / "bandai"), seed=0)
    names = [Path(c.name).stem for c in found.clips]
    assert names == ["dataset-2_run_elderly_001", "dataset-2_walk_active_001",
                     "dataset-2_walk_elderly_003"]  # fmt: skip
    assert found.clips[0].labels == {"content": "run", "style": "elderly"}
    assert found.clips[0].group == "dataset-2/run"
    reasons = {Path(s.file).name: s.reason for s in found.skipped}
    assert "disagrees" in reasons["dataset-2_run_active_002.bvh"]
    assert "moonwalk" in reasons["dataset-2_moonwalk_active_001.bvh"]
    assert "missing" in reasons["dataset-2_walk_active_009.json"]
    assert found.attribution == ATTRIBUTION and found.license_file.name == "LICENSE"


@pytest.mark.skipif(not ARCHIVE.is_file(), reason="../shared Bandai Namco archive not present")
def test_real_bandai_clips_build_end_to_end(tmp_path):
    """The first few clips of the real archive: labels, captions, shapes, 30 -> 20 fps."""
    source = tmp_path / "bandai"
    wanted, frames_30 = 3, {}
    with tarfile.open(ARCHIVE) as tar:
        for member in tar:
            if member.name.endswith("/LICENSE") or member.name.endswith(".bvh"):
                tar.extract(member, source, filter="data")
            if member.name.endswith(".bvh"):
                text = (source / member.name).read_text()
                frames_30[Path(member.name).stem] = int(text.split("Frames:")[1].split()[0])
                if len(frames_30) == wanted:
                    break
    out = tmp_path / "ds"
    report = build_dataset(source, out, BuildSettings(workers=1), progress=False)
    assert report.built == wanted and not report.skipped
    build = json.loads((out / "build.json").read_text())
    assert build["format"] == "bandai" and build["attribution"] == ATTRIBUTION
    assert (out / "LICENSE").read_text().startswith("Attribution-NonCommercial 4.0")
    labels = json.loads((out / "labels.json").read_text())
    for clip_id in ("000000", "000001", "000002"):
        entry = labels[clip_id]
        stem = Path(entry["source"]).stem
        assert entry["labels"] == {"content": stem.split("_")[1], "style": stem.split("_")[2]}
        # 30 -> 20 fps over the clip's duration: (F - 1) / 30 s holds that many 1/20 s steps
        assert entry["frames"] == (frames_30[stem] - 1) * 2 // 3 + 1
        joints = np.load(out / "new_joints" / f"{clip_id}.npy")
        # a person: head 1.4 to 2 m above the floor in the canonical skeleton's proportions
        assert joints.shape == (entry["frames"], 22, 3) and 1.4 < joints[0, 15, 1] < 2.0
        assert 3 <= len((out / "texts" / f"{clip_id}.txt").read_text().splitlines()) <= 5
