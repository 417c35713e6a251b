"""MLA-Gen network and its sampling loop on the tiny preset (CPU, random weights)."""

import pytest
import torch

from engine.errors import MotionError
from engine.models.mlagen import MLAGen, MLAGenConfig, count_parameters
from engine.sampling.flow import sample_flow
from engine.sampling.guidance import SinkCtrl
from engine.text_encoder import TextEncoding

CONFIG = MLAGenConfig.tiny()


def _model(config: MLAGenConfig = CONFIG, seed: int = 0) -> MLAGen:
    """A model whose zero-initialised layers (AdaLN, output) are randomised, so that every
    input actually reaches the output."""
    torch.manual_seed(seed)
    model = MLAGen(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def _text(lengths: list[int], length: int | None = None, seed: int = 1) -> TextEncoding:
    g = torch.Generator().manual_seed(seed)
    length = length or max(lengths)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]  # (B, L)
    tokens = torch.randn(len(lengths), length, CONFIG.text_dim, generator=g) * mask[..., None]
    return TextEncoding(tokens, mask, torch.randn(len(lengths), CONFIG.text_dim, generator=g))


def _inputs(batch: int = 2, n: int = 6, t: float = 0.5, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, CONFIG.latent_dim, generator=g), torch.full((batch,), t)


def test_forward_shape_and_attention_maps():
    model = _model()
    x, t = _inputs()
    v, attn = model(x, t, _text([5, 3]), return_attention=True)
    assert v.shape == x.shape
    torch.testing.assert_close(model(x, t, _text([5, 3])), v, rtol=0, atol=0)
    assert attn.shape == (2, CONFIG.heads, 6, 5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, CONFIG.heads, 6))
    assert attn[1, :, :, 3:].abs().max() == 0  # padded tokens get no attention


def test_sink_mask_drops_start_token_only_after_threshold():
    # Threshold 0.2 of sampling progress 1 - t: the start token is masked for t < 0.8.
    model = _model()
    text = _text([5, 5])
    x, _ = _inputs()

    def maps(net, times):
        return net(x, torch.tensor(times), text, return_attention=True)[1]

    assert (maps(model, [0.85, 0.95])[..., 0] > 0).all()
    late = maps(model, [0.75, 0.1])
    assert late[..., 0].abs().max() == 0
    torch.testing.assert_close(late.sum(-1), torch.ones(2, CONFIG.heads, 6))
    mixed = maps(model, [0.9, 0.7])  # decided per row
    assert (mixed[0, ..., 0] > 0).all()
    assert mixed[1, ..., 0].abs().max() == 0
    unmasked = _model(CONFIG.replace(sink_mask=False))
    assert (maps(unmasked, [0.1, 0.1])[..., 0] > 0).all()


def test_padded_text_tokens_do_not_change_the_output():
    model = _model()
    x, t = _inputs(batch=1)
    short = _text([3], length=3)
    padded = _text([3], length=3)
    padded = TextEncoding.cat([padded, _text([6], seed=9)]).index(0)  # pads L to 6
    padded.tokens[0, 3:] = torch.randn(3, CONFIG.text_dim)  # garbage behind the mask
    torch.testing.assert_close(model(x, t, padded), model(x, t, short))


def test_padded_frames_do_not_change_real_frames():
    model = _model()
    x, t = _inputs(batch=1, n=4)
    text = _text([4])
    longer = torch.cat([x, 5.0 * torch.randn(1, 3, CONFIG.latent_dim)], dim=1)  # 3 pad frames
    frame_mask = torch.arange(7)[None] < 4
    padded = model(longer, t, text, frame_mask=frame_mask)
    torch.testing.assert_close(padded[:, :4], model(x, t, text))


def test_tiny_model_fits_one_batch():
    # A few optimiser steps on the flow-matching loss must lower it (gradients reach
    # every part: memory, local cross-attention, blocks).
    model = _model().train()
    text = _text([4, 3])
    g = torch.Generator().manual_seed(4)
    data = torch.randn(2, 6, CONFIG.latent_dim, generator=g)
    noise = torch.randn(2, 6, CONFIG.latent_dim, generator=g)
    t = torch.tensor([0.3, 0.9])
    x_t = (1 - t[:, None, None]) * data + t[:, None, None] * noise
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = (model(x_t, t, text) - (noise - data)).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.memory.grad is not None and model.memory.grad.abs().sum() > 0


def test_memory_slots_come_from_config_and_change_the_output():
    model = _model()
    assert model.memory.shape == (CONFIG.memory_slots, CONFIG.width)
    assert _model(CONFIG.replace(memory_slots=7)).memory.shape[0] == 7
    assert _model(CONFIG.replace(memory_slots=0)).memory is None
    x, t = _inputs()
    text = _text([4, 4])
    before = model(x, t, text)
    with torch.no_grad():
        model.memory.mul_(-3.0)
    assert (model(x, t, text) - before).abs().max() > 1e-3


def test_weak_local_and_local_text_change_only_the_local_condition():
    model = _model()
    x, t = _inputs()
    text, other = _text([4, 4]), _text([4, 4], seed=5)
    strong = model(x, t, text)
    weak = model(x, t, text, weak_local=True)
    assert (weak - strong).abs().max() > 1e-4
    per_row = model(x, t, text, weak_local=torch.tensor([False, True]))
    torch.testing.assert_close(per_row[0], strong[0])
    torch.testing.assert_close(per_row[1], weak[1])
    # With no local weight, only the global (pooled) text matters.
    no_local = _model(CONFIG.replace(local_weight=0.0))
    torch.testing.assert_close(no_local(x, t, text), no_local(x, t, text, local_text=other))


def test_sample_flow_deterministic_per_seed():
    model = _model()
    text, null = _text([4, 2]), _text([1], seed=3)

    def run(seed: int, **kwargs):
        g = torch.Generator().manual_seed(seed)
        return sample_flow(model, text, null, 5, steps=6, generator=g, **kwargs)

    a, b, c = run(0), run(0), run(1)
    assert a.latents.shape == (2, 5, CONFIG.latent_dim)
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=0)
    assert (a.latents - c.latents).abs().max() > 1e-3
    assert a.sink_ratio.shape == (2,)
    # Row 1 has two real tokens: top-2 covers all its attention while unmasked.
    assert ((a.sink_ratio > 0) & (a.sink_ratio <= 1 + 1e-6)).all()
    heun = run(0, method="heun")
    assert (heun.latents - a.latents).abs().max() > 1e-4


def test_sink_ctrl_sampling_matches_cfg_without_amplification():
    model = _model()
    text, null = _text([4, 3]), _text([2], seed=3)
    g = torch.Generator().manual_seed(0)
    cfg = sample_flow(model, text, null, 4, steps=5, guidance=3.0, mode="cfg", generator=g)
    g = torch.Generator().manual_seed(0)
    flat = SinkCtrl(scale=3.0, amplification=0.0)
    ctrl = sample_flow(model, text, null, 4, steps=5, generator=g, controller=flat)
    torch.testing.assert_close(ctrl.latents, cfg.latents)
    g = torch.Generator().manual_seed(0)
    sink = sample_flow(model, text, null, 4, steps=5, guidance=3.0, generator=g)
    assert (sink.latents - cfg.latents).abs().max() > 1e-4


def test_cfg_scale_one_samples_the_conditional_model():
    model = _model()
    text, null = _text([4]), _text([2], seed=3)
    g = torch.Generator().manual_seed(0)
    guided = sample_flow(model, text, null, 3, steps=2, guidance=1.0, mode="cfg", generator=g)
    x = torch.randn(1, 3, CONFIG.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t0, t1 in [(1.0, 0.5), (0.5, 0.0)]:
            x = x + (t1 - t0) * model(x, torch.full((1,), t0), text)
    torch.testing.assert_close(guided.latents, x)


def test_bad_arguments_raise():
    model = _model()
    with pytest.raises(MotionError, match="mode"):
        sample_flow(model, _text([2]), _text([1]), 3, mode="apg")
    with pytest.raises(MotionError, match="null_text"):
        sample_flow(model, _text([2, 2, 2]), _text([1, 1]), 3, steps=1)


def test_presets_sizes():
    assert count_parameters(MLAGen(MLAGenConfig.small())) * 4 < 25e6
    assert MLAGenConfig.base().width == 512 and MLAGenConfig.base().depth == 8
    config = MLAGenConfig.from_dict(MLAGenConfig.small().to_dict())
    assert config == MLAGenConfig.small()
