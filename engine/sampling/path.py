"""The flow path that every generator here trains on and samples along, written once.

Convention: ``x_t = (1 - t) * x_data + t * noise``. ``t = NOISE_TIME = 1`` is pure noise,
``t = DATA_TIME = 0`` is data, the velocity ``dx_t/dt`` is ``noise - x_data`` (constant
along a path: rectified flow's straight line), and sampling integrates ``dx/dt = v`` from
``t = 1`` down to ``t = 0`` (``ode.solve_ode``'s defaults). The trainers draw ``t`` with
``sample_time``, build ``x_t`` with ``interpolate`` and regress ``target_velocity``; the
samplers start from noise at ``NOISE_TIME``. (The published MoLingo release runs the other
way; ``models.molingo_release`` converts at its boundary.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import MotionError

NOISE_TIME = 1.0
DATA_TIME = 0.0
TIME_SAMPLINGS = ("uniform", "logit_normal")


def _per_row(t: Tensor, like: Tensor) -> Tensor:
    """``t`` (B,) shaped to broadcast over ``like`` (B, ...): (B, 1, ..., 1)."""
    return t.reshape(*t.shape, *([1] * (like.dim() - t.dim())))


def interpolate(data: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """The point ``x_t = (1 - t) data + t noise`` of each row's path; ``t`` has one time per
    leading row of ``data`` ((B,) for (B, N, C) latents, (M,) for (M, C) tokens)."""
    t = _per_row(t, data)
    return (1.0 - t) * data + t * noise


def target_velocity(data: Tensor, noise: Tensor) -> Tensor:
    """The velocity a network learns at every point of the path: ``noise - data``."""
    return noise - data


def sample_time(shape: tuple[int, ...], kind: str, generator: torch.Generator) -> Tensor:
    """Training flow times in (0, 1) on the generator's device: ``uniform`` or
    ``logit_normal`` (sigmoid of a standard normal, SD3's choice: more samples at mid
    times, where the path is hardest to predict)."""
    if kind not in TIME_SAMPLINGS:
        raise MotionError(f"time sampling {kind!r} is not one of {TIME_SAMPLINGS}")
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(shape, generator=generator, device=generator.device))
    return torch.rand(shape, generator=generator, device=generator.device)
