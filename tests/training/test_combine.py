"""Training on several data sets: combine-datasets through the CLI (a BVH folder and a DeepMimic
folder built here), its splits, terms and pack round trip, and per-source sampling weights."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_build_dataset import write_clip
from test_deepmimic import walk_frames, write_character, write_motion

from engine.errors import MotionError
from engine.motion.features import Normalizer
from training.cli import main
from training.compact import pack_dataset, unpack_dataset
from training.config import load_train_config
from training.data import MotionDataset
from training.data.humanml3d import read_split
from training.data.mix import combined_id, source_of
from training.run_setup import make_dataset

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Two built data sets: a studio's BVH folder (10 walks) and a DeepMimic folder (4 clips)."""
    tmp = tmp_path_factory.mktemp("sources")
    for i in range(10):
        write_clip(tmp / "bvh", f"walk{i}", [f"a person walks, take {i}"], frames=90)
    write_character(tmp / "dm")
    for speed, name in enumerate(("walk", "run", "jog", "cartwheel")):
        write_motion(tmp / "dm", f"humanoid3d_{name}.txt", walk_frames(speed=1 + 0.5 * speed))
    (tmp / "dm" / "LICENSE-MIT").write_text("MIT License text")
    built = {"studio": tmp / "studio", "deepmimic": tmp / "deepmimic"}
    assert main(["build-dataset", str(tmp / "bvh"), str(built["studio"]), "--workers", "1"]) == 0
    assert main(["build-dataset", str(tmp / "dm"), str(built["deepmimic"]), "--workers", "1",
                 "--split", "0.5,0.25,0.25"]) == 0  # fmt: skip
    return built


@pytest.fixture(scope="module")
def combined(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("combined") / "all"
    args = [f"{name}={folder}" for name, folder in sources.items()]
    assert main(["combine-datasets", str(out), *args]) == 0
    return out


def test_each_source_keeps_its_clips_and_splits(sources, combined):
    for name, folder in sources.items():
        for split in SPLITS:
            mine = {combined_id(name, i) for i in read_split(folder, split)}
            assert set(read_split(combined, f"{split}_{name}")) == mine
            assert mine <= set(read_split(combined, split))
        clip = read_split(folder, "train")[-1]
        new = combined_id(name, clip)
        for sub, ext in (("new_joint_vecs", "npy"), ("new_joints", "npy"), ("texts", "txt")):
            old_bytes = (folder / sub / f"{clip}.{ext}").read_bytes()
            assert (combined / sub / f"{new}.{ext}").read_bytes() == old_bytes
    total = sum(len(read_split(f, s)) for f in sources.values() for s in SPLITS)
    assert len(read_split(combined, "all")) == total
    labels = json.loads((combined / "labels.json").read_text())
    assert {e["dataset"] for e in labels.values()} == {"studio", "deepmimic"}
    assert all(source_of(i) == e["dataset"] for i, e in labels.items())
    mirror = next(i for i in labels if i.startswith("Mdeepmimic_"))
    assert labels[mirror]["mirror_of"] == mirror[1:]


def test_statistics_and_terms_cover_all_sources(sources, combined):
    train = read_split(combined, "train")
    fitted = Normalizer.fit([np.load(combined / "new_joint_vecs" / f"{i}.npy") for i in train])
    assert np.allclose(np.load(combined / "Mean.npy"), fitted.mean)
    build = json.loads((combined / "build.json").read_text())
    assert build["sources"]["deepmimic"]["clips"] == 4 and build["sources"]["studio"]["clips"] == 10
    assert "deepmimic: DeepMimic reference motions" in build["attribution"]
    assert "MIT License text" in (combined / "LICENSE").read_text()
    config = load_train_config(None, [f"data_root={combined}"])
    from training.run_setup import data_terms

    assert data_terms(config)["attribution"] == build["attribution"]


def test_pack_round_trip_keeps_per_source_splits(combined, tmp_path):
    pack = pack_dataset(combined, tmp_path / "all.npz")
    back = unpack_dataset(pack, tmp_path / "back", workers=1)
    for name in ("studio", "deepmimic"):
        assert read_split(back, f"test_{name}") == read_split(combined, f"test_{name}")


def count(dataset: MotionDataset) -> dict[str, int]:
    ids = [dataset.item_id(i) for i in range(len(dataset))]
    return {s: sum(source_of(i) == s for i in ids) for s in ("studio", "deepmimic")}


def test_source_weights_repeat_a_sources_items(combined):
    plain = count(MotionDataset(combined, "train", unit=4))
    tripled = count(MotionDataset(combined, "train", unit=4, source_weights={"deepmimic": 3}))
    assert tripled == {"studio": plain["studio"], "deepmimic": 3 * plain["deepmimic"]}
    halved = count(MotionDataset(combined, "train", unit=4, source_weights={"studio": 0.5}))
    assert 0 < halved["studio"] < plain["studio"] and halved["deepmimic"] == plain["deepmimic"]
    with pytest.raises(MotionError, match="source_weights names \\['cmu'\\]"):
        MotionDataset(combined, "train", unit=4, source_weights={"cmu": 2.0})
    with pytest.raises(MotionError, match=">= 0"):
        MotionDataset(combined, "train", unit=4, source_weights={"studio": -1})


def test_config_weights_apply_to_the_train_split_only(combined):
    config = load_train_config(None, [f"data_root={combined}", "source_weights.deepmimic=4",
                                      "min_frames=40", "max_frames=48"])  # fmt: skip
    assert config.source_weights == {"deepmimic": 4}
    task = SimpleNamespace(wants_step_labels=False)
    train, val = make_dataset(config, "train", task), make_dataset(config, "val", task)
    plain = MotionDataset(combined, "train", unit=4, min_frames=40, max_frames=48)
    assert count(train)["deepmimic"] == 4 * count(plain)["deepmimic"]
    val_plain = MotionDataset(combined, "val", unit=4, min_frames=40, max_frames=48)
    assert len(val) == len(val_plain)


def test_bad_source_names_are_refused(sources, tmp_path, capsys):
    assert main(["combine-datasets", str(tmp_path / "x"), f"Studio={sources['studio']}"]) == 2
    assert "lowercase" in capsys.readouterr().err
    assert main(["combine-datasets", str(tmp_path / "x"), f"a={tmp_path}"]) == 2
    assert "not a built data set" in capsys.readouterr().err


def test_a_tiny_run_trains_on_the_weighted_combined_set(combined, tmp_path):
    from training_fixtures import fake_text_encoder, tiny_overrides

    from training.trainer import train

    out = tmp_path / "run"
    overrides = tiny_overrides(out, combined, max_steps=3, mirror=True)
    config = load_train_config(None, [*overrides, "source_weights.deepmimic=3"])
    result = train(config, text_encoder=fake_text_encoder())
    assert len(result.losses) == 3 and all(np.isfinite(result.losses))
    data = json.loads((out / "data.json").read_text())
    assert "deepmimic: DeepMimic" in data["attribution"] and data["items"] > 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["source_weights"] == {"deepmimic": 3}


def test_a_checkpoint_trained_on_the_combined_set_lists_each_source(combined, tmp_path, capsys):
    """``describe`` on a combined data set: each source with its clips and terms, the
    DeepMimic actions from their labels and the studio's from its captions' verbs."""
    import torch

    from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
    from engine.store.checkpoint import load_checkpoint, save_checkpoint
    from engine.text_encoder import TextEncoderConfig

    torch.manual_seed(0)
    folder = save_checkpoint(
        tmp_path / "ckpt", {"autoencoder": MotionAutoencoder(AutoencoderConfig.tiny())},
        text_encoder=TextEncoderConfig(), normalizer_mean=np.zeros(263),
        normalizer_std=np.ones(263), fps=20, license="test", attribution="test",
    )  # fmt: skip
    assert main(["describe", str(folder), "--data", str(combined)]) == 0
    assert "described" in capsys.readouterr().out
    knowledge = load_checkpoint(folder).knowledge
    records = {d["name"]: d for d in knowledge.datasets}
    assert set(records) == {"studio", "deepmimic"}
    originals = [i for i in read_split(combined, "train_studio") if not i.startswith("M")]
    assert records["studio"]["clips"] == len(originals) == 8
    assert "DeepMimic reference motions" in records["deepmimic"]["attribution"]
    assert "walk" in knowledge.vocabulary  # the studio's captions: "a person walks, take i"
    train = read_split(combined, "train_deepmimic")
    labels = json.loads((combined / "labels.json").read_text())
    actions = {labels[i]["labels"]["content"].replace("-", " ") for i in train
               if not labels[i].get("mirror_of")}  # fmt: skip
    assert actions and actions <= set(knowledge.vocabulary)
