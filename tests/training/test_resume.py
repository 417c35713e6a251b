"""Stopping at step k and resuming gives exactly (bitwise, on the CPU) the losses and weights
of an uninterrupted run: model, optimizer, schedule, EMA, RNG and data position restored."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from training_fixtures import fake_text_encoder, tiny_overrides, write_dataset

from training.config import load_train_config
from training.trainer import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 6 clips and micro-batches of 2: 3 micro-batches per epoch, so with 2 micro-batches per
    # optimizer step the stop falls mid-epoch and epochs end mid-step.
    return write_dataset(tmp_path_factory.mktemp("data"), clips=6, val=2)


def run_twice(tmp_path, data, stop: int, **extra):
    """(uninterrupted result, resumed result, both checkpoint folders)."""
    text = fake_text_encoder()
    full = load_train_config(None, tiny_overrides(tmp_path / "full", data, **extra))
    part = load_train_config(None, tiny_overrides(tmp_path / "part", data, **extra))
    whole = train(full, text_encoder=text)
    first = train(part, text_encoder=text, stop_after=stop)
    assert first.step == stop and first.checkpoint.name == f"step-{stop:08d}"
    second = train(part, resume=True, text_encoder=text)
    return whole, first, second


def assert_same_files(a, b):
    for name in ("model", "ema", "optimizer"):
        x, y = load_file(a / f"{name}.safetensors"), load_file(b / f"{name}.safetensors")
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), (name, key)


def test_vae_resume_is_exact(tmp_path, data):
    extra = {"max_steps": 6, "accum_steps": 2, "ema_decay": 0.99}
    whole, first, second = run_twice(tmp_path, data, stop=3, **extra)
    assert first.losses == whole.losses[:3]
    assert second.losses == whole.losses[3:]  # bitwise: float equality of every step
    assert_same_files(whole.checkpoint, second.checkpoint)


def test_generator_resume_is_exact(tmp_path, data):
    text = fake_text_encoder()
    vae = tmp_path / "vae"
    train(load_train_config(None, tiny_overrides(vae, data, max_steps=2)), text_encoder=text)
    extra = {"task": "molingo", "autoencoder": str(vae), "max_steps": 5, "cond_drop": 0.5}
    whole, first, second = run_twice(tmp_path, data, stop=2, **extra)
    assert first.losses + second.losses == whole.losses
    assert_same_files(whole.checkpoint, second.checkpoint)
