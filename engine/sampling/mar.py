"""Masked autoregressive (MAR) sampling for MoLingo.

The outer loop starts with every latent token masked and reveals a few tokens per step, in
a random order fixed by the generator; each revealed token is drawn by integrating the
model's per-token flow head from noise (t = 1) to data (t = 0) with ``solve_ode``, given
the condition vector the transformer produced for it. Schedules are pure functions kept
apart from the loop:

- ``mask_schedule``: how many tokens are still masked after each step (MAR's cosine);
- ``guidance_schedule``: the CFG scale used at each step. ``"linear"`` (MAR's and MARDM's
  choice, the default) grows it from near 1 at the first step to ``scale`` at the last,
  in proportion to the tokens revealed so far: the first tokens, decided with little
  context, stay diverse, the later ones follow the text strongly. ``"constant"`` uses
  ``scale`` throughout.

Per step the transformer runs once on a doubled batch (conditional rows, then
unconditional rows with the null prompt), the adapted text is computed once for the whole
loop, and the flow head runs once per ODE step on all tokens revealed at that step
(both halves together).

On a CUDA device, when all clips share one length, ``sample_mar`` hands the same loop to
``engine.sampling.fast`` (static shapes, no host syncs, CUDA graphs; see there), which
draws the same random numbers and agrees with this loop to float rounding. The CPU always
runs the loop below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import MotionError
from ..models.molingo import MoLingo, TextMemory
from ..models.molingo_release import MoLingoRelease
from .fast import sample_mar_static
from .graphs import LOCK, FastOptions, default_options, inference_precision, use_fast_path
from .guidance import CFG, guided
from .mar_release import sample_release
from .ode import METHODS, solve_ode

if TYPE_CHECKING:
    from ..text_encoder import TextEncoding

GUIDANCE_SCHEDULES = ("linear", "constant")


def mask_schedule(step: int, total_steps: int, num_tokens: int) -> int:
    """Tokens still masked after AR step ``step`` (0-based) of ``total_steps``.

    MAR's cosine schedule ``floor(N * cos(pi/2 * (step + 1) / steps))``, adjusted so that
    every step reveals at least one token while any remain and the last step reveals all.
    Non-increasing in ``step``; 0 at ``step = total_steps - 1``.
    """
    if total_steps < 1:
        raise MotionError(f"AR steps must be >= 1, got {total_steps}")
    if not 0 <= step < total_steps:
        raise MotionError(f"AR step {step} is outside 0..{total_steps - 1}")
    masked = num_tokens
    for s in range(step + 1):
        if s == total_steps - 1:
            return 0
        cosine = math.floor(num_tokens * math.cos(math.pi / 2 * (s + 1) / total_steps))
        masked = max(0, min(cosine, masked - 1))
    return masked


def guidance_schedule(
    step: int, total_steps: int, num_tokens: int, scale: float, schedule: str = "linear"
) -> float:
    """CFG scale at AR step ``step``: ``1 + (scale - 1) * revealed_after_step / N`` for
    ``"linear"`` (equals ``scale`` at the last step), ``scale`` for ``"constant"``."""
    if schedule == "constant":
        return scale
    if schedule != "linear":
        raise MotionError(
            f"unknown guidance schedule {schedule!r}; use one of {GUIDANCE_SCHEDULES}"
        )
    revealed = num_tokens - mask_schedule(step, total_steps, num_tokens)
    return 1.0 + (scale - 1.0) * revealed / max(num_tokens, 1)


def reveal_plan(
    ar_steps: int, num_tokens: int, scale: float, schedule: str = "linear"
) -> tuple[list[int], list[float]]:
    """Tokens revealed per row and the CFG scale, for each AR step of a clip of
    ``num_tokens`` tokens (what the loop computes step by step, known in advance)."""
    counts, masked = [], num_tokens
    for step in range(ar_steps):
        after = mask_schedule(step, ar_steps, num_tokens)
        counts.append(masked - after)
        masked = after
    scales = [guidance_schedule(s, ar_steps, num_tokens, scale, schedule) for s in range(ar_steps)]
    return counts, scales


def choose_tokens_to_reveal(
    masked: Tensor, count: Tensor | int, generator: torch.Generator | None = None
) -> Tensor:
    """Pick ``count`` of the masked tokens of each row uniformly at random.

    Args:
        masked: (B, N) bool, True = still masked (only these can be picked).
        count: tokens to reveal per row: an int or a (B,) integer tensor (clamped to the
            number still masked in that row).
        generator: fixes the choice (same generator state -> same tokens).
    Returns:
        (B, N) bool, True = reveal now; a subset of ``masked``.
    """
    scores = torch.rand(masked.shape, generator=generator, device=masked.device)
    scores = scores.masked_fill(~masked, float("inf"))  # unmasked tokens sort last
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, N) position of each token in the order
    count = torch.as_tensor(count, device=masked.device).reshape(-1, 1)
    return (rank < count) & masked


def _text_memory(
    model: MoLingo, text: TextEncoding, null_text: TextEncoding | None, batch: int
) -> TextMemory:
    """Adapted text for the whole loop: B conditional rows, then B null rows if guided."""
    memory = model.adapt_text(text).expand(batch)
    if null_text is None:
        return memory
    null = model.adapt_text(null_text).expand(batch)
    return TextMemory.cat([memory, null])


def sample_mar(
    model: MoLingo,
    text: TextEncoding,
    null_text: TextEncoding | None,
    num_tokens: int,
    ar_steps: int = 16,
    flow_steps: int = 32,
    guidance: float = 5.5,
    method: str = "euler",
    generator: torch.Generator | None = None,
    token_valid: Tensor | None = None,
    guidance_mode: str = "linear",
    progress: Callable[[int, int], None] | None = None,
    fast: FastOptions | None = None,
    given: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Generate latents (B, num_tokens, C) for the prompts in ``text``.

    Args:
        model: a ``MoLingo`` (put it in eval mode; run under ``torch.no_grad``).
        text: encoded prompts, batch B.
        null_text: the null prompt's encoding (batch 1 or B) for classifier-free guidance;
            None samples from the conditional model only (no guidance).
        num_tokens: latent steps N (frames / 4), at most the model's ``max_tokens``.
        ar_steps: autoregressive reveal steps (reference: 16 for 49 tokens).
        flow_steps: ODE steps per revealed token (reference: 32).
        guidance: CFG scale (reference 5.5); 1 equals the conditional prediction.
        method: ODE method for ``solve_ode`` ("euler" | "heun"); for a ``MoLingoRelease``
            the flow method of ``engine.sampling.mar_release`` ("stochastic" | "euler"),
            which runs that model's own loop (its ``fast`` options do not apply).
        generator: fixes the reveal order and the noise: same state -> same latents.
        token_valid: (B, N) bool, True = real token, False = past this sample's end (shorter
            clips in a batch); padding is never revealed, never attended, returned as 0.
        guidance_mode: "linear" (MAR schedule, default) or "constant"; see the module doc.
        progress: optional ``callable(step, total)`` after each AR step (raise to cancel).
        fast: how to run on CUDA (None: ``default_options()``); ignored on the CPU, and
            when ``token_valid`` or ``given`` is given.
        given: (latents (B, N, C), known (B, N) bool): tokens already decided (the previous
            window's tail of a timeline, the kept frames around an in-between). They start
            revealed with these values, are seen by every step and returned unchanged; the
            reveal schedule spreads the other tokens over ``ar_steps``.
    """
    if isinstance(model, MoLingoRelease):  # a converted release samples as its authors do
        if given is not None:
            raise MotionError(
                "a converted MoLingo release cannot continue or in-between given motion: "
                "use a kinetext-trained MoLingo or MLA-Gen"
            )
        return sample_release(
            model, text, null_text, num_tokens, ar_steps, flow_steps, guidance, method,
            generator, token_valid, progress=progress,
        )  # fmt: skip
    cfg = model.config
    batch = text.tokens.shape[0]
    device = text.tokens.device
    dtype = next(model.parameters()).dtype
    if not 1 <= num_tokens <= cfg.max_tokens:
        raise MotionError(f"num_tokens must be in 1..{cfg.max_tokens}, got {num_tokens}")
    if method not in METHODS:
        raise MotionError(f"unknown ODE method {method!r}; expected one of {METHODS}")
    options = default_options() if fast is None else fast
    if token_valid is None and given is None and use_fast_path(options, device):
        counts, scales = reveal_plan(ar_steps, num_tokens, guidance, guidance_mode)
        # one CUDA sampling call at a time: the precision switch is process-wide and the
        # captured graphs' buffers are shared (the CPU loop below shares nothing)
        with LOCK, inference_precision(options.precision, device):
            memory = _text_memory(model, text, null_text, batch)
            return sample_mar_static(
                model, memory, batch, num_tokens, counts, scales, flow_steps, method,
                generator, options.graphs, options.precision, progress,
            )  # fmt: skip
    if token_valid is None:
        token_valid = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
    if token_valid.shape != (batch, num_tokens):
        raise MotionError(
            f"token_valid must be {(batch, num_tokens)}, got {tuple(token_valid.shape)}"
        )
    if guidance_mode not in GUIDANCE_SCHEDULES:
        raise MotionError(
            f"unknown guidance schedule {guidance_mode!r}; use one of {GUIDANCE_SCHEDULES}"
        )
    guided = null_text is not None
    memory = _text_memory(model, text, null_text, batch)
    latents = torch.zeros(batch, num_tokens, cfg.latent_dim, device=device, dtype=dtype)
    masked = token_valid.clone()  # (B, N) True = not yet generated
    if given is not None:
        values, known = given
        if values.shape != latents.shape or known.shape != masked.shape:
            raise MotionError(
                f"given tokens must be {tuple(latents.shape)} and {tuple(masked.shape)}, got "
                f"{tuple(values.shape)} and {tuple(known.shape)}"
            )
        latents = torch.where(known[..., None], values.to(dtype), latents)
        masked = masked & ~known
    lengths = masked.sum(dim=1).tolist()  # tokens to generate per sample
    schedule_tokens = num_tokens if given is None else max(max(lengths), 1)
    for step in range(ar_steps):
        after = [mask_schedule(step, ar_steps, n) for n in lengths]
        count = masked.sum(dim=1) - torch.tensor(after, device=device)
        reveal = choose_tokens_to_reveal(masked, count, generator)  # (B, N)
        if reveal.any():
            scale = guidance_schedule(step, ar_steps, schedule_tokens, guidance, guidance_mode)
            z = _conditions(model, latents, masked, memory, token_valid, guided)  # (k, B, N, W)
            z = z[:, reveal]  # (k, M, W): the revealed tokens of each half
            noise = torch.randn(
                z.shape[1], cfg.latent_dim, generator=generator, device=device, dtype=dtype
            )
            velocity = _guided_velocity(model, z, scale)
            latents[reveal] = solve_ode(velocity, noise, flow_steps, method)
            masked = masked & ~reveal
        if progress is not None:
            progress(step + 1, ar_steps)
    return latents


def _conditions(
    model: MoLingo,
    latents: Tensor,
    masked: Tensor,
    memory: TextMemory,
    token_valid: Tensor,
    guided: bool,
) -> Tensor:
    """Transformer conditions for every token, (1 or 2, B, N, W): cond rows [, uncond rows]."""
    k = 2 if guided else 1
    z = model(latents.repeat(k, 1, 1), masked.repeat(k, 1), memory, token_valid.repeat(k, 1))
    return z.unflatten(0, (k, latents.shape[0]))


def _guided_velocity(model: MoLingo, z: Tensor, scale: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Velocity callable over the M revealed tokens; with two halves, CFG-combined."""
    k, m, _ = z.shape
    z = z.reshape(k * m, -1)

    def network(x: Tensor, t: Tensor) -> tuple[Tensor, None]:  # x (k*M, C), t (k*M,)
        return model.velocity(x, t, z), None

    return guided(network, CFG(scale) if k == 2 else None)
