"""The sampling loop of the published MoLingo release, for ``MoLingoRelease`` models.

It differs from ``engine.sampling.mar`` (the loop kinetext's own MoLingo is trained for) in
the ways the release's evaluation and demo sample, so that a converted release generates
what the authors' code generates:

- AR steps: ``max_tokens // acc`` whatever the clip's length (the release's ``token_size``
  is 49 tokens for 263, 150 for 272), at step times ``linspace(0, 1, steps)``;
- at step time s, ``round(cos(pi/2 s) * n)`` tokens (at least one) of a clip of n tokens
  are masked: the ones lowest in a random order drawn once; EVERY masked token is sampled
  at every step and those that stay masked are drawn again at the next (MaskGIT style);
- classifier-free guidance ``1 + (scale - 1) s`` ("linear") or ``scale`` ("constant");
- the flow head is integrated by their stochastic sampler (``flow_method="stochastic"``:
  at each of ``flow_steps`` steps, the prediction x_1 = x + (1 - t) v and x_0 = x - t v;
  a fraction ``dt (1 - t)`` of x_0 is replaced by fresh noise of matching variance, then
  the state moves along the straight line to ``t_next``), or by plain Euler
  (``"euler"``). Times here are the release's: noise at 0, data at 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..errors import MotionError
from ..models.molingo import TextMemory
from ..models.molingo_release import GUIDANCE_SCHEDULES, MoLingoRelease
from .guidance import CFG, guided

if TYPE_CHECKING:
    from ..text_encoder import TextEncoding

FLOW_METHODS = ("stochastic", "euler")


def masked_count(step_time: Tensor, lengths: Tensor) -> Tensor:
    """Tokens still masked at AR step time ``step_time`` (a float32 0-d tensor in [0, 1], as
    the release computes it): ``round(cos(pi/2 s) * n)``, at least 1, for lengths n (B,)."""
    return torch.round(torch.cos(step_time * math.pi * 0.5) * lengths).clamp(min=1)


def guidance_at(step_time: Tensor, scale: float, schedule: str) -> float:
    """The CFG scale at AR step time ``step_time`` (float32 arithmetic, as the release)."""
    if schedule not in GUIDANCE_SCHEDULES:
        raise MotionError(
            f"unknown guidance schedule {schedule!r}; use one of {GUIDANCE_SCHEDULES}"
        )
    return float(1 + (scale - 1) * step_time) if schedule == "linear" else scale


def release_flow_step(
    x: Tensor, v: Tensor, t: float, t_next: float, noise: Tensor | None
) -> Tensor:
    """One step of the release's flow sampler at release times ``t`` -> ``t_next``.

    ``v`` is the (guided) velocity ``data - noise`` at x. With ``noise`` None this is an
    Euler step; otherwise the stochastic step described in the module doc.
    """
    dt = t_next - t
    if noise is None:
        return x + dt * v
    x0 = x - t * v  # the noise the straight line through x with slope v started from
    x1 = x + (1.0 - t) * v  # and the data it ends at
    beta = 1.0 - t
    refreshed = min(dt * beta, beta)
    spread = (beta**2 - (beta - refreshed) ** 2) ** 0.5
    noised = x - refreshed * x0 + spread * noise
    x0_noised = (noised - t * x1) / (1.0 - t)
    return t_next * x1 + (1.0 - t_next) * x0_noised


def sample_flow_tokens(
    model: MoLingoRelease,
    z_cond: Tensor,
    z_uncond: Tensor | None,
    scale: float,
    steps: int,
    method: str,
    generator: torch.Generator | None,
) -> Tensor:
    """Latents (M, C) for M tokens from their conditions (M, W), guided when ``z_uncond``."""
    m, c = z_cond.shape[0], model.config.latent_dim
    z = z_cond if z_uncond is None else torch.cat([z_cond, z_uncond])
    x = _randn((m, c), generator, z_cond)

    def network(state: Tensor, t: Tensor) -> tuple[Tensor, None]:
        return model.release_velocity(state, t, z), None

    velocity = guided(network, None if z_uncond is None else CFG(scale))
    times = np.linspace(0, 1, steps + 1).tolist()  # the release's grid, to the last bit
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        v = velocity(x, torch.full((m,), t, device=x.device, dtype=x.dtype))
        noise = _randn((m, c), generator, x) if method == "stochastic" else None
        x = release_flow_step(x, v, t, t_next, noise)
    return x


def sample_release(
    model: MoLingoRelease,
    text: TextEncoding,
    null_text: TextEncoding | None,
    num_tokens: int,
    ar_steps: int | None = None,
    flow_steps: int = 32,
    guidance: float = 5.5,
    flow_method: str = "stochastic",
    generator: torch.Generator | None = None,
    token_valid: Tensor | None = None,
    guidance_schedule: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Generate latents (B, num_tokens, C) as the release does (see the module doc).

    Args:
        ar_steps: AR steps (None: ``model.config.ar_steps``, i.e. max_tokens // acc).
        guidance: CFG scale; ``null_text`` None samples without guidance.
        guidance_schedule: "linear" or "constant" (None: the model's config).
        token_valid: (B, N) bool, True = real token (clips of several lengths); padding is
            never masked, never attended and returned as zeros.
        progress: ``callable(step, total)`` after each AR step (raise to cancel).
    """
    cfg = model.config
    if flow_method not in FLOW_METHODS:
        raise MotionError(f"unknown flow method {flow_method!r}; expected one of {FLOW_METHODS}")
    if not 1 <= num_tokens <= cfg.max_tokens:
        raise MotionError(f"num_tokens must be in 1..{cfg.max_tokens}, got {num_tokens}")
    steps = cfg.ar_steps if ar_steps is None else int(ar_steps)
    if steps < 1:
        raise MotionError(f"AR steps must be >= 1, got {steps}")
    schedule = cfg.guidance_schedule if guidance_schedule is None else guidance_schedule
    batch, device = text.tokens.shape[0], text.tokens.device
    dtype = model.z_proj.weight.dtype
    if token_valid is None:
        token_valid = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
    if token_valid.shape != (batch, num_tokens):
        raise MotionError(
            f"token_valid must be {(batch, num_tokens)}, got {tuple(token_valid.shape)}"
        )
    memory = model.adapt_text(text).expand(batch)
    null = None if null_text is None else model.adapt_text(null_text).expand(batch)
    lengths = token_valid.sum(dim=1)  # (B,)
    padding = ~token_valid
    latents = torch.zeros(batch, num_tokens, cfg.latent_dim, device=device, dtype=dtype)
    order = _rand((batch, num_tokens), generator, latents).masked_fill(padding, 1e5)
    for i, step_time in enumerate(torch.linspace(0, 1, steps, device=device)):
        ranks = order.argsort(dim=1).argsort(dim=1)
        masked = ranks < masked_count(step_time, lengths)[:, None]  # (B, N)
        scale = guidance_at(step_time, guidance, schedule) if null is not None else 1.0
        z_cond, z_uncond = _conditions(model, latents, masked, memory, null, token_valid)
        sampled = sample_flow_tokens(
            model, z_cond[masked], None if z_uncond is None else z_uncond[masked], scale,
            flow_steps, flow_method, generator,
        )  # fmt: skip
        latents = latents.clone()
        latents[masked] = sampled.to(dtype)
        order = order.masked_fill(~masked, 1e5)  # tokens kept from now on
        if progress is not None:
            progress(i + 1, steps)
    return latents.masked_fill(padding[..., None], 0.0)


def _conditions(
    model: MoLingoRelease,
    latents: Tensor,
    masked: Tensor,
    memory: TextMemory,
    null: TextMemory | None,
    token_valid: Tensor,
) -> tuple[Tensor, Tensor | None]:
    """Conditions of every token for the prompt and (when guided) for the null prompt."""
    if null is None:
        return model(latents, masked, memory, token_valid), None
    both = model(
        latents.repeat(2, 1, 1), masked.repeat(2, 1), TextMemory.cat([memory, null]),
        token_valid.repeat(2, 1),
    )  # fmt: skip
    return both.chunk(2)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    source = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=source).to(like.device, like.dtype)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    source = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=source).to(like.device)
