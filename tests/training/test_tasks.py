"""Training tasks: each loss falls on a tiny synthetic set; the pieces they rest on."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from training_fixtures import fake_text_encoder, tiny_overrides, write_dataset

from engine.errors import MotionError
from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
from training.checkpointing import split_models
from training.config import load_train_config
from training.data import collate_items
from training.distributed import DistInfo
from training.run_setup import setup_task
from training.tasks.autoencoder import class_tokens
from training.tasks.latent import (
    check_same_normalizer,
    conditions_with_drop,
    rescale_latents,
    token_valid,
)
from training.tasks.molingo import random_token_mask
from training.trainer import train

CPU = DistInfo(0, 1, 0, torch.device("cpu"), None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), clips=4, val=2)


@pytest.fixture(scope="module")
def text():
    return fake_text_encoder()


def fixed_batch_loss(config, text, checkpoint=None, resuming=False) -> float:
    """The task's loss on the first 4 training items, averaged over 6 fixed noise draws, for
    the initial weights or those of ``checkpoint``'s model.safetensors."""
    task, models, context = setup_task(config, CPU, text, resuming=resuming)
    if checkpoint is not None:
        for name, tensors in split_models(load_file(checkpoint / "model.safetensors")).items():
            models[name].load_state_dict(tensors)
    batch = collate_items([context.dataset[(i, 0)] for i in range(4)])
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return sum(float(task.loss(models, batch, text, generator).loss) for _ in range(6)) / 6


def assert_learns(overrides, text, factor):
    config = load_train_config(None, overrides)
    before = fixed_batch_loss(config, text)
    result = train(config, text_encoder=text)
    after = fixed_batch_loss(config, text, result.checkpoint, resuming=True)
    assert all(math.isfinite(v) for v in result.losses)
    assert after < factor * before, (before, after)
    return config


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory, data, text):
    """A VAE trained for a few steps, the source of the generator tasks."""
    out = tmp_path_factory.mktemp("runs") / "vae"
    config = load_train_config(None, tiny_overrides(out, data, max_steps=16, lr=5e-3))
    train(config, text_encoder=text)
    return out


def test_vae_loss_falls(autoencoder_run, data, text):
    config = load_train_config(None, tiny_overrides(autoencoder_run, data))
    before = fixed_batch_loss(config, text)
    after = fixed_batch_loss(
        config, text, sorted((autoencoder_run / "checkpoints").iterdir())[-1], resuming=True
    )
    assert after < 0.6 * before, (before, after)


def test_sae_loss_falls_including_alignment(tmp_path, data, text):
    overrides = tiny_overrides(tmp_path / "sae", data, max_steps=16, lr=5e-3, semantic_weight=1.0)
    config = assert_learns(overrides, text, 0.7)
    assert config.semantic_weight == 1.0


def test_molingo_loss_falls(tmp_path, data, text, autoencoder_run):
    extra = {"task": "molingo", "autoencoder": str(autoencoder_run), "max_steps": 40}
    assert_learns(tiny_overrides(tmp_path / "molingo", data, **extra), text, 0.7)


def test_molingo_adaln_variant_loss_falls(tmp_path, data, text, autoencoder_run):
    extra = {"task": "molingo", "autoencoder": str(autoencoder_run), "max_steps": 40,
             "model.conditioning": "adaln_token"}  # fmt: skip
    assert_learns(tiny_overrides(tmp_path / "adaln", data, **extra), text, 0.7)


def test_mlagen_loss_falls(tmp_path, data, text, autoencoder_run):
    extra = {"task": "mlagen", "autoencoder": str(autoencoder_run), "max_steps": 40}
    assert_learns(tiny_overrides(tmp_path / "mlagen", data, **extra), text, 0.7)


def test_generator_needs_an_autoencoder(tmp_path, data):
    with pytest.raises(MotionError, match="autoencoder"):
        load_train_config(None, tiny_overrides(tmp_path, data, task="mlagen"))


def test_autoencoder_statistics_must_be_the_data_sets_up_to_a_packed_copys_rounding():
    import numpy as np

    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=263), rng.uniform(0.1, 2.0, size=263)
    # a pack-dataset round trip moves them by about 0.02 Std: accepted
    check_same_normalizer(mean + 0.02 * std, std * 1.004, mean, std, "packed")
    with pytest.raises(MotionError, match=r"other Mean/Std.*0\.2 Std"):  # another data set
        check_same_normalizer(mean + 0.2 * std, std, mean, std, "other")
    with pytest.raises(MotionError, match="other Mean/Std"):
        check_same_normalizer(mean, std * 1.5, mean, std, "other")


def test_rescaled_autoencoder_is_the_same_map_in_scaled_units():
    torch.manual_seed(0)
    model = MotionAutoencoder(AutoencoderConfig.tiny()).eval()
    scaled = rescale_latents(model, 2.5)
    x = torch.randn(2, 16, 263)
    with torch.no_grad():
        dist, dist2 = model.encode(x), scaled.encode(x)
        torch.testing.assert_close(dist2.mean, dist.mean / 2.5)
        torch.testing.assert_close(dist2.logvar, dist.logvar - 2 * math.log(2.5))
        z = torch.randn(2, 4, 16)
        torch.testing.assert_close(scaled.decode(z / 2.5), model.decode(z), atol=1e-5, rtol=1e-5)
        head = model.semantic_head(z)
        torch.testing.assert_close(scaled.semantic_head(z / 2.5), head, atol=1e-5, rtol=1e-5)


def test_random_token_mask_masks_only_real_tokens_and_at_least_one():
    valid = torch.zeros(64, 10, dtype=torch.bool)
    lengths = torch.randint(1, 11, (64,), generator=torch.Generator().manual_seed(1))
    for row, length in enumerate(lengths):
        valid[row, :length] = True
    masked = random_token_mask(valid, torch.Generator().manual_seed(0))
    assert not (masked & ~valid).any()
    counts = masked.sum(1)
    assert (counts >= 1).all() and (counts <= lengths).all()
    assert counts.float().mean() < lengths.float().mean()  # a cosine share, not all of them


def test_token_valid_needs_whole_windows():
    mask = torch.tensor([[True] * 8 + [False] * 4, [True] * 6 + [False] * 6])
    assert token_valid(mask, 4).tolist() == [[True, True, False], [True, False, False]]


def test_class_tokens_average_labels_and_skip_repeats(text):
    labels = [[{"walk"}, {"walk"}, set(), {"walk"}, {"walk", "wave"}, {"wave"}]]
    clips, steps, kappa = class_tokens(labels, 6, text, tau=0.95)
    assert steps == [0, 3, 4, 5]  # step 1 repeats step 0; step 3 follows an unlabelled step
    assert clips == [0, 0, 0, 0]
    walk, wave = text.encode(["walk", "wave"]).pooled
    torch.testing.assert_close(kappa[2], (walk + wave) / 2)
    _, all_steps, _ = class_tokens(labels, 6, text, tau=1.1)  # nothing is "nearly identical"
    assert all_steps == [0, 1, 3, 4, 5]


def test_dropped_prompts_get_the_null_encoding(text):
    drop = torch.tensor([False, True, False])
    cond = conditions_with_drop(text, ["a person walks", "a person runs", "hi"], drop, CPU.device)
    null = text.null(1)
    torch.testing.assert_close(cond.pooled[1], null.pooled[0])
    torch.testing.assert_close(cond.pooled[0], text.encode(["a person walks"]).pooled[0])
    assert cond.mask[1].sum() == null.mask.sum()


def test_init_from_a_run_starts_from_its_ema_weights(tmp_path, data, text, autoencoder_run):
    from training.export import load_run_models

    overrides = tiny_overrides(tmp_path / "ft", data, init_from=str(autoencoder_run))
    task, models, context = setup_task(load_train_config(None, overrides), CPU, text)
    source = load_run_models(autoencoder_run).models["autoencoder"].state_dict()
    mine = models["autoencoder"].state_dict()
    assert all(torch.equal(mine[k], v) for k, v in source.items())
    overrides = tiny_overrides(tmp_path / "wide", data, init_from=str(autoencoder_run),
                               **{"model.width": 48})  # fmt: skip
    with pytest.raises(MotionError, match="other shapes"):
        setup_task(load_train_config(None, overrides), CPU, text)
