"""Packing a built data set into one small file and rebuilding it on another machine."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
from test_build_dataset import source  # noqa: F401  (fixture)

from engine.errors import MotionError
from training.build_dataset import SPLITS, BuildSettings, build_dataset
from training.cli import main
from training.compact import pack_dataset, round_trip_gaps, unpack_dataset

HALF_MM = 0.5e-3 + 1e-6  # the documented tolerance, plus float32 rounding of metres
BANDAI = Path("/work/shared/data/bandai-namco-motion.tar.xz")


@pytest.fixture
def built(source, tmp_path):  # noqa: F811
    out = tmp_path / "built"
    build_dataset(source, out, BuildSettings(format="folder", workers=1), progress=False)
    return out


def test_pack_is_small_and_unpacks_to_the_same_data_set(built, tmp_path):
    pack = pack_dataset(built, tmp_path / "set.npz")
    total = sum(p.stat().st_size for p in built.rglob("*") if p.is_file())
    assert pack.stat().st_size < total / 4
    out = unpack_dataset(pack, tmp_path / "again", workers=1)
    names = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    for name in ("train.txt", "val.txt", "test.txt", "all.txt", "labels.json", "build.json"):
        assert (out / name).read_bytes() == (built / name).read_bytes(), name
    for path in (built / "texts").iterdir():  # mirrors' captions are derived again
        assert (out / "texts" / path.name).read_text() == path.read_text()
    for path in (built / "new_joints").iterdir():
        np.testing.assert_allclose(
            np.load(out / "new_joints" / path.name), np.load(path), atol=5e-3
        )
    for path in (built / "new_joint_vecs").iterdir():
        a, b = np.load(out / "new_joint_vecs" / path.name), np.load(path)
        assert a.shape == b.shape
        np.testing.assert_allclose(a[:, 4:67], b[:, 4:67], atol=5e-3)  # ric positions, metres
    np.testing.assert_allclose(np.load(out / "Mean.npy"), np.load(built / "Mean.npy"), atol=5e-3)


def test_round_trip_keeps_joints_within_the_documented_half_millimetre(built, tmp_path):
    """Unpacking used to canonicalise the (already canonical) joints again: up to 19 mm
    off on the Bandai set, foot contacts flipped."""
    out = unpack_dataset(pack_dataset(built, tmp_path / "set.npz"), tmp_path / "u", workers=1)
    gaps = round_trip_gaps(built, out)
    assert gaps["joints"] <= HALF_MM, gaps
    assert gaps["mirror_joints"] <= HALF_MM and gaps["contact_flips"] == 0, gaps


def first_bandai_clips(count: int, folder: Path) -> Path:
    """The first ``count`` BVH files (and their label JSONs) of the real Bandai archive."""
    names = set()
    with tarfile.open(BANDAI) as archive:
        for member in archive:
            stem = member.name.rsplit(".", 1)[0]
            if member.name.endswith(".bvh") and len(names) < count:
                names.add(stem)
            if stem in names and member.isfile():
                archive.extract(member, folder, filter="data")
            elif len(names) >= count and member.name.endswith(".bvh"):
                break
    return folder


@pytest.mark.skipif(not BANDAI.is_file(), reason="Bandai Namco archive not present")
def test_round_trip_on_real_bandai_clips(tmp_path):
    clips = first_bandai_clips(12, tmp_path / "bandai")
    built = tmp_path / "built"
    build_dataset(clips, built, BuildSettings(format="bandai", workers=1), progress=False)
    out = unpack_dataset(pack_dataset(built, tmp_path / "set.npz"), tmp_path / "u", workers=1)
    gaps = round_trip_gaps(built, out)
    assert gaps["joints"] <= HALF_MM, gaps
    assert gaps["mirror_joints"] <= HALF_MM and gaps["contact_flips"] == 0, gaps


def test_a_pack_of_format_1_still_unpacks(built, tmp_path):
    """Packs written before the mirrors and contacts were stored: mirrors derived again."""
    import json

    from training.compact import _base_ids, _encode_joints

    ids = _base_ids(built)
    blob, lengths = _encode_joints([np.load(built / "new_joints" / f"{i}.npy") for i in ids])
    meta = {"format": "kinetext-packed-dataset/1", "ids": ids, "files": {},
            "texts": {i: (built / "texts" / f"{i}.txt").read_text() for i in ids},
            "splits": {s: (built / f"{s}.txt").read_text().split() for s in SPLITS}}  # fmt: skip
    old = tmp_path / "old.npz"
    np.savez(old, joints=np.frombuffer(blob, dtype=np.uint8), lengths=lengths,
             meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))  # fmt: skip
    out = unpack_dataset(old, tmp_path / "old", workers=1)
    gaps = round_trip_gaps(built, out)
    assert gaps["joints"] <= HALF_MM and gaps["mirror_joints"] < 0.02, gaps


def test_unpacking_twice_gives_identical_files(built, tmp_path):
    pack = pack_dataset(built, tmp_path / "set.npz")
    a = unpack_dataset(pack, tmp_path / "a", workers=1)
    b = unpack_dataset(pack, tmp_path / "b", workers=1)
    for path in a.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (b / path.relative_to(a)).read_bytes()


def test_bad_inputs_are_named(built, tmp_path):
    with pytest.raises(MotionError, match="not a data set built"):
        pack_dataset(tmp_path, tmp_path / "x.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a pack")
    with pytest.raises(MotionError, match="junk.npz"):
        unpack_dataset(junk, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_packs_and_unpacks(built, tmp_path, capsys):
    assert main(["pack-dataset", str(built), str(tmp_path / "p.npz")]) == 0
    assert (
        main(["unpack-dataset", str(tmp_path / "p.npz"), str(tmp_path / "u"), "--workers", "1"])
        == 0
    )
    assert (tmp_path / "u" / "Mean.npy").is_file()
