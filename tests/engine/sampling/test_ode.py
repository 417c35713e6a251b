"""ODE solvers against fields whose solutions are known in closed form."""

import math

import pytest
import torch

from engine.errors import MotionError
from engine.sampling.ode import solve_ode, time_grid


def test_constant_field_reaches_known_point_with_euler():
    # dx/dt = c from t=1 to t=0 moves x by -c exactly, whatever the step count.
    c = torch.tensor([[0.5, -2.0, 3.0]], dtype=torch.float64)
    x1 = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    out = solve_ode(lambda x, t: c.expand_as(x), x1, steps=7, method="euler")
    torch.testing.assert_close(out, x1 - c, rtol=0, atol=1e-12)


def test_rectified_flow_straight_path_recovers_data():
    # For a single data point the exact velocity is (x - x0) / t: noise maps straight to x0.
    x0 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    noise = torch.tensor([[0.3, 0.7]], dtype=torch.float64)

    def velocity(x, t):
        return (x - x0) / t[:, None]

    out = solve_ode(velocity, noise, steps=10, method="euler")
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-12)


def _exp_error(method: str, steps: int) -> float:
    # dx/dt = -x from t=1 to t=0: x(0) = x(1) * e (time runs backwards).
    x1 = torch.ones(1, 1, dtype=torch.float64)
    out = solve_ode(lambda x, t: -x, x1, steps=steps, method=method)
    return abs(out.item() - math.e)


def test_heun_is_second_order_and_euler_first_order():
    heun_ratio = _exp_error("heun", 20) / _exp_error("heun", 40)
    euler_ratio = _exp_error("euler", 20) / _exp_error("euler", 40)
    assert heun_ratio == pytest.approx(4.0, rel=0.05)
    assert euler_ratio == pytest.approx(2.0, rel=0.05)
    assert _exp_error("heun", 20) < _exp_error("euler", 20) / 10


def test_time_is_passed_per_batch_row_and_progress_reported():
    seen_t, seen_steps = [], []

    def velocity(x, t):
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype
        seen_t.append(t[0].item())
        return torch.zeros_like(x)

    solve_ode(velocity, torch.zeros(3, 4), 4, progress=lambda i, n: seen_steps.append((i, n)))
    assert seen_t == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert seen_steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_custom_interval_and_grid():
    torch.testing.assert_close(time_grid(2, 0.5, 0.0), torch.tensor([0.5, 0.25, 0.0]))
    x = torch.zeros(1, 1, dtype=torch.float64)
    out = solve_ode(lambda x, t: torch.ones_like(x), x, 5, "heun", t_start=0.2, t_end=0.7)
    assert out.item() == pytest.approx(0.5)


def test_bad_arguments_raise():
    with pytest.raises(MotionError, match="rk4"):
        solve_ode(lambda x, t: x, torch.zeros(1, 1), 3, method="rk4")
    with pytest.raises(MotionError, match="steps"):
        solve_ode(lambda x, t: x, torch.zeros(1, 1), 0)
