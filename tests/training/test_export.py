"""Export: training runs -> an engine checkpoint that loads and generates; push to the Hub."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from training_fixtures import ATTRIBUTION, LICENCE, tiny_overrides, write_dataset

from engine.errors import MotionError
from engine.pipeline import generate
from engine.store.checkpoint import load_checkpoint
from engine.text_encoder import TextEncoderConfig, load_text_encoder
from training.config import load_train_config
from training.export import export_runs, main_export
from training.push import main_push, push_checkpoint
from training.trainer import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An autoencoder run, its export, and MoLingo / MLA-Gen runs on it (real MiniLM)."""
    root = tmp_path_factory.mktemp("export")
    data = write_dataset(root / "data", clips=4, val=2)
    text = load_text_encoder(TextEncoderConfig())

    def run(name, **extra):
        config = load_train_config(None, tiny_overrides(root / name, data, **extra))
        train(config, text_encoder=text)
        return root / name

    vae = run("vae", max_steps=3)
    vae_ckpt = export_runs([vae], root / "vae-checkpoint")
    molingo = run("molingo", task="molingo", autoencoder=str(vae), max_steps=2)
    mlagen = run("mlagen", task="mlagen", autoencoder=str(vae_ckpt), max_steps=2)
    return {"root": root, "data": data, "vae": vae, "molingo": molingo, "mlagen": mlagen,
            "run": run}  # fmt: skip


def test_export_loads_and_generates_with_both_generators(runs):
    out = runs["root"] / "checkpoint"
    assert main_export([str(runs["molingo"]), str(runs["mlagen"]), str(out)]) == 0
    ckpt = load_checkpoint(out)
    assert set(ckpt.models) == {"autoencoder", "molingo", "mlagen"}
    assert ckpt.attribution == ATTRIBUTION and ckpt.license == LICENCE
    assert ckpt.fps == 20 and ckpt.text_encoder == TextEncoderConfig()
    np.testing.assert_allclose(ckpt.mean, np.load(runs["data"] / "Mean.npy"), rtol=1e-6)
    assert ckpt.metadata["generator"] == "molingo"
    assert ckpt.metadata["max_frames"] == 48
    assert set(ckpt.metadata["runs"]) == {"molingo", "mlagen"}
    assert ATTRIBUTION in (out / "README.md").read_text()
    assert (out / "LICENSE-data").is_file()
    for name in ("molingo", "mlagen"):
        motion = generate("a person walks forward", frames=40, checkpoint=ckpt, generator=name,
                          steps=2, device="cpu", seed=1)  # fmt: skip
        assert motion.joints.shape == (1, 40, 22, 3)
        assert np.isfinite(motion.joints).all()


def test_export_uses_the_ema_weights_and_the_rescaled_autoencoder(runs):
    from training.export import load_run_models

    ckpt = load_checkpoint(export_runs([runs["mlagen"]], runs["root"] / "single"))
    ema = load_run_models(runs["mlagen"]).models["mlagen"].state_dict()
    raw = load_run_models(runs["mlagen"], ema=False).models["mlagen"].state_dict()
    exported = ckpt.models["mlagen"].state_dict()
    assert all((exported[k] == ema[k]).all() for k in ema)
    assert any((exported[k] != raw[k]).any() for k in raw)
    scale = json.loads((runs["mlagen"] / "frozen_autoencoder.json").read_text())["latent_scale"]
    assert ckpt.metadata["latent_scale"] == {"mlagen": scale} and scale > 0
    assert ckpt.metadata["sampling"]["guidance"] == 4.0  # MLA-Gen's defaults, alone


def test_each_generator_of_a_merged_checkpoint_samples_with_its_own_defaults(runs):
    folder = export_runs([runs["molingo"], runs["mlagen"]], runs["root"] / "tuned")
    config = json.loads((folder / "config.json").read_text())
    config["metadata"]["sampling_defaults"]["mlagen"]["steps"] = 3
    config["metadata"]["sampling_defaults"]["molingo"]["guidance"] = 2.5
    (folder / "config.json").write_text(json.dumps(config))
    ckpt = load_checkpoint(folder)
    made = {
        name: generate(
            "a person walks", frames=40, checkpoint=ckpt, generator=name, device="cpu"
        ).diagnostics  # fmt: skip
        for name in ("mlagen", "molingo")
    }
    assert made["mlagen"]["steps"] == 3 and made["mlagen"]["guidance"] == 4.0
    assert made["molingo"]["guidance"] == 2.5 and made["molingo"]["steps"] == 32
    assert made["molingo"]["ar_steps"] == 16 and "mode" not in made["molingo"]


def test_generators_on_different_latent_scales_do_not_export_together(runs):
    other = runs["run"]("mlagen-other", task="mlagen", autoencoder=str(runs["vae"]),
                        max_steps=1, latent_scale=3.0)  # fmt: skip
    with pytest.raises(MotionError, match="latent_scale"):
        export_runs([runs["molingo"], other], runs["root"] / "mixed")


def test_push_uploads_the_checkpoint_files(runs, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return "https://huggingface.co/me/motion/commit/abc"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    folder = export_runs([runs["molingo"]], runs["root"] / "to-push")
    assert main_push([str(folder), "me/motion", "--private"]) == 0
    (_, token), (_, repo, create), (_, upload) = calls
    assert repo == "me/motion" and create["private"] and create["repo_type"] == "model"
    assert upload["folder_path"] == str(folder) and upload["repo_id"] == "me/motion"
    assert "config.json" in upload["allow_patterns"] and "README.md" in upload["allow_patterns"]
    with pytest.raises(MotionError, match="checkpoint"):
        push_checkpoint(runs["vae"], "me/motion")  # a run folder is not a checkpoint
    with pytest.raises(MotionError, match="owner/name"):
        push_checkpoint(folder, "no-owner")


def test_export_names_the_missing_licence_and_where_it_looked(runs, capsys):
    """A data set built without a licence: export says which term is missing and the flag."""
    data_json = runs["mlagen"] / "data.json"
    record = json.loads(data_json.read_text())
    kept = dict(record)
    record["license"] = ""
    data_json.write_text(json.dumps(record))
    try:
        out = runs["root"] / "no-licence"
        from training.cli import main

        assert main(["export", str(runs["mlagen"]), str(out)]) == 2  # as the command runs
        error = capsys.readouterr().err
        assert "license is not known" in error and "--license" in error
        assert "--attribution" not in error and "build.json" in error and not out.exists()
    finally:
        data_json.write_text(json.dumps(kept))


def test_export_describes_what_the_runs_were_trained_on(runs):
    """The checkpoint says what it learned, from the runs' data set and text encoder: the
    train split's labels and captions only, so a retrained checkpoint is described anew."""
    out = runs["root"] / "described"
    assert main_export([str(runs["mlagen"]), str(out)]) == 0
    knowledge = load_checkpoint(out).knowledge
    assert knowledge.vocabulary == {"walk": 1, "run": 1, "turn": 1, "bob": 1}  # 4 train clips
    assert set(knowledge.captions) == {"a person walks forward", "a person runs forward quickly",
                                       "a person turns while walking",
                                       "a person bounces in place", "walk motion",
                                       "run motion", "turn motion", "bob motion"}  # fmt: skip
    assert knowledge.datasets[0]["licence"] == LICENCE
    assert "## What it learned" in (out / "README.md").read_text()
    motion = generate("a person sits down on a chair", frames=40, checkpoint=out, steps=1,
                      device="cpu")  # fmt: skip
    [match] = motion.diagnostics["knowledge"]
    assert not match["known"] and match["nearest"][0]["caption"] in knowledge.captions


def test_export_without_its_data_set_says_how_to_describe_it_later(runs, tmp_path, capsys):
    """Exported where the data set is not: a note with the command, which then adds it."""
    run = tmp_path / "moved-run"
    shutil.copytree(runs["mlagen"], run)
    record = json.loads((run / "data.json").read_text())
    (run / "data.json").write_text(json.dumps({**record, "data_root": str(tmp_path / "gone")}))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data_root": str(tmp_path / "gone")}))
    out = tmp_path / "undescribed"
    from training.cli import main

    assert main(["export", str(run), str(out)]) == 0
    error = capsys.readouterr().err
    assert f"python -m training describe {out} --data DATASET" in error
    assert load_checkpoint(out).knowledge is None
    assert main(["describe", str(out), "--data", str(runs["data"])]) == 0
    assert "4 actions" in capsys.readouterr().out
    assert load_checkpoint(out).knowledge.vocabulary["walk"] == 1
    assert main(["describe", str(out), "--data", str(tmp_path / "gone")]) == 2
    assert "not a built data set" in capsys.readouterr().err


def test_a_data_set_without_action_labels_is_described_by_its_verbs(tmp_path):
    from training.describe import describe_data

    data = write_dataset(tmp_path / "data", clips=4, val=0, labels=False)
    knowledge = describe_data([data], TextEncoderConfig())
    assert {"walk", "run", "turn", "bounce"} <= set(knowledge.vocabulary)
