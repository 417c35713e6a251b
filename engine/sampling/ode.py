"""Fixed-step ODE solvers for rectified-flow sampling.

The solver knows nothing about networks or guidance: it integrates any velocity callable
``velocity(x, t) -> v`` with ``t`` a ``(B,)`` tensor (one time per batch row, so a model
can embed it directly). Guidance is a wrapper around the model (``guidance.guided``).

``euler_step`` and ``heun_step`` are the only Euler and Heun steps in the engine: the
reference loop (``solve_ode``), MLA-Gen's graphed loop (times in static tensors) and
MoLingo's static flow-head loop (times as indices into precomputed tables) all call them.
The time convention is ``path``'s: from ``NOISE_TIME = 1`` down to ``DATA_TIME = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import MotionError
from ..generators import ODE_METHODS as METHODS
from .path import DATA_TIME, NOISE_TIME

Velocity = Callable[[Tensor, Any], Tensor]
Progress = Callable[[int, int], None]
Update = Callable[[Tensor, Tensor, "float | Tensor"], Tensor]


def time_grid(
    steps: int,
    t_start: float = NOISE_TIME,
    t_end: float = DATA_TIME,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ``steps + 1`` evenly spaced times from ``t_start`` to ``t_end`` (inclusive)."""
    if steps < 1:
        raise MotionError(f"ODE steps must be >= 1, got {steps}")
    return torch.linspace(t_start, t_end, steps + 1, device=device, dtype=dtype)


def advance(x: Tensor, v: Tensor, dt: float | Tensor) -> Tensor:
    """``x + dt * v``: a move along ``v`` for a time ``dt``."""
    return x + dt * v


def fused_advance(x: Tensor, v: Tensor, dt: float) -> Tensor:
    """``advance`` in one kernel (a fused multiply-add, so it rounds once where ``advance``
    rounds twice): MoLingo's static flow-head loop runs thousands of these tiny steps per
    clip, where each kernel launch saved counts."""
    return torch.add(x, v, alpha=dt)


def euler_step(
    velocity: Velocity,
    x: Tensor,
    t: Any,
    t_next: Any,
    *,
    dt: float | Tensor | None = None,
    update: Update = advance,
) -> Tensor:
    """One explicit Euler step from ``t`` to ``t_next`` (first order).

    ``t`` and ``t_next`` are floats (made one time per batch row) or whatever ``velocity``
    reads as a time, handed over as they are (static (B,) tensors, grid indices); ``dt`` is
    then given (default ``t_next - t``).
    """
    dt = t_next - t if dt is None else dt
    return update(x, velocity(x, _batch_time(x, t)), dt)


def heun_step(
    velocity: Velocity,
    x: Tensor,
    t: Any,
    t_next: Any,
    *,
    dt: float | Tensor | None = None,
    update: Update = advance,
) -> Tensor:
    """One Heun step (explicit trapezoid, second order): Euler predictor, averaged slope.
    Arguments as ``euler_step``'s; ``update`` makes the predictor."""
    dt = t_next - t if dt is None else dt
    v = velocity(x, _batch_time(x, t))
    v_next = velocity(update(x, v, dt), _batch_time(x, t_next))
    return x + 0.5 * dt * (v + v_next)


STEPPERS = {"euler": euler_step, "heun": heun_step}


def stepper(method: str) -> Callable[..., Tensor]:
    """``euler_step`` or ``heun_step`` by name; a clear error for anything else."""
    if method not in STEPPERS:
        raise MotionError(f"unknown ODE method {method!r}; expected one of {METHODS}")
    return STEPPERS[method]


def solve_ode(
    velocity: Velocity,
    x: Tensor,
    steps: int,
    method: str = "euler",
    t_start: float = NOISE_TIME,
    t_end: float = DATA_TIME,
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
    step = stepper(method)
    # Times as Python floats in float64 so the grid is exact whatever the state's dtype.
    times = time_grid(steps, t_start, t_end, dtype=torch.float64).tolist()
    for i in range(steps):
        x = step(velocity, x, times[i], times[i + 1])
        if progress is not None:
            progress(i + 1, steps)
    return x


def _batch_time(x: Tensor, t: Any) -> Any:
    """A float ``t`` repeated per batch row on ``x``'s device and dtype, (B,); any other
    time (a tensor, an index) as it is."""
    if isinstance(t, float):
        return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
    return t
