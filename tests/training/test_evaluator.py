"""The contrastive evaluator: masking, InfoNCE by hand, learning, save/load, its task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import MotionError
from engine.motion.features import Normalizer
from engine.text_encoder import TextEncoderConfig, TextEncoding, load_text_encoder
from training.evaluation.evaluator import (
    EvaluatorConfig,
    TextMotionEvaluator,
    duplicate_mask,
    info_nce_loss,
    load_evaluator,
    save_evaluator,
)

TEXT_DIM = 16


def _fake_text(captions: list[str], table: dict[str, torch.Tensor]) -> TextEncoding:
    """Fixed random token features per caption (3 tokens), standing in for a text encoder."""
    tokens = torch.stack([table[c] for c in captions])  # (B, 3, D)
    return TextEncoding(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool), tokens.mean(1))


def _model(**overrides) -> TextMotionEvaluator:
    torch.manual_seed(0)
    return TextMotionEvaluator(
        EvaluatorConfig.tiny().replace(**{"text_dim": TEXT_DIM, **overrides})
    )


def test_padding_does_not_change_the_motion_embedding():
    model = _model().eval()
    x = torch.randn(1, 37, 263)
    padded = torch.cat([x, 100 * torch.randn(1, 23, 263)], dim=1)  # junk after frame 37
    mask = torch.arange(60)[None] < 37
    short = model.encode_motion(x, torch.ones(1, 37, dtype=torch.bool))
    long = model.encode_motion(padded, mask)
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)
    assert short.norm(dim=-1).item() == pytest.approx(1.0, abs=1e-5)


def test_too_long_motion_is_an_error():
    model = _model(max_frames=40)
    with pytest.raises(MotionError, match="max_frames"):
        model.encode_motion(torch.zeros(1, 44, 263), torch.ones(1, 44, dtype=torch.bool))


def test_info_nce_by_hand_and_duplicates_masked():
    pair = torch.eye(2)
    scale = torch.tensor(2.0)
    loss, logs = info_nce_loss(pair, pair, scale, ["a", "b"])
    assert loss.item() == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-5)
    assert logs["accuracy"] == 1.0 and logs["temperature"] == pytest.approx(0.5)
    # Two items with one caption: the other item is no negative, nothing is left to push.
    same = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, _ = info_nce_loss(same, torch.ones(2, 2) / math.sqrt(2), scale, ["a", "a"])
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert duplicate_mask(["a", "b", "a"]).tolist() == [
        [False, False, True],
        [False, False, False],
        [True, False, False],
    ]


def test_loss_falls_when_captions_determine_motion():
    """Four captions, each with its own movement pattern; InfoNCE must learn to pair them."""
    gen = torch.Generator().manual_seed(0)
    captions = ["walk", "jump", "wave", "sit"]
    table = {c: torch.randn(3, TEXT_DIM, generator=gen) for c in captions}
    patterns = {c: torch.randn(263, generator=gen) for c in captions}
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        chosen = [captions[int(i)] for i in torch.randint(0, 4, (8,), generator=gen)]
        t = torch.linspace(0, 1, 40)[None, :, None]  # (1, F, 1)
        features = torch.stack([patterns[c] for c in chosen])[:, None] * torch.sin(6 * t)
        features = features + 0.3 * torch.randn(features.shape, generator=gen)  # (B, F, 263)
        lengths = torch.randint(20, 41, (8,), generator=gen)
        mask = torch.arange(40)[None] < lengths[:, None]
        out = model(features, mask, _fake_text(chosen, table))
        loss, _ = info_nce_loss(out.motion, out.text, out.logit_scale, chosen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:5])


def test_save_and_load_round_trip(tmp_path):
    encoder = load_text_encoder(TextEncoderConfig())
    model = _model(text_dim=encoder.dim).eval()
    rng = np.random.default_rng(0)
    normalizer = Normalizer(rng.normal(size=263), rng.uniform(0.5, 2.0, size=263))
    folder = save_evaluator(
        tmp_path / "eval", model, text_encoder=TextEncoderConfig(), normalizer=normalizer,
        license="test", attribution="kinetext tests",
    )  # fmt: skip
    loaded = load_evaluator(folder)
    np.testing.assert_allclose(loaded.normalizer.std, normalizer.std, rtol=1e-6)
    captions = ["a person walks", "a person jumps"]
    with torch.no_grad():
        expected_text = model.encode_text(encoder.encode(captions)).numpy()
        x = torch.randn(2, 48, 263)
        mask = torch.arange(48)[None] < torch.tensor([[48], [40]])
        expected_motion = model.encode_motion(x, mask).numpy()
    np.testing.assert_allclose(loaded.embed_text(captions), expected_text, atol=1e-5)
    np.testing.assert_allclose(loaded.embed_motion(x.numpy(), [48, 40]), expected_motion, atol=1e-5)


def test_loading_a_generator_checkpoint_as_evaluator_is_refused(tmp_path):
    from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
    from engine.store.checkpoint import save_checkpoint

    folder = save_checkpoint(
        tmp_path / "ae", {"autoencoder": MotionAutoencoder(AutoencoderConfig.tiny())},
        text_encoder=TextEncoderConfig(), normalizer_mean=np.zeros(263),
        normalizer_std=np.ones(263), fps=20, license="test", attribution="tests",
    )  # fmt: skip
    with pytest.raises(MotionError, match="not an evaluator"):
        load_evaluator(folder)


def test_task_trains_through_the_trainer_and_exports(tmp_path):
    """The evaluator task under the real trainer: loss falls; the export loads as an evaluator."""
    from training_fixtures import fake_text_encoder, tiny_overrides, write_dataset

    from training.config import load_train_config
    from training.export import export_runs
    from training.trainer import train

    data = write_dataset(tmp_path / "data", clips=8, val=0)
    encoder = fake_text_encoder(TEXT_DIM)
    overrides = tiny_overrides(tmp_path / "run", data, task="evaluator", max_steps=25, lr=3e-3,
                               batch_size=8, warmup_steps=2, ema_decay=0.5)  # fmt: skip
    config = load_train_config(None, overrides)
    result = train(config, text_encoder=encoder)
    assert np.mean(result.losses[-5:]) < 0.5 * np.mean(result.losses[:3])
    folder = export_runs([tmp_path / "run"], tmp_path / "export")
    loaded = load_evaluator(folder, text_encoder=encoder)
    assert loaded.model.config.text_dim == TEXT_DIM and loaded.model.config.width == 32
    text = loaded.embed_text(["a person walks forward", "a person bounces in place"])
    assert text.shape == (2, 16) and np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def test_task_rejects_unknown_model_keys():
    from training.config import load_train_config

    with pytest.raises(MotionError, match="unknown EvaluatorConfig keys"):
        load_train_config(None, ["task=evaluator", "model.widht=64"])
    with pytest.raises(MotionError, match="no options"):
        load_train_config(None, ["task=evaluator", "options.x=1"])
