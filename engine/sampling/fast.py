"""Static-shape MAR sampling for MoLingo (the CUDA path of ``sample_mar``).

Same random draws, in the same order, and the same maths as the reference loop in
``mar.py`` (which the CPU keeps running, bit for bit); only the way it is computed changes,
so the latents agree to float rounding (and to TF32/bf16 rounding when those are chosen):

- All clips have one length, so every AR step reveals the same number of tokens in every
  row. Shapes are known on the host: the revealed tokens are gathered by index (sorted, so
  in the order boolean-mask indexing gives) and nothing waits for the GPU.
- The text keys/values of every cross-attention layer are computed once per call
  (``MoLingo.cross_kv``), not at every AR step.
- Flow head: its condition projection runs once per AR step, the time embeddings once per
  grid; all AdaLN modulations come from one product (of all blocks' projections stacked),
  at small batch once for the whole ODE grid; the CFG mix is folded into the (linear)
  output layer, so guidance costs no kernel of its own.
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
from torch import Tensor, nn

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
from .ode import time_grid

# Largest AdaLN table precomputed for a whole ODE grid, in elements (128 MiB in float32);
# above it (large batches, where launches no longer dominate) modulations are per step.
ADA_TABLE_LIMIT = 2**25

Mods = list[tuple[Tensor, ...]]


def stacked_ada(head: FlowHead) -> tuple[Tensor, Tensor]:
    """Every AdaLN projection of the flow head as one: weight ((3 depth + 2) w, w), bias.

    One product then yields all blocks' modulations. The ``1 +`` of ``1 + scale`` is folded
    into the bias of each scale chunk.
    """
    weights, biases = [], []
    for ada in _adas(head):
        width = ada.proj.out_features // ada.chunks
        bias = ada.proj.bias
        biases.append(torch.cat([bias[:width], bias[width : 2 * width] + 1, bias[2 * width :]]))
        weights.append(ada.proj.weight)
    return torch.cat(weights), torch.cat(biases)


def head_modulations(
    head: FlowHead, cond: Tensor, stacked: tuple[Tensor, Tensor] | None = None
) -> Mods:
    """AdaLN tensors of the flow head for conditions ``cond`` (..., w).

    Returns ``(shift, 1 + scale, gate)`` per block, then ``(shift, 1 + scale)`` of the final
    layer, each (..., w): one product for all of them, SiLU of the condition computed once.
    ``stacked`` is ``stacked_ada(head)`` when the caller already has it.
    """
    weight, bias = stacked_ada(head) if stacked is None else stacked
    chunks = F.linear(F.silu(cond), weight, bias).split(cond.shape[-1], dim=-1)
    mods, start = [], 0
    for ada in _adas(head):
        mods.append(chunks[start : start + ada.chunks])
        start += ada.chunks
    return mods


def _adas(head: FlowHead) -> list[nn.Module]:
    return [*(block.ada for block in head.blocks), head.final_ada]


def guided_output(head: FlowHead, scale: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
    """The output layer with CFG folded in: weight (C, k * w) and bias (C,).

    The output layer is linear, so ``v_uncond + s (v_cond - v_uncond)`` equals one product
    of the concatenated hidden rows [cond | uncond] with [s W, (1 - s) W]: the guidance
    costs no kernel per ODE step. Computed once per AR step (``scale`` changes); ``scale``
    is unused when k = 1 (no guidance).
    """
    weight = head.out.weight
    if k == 1:
        return weight, head.out.bias
    return torch.cat([scale * weight, (1 - scale) * weight], dim=1), head.out.bias


def guided_head_velocity(
    head: FlowHead, x: Tensor, mods: Mods, output: tuple[Tensor, Tensor]
) -> Tensor:
    """Flow-head velocity of M tokens under CFG: x (M, C) -> v (M, C).

    ``mods`` hold k = 1 or 2 condition rows per token ((M, k, w): conditional, then
    unconditional); the noisy input is shared by both rows, so it is embedded once.
    ``output`` is ``guided_output(head, scale, k)``.
    """
    h = head.in_proj(x)[:, None, :]  # (M, 1, w), broadcast over the k rows
    for block, (shift, scale1, g) in zip(head.blocks, mods[:-1], strict=True):
        y = block.mlp(torch.addcmul(shift, block.norm(h), scale1))  # (M, k, w)
        h = torch.addcmul(h, g, y)
    shift, scale1 = mods[-1]
    m = torch.addcmul(shift, head.norm(h), scale1)  # (M, k, w)
    weight, bias = output
    return F.linear(m.reshape(m.shape[0], -1), weight.to(m.dtype), bias.to(m.dtype))


def integrate_head(
    head: FlowHead, z: Tensor, noise: Tensor, scale: Tensor, times: Tensor, method: str
) -> Tensor:
    """Solve each token's flow ODE from noise (t = 1) to data (t = 0): (M, C).

    Args:
        z: transformer conditions (M, k, W), k = 1 or 2 (conditional, unconditional).
        noise: (M, C) start points; scale: guidance scale, a 0-dim tensor.
        times: the grid (steps + 1,) on the device (``time_grid``); method "euler"/"heun".
    """
    steps = times.shape[0] - 1
    grid = time_grid(steps, dtype=torch.float64).tolist()  # the reference loop's floats
    cond = head.cond_proj(z)  # (M, k, w): constant over the ODE
    output = guided_output(head, scale.to(head.out.weight.dtype), z.shape[1])
    evals = steps + 1 if method == "heun" else steps  # grid points where v is evaluated
    embed = head.time(times[:evals])  # (evals, w)
    stacked = stacked_ada(head)
    table = None
    if evals * cond[..., 0].numel() * stacked[1].numel() <= ADA_TABLE_LIMIT:
        table = head_modulations(head, embed[:, None, None, :] + cond, stacked)  # (evals, M, k, w)

    def velocity(x: Tensor, i: int) -> Tensor:
        mods = (
            [tuple(t[i] for t in group) for group in table]
            if table is not None
            else head_modulations(head, embed[i] + cond, stacked)
        )
        return guided_head_velocity(head, x, mods, output)

    x = noise
    for i in range(steps):
        dt = grid[i + 1] - grid[i]
        v = velocity(x, i)
        if method == "heun":
            v_next = velocity(torch.add(x, v, alpha=dt), i + 1)
            x = x + 0.5 * dt * (v + v_next)
        else:
            x = torch.add(x, v, alpha=dt)
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
