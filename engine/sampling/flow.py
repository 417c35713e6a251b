"""MLA-Gen's sampling loop: noise -> latents by integrating the guided velocity.

The loop owns batch doubling and guidance; the network (``MLAGen``) owns the sink-mask and
returns its cross-attention maps with each velocity (``return_attention=True``), from which
SinkRatio is read at every velocity call.

Thread safety: one model may sample from several threads at once. The CPU loop keeps every
intermediate in the call's own locals (nothing is stored on the model), so concurrent calls
give exactly the single-threaded results. The CUDA path shares process-wide state (the
matrix-product precision switch, the bfloat16 sampling copy, captured graphs and their
static buffers), so it runs one call at a time under ``graphs.LOCK``.

On a CUDA device each solver step (the doubled forward, SinkRatio, guidance, the update) is
captured once as a CUDA graph and replayed (``_FlowSession``): the loop has no host syncs
and the same shapes every step, and at batch 1 launching ~300 kernels a step from Python
cost more than running them. Results agree with the eager loop to float rounding; the CPU
always runs the eager loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MotionError
from ..generators import GUIDANCE_MODES as MODES
from ..text_encoder import TextEncoding
from .graphs import (
    LOCK,
    FastOptions,
    StepGraph,
    bucket,
    cached_session,
    default_options,
    inference_precision,
    mode_key,
    on_device,
    product_precision,
    use_fast_path,
)
from .guidance import CFG, Guide, SinkCtrl, guided, sink_ratio
from .ode import METHODS, Progress, Velocity, solve_ode, stepper, time_grid
from .sampling_model import call_network_attention, network_precision, sampling_model


@dataclass
class FlowSample:
    """Result of ``sample_flow``.

    latents: (B, N, C) generated AE latents (normalised space the model was trained in).
    sink_ratio: (B,) SinkRatio of the conditional branch, averaged over velocity calls: a
        diagnostic of how much each sample's attention collapsed onto one or two tokens.
    attention: the last velocity call's cross-attention maps (2B or B rows, heads, N, L):
        conditional rows first, then the unconditional ones unless CFG is off.
    """

    latents: Tensor
    sink_ratio: Tensor
    attention: Tensor


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
    fast: FastOptions | None = None,
) -> FlowSample:
    """Generate ``len(text)`` latent sequences of ``num_tokens`` steps with MLA-Gen.

    Each velocity call runs the conditional and unconditional branches in one doubled batch:
    the conditional rows see the prompt globally and locally; the unconditional rows see
    ``null_text`` globally and the prompt locally with the weak weight (``weak_local``).
    ``mode="cfg"`` combines them with plain CFG at ``guidance``; ``"sink_ctrl"`` with
    ``SinkCtrl(scale=guidance)`` (or ``controller`` when given, reset first).

    Args:
        model: an ``MLAGen`` (anything whose ``forward`` takes ``return_attention``).
        text: prompts (B rows); null_text: the null prompt, 1 or B rows.
        num_tokens: latent steps N (frames / the AE's downsampling).
        steps, method: ODE solver settings (paper: 100 Euler steps).
        generator: seeds the initial noise; same generator state -> same result.
        progress: ``callable(step, total)`` after each solver step.
        fast: how to run on CUDA (None: ``default_options()``); ignored on the CPU.
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
    options = default_options() if fast is None else fast
    with torch.no_grad():
        if not use_fast_path(options, device):
            return _sample_eager(model, text, null_text, noise, steps, method, guide, single,
                                 progress)  # fmt: skip
        # one CUDA sampling call at a time: the precision switch, the sampling copy and the
        # captured graphs are shared by every thread
        with LOCK:
            reduced = network_precision(options.precision, device)
            net = sampling_model(model, reduced, options.compile)
            args = (net, text, null_text, noise, steps, method, guide, single, progress)
            with inference_precision(options.precision, device, autocast=False):
                if options.graphs and _guide_key(guide) is not None and method in METHODS:
                    return _sample_graphed(*args, options.precision)
                return _sample_eager(*args)


class _Branches:
    """MLA-Gen's network as ``guidance.guided`` calls it, with what each CFG branch sees.

    Global condition: the prompt on the conditional rows, ``null_text`` on the
    unconditional ones; local condition: the prompt on both, with the weak weight on the
    unconditional rows (``weak``). ``single`` (CFG at 1): the prompt alone. Each call's
    attention maps go to ``keep``; the SinkRatio of the conditional rows to ``record``
    (and to the guide). The graphed loop gives static copies of the texts.
    """

    def __init__(self, net: nn.Module, global_text: TextEncoding,
                 local_text: TextEncoding | None, batch: int, dtype: torch.dtype,
                 keep: Callable[[Tensor], None], record: Callable[[Tensor], None]):  # fmt: skip
        self.net, self.global_text, self.local_text = net, global_text, local_text
        self.batch, self.dtype, self.keep, self.record = batch, dtype, keep, record
        self.weak = torch.arange(len(global_text), device=global_text.mask.device) >= batch

    def network(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        out, attention = call_network_attention(
            self.net, x, t, self.global_text, weak_local=self.weak, local_text=self.local_text
        )
        self.keep(attention)
        return out, attention

    def observe(self, attention: Tensor | None) -> Tensor:
        """SinkRatio (B,) of the conditional rows' maps, in the state's dtype."""
        sink = sink_ratio(attention, self.global_text.mask[: self.batch]).to(self.dtype)
        self.record(sink)
        return sink

    def velocity(self, guide: Guide, single: bool) -> Velocity:
        return guided(self.network, None if single else guide, self.observe)


def _sample_eager(
    net: nn.Module,
    text: TextEncoding,
    null_text: TextEncoding,
    noise: Tensor,
    steps: int,
    method: str,
    guide: Guide,
    single: bool,
    progress: Progress | None,
) -> FlowSample:
    """The reference loop: one velocity call after another through ``solve_ode``.

    ``net`` is the model or its sampling copy (``sampling_model``), which the velocity calls
    run. Everything a call computes stays in its locals (thread-safe on the CPU)."""
    velocity, ratios, last = guided_velocity(net, text, null_text, guide, single, noise.dtype)
    latents = solve_ode(velocity, noise, steps, method, progress=progress)
    return FlowSample(latents, torch.stack(ratios).mean(0), last[0])


def guided_velocity(
    net: nn.Module,
    text: TextEncoding,
    null_text: TextEncoding,
    guide: Guide,
    single: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Velocity, list[Tensor], list[Tensor]]:
    """MLA-Gen's guided velocity ``(x (B, N, C), t (B,)) -> v`` for ``text`` (B rows; the
    state in ``dtype``), and the lists it appends each call's SinkRatio (B,) to and keeps
    the last attention maps in.

    One velocity for every loop that integrates it: ``sample_flow``'s eager loop and the
    timeline's (``engine.sequence``: windows blended, or partly given)."""
    ratios: list[Tensor] = []
    last: list[Tensor] = []  # the latest velocity call's attention maps

    def keep(attention: Tensor) -> None:
        last[:] = [attention]

    null_text = _rows(null_text, len(text))
    branches = _Branches(net, *_branch_texts(text, null_text, single), len(text), dtype,
                         keep, ratios.append)  # fmt: skip
    return branches.velocity(guide, single), ratios, last


def guidance_for(mode: str, scale: float) -> CFG | SinkCtrl:
    """A fresh guidance of ``mode`` ("sink_ctrl" | "cfg") at ``scale``; MotionError if unknown."""
    if mode not in MODES:
        raise MotionError(f"unknown guidance mode {mode!r}; expected one of {MODES}")
    return _guidance(mode, scale)


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


# ---- CUDA graphs ---------------------------------------------------------------------------


def _guide_key(guide: CFG | SinkCtrl) -> Hashable | None:
    """The guidance's settings (baked into a captured graph); None if it cannot be graphed."""
    if not dataclasses.is_dataclass(guide) or not isinstance(guide, (CFG, SinkCtrl)):
        return None
    settings = [(f.name, getattr(guide, f.name)) for f in dataclasses.fields(guide)]
    return (type(guide), *(item for item in settings if item[0] != "previous"))


class _FlowSession:
    """Static buffers and captured steps of one sampling shape.

    Buffers: the state x (B, N, C); this step's times t, t_next (B,) and dt (); the padded
    text of both branches; SinkCtrl's regulated guidance ``prev`` (B, N, C); the SinkRatio
    sum (B,). Two graphs: the first step (no previous guidance yet) and any later step.
    """

    def __init__(self, net: nn.Module, text: TextEncoding, null_text: TextEncoding,
                 noise: Tensor, method: str, guide: Guide, single: bool):  # fmt: skip
        batch = len(text)
        self.method, self.guide, self.single = method, guide, single
        self.x = torch.zeros_like(noise)
        self.t = noise.new_zeros(batch)
        self.t_next = noise.new_zeros(batch)
        self.dt = noise.new_zeros(())
        self.ratio = noise.new_zeros(batch)
        self.prev = torch.zeros_like(noise) if hasattr(guide, "previous") else None
        global_text, local_text = _branch_texts(text, null_text, single)
        self.branches = _Branches(
            net, _clone(global_text), None if single else _clone(local_text), batch,
            noise.dtype, self._keep_attention, self.ratio.add_,
        )  # fmt: skip
        self.graphs: dict[str, StepGraph] = {}
        self.attention: Tensor | None = None  # the last velocity call's attention maps

    def start(self, text: TextEncoding, null_text: TextEncoding, noise: Tensor) -> None:
        """New call: its text and noise in place, the SinkRatio sum at zero."""
        global_text, local_text = _branch_texts(text, null_text, self.single)
        pairs = ((self.branches.global_text, global_text), (self.branches.local_text, local_text))
        for static, new in pairs:
            if static is not None:
                for buffer, value in zip(_fields(static), _fields(new), strict=True):
                    buffer.copy_(value)
        self.x.copy_(noise)
        self.ratio.zero_()

    def _keep_attention(self, attention: Tensor) -> None:
        """Copy the maps into a static buffer (allocated on the first, eager, run)."""
        if self.attention is None:
            self.attention = torch.empty_like(attention)
        self.attention.copy_(attention)

    def _body(self) -> None:
        velocity = self.branches.velocity(self.guide, self.single)
        step = stepper(self.method)
        self.x.copy_(step(velocity, self.x, self.t, self.t_next, dt=self.dt))
        if self.prev is not None:
            self.prev.copy_(self.guide.previous)

    def step(self, first: bool) -> None:
        """Run one solver step (times already in place)."""
        name = "first" if first or self.prev is None else "later"
        if name not in self.graphs:
            state = [self.x, self.ratio] + ([self.prev] if self.prev is not None else [])
            fn = self._first if name == "first" else self._later
            self.graphs[name] = StepGraph(fn, state, self.x.device)
        self.graphs[name].replay()

    def _first(self) -> None:
        self.guide.reset()
        self._body()

    def _later(self) -> None:
        self.guide.previous = self.prev
        self._body()


def _fields(encoding: TextEncoding) -> tuple[Tensor, Tensor, Tensor]:
    return encoding.tokens, encoding.mask, encoding.pooled


def _clone(encoding: TextEncoding) -> TextEncoding:
    return TextEncoding(*(t.clone() for t in _fields(encoding)))


def _branch_texts(
    text: TextEncoding, null_text: TextEncoding, single: bool
) -> tuple[TextEncoding, TextEncoding | None]:
    """Global and local text of the doubled batch (the prompt alone when ``single``)."""
    if single:
        return text, None
    return TextEncoding.cat([text, null_text]), TextEncoding.cat([text, text])


def _pad_text(encoding: TextEncoding, length: int) -> TextEncoding:
    """Right-pad to ``length`` tokens (masked out: attention and SinkRatio are unchanged)."""
    pad = length - encoding.tokens.shape[1]
    tokens = F.pad(encoding.tokens, (0, 0, 0, pad))
    return TextEncoding(tokens, F.pad(encoding.mask, (0, pad), value=False), encoding.pooled)


def _sample_graphed(
    net: nn.Module,
    text: TextEncoding,
    null_text: TextEncoding,
    noise: Tensor,
    steps: int,
    method: str,
    guide: Guide,
    single: bool,
    progress: Progress | None,
    precision: str,
) -> FlowSample:
    """``_sample_eager``'s loop with every solver step replayed from a CUDA graph."""
    times = time_grid(steps, dtype=torch.float64).tolist()  # the reference loop's floats
    real = text.tokens.shape[1]
    length = bucket(max(real, null_text.tokens.shape[1]))
    text, null_text = _pad_text(text, length), _pad_text(null_text, length)
    key = (len(text), tuple(noise.shape), noise.dtype, length, text.tokens.dtype, method, single,
           _guide_key(guide), precision, mode_key())  # fmt: skip
    rows = noise.shape[0] * noise.shape[1] * (1 if single else 2)
    with LOCK, on_device(noise.device), product_precision(precision, rows):
        session = cached_session(
            net, key, lambda: _FlowSession(net, text, null_text, noise, method, guide, single)
        )
        session.guide = guide  # read when a graph not yet captured is captured
        session.start(text, null_text, noise)
        for i in range(steps):
            session.t.fill_(times[i])
            session.t_next.fill_(times[i + 1])
            session.dt.fill_(times[i + 1] - times[i])
            session.step(first=i == 0)
            if progress is not None:
                progress(i + 1, steps)
        calls = steps * (2 if method == "heun" else 1)
        if session.prev is not None:
            guide.previous = session.prev.clone()
        attention = session.attention[..., :real].clone()
        return FlowSample(session.x.clone(), session.ratio / calls, attention)
