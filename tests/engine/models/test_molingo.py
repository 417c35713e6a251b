"""MoLingo generator: shapes, masking, padding masks, the AdaLN-token variant, the flow head."""

import pytest
import torch

from engine.errors import MotionError
from engine.models.layers import AdaLNModulation, Attention
from engine.models.molingo import MoLingo, MoLingoConfig, TextMemory
from engine.text_encoder import TextEncoding


def fake_text(batch: int, length: int, dim: int = 32, real: list[int] | None = None, seed=0):
    """Random encoder output; row i has ``real[i]`` real tokens, the rest padding (zeros)."""
    g = torch.Generator().manual_seed(seed)
    real = real or [length] * batch
    mask = torch.arange(length)[None, :] < torch.tensor(real)[:, None]  # (B, L)
    tokens = torch.randn(batch, length, dim, generator=g) * mask[..., None]
    return TextEncoding(tokens, mask, torch.randn(batch, dim, generator=g))


def make_model(**overrides) -> MoLingo:
    torch.manual_seed(0)
    model = MoLingo(MoLingoConfig.tiny().replace(**overrides)).eval()
    with torch.no_grad():  # zero-initialised layers (flow-head output, AdaLN) get weights
        torch.nn.init.normal_(model.head.out.weight, std=0.1)
        for module in model.modules():
            if isinstance(module, AdaLNModulation):
                torch.nn.init.normal_(module.proj.weight, std=0.1)
    return model


@pytest.mark.parametrize("conditioning", ["cross_attention", "adaln_token"])
def test_shapes(conditioning):
    model = make_model(conditioning=conditioning)
    tokens = torch.randn(3, 10, 16)
    mask = torch.rand(3, 10) < 0.5
    z = model(tokens, mask, fake_text(3, 7))
    assert z.shape == (3, 10, model.config.width)
    assert model.velocity(tokens, torch.rand(3), z).shape == (3, 10, 16)
    assert model.velocity(tokens[0], torch.rand(10), z[0]).shape == (10, 16)


@torch.no_grad()
def test_masked_token_content_is_ignored():
    model = make_model()
    tokens = torch.randn(2, 8, 16)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, 3:] = True
    other = tokens.clone()
    other[:, 3:] = torch.randn(2, 5, 16) * 100
    text = fake_text(2, 5)
    torch.testing.assert_close(model(tokens, mask, text), model(other, mask, text))
    unmasked = model(other, torch.zeros_like(mask), text)
    assert not torch.allclose(unmasked, model(tokens, mask, text))


@torch.no_grad()
def test_text_padding_content_does_not_change_output():
    model = make_model()
    tokens, mask = torch.randn(2, 6, 16), torch.rand(2, 6) < 0.5
    text = fake_text(2, 9, real=[4, 9])
    junk = TextEncoding(text.tokens.clone(), text.mask, text.pooled)
    junk.tokens[0, 4:] = torch.randn(5, 32) * 50  # only row 0 has padding
    torch.testing.assert_close(model(tokens, mask, text), model(tokens, mask, junk))
    unmasked = TextEncoding(text.tokens, torch.ones_like(text.mask), text.pooled)
    junk_seen = TextEncoding(junk.tokens, unmasked.mask, text.pooled)
    assert not torch.allclose(model(tokens, mask, unmasked), model(tokens, mask, junk_seen))


@torch.no_grad()
def test_padded_motion_tokens_do_not_change_real_ones():
    model = make_model()
    tokens, mask, text = torch.randn(1, 8, 16), torch.zeros(1, 8, dtype=torch.bool), fake_text(1, 4)
    valid = torch.arange(8)[None] < 5
    other = tokens.clone()
    other[:, 5:] = torch.randn(1, 3, 16) * 10
    z = model(tokens, mask, text, token_valid=valid)
    torch.testing.assert_close(z[:, :5], model(other, mask, text, token_valid=valid)[:, :5])
    torch.testing.assert_close(z[:, :5], model(tokens[:, :5], mask[:, :5], text))


@torch.no_grad()
def test_adapted_memory_and_batch1_text_match_direct_call():
    model = make_model()
    tokens, mask = torch.randn(2, 6, 16), torch.rand(2, 6) < 0.5
    text = fake_text(1, 5)
    direct = model(tokens, mask, TextEncoding.cat([text, text]))
    torch.testing.assert_close(model(tokens, mask, model.adapt_text(text)), direct)
    memory = TextMemory.cat([model.adapt_text(fake_text(1, 3)), model.adapt_text(text)])
    assert memory.tokens.shape[:2] == (2, 5) and memory.mask.sum(1).tolist() == [3, 5]


@torch.no_grad()
def test_adaln_token_uses_pooled_text_only():
    model = make_model(conditioning="adaln_token")
    assert model.text_adapter is None
    assert all(block.cross is None for block in model.blocks)
    tokens, mask = torch.randn(2, 6, 16), torch.rand(2, 6) < 0.5
    text = fake_text(2, 5)
    shuffled = TextEncoding(torch.randn(2, 5, 32), text.mask, text.pooled)
    torch.testing.assert_close(model(tokens, mask, text), model(tokens, mask, shuffled))
    other = TextEncoding(text.tokens, text.mask, torch.randn(2, 32))
    assert not torch.allclose(model(tokens, mask, text), model(tokens, mask, other))


@torch.no_grad()
def test_velocity_is_per_token_and_time_broadcasts():
    model = make_model()
    x, z = torch.randn(2, 5, 16), torch.randn(2, 5, model.config.width)
    t = torch.tensor([0.3, 0.8])
    v = model.velocity(x, t, z)
    per_token = model.velocity(x.reshape(10, 16), t.repeat_interleave(5), z.reshape(10, -1))
    torch.testing.assert_close(v, per_token.reshape(2, 5, 16))
    single = model.velocity(x[1, 2:3], t[1:], z[1, 2:3])  # one token alone gives the same
    torch.testing.assert_close(single[0], v[1, 2])
    torch.testing.assert_close(model.velocity(x, 0.3, z)[0], v[0])


def test_rejects_too_many_tokens_and_bad_conditioning():
    model = make_model()
    with pytest.raises(MotionError, match="49"):
        model(torch.randn(1, 50, 16), torch.zeros(1, 50, dtype=torch.bool), fake_text(1, 3))
    with pytest.raises(MotionError, match="conditioning"):
        MoLingoConfig.from_dict({"conditioning": "concat"})


def test_attention_fully_padded_row_is_finite():
    attn = Attention(8, 2)
    x, ctx = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    out, weights = attn(x, ctx, key_mask=torch.tensor([[True] * 4, [False] * 4]), need_weights=True)
    assert torch.isfinite(out).all()
    fused = attn(x, ctx, key_mask=torch.tensor([[True] * 4, [False] * 4]))
    torch.testing.assert_close(out, fused)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 3))
