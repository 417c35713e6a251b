"""The one flow path (``engine.sampling.path``): what the trainers regress, the samplers walk."""

from __future__ import annotations

import pytest
import torch

from engine.errors import MotionError
from engine.sampling.ode import solve_ode
from engine.sampling.path import (
    DATA_TIME,
    NOISE_TIME,
    interpolate,
    sample_time,
    target_velocity,
)


def test_interpolate_is_the_trainers_formula_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    z, eps = torch.randn(4, 7, 3, generator=g), torch.randn(4, 7, 3, generator=g)
    t = torch.rand(4, generator=g)
    expected = (1.0 - t)[:, None, None] * z + t[:, None, None] * eps
    assert torch.equal(interpolate(z, eps, t), expected)
    tokens, noise, times = z[:, 0], eps[:, 0], torch.rand(4, generator=g)  # MoLingo: (M, C)
    expected = (1.0 - times)[:, None] * tokens + times[:, None] * noise
    assert torch.equal(interpolate(tokens, noise, times), expected)
    assert torch.equal(target_velocity(z, eps), eps - z)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_solve_ode_walks_the_path_from_noise_to_data(method):
    """Sampling with the exact target velocity visits x_t at every solver time and ends on
    the data: the trainers' time convention is the solver's."""
    g = torch.Generator().manual_seed(1)
    data = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    visited: list[tuple[torch.Tensor, torch.Tensor]] = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        visited.append((x, t))
        return target_velocity(data, noise)

    start = interpolate(data, noise, torch.full((3,), NOISE_TIME, dtype=torch.float64))
    assert torch.equal(start, noise)
    end = solve_ode(velocity, start, 8, method)
    torch.testing.assert_close(end, data, rtol=0, atol=1e-12)
    assert visited[0][1][0] == NOISE_TIME and len(visited) == (16 if method == "heun" else 8)
    for x, t in visited:
        torch.testing.assert_close(x, interpolate(data, noise, t), rtol=0, atol=1e-12)
    assert DATA_TIME < NOISE_TIME


def test_sample_time_draws_inside_the_unit_interval_and_names_bad_kinds():
    g = torch.Generator().manual_seed(2)
    for kind in ("uniform", "logit_normal"):
        t = sample_time((1000,), kind, g)
        assert t.shape == (1000,) and (t > 0).all() and (t < 1).all()
    middle = sample_time((4000,), "logit_normal", g)
    assert ((middle - 0.5).abs() < 0.25).float().mean() > 0.7  # more samples at mid times
    with pytest.raises(MotionError, match="time sampling"):
        sample_time((2,), "cosine", g)
