"""Fixed-step ODE solvers for rectified-flow sampling.

The solver knows nothing about networks or guidance: it integrates any velocity callable
``velocity(x, t) -> v`` with ``t`` a ``(B,)`` tensor (one time per batch row, so a model
can embed it directly). Guidance is a wrapper around the model, written once elsewhere.

Convention (shared by every generator here): ``x_t = (1 - t) * x_data + t * noise``, so
``t = 1`` is pure noise, ``t = 0`` is data, the velocity is ``noise - x_data`` and sampling
integrates ``dx/dt = v`` from ``t_start = 1`` down to ``t_end = 0`` (negative steps).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import MotionError

Velocity = Callable[[Tensor, Tensor], Tensor]
Progress = Callable[[int, int], None]

METHODS = ("euler", "heun")


def time_grid(
    steps: int,
    t_start: float = 1.0,
    t_end: float = 0.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ``steps + 1`` evenly spaced times from ``t_start`` to ``t_end`` (inclusive)."""
    if steps < 1:
        raise MotionError(f"ODE steps must be >= 1, got {steps}")
    return torch.linspace(t_start, t_end, steps + 1, device=device, dtype=dtype)


def euler_step(velocity: Velocity, x: Tensor, t: float, t_next: float) -> Tensor:
    """One explicit Euler step from ``t`` to ``t_next`` (first order)."""
    v = velocity(x, _batch_time(x, t))
    return x + (t_next - t) * v


def heun_step(velocity: Velocity, x: Tensor, t: float, t_next: float) -> Tensor:
    """One Heun step (explicit trapezoid, second order): Euler predictor, averaged slope."""
    dt = t_next - t
    v = velocity(x, _batch_time(x, t))
    x_pred = x + dt * v
    v_next = velocity(x_pred, _batch_time(x, t_next))
    return x + 0.5 * dt * (v + v_next)


_STEPPERS = {"euler": euler_step, "heun": heun_step}


def solve_ode(
    velocity: Velocity,
    x: Tensor,
    steps: int,
    method: str = "euler",
    t_start: float = 1.0,
    t_end: float = 0.0,
    *,
    progress: Progress | None = None,
) -> Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t_start`` to ``t_end`` in ``steps`` steps.

    Args:
        velocity: ``(x (B, ...), t (B,)) -> v (B, ...)``.
        x: the state at ``t_start`` (noise when sampling), any shape with batch first.
        steps: number of equal steps; Heun costs two velocity calls per step.
        method: ``"euler"`` or ``"heun"``.
        progress: optional ``callable(step, total)`` called after each step (1-based), for
            progress bars and cancellation (raise from it to stop).

    Returns:
        The state at ``t_end``, same shape and dtype as ``x``.
    """
    if method not in _STEPPERS:
        raise MotionError(f"unknown ODE method {method!r}; expected one of {METHODS}")
    stepper = _STEPPERS[method]
    # Times as Python floats in float64 so the grid is exact whatever the state's dtype.
    times = time_grid(steps, t_start, t_end, dtype=torch.float64).tolist()
    for i in range(steps):
        x = stepper(velocity, x, times[i], times[i + 1])
        if progress is not None:
            progress(i + 1, steps)
    return x


def _batch_time(x: Tensor, t: float) -> Tensor:
    """``t`` repeated per batch row, on ``x``'s device and dtype: ``(B,)``."""
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
