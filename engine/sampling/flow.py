"""MLA-Gen's sampling loop: noise -> latents by integrating the guided velocity.

The loop owns batch doubling and guidance; the network (``MLAGen``) owns the sink-mask and
exposes its cross-attention maps, from which SinkRatio is read at every velocity call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import MotionError
from ..text_encoder import TextEncoding
from .guidance import CFG, SinkCtrl, sink_ratio
from .ode import Progress, solve_ode

MODES = ("sink_ctrl", "cfg")


@dataclass
class FlowSample:
    """Result of ``sample_flow``.

    latents: (B, N, C) generated AE latents (normalised space the model was trained in).
    sink_ratio: (B,) SinkRatio of the conditional branch, averaged over velocity calls: a
        diagnostic of how much each sample's attention collapsed onto one or two tokens.
    """

    latents: Tensor
    sink_ratio: Tensor


def sample_flow(
    model: nn.Module,
    text: TextEncoding,
    null_text: TextEncoding,
    num_tokens: int,
    steps: int = 100,
    guidance: float = 4.0,
    mode: str = "sink_ctrl",
    method: str = "euler",
    generator: torch.Generator | None = None,
    *,
    controller: SinkCtrl | None = None,
    progress: Progress | None = None,
) -> FlowSample:
    """Generate ``len(text)`` latent sequences of ``num_tokens`` steps with MLA-Gen.

    Each velocity call runs the conditional and unconditional branches in one doubled batch:
    the conditional rows see the prompt globally and locally; the unconditional rows see
    ``null_text`` globally and the prompt locally with the weak weight (``weak_local``).
    ``mode="cfg"`` combines them with plain CFG at ``guidance``; ``"sink_ctrl"`` with
    ``SinkCtrl(scale=guidance)`` (or ``controller`` when given, reset first).

    Args:
        model: an ``MLAGen`` (anything with its ``forward`` and ``last_attention``).
        text: prompts (B rows); null_text: the null prompt, 1 or B rows.
        num_tokens: latent steps N (frames / the AE's downsampling).
        steps, method: ODE solver settings (paper: 100 Euler steps).
        generator: seeds the initial noise; same generator state -> same result.
        progress: ``callable(step, total)`` after each solver step.
    """
    if mode not in MODES:
        raise MotionError(f"unknown guidance mode {mode!r}; expected one of {MODES}")
    if num_tokens < 1:
        raise MotionError(f"num_tokens must be >= 1, got {num_tokens}")
    batch = len(text)
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    text = text.to(device)
    null_text = _rows(null_text.to(device), batch)
    noise = _noise((batch, num_tokens, model.config.latent_dim), generator, device, dtype)

    guide = controller if controller is not None else _guidance(mode, guidance)
    guide.reset()
    single = mode == "cfg" and guide.scale == 1.0  # CFG at 1 is the conditional branch alone
    both = TextEncoding.cat([text, null_text])  # global condition: prompt | null
    local = TextEncoding.cat([text, text])  # local condition: the prompt on both halves
    weak = torch.arange(2 * batch, device=device) >= batch  # (2B,) True on the null half
    ratios: list[Tensor] = []

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        if single:
            v = model(x, t, text)
            ratios.append(sink_ratio(model.last_attention, text.mask))
            return v
        out = model(torch.cat([x, x]), torch.cat([t, t]), both, weak_local=weak, local_text=local)
        v_cond, v_uncond = out.chunk(2)
        sink = sink_ratio(model.last_attention[:batch], local.mask[:batch])  # (B,)
        ratios.append(sink)
        return guide(v_cond, v_uncond, sink)

    with torch.no_grad():
        latents = solve_ode(velocity, noise, steps, method, progress=progress)
    return FlowSample(latents=latents, sink_ratio=torch.stack(ratios).mean(0))


def _guidance(mode: str, scale: float) -> CFG | SinkCtrl:
    return SinkCtrl(scale=scale) if mode == "sink_ctrl" else CFG(scale)


def _rows(encoding: TextEncoding, batch: int) -> TextEncoding:
    """``encoding`` with ``batch`` rows: a single null prompt is repeated."""
    if len(encoding) == batch:
        return encoding
    if len(encoding) == 1:
        return encoding.repeat_interleave(batch)
    raise MotionError(f"null_text has {len(encoding)} rows; expected 1 or {batch}")


def _noise(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to the model's."""
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source).to(device=device, dtype=dtype)
