"""Trainer core: strict configs, the learning-rate schedule, EMA, parameter groups, run
folders and checkpoint rotation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from training_fixtures import ATTRIBUTION, fake_text_encoder, tiny_overrides, write_dataset

from engine.errors import MotionError
from training.checkpointing import list_checkpoints, load_training_checkpoint
from training.config import apply_overrides, load_train_config
from training.optim import EMA, lr_at, parameter_groups
from training.trainer import train

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), clips=4, val=2)


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('task = "autoencoder"\nlr = 1e-3\n[model]\nwidth = 64\n')
    config = load_train_config(
        path,
        ["lr=2e-4", "betas=[0.9, 0.95]", "out_dir=runs/a b", "model.depth=1",
         "text_encoder.max_tokens=32", "bf16=false", "preset=tiny"],
    )  # fmt: skip
    assert config.lr == 2e-4 and config.betas == (0.9, 0.95) and config.bf16 is False
    assert config.out_dir == "runs/a b"
    assert config.model == {"width": 64, "depth": 1}
    assert config.text_encoder.max_tokens == 32
    json_path = tmp_path / "run.json"
    json_path.write_text(json.dumps(config.to_dict()))
    assert load_train_config(json_path) == config


@pytest.mark.parametrize(
    "override, message",
    [
        ("lrr=1e-3", "unknown key 'lrr'"),
        ("lr=fast", "lr"),
        ("batch_size=2.5", "batch_size"),
        ("bf16=1", "bf16"),
        ("text_encoder.colour=red", "no key"),
        ("lr", "key=value"),
        ("model.widht=64", "widht"),  # checked by the task against AutoencoderConfig
        ("task=painting", "unknown task"),
        ("batch_size=6", "divide"),  # 6 is not divisible by accum_steps=4 below
    ],
)
def test_bad_overrides_are_rejected(override, message):
    with pytest.raises(MotionError, match=message):
        load_train_config(None, ["accum_steps=4", "batch_size=8", override])


def test_dotted_override_into_a_scalar_is_rejected():
    with pytest.raises(MotionError, match="not a table"):
        apply_overrides({}, ["lr.x=1"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_example_configs_load(path):
    config = load_train_config(path)
    assert config.task in {"autoencoder", "molingo", "mlagen", "evaluator"}
    # the papers' setups are the papers' sizes; every other example trains the shipped size
    assert config.preset == "small" or path.stem.startswith("paper-")


def test_learning_rate_warms_up_then_follows_a_cosine():
    peak, warmup, total = 1.0, 4, 14
    assert [lr_at(s, peak, warmup, total) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(9, peak, warmup, total) == pytest.approx(0.5)  # half-way down the cosine
    assert lr_at(14, peak, warmup, total) == pytest.approx(0.0)
    assert lr_at(14, peak, warmup, total, min_ratio=0.1) == pytest.approx(0.1)
    values = [lr_at(s, peak, warmup, total) for s in range(4, 15)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_ema_follows_the_weights_with_its_ramped_decay():
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 0.0)
    ema = EMA({"m": model}, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update({"m": model})  # decay min(0.5, 1/10) = 0.1 -> 0.9
    assert ema.models["m"].weight.item() == pytest.approx(0.9)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update({"m": model})  # decay min(0.5, 2/11) -> 0.9 * 2/11 + 2 * 9/11
    assert ema.models["m"].weight.item() == pytest.approx(0.9 * 2 / 11 + 2 * 9 / 11)
    assert not any(p.requires_grad for p in ema.models["m"].parameters())


def test_weight_decay_applies_to_matrices_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Conv1d(4, 4, 3))
    model[1].weight.requires_grad_(False)  # frozen parameters are left out
    decay, plain = parameter_groups([model], 0.1)
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in plain["params"]} == {
        id(model[0].bias), id(model[1].bias), id(model[2].bias)
    }  # fmt: skip


def test_run_folder_checkpoints_and_rotation(tmp_path, data):
    out = tmp_path / "run"
    extra = {"max_steps": 5, "ckpt_every": 1, "keep_checkpoints": 2, "log_every": 1}
    config = load_train_config(None, tiny_overrides(out, data, **extra))
    result = train(config, text_encoder=fake_text_encoder())
    assert [p.name for p in list_checkpoints(out)] == ["step-00000004", "step-00000005"]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    saved = load_training_checkpoint(result.checkpoint)
    assert saved.state.step == 5 and saved.state.samples == 20
    # one global batch of 4 per epoch: the 5th batch is the first (and only) of epoch 4
    assert saved.state.epoch == 4 and saved.state.position == 1
    assert set(saved.models) == set(saved.ema)
    assert all(math.isfinite(v) for v in result.losses) and len(result.losses) == 5
    data_json = json.loads((out / "data.json").read_text())
    assert data_json["attribution"] == ATTRIBUTION and data_json["fps"] == 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["samples_per_second"] > 0
    assert list((out / "tensorboard").iterdir())
    with pytest.raises(MotionError, match="already holds a run"):
        train(config, text_encoder=fake_text_encoder())
    changed = load_train_config(None, tiny_overrides(out, data, **extra, lr=1.0))
    with pytest.raises(MotionError, match="lr"):
        train(changed, resume=True, text_encoder=fake_text_encoder())


def test_resume_without_a_checkpoint_is_an_error(tmp_path, data):
    config = load_train_config(None, tiny_overrides(tmp_path / "empty", data))
    with pytest.raises(MotionError, match="no checkpoint"):
        train(config, resume=True, text_encoder=fake_text_encoder())


def test_resume_reads_the_runs_own_settings_back(tmp_path, data):
    """`train CONFIG out_dir=RUN --resume` continues with the run's settings, whatever the
    config file says now; only what is typed again is compared."""
    from training.run_setup import resume_config

    out = tmp_path / "run"
    train(load_train_config(None, tiny_overrides(out, data, max_steps=2, ckpt_every=2)),
          text_encoder=fake_text_encoder())  # fmt: skip
    plain = load_train_config(None, [f"out_dir={out}", "task=autoencoder"])  # other defaults
    resumed = resume_config(plain, [f"out_dir={out}", "max_steps=3"])
    assert resumed.batch_size == 4 and resumed.preset == "tiny" and resumed.max_steps == 3
    result = train(resumed, resume=True, text_encoder=fake_text_encoder())
    assert load_training_checkpoint(result.checkpoint).state.step == 3
    changed = resume_config(plain, [f"out_dir={out}", "lr=1.0"])
    with pytest.raises(MotionError, match="differ.*lr"):
        train(changed, resume=True, text_encoder=fake_text_encoder())


def test_a_batch_larger_than_the_data_is_cut_to_it_and_said(data, tmp_path, capsys):
    """34 studio clips used to stop with "fewer than one global batch of 256"."""
    out = tmp_path / "small"
    config = load_train_config(
        CONFIGS / "vae.toml", tiny_overrides(out, data, batch_size=256, max_steps=2)
    )
    result = train(config, text_encoder=fake_text_encoder())
    assert result.step == 2
    said = capsys.readouterr().out
    assert "batch_size 256 is more than the 4 training items: training with batch_size=4" in said
    assert json.loads((out / "config.json").read_text())["batch_size"] == 4
    config = load_train_config(
        None, tiny_overrides(tmp_path / "odd", data, batch_size=256, accum_steps=8)
    )
    with pytest.raises(MotionError, match="4 training items cannot fill one batch of 8"):
        train(config, text_encoder=fake_text_encoder())


def test_cpu_threads_share_the_idle_cores(monkeypatch, capsys):
    """Torch threads on busy cores wait on each other (one SAE step: 24 s with 2 threads,
    3.5 s with 1 on 2 shared cores), so a CPU rank takes the idle cores, shared by ranks."""
    import os

    from training import run_setup
    from training.distributed import DistInfo

    before = torch.get_num_threads()
    one, two = (
        DistInfo(0, 1, 0, torch.device("cpu"), None),
        DistInfo(0, 2, 0, torch.device("cpu"), "gloo"),
    )

    def threads(info: DistInfo, load: float, ranks: int = 1) -> int | None:
        torch.set_num_threads(4)  # torch's default on a 4-core host
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks))
        return run_setup.set_cpu_threads(info)

    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(run_setup, "usable_cores", lambda: 4)
        assert threads(one, 0.2) == 4 and torch.get_num_threads() == 4  # idle: all cores
        assert threads(two, 0.2, ranks=2) == 2  # two ranks share them
        assert threads(one, 2.6) == 1 and torch.get_num_threads() == 1  # 3 cores busy
        assert "CPU: 1 torch thread(s) per rank (4 cores, 1 rank(s), load 2.6)" in (
            capsys.readouterr().out
        )
        assert threads(one, 9.0) == 1  # never fewer than one
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting wins
        assert threads(one, 9.0) is None and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_training_refuses_captions_the_text_encoder_cannot_read(tmp_path, data):
    """A slimmed text-encoder copy made from another data set's captions has blank rows for
    these captions' words: training on it would condition on nothing, so it stops first."""
    encoder = fake_text_encoder()
    word = (data / "texts" / "000000.txt").read_text().split("#")[0].split()[-1]
    with torch.no_grad():
        encoder.model.table.weight[encoder.tokenizer.token_id(word)] = 0.0
    out = tmp_path / "run"
    with pytest.raises(MotionError, match="no embedding for 1 token.*slim it again"):
        train(load_train_config(None, tiny_overrides(out, data)), text_encoder=encoder)
    assert not (out / "checkpoints").exists()
    train(load_train_config(None, tiny_overrides(tmp_path / "ok", data, max_steps=1)),
          text_encoder=fake_text_encoder())  # fmt: skip
