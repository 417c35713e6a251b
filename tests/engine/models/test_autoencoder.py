"""Motion autoencoder: shapes, block causality, logvar clamp, a short fit on a tiny batch."""

import math

import numpy as np
import pytest
import torch

from engine.errors import MotionError
from engine.models.autoencoder import (
    LOGVAR_RANGE,
    AutoencoderConfig,
    LatentDistribution,
    MotionAutoencoder,
)


def make_model(**overrides) -> MotionAutoencoder:
    torch.manual_seed(0)
    return MotionAutoencoder(AutoencoderConfig.tiny().replace(**overrides)).eval()


def test_shapes_and_downsample():
    model = make_model()
    x = torch.randn(3, 40, 263)
    dist = model.encode(x)
    assert model.downsample == 4
    assert dist.mean.shape == (3, 10, 16) and dist.logvar.shape == (3, 10, 16)
    assert model.decode(dist.mean).shape == (3, 40, 263)
    assert model(x).shape == (3, 40, 263)
    assert model.semantic_head(dist.mean).shape == (3, 10, model.config.text_dim)


def test_plain_autoencoder_has_no_logvar_and_three_stages_downsample_8():
    model = make_model(variational=False, down_t=3)
    dist = model.encode(torch.randn(1, 48, 263))
    assert dist.logvar is None and dist.mean.shape == (1, 6, 16)
    assert torch.equal(dist.sample(), dist.mean)
    assert model.decode(dist.mean).shape == (1, 48, 263)


def test_rejects_frames_not_multiple_of_downsample():
    model = make_model()
    with pytest.raises(MotionError, match="multiple of 4"):
        model.encode(torch.randn(1, 30, 263))
    with pytest.raises(MotionError, match="263"):
        model.encode(torch.randn(1, 32, 200))


@torch.no_grad()
@pytest.mark.parametrize("t", [0, 13, 22, 31])
def test_changing_frame_t_leaves_earlier_blocks_unchanged(t):
    model = make_model()
    x = torch.randn(2, 32, 263)
    y = x.clone()
    y[:, t] += 5.0
    block = t // model.downsample
    mean_x, mean_y = model.encode(x).mean, model.encode(y).mean
    torch.testing.assert_close(mean_x[:, :block], mean_y[:, :block], rtol=0, atol=0)
    assert not torch.allclose(mean_x[:, block], mean_y[:, block])  # its own block does change
    out_x, out_y = model.decode(mean_x), model.decode(mean_y)
    first = block * model.downsample
    torch.testing.assert_close(out_x[:, :first], out_y[:, :first], rtol=0, atol=0)
    assert not torch.allclose(out_x[:, first:], out_y[:, first:])


def test_logvar_is_clamped():
    model = make_model()
    last = model.encoder.net[-1]
    with torch.no_grad():
        last.weight.mul_(1e5)
        dist = model.encode(torch.randn(2, 16, 263) * 10)
    assert dist.logvar.min().item() == LOGVAR_RANGE[0]
    assert dist.logvar.max().item() == LOGVAR_RANGE[1]


def test_sampling_is_fixed_by_generator_and_kl_is_zero_at_standard_normal():
    dist = LatentDistribution(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    a = dist.sample(torch.Generator().manual_seed(1))
    b = dist.sample(torch.Generator().manual_seed(1))
    c = dist.sample(torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.count_nonzero(dist.kl()) == 0
    shifted = LatentDistribution(torch.ones(1, 1, 1), torch.zeros(1, 1, 1))
    assert shifted.kl().item() == pytest.approx(0.5)  # KL(N(1,1) || N(0,1)) = 1/2


def smooth_clips(clips: int = 4, frames: int = 32, components: int = 3) -> torch.Tensor:
    """Low-rank smooth motion-like features: a few sinusoids mixed into 263 channels."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(frames, dtype=torch.float32) / frames
    freq = torch.rand(clips, components, 1, generator=g) * 3 + 0.5
    phase = torch.rand(clips, components, 1, generator=g) * 2 * math.pi
    waves = torch.sin(2 * math.pi * freq * t + phase)  # (clips, K, F)
    mix = torch.randn(components, 263, generator=g) / math.sqrt(components)
    return torch.einsum("bkf,kd->bfd", waves, mix)  # (clips, F, 263)


def test_fits_a_small_batch():
    torch.manual_seed(0)
    model = MotionAutoencoder(AutoencoderConfig.tiny().replace(variational=False)).train()
    x = smooth_clips()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = (model(x) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_presets_roundtrip_through_dict():
    for preset in (AutoencoderConfig.tiny, AutoencoderConfig.small, AutoencoderConfig.large):
        cfg = preset()
        assert AutoencoderConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("padding", ["zero", "replicate"])
def test_renormalized_autoencoder_maps_the_same_motion_in_the_new_units(padding):
    """Decoder exact always; encoder exact with replicate padding (zero padding reads the
    frames before a clip as the new mean, documented in ``renormalize``)."""
    from engine.models.autoencoder import renormalize

    torch.manual_seed(0)
    model = MotionAutoencoder(AutoencoderConfig.tiny().replace(padding=padding)).eval()
    rng = np.random.default_rng(0)
    old = (rng.normal(size=263), rng.uniform(0.2, 2.0, size=263))
    new = (rng.normal(size=263), rng.uniform(0.2, 2.0, size=263))
    moved = renormalize(model, old, new).eval()
    motion = torch.as_tensor(rng.normal(size=(2, 16, 263)))  # denormalised features
    to_old = ((motion - old[0]) / old[1]).float()
    to_new = ((motion - new[0]) / new[1]).float()
    z = torch.randn(2, 4, model.config.latent_dim)
    with torch.no_grad():
        decoded_old = model.decode(z).double() * old[1] + old[0]
        decoded_new = moved.decode(z).double() * new[1] + new[0]
        torch.testing.assert_close(decoded_new, decoded_old, atol=1e-4, rtol=1e-4)
        if padding == "replicate":
            mu_old, mu_new = model.encode(to_old).mean, moved.encode(to_new).mean
            torch.testing.assert_close(mu_new, mu_old, atol=1e-4, rtol=1e-4)
    with pytest.raises(MotionError, match="positive"):
        renormalize(model, old, (new[0], -new[1]))
