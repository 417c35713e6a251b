"""Masked autoregressive sampling: schedules, reveal choice, determinism, guidance."""

import math

import pytest
import torch

from engine.errors import MotionError
from engine.models.layers import AdaLNModulation
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.sampling.mar import (
    choose_tokens_to_reveal,
    guidance_schedule,
    mask_schedule,
    sample_mar,
)
from engine.sampling.ode import solve_ode
from engine.text_encoder import TextEncoding


@pytest.mark.parametrize(("steps", "tokens"), [(16, 49), (4, 10), (10, 3), (1, 7), (49, 49)])
def test_mask_schedule_is_monotone_reveals_every_step_and_ends_at_zero(steps, tokens):
    masked = [tokens] + [mask_schedule(s, steps, tokens) for s in range(steps)]
    assert masked[-1] == 0
    for before, after in zip(masked, masked[1:], strict=False):
        assert after < before or before == 0  # at least one revealed while any remain
        assert after >= 0


def test_mask_schedule_follows_cosine():
    assert mask_schedule(0, 16, 49) == math.floor(49 * math.cos(math.pi / 2 / 16)) == 48
    assert mask_schedule(7, 16, 49) == math.floor(49 * math.cos(math.pi / 4))  # 34
    with pytest.raises(MotionError):
        mask_schedule(16, 16, 49)


def test_linear_guidance_grows_to_scale():
    scales = [guidance_schedule(s, 16, 49, 5.5) for s in range(16)]
    assert (
        scales == sorted(scales) and scales[-1] == 5.5 and scales[0] == pytest.approx(1 + 4.5 / 49)
    )
    assert guidance_schedule(3, 16, 49, 5.5, "constant") == 5.5


def test_choose_tokens_to_reveal_picks_count_of_masked_tokens():
    masked = torch.tensor([[True, False, True, True, True, False], [True] * 6])
    reveal = choose_tokens_to_reveal(masked, torch.tensor([2, 5]), torch.Generator().manual_seed(0))
    assert reveal.sum(1).tolist() == [2, 5]
    assert not (reveal & ~masked).any()
    again = choose_tokens_to_reveal(masked, torch.tensor([2, 5]), torch.Generator().manual_seed(0))
    assert torch.equal(reveal, again)
    orders = {
        tuple(choose_tokens_to_reveal(masked[1:], 1, torch.Generator().manual_seed(s))[0].tolist())
        for s in range(20)
    }
    assert len(orders) > 2  # the order is random, not fixed left to right


def fake_text(batch: int, length: int, seed: int, dim: int = 32) -> TextEncoding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.bool)
    return TextEncoding(torch.randn(batch, length, dim, generator=g), mask, torch.randn(batch, dim))


@pytest.fixture(scope="module")
def model() -> MoLingo:
    torch.manual_seed(0)
    model = MoLingo(MoLingoConfig.tiny()).eval()
    with torch.no_grad():  # zero-initialised layers (flow-head output, AdaLN) get weights
        torch.nn.init.normal_(model.head.out.weight, std=0.3)
        for module in model.modules():
            if isinstance(module, AdaLNModulation):
                torch.nn.init.normal_(module.proj.weight, std=0.1)
    return model


def run(model, seed=0, guidance=3.0, null=True, **kw):
    text, null_text = fake_text(2, 5, seed=1), fake_text(1, 2, seed=2)
    with torch.no_grad():
        return sample_mar(
            model,
            text,
            null_text if null else None,
            num_tokens=kw.pop("num_tokens", 7),
            ar_steps=kw.pop("ar_steps", 4),
            flow_steps=kw.pop("flow_steps", 5),
            guidance=guidance,
            generator=torch.Generator().manual_seed(seed),
            **kw,
        )


def test_sample_mar_is_deterministic_given_the_generator(model):
    a, b, c = run(model, seed=0), run(model, seed=0), run(model, seed=1)
    assert a.shape == (2, 7, 16) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_guidance_one_equals_conditional_and_other_scales_differ(model):
    conditional = run(model, null=False)
    torch.testing.assert_close(run(model, guidance=1.0), conditional, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(run(model, guidance=4.0), conditional, atol=1e-3)


def reference_conditional_loop(model, text, num_tokens, ar_steps, flow_steps, generator):
    """One token-by-token re-implementation of the conditional MAR loop (no batching)."""
    latents = torch.zeros(1, num_tokens, 16)
    masked = torch.ones(1, num_tokens, dtype=torch.bool)
    for step in range(ar_steps):
        count = int(masked.sum()) - mask_schedule(step, ar_steps, num_tokens)
        reveal = choose_tokens_to_reveal(masked, count, generator)
        z = model(latents, masked, text)[reveal]  # (M, W)
        noise = torch.randn(z.shape[0], 16, generator=generator)
        latents[reveal] = solve_ode(lambda x, t, z=z: model.velocity(x, t, z), noise, flow_steps)
        masked &= ~reveal
    return latents


@torch.no_grad()
def test_sample_mar_matches_a_plain_reference_loop(model):
    text = fake_text(1, 4, seed=3)
    ours = sample_mar(
        model, text, None, 6, ar_steps=3, flow_steps=4, generator=torch.Generator().manual_seed(5)
    )
    ref = reference_conditional_loop(model, text, 6, 3, 4, torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, ref)


def test_token_valid_pads_short_clips_with_zeros(model):
    valid = torch.arange(7)[None, :] < torch.tensor([[7], [4]])
    out = run(model, token_valid=valid)
    assert torch.count_nonzero(out[1, 4:]) == 0
    assert (out[0].abs().sum(-1) > 0).all() and (out[1, :4].abs().sum(-1) > 0).all()


def test_progress_is_reported_and_bad_lengths_rejected(model):
    seen = []
    run(model, progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(MotionError, match="num_tokens"):
        run(model, num_tokens=50)
