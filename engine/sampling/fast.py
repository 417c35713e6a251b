"""Static-shape MAR sampling for MoLingo (the CUDA path of ``sample_mar``).

Same random draws, in the same order, and the same maths as the reference loop in
``mar.py`` (which the CPU keeps running, bit for bit); only the way it is computed changes,
so the latents agree to float rounding (and to TF32/bf16 rounding when those are chosen):

- All clips have one length, so every AR step reveals the same number of tokens in every
  row. Shapes are known on the host: the revealed tokens are gathered by index (sorted, so
  in the order boolean-mask indexing gives) and nothing waits for the GPU.
- The text keys/values of every cross-attention layer are computed once per call
  (``MoLingo.cross_kv``), not at every AR step.
- Flow head: its batched form (``FlowHead.grid_velocity``): the condition projection once
  per AR step, the time embeddings once per grid, all AdaLN modulations from one product
  (at small batch once for the whole ODE grid), the CFG mix folded into the (linear)
  output layer, so guidance costs no kernel of its own; stepped by ``ode``'s steppers.
- "auto" precision: TF32 products except the thin ones (batch 1's flow head), where
  cuBLAS's IEEE kernels are faster (``graphs.SMALL_PRODUCT_ROWS``).
- With ``graphs``, each AR step (reveal choice, transformer, ODE, write-back) is captured
  as one CUDA graph per count of revealed tokens and replayed; the random numbers are drawn
  eagerly into static buffers in between.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.molingo import FlowHead, MoLingo, TextMemory
from .graphs import (
    LOCK,
    StepGraph,
    bucket,
    cached_session,
    mode_key,
    new_pool,
    on_device,
    product_precision,
)
from .ode import fused_advance, stepper, time_grid


def integrate_head(
    head: FlowHead, z: Tensor, noise: Tensor, scale: Tensor, times: Tensor, method: str
) -> Tensor:
    """Solve each token's flow ODE from noise (t = 1) to data (t = 0): (M, C).

    The head's batched, CFG-folded form (``FlowHead.grid_velocity``) stepped by ``ode``'s
    own steppers, with times as grid indices and fused predictor moves.

    Args:
        z: transformer conditions (M, k, W), k = 1 or 2 (conditional, unconditional).
        noise: (M, C) start points; scale: guidance scale, a 0-dim tensor.
        times: the grid (steps + 1,) on the device (``time_grid``); method "euler"/"heun".
    """
    steps = times.shape[0] - 1
    grid = time_grid(steps, dtype=torch.float64).tolist()  # the reference loop's floats
    evals = steps + 1 if method == "heun" else steps  # grid points where v is evaluated
    velocity = head.grid_velocity(z, scale, times[:evals])
    step = stepper(method)
    x = noise
    for i in range(steps):
        x = step(velocity, x, i, i + 1, dt=grid[i + 1] - grid[i], update=fused_advance)
    return x


class MarSession:
    """Static buffers (and CUDA graphs, one per reveal count) of one sampling shape.

    Buffers: latents (B, N, C), masked (B, N), reveal scores (B, N), noise per count
    (B * count, C), the guidance scale, the padded text memory and its keys/values. A
    captured AR step reads and writes only these.
    """

    def __init__(
        self,
        model: MoLingo,
        batch: int,
        num_tokens: int,
        memory: TextMemory,
        flow_steps: int,
        method: str,
        graphs: bool,
        precision: str = "fp32",
    ):
        cfg = model.config
        device = memory.mask.device if memory.mask is not None else memory.cond.device
        dtype = next(model.parameters()).dtype
        self.model, self.method, self.graphs = model, method, graphs
        self.precision = precision
        self.k = memory.batch_size // batch
        self.latents = torch.zeros(batch, num_tokens, cfg.latent_dim, device=device, dtype=dtype)
        self.masked = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
        self.scores = torch.zeros(batch, num_tokens, device=device)
        self.scale = torch.zeros((), device=device, dtype=dtype)
        # float64 grid rounded once to float32, as the reference loop's per-step times are
        self.times = time_grid(flow_steps, dtype=torch.float64).to(device, torch.float32)
        self.memory = TextMemory(*(None if t is None else t.clone() for t in _fields(memory)))
        self.kv = model.cross_kv(self.memory)
        self.noise: dict[int, Tensor] = {}
        self.steps: dict[int, Callable[[], None] | StepGraph] = {}
        self.pool = new_pool(device) if graphs else None

    def start(self, memory: TextMemory) -> None:
        """New call: this call's text in place, every token masked, latents zero."""
        for static, new in zip(_fields(self.memory), _fields(memory), strict=True):
            if static is not None:
                static.copy_(new)
        if self.kv is not None:
            fresh = self.model.cross_kv(self.memory)
            for static, new in zip(self.kv, fresh, strict=True):
                static.k.copy_(new.k)
                static.v.copy_(new.v)
                if static.bias is not None:
                    static.bias.copy_(new.bias)
        self.latents.zero_()
        self.masked.fill_(True)

    def step(self, count: int) -> None:
        """Reveal ``count`` tokens per row (scores, noise and scale already in place)."""
        if count not in self.steps:
            fn = self._step_fn(count)
            state = [self.latents, self.masked]
            device = self.latents.device
            self.steps[count] = StepGraph(fn, state, device, self.pool) if self.graphs else fn
        step = self.steps[count]
        step.replay() if isinstance(step, StepGraph) else step()

    def noise_buffer(self, count: int) -> Tensor:
        if count not in self.noise:
            rows = self.latents.shape[0] * count
            self.noise[count] = self.latents.new_zeros(rows, self.latents.shape[-1])
        return self.noise[count]

    def _step_fn(self, count: int) -> Callable[[], None]:
        model, k = self.model, self.k
        batch, _, channels = self.latents.shape
        noise = self.noise_buffer(count)

        def fn() -> None:
            scores = self.scores.masked_fill(~self.masked, float("inf"))
            # The `count` lowest scores: the same argsort as choose_tokens_to_reveal, then
            # ascending positions, which is the order z[:, reveal] would give.
            idx = scores.argsort(dim=1)[:, :count].sort(dim=1).values  # (B, count)
            with product_precision(self.precision, k * self.latents[..., 0].numel()):
                z = model(
                    self.latents.repeat(k, 1, 1),
                    self.masked.repeat(k, 1),
                    self.memory,
                    None,
                    context_kv=self.kv,
                ).unflatten(0, (k, batch))  # (k, B, N, W)
            width = z.shape[-1]
            z = z.gather(2, idx[None, :, :, None].expand(k, -1, -1, width))  # (k, B, count, W)
            z = z.permute(1, 2, 0, 3).reshape(batch * count, k, width)  # (M, k, W)
            with product_precision(self.precision, k * batch * count):
                x = integrate_head(model.head, z, noise, self.scale, self.times, self.method)
            x = x.to(self.latents.dtype).view(batch, count, channels)
            self.latents.scatter_(1, idx[..., None].expand(-1, -1, channels), x)
            self.masked.scatter_(1, idx, False)

        return fn


def _fields(memory: TextMemory) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    return memory.tokens, memory.mask, memory.cond


def pad_memory(memory: TextMemory, length: int) -> TextMemory:
    """Right-pad the text to ``length`` tokens (masked out, so attention is unchanged)."""
    if memory.tokens is None or memory.tokens.shape[1] == length:
        return memory
    pad = length - memory.tokens.shape[1]
    tokens = F.pad(memory.tokens, (0, 0, 0, pad))
    return TextMemory(tokens, F.pad(memory.mask, (0, pad), value=False), memory.cond)


def sample_mar_static(
    model: MoLingo,
    memory: TextMemory,
    batch: int,
    num_tokens: int,
    counts: list[int],
    scales: list[float],
    flow_steps: int,
    method: str,
    generator: torch.Generator | None,
    graphs: bool,
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Latents (B, N, C) for every clip of length ``num_tokens``.

    Args:
        memory: adapted text, B conditional rows then (if guided) B null rows.
        counts, scales: per AR step, tokens revealed in every row and the CFG scale.
        graphs: capture and replay CUDA graphs (needs a CUDA device); the session and its
            graphs are cached per model and shape, so only the first call pays for capture.
        precision: the ``FastOptions.precision`` in force (part of the graphs' key).
    """
    device = memory.mask.device if memory.mask is not None else memory.cond.device
    if graphs and memory.tokens is not None:
        memory = pad_memory(memory, bucket(memory.tokens.shape[1]))
    with LOCK, on_device(device):
        if graphs:
            key = (batch, num_tokens, _shape_key(memory), flow_steps, method, precision,
                   mode_key())  # fmt: skip
            session = cached_session(
                model,
                key,
                lambda: MarSession(
                    model, batch, num_tokens, memory, flow_steps, method, True, precision
                ),
            )
        else:
            session = MarSession(
                model, batch, num_tokens, memory, flow_steps, method, False, precision
            )
        session.start(memory)
        for step, (count, scale) in enumerate(zip(counts, scales, strict=True)):
            # The reference loop draws the reveal scores every step and noise only when
            # something is revealed: the same calls, in the same order, on the same generator.
            scores = torch.rand(session.scores.shape, generator=generator, device=device)
            session.scores.copy_(scores)
            if count > 0:
                noise = session.noise_buffer(count)
                drawn = torch.randn(
                    noise.shape, generator=generator, device=device, dtype=noise.dtype
                )
                noise.copy_(drawn)
                session.scale.fill_(scale)
                session.step(count)
            if progress is not None:
                progress(step + 1, len(counts))
        return session.latents.clone()


def _shape_key(memory: TextMemory) -> tuple:
    return tuple(None if t is None else (tuple(t.shape), t.dtype) for t in _fields(memory))
