"""MLA-Gen: a full-sequence flow-matching DiT over AE latents with motion-language alignment.

Backbone (ACMDM-S): ``depth`` pre-norm blocks of RoPE self-attention and a SwiGLU MLP, RMSNorm
with q/k norm, both sub-layers AdaLN-modulated (shift, scale, gate) by a condition vector.
MLA-Gen (Gu et al. 2026) adds three things, all inside ``forward``:

- Memory slots (global motion priors): ``memory_slots`` learnable vectors shared by all
  layers. We append them as extra keys/values to every layer's self-attention (projected by
  that layer's own key/value weights, no RoPE since they have no position). One softmax
  over frames and slots lets each frame decide how much to retrieve from the priors versus
  from other frames; it is the paper's "hidden features as queries, memory as keys and
  values" read-out without a second attention per layer (no parameters beyond the slots).
- Local alignment: cross-attention from the embedded motion frames (queries) to the text
  tokens (keys/values, padding masked), giving a per-frame text condition ``c_local``. The
  AdaLN condition is ``time + global(pooled text) + w * c_local`` per frame, with
  ``w = local_weight`` (0.2), or ``local_weight_uncond`` in the unconditional CFG branch
  (``weak_local``), where the global condition comes from the null prompt but the local
  tokens stay the real prompt's (the paper keeps "moderate local constraints" there).
- Sink-mask: the start token (index 0) is removed from that cross-attention, the remaining
  weights renormalised (its logit is masked before the softmax), once the flow time passes
  the threshold. The paper's time runs 0 = noise -> 1 = data (SiT/ACMDM convention) and masks
  "when the timestep exceeds 0.2", i.e. for the later sampling rounds. Our time runs the other
  way (t = 1 noise -> 0 data), so the mask is on where the sampling progress ``1 - t`` exceeds
  ``sink_mask_threshold``: for t < 0.8 with the default 0.2. It depends only on ``t``, so
  training and sampling apply it alike.

``forward(..., return_attention=True)`` also returns that call's cross-attention maps
``(B, heads, N, L)`` (detached) for SinkRatio. They are returned, not kept on the module:
one model serves several threads at once (the add-on's worker, scripts, servers), and a map
left on ``self`` would be overwritten by another call before its sampler read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config, check_ratio, check_sizes
from ..errors import MotionError
from .layers import AdaLNModulation, Attention, SwiGLU, TimestepEmbedder, add_gated, modulate
from .registry import register_model

if TYPE_CHECKING:
    from ..text_encoder import TextEncoding

Rope = tuple[Tensor, Tensor]  # cos, sign-folded sin (N, head_dim)


@dataclass
class MLAGenConfig(Config):
    """Sizes and MLA-Gen settings; saved whole in the checkpoint."""

    latent_dim: int = 16  # AE latent channels per step (C)
    text_dim: int = 384  # text encoder width (tokens and pooled)
    width: int = 512
    depth: int = 8
    heads: int = 8
    mlp_ratio: float = 4.0  # SwiGLU hidden = 2/3 * mlp_ratio * width (ACMDM / LLaMA sizing)
    memory_slots: int = 16  # learnable global motion priors; 0 disables them
    local_weight: float = 0.2  # weight of the local (cross-attention) condition
    local_weight_uncond: float = 0.1  # its weight in the unconditional CFG branch
    sink_mask: bool = True  # mask the start token late in sampling (off for encoders without one)
    sink_mask_threshold: float = 0.2  # in sampling progress 1 - t (paper's time)
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        check_sizes(
            self, positive=("latent_dim", "text_dim", "width", "heads"),
            non_negative=("depth", "memory_slots"), divisible=(("width", "heads"),),
        )  # fmt: skip
        check_ratio(self, "mlp_ratio")
        if (self.width // self.heads) % 2:
            raise MotionError(
                f"MLAGenConfig: width / heads ({self.width // self.heads}) must be even (RoPE "
                "turns pairs of channels)"
            )

    @classmethod
    def tiny(cls) -> MLAGenConfig:
        """For tests: a few thousand parameters per block, runs in milliseconds on a CPU."""
        return cls(text_dim=24, width=32, depth=2, heads=4, memory_slots=4)

    @classmethod
    def small(cls) -> MLAGenConfig:
        """Default shipped size: 6.0 M parameters, 23 MiB in float32 (fits the 40 MB budget
        beside the AE decoder)."""
        return cls(width=224, depth=6, heads=4)

    @classmethod
    def base(cls) -> MLAGenConfig:
        """The paper's MLA-Gen-S / ACMDM-S size: 8 layers, width 512, 8 heads."""
        return cls()


def rope_tables(n: int, head_dim: int, base: float, like: Tensor) -> tuple[Tensor, Tensor]:
    """1D rotary tables for positions ``0..n-1``: cos, sin ``(n, head_dim)``."""
    half = head_dim // 2
    freqs = base ** (-torch.arange(half, device=like.device, dtype=torch.float32) / half)
    angles = torch.arange(n, device=like.device, dtype=torch.float32)[:, None] * freqs  # (n, half)
    angles = torch.cat([angles, angles], dim=-1)  # (n, head_dim)
    return angles.cos().to(like.dtype), angles.sin().to(like.dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (B, H, N, Dh) by position: pairs (i, i + Dh/2) turn by their angle."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class MemorySelfAttention(nn.Module):
    """Self-attention over frames with RoPE and q/k RMSNorm; memory slots as extra keys."""

    def __init__(self, config: MLAGenConfig):
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.width // config.heads
        self.rope_base = config.rope_base
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)

    def _project(self, x: Tensor, part: int) -> Tensor:
        """Rows ``part`` (0 = q, 1 = k, 2 = v) of the qkv projection of ``x`` (..., W),
        split into heads (..., H, Dh).

        Three products instead of one wide one: each result is contiguous, so the q/k norms
        read it without a copy and the heads stay in (B, N, H, Dh) order, the layout the
        fused attention kernels read directly (profile at batch 256, docs/benchmarks.md).
        """
        w = self.qkv.in_features
        rows = slice(part * w, (part + 1) * w)
        out = F.linear(x, self.qkv.weight[rows], self.qkv.bias[rows])
        return out.view(*x.shape[:-1], self.heads, self.head_dim)

    def forward(
        self, x: Tensor, memory: Tensor | None, frame_mask: Tensor | None, rope: Rope
    ) -> Tensor:
        """x (B, N, W); memory (S, W) or None; frame_mask (B, N) True = real;
        rope = ``MLAGen.rope(N, like)`` -> (B, N, W)."""
        b, n, w = x.shape
        q, k, v = (self._project(x, part) for part in range(3))  # (B, N, H, Dh)
        q, k = self.q_norm(q), self.k_norm(k)
        cos, signed_sin = (table[:, None] for table in rope)  # (n, 1, Dh): as apply_rope
        half = self.head_dim // 2
        q = torch.addcmul(q * cos, q.roll(half, dims=-1), signed_sin)
        k = torch.addcmul(k * cos, k.roll(half, dims=-1), signed_sin)
        keep = None if frame_mask is None else frame_mask.bool()  # (B, N)
        if memory is not None:
            # Only the key/value rows of the projection apply to the slots (no queries).
            slots = memory.shape[0]
            mk = self.k_norm(self._project(memory, 1)).expand(b, slots, -1, -1)  # (B, S, H, Dh)
            mv = self._project(memory, 2).expand(b, slots, -1, -1)
            k = torch.cat([k, mk], dim=1)  # (B, N + S, H, Dh)
            v = torch.cat([v, mv], dim=1)
            if keep is not None:
                keep = torch.cat([keep, keep.new_ones(b, slots)], dim=1)  # (B, N + S)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh) views
        mask = None if keep is None else keep[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, Dh)
        return self.out(out.transpose(1, 2).reshape(b, n, w))


class MLAGenBlock(nn.Module):
    """AdaLN DiT block: RMSNorm -> (memory) self-attention -> RMSNorm -> SwiGLU, gated."""

    def __init__(self, config: MLAGenConfig):
        super().__init__()
        width = config.width
        self.norm1 = nn.RMSNorm(width, eps=1e-6, elementwise_affine=False)
        self.attn = MemorySelfAttention(config)
        self.norm2 = nn.RMSNorm(width, eps=1e-6, elementwise_affine=False)
        self.mlp = SwiGLU(width, int(2 / 3 * config.mlp_ratio * width))
        self.ada = AdaLNModulation(width, width, 6)

    def forward(
        self, x: Tensor, activated: Tensor, memory: Tensor | None, frame_mask: Tensor | None,
        rope: Rope,
    ) -> Tensor:  # fmt: skip
        """x (B, N, W), activated = silu of the per-frame condition (B, N, W), computed once
        for all blocks -> (B, N, W)."""
        sh1, sc1, g1, sh2, sc2, g2 = self.ada.project(activated)
        x = add_gated(x, self.attn(modulate(self.norm1(x), sh1, sc1), memory, frame_mask, rope), g1)
        return add_gated(x, self.mlp(modulate(self.norm2(x), sh2, sc2)), g2)


def run_blocks(
    blocks: nn.ModuleList, x: Tensor, activated: Tensor, memory: Tensor | None,
    frame_mask: Tensor | None, rope: Rope,
) -> Tensor:  # fmt: skip
    """The DiT trunk. A free function so that samplers can swap in a compiled version of it
    (``MLAGen.run_blocks``) without touching the module tree or its weights' names."""
    for block in blocks:
        x = block(x, activated, memory, frame_mask, rope)
    return x


@register_model(MLAGenConfig)
class MLAGen(nn.Module):
    """Velocity network ``v(x_t, t, text)`` of MLA-Gen (see the module docstring)."""

    def __init__(self, config: MLAGenConfig):
        super().__init__()
        self.config = config
        width = config.width
        self.x_embed = nn.Linear(config.latent_dim, width)
        self.t_embed = TimestepEmbedder(width)
        self.global_embed = nn.Linear(config.text_dim, width)
        self.local_attn = Attention(width, config.heads, context_dim=config.text_dim, qk_norm=True)
        self.memory = None
        if config.memory_slots > 0:
            self.memory = nn.Parameter(torch.randn(config.memory_slots, width) * 0.02)
        self.blocks = nn.ModuleList(MLAGenBlock(config) for _ in range(config.depth))
        self.final_norm = nn.RMSNorm(width, eps=1e-6, elementwise_affine=False)
        self.final_ada = AdaLNModulation(width, width, 2)
        self.final = nn.Linear(width, config.latent_dim)
        nn.init.zeros_(self.final.weight)  # start by predicting zero velocity
        nn.init.zeros_(self.final.bias)
        self.run_blocks: Callable[..., Tensor] = run_blocks  # samplers may compile it
        self._rope_cache: dict[tuple[int, torch.device, torch.dtype], Rope] = {}

    def rope(self, n: int, like: Tensor) -> Rope:
        """cos and sign-folded sin tables (n, Dh) of the self-attention, kept per (length,
        device, dtype).

        They depend on positions only; rebuilding them cost ~8 small kernels per block per
        call, a large share of a sampling step at batch 1. With the sign folded into sin,
        ``x * cos + x.roll(Dh/2) * sin`` equals ``apply_rope`` bit for bit with one kernel
        fewer. Not cached while a CUDA graph is being captured (nothing runs then).
        """
        key = (n, like.device, like.dtype)
        tables = self._rope_cache.get(key)
        if tables is None:
            head_dim = self.config.width // self.config.heads
            cos, sin = rope_tables(n, head_dim, self.config.rope_base, like)
            half = head_dim // 2
            tables = (cos, torch.cat([-sin[:, :half], sin[:, half:]], dim=-1))
            if not (like.is_cuda and torch.cuda.is_current_stream_capturing()):
                self._rope_cache[key] = tables
        return tables

    def sink_keep(self, t: Tensor, length: int) -> Tensor:
        """Cross-attention keys allowed by the sink-mask: (B, 1, 1, L) bool.

        Token 0 is dropped for rows whose progress ``1 - t`` exceeds the threshold.
        """
        keep = torch.ones(t.shape[0], 1, 1, length, dtype=torch.bool, device=t.device)
        if self.config.sink_mask:
            keep[:, 0, 0, 0] = (1.0 - t) <= self.config.sink_mask_threshold
        return keep

    def local_condition(self, h: Tensor, t: Tensor, text: TextEncoding) -> tuple[Tensor, Tensor]:
        """Per-frame text condition from frame embeddings h (B, N, W) -> (B, N, W), and the
        cross-attention maps (B, H, N, L), detached."""
        keep = self.sink_keep(t, text.tokens.shape[1])
        tokens = text.tokens.to(h.dtype)
        local, weights = self.local_attn(
            h, tokens, key_mask=text.mask, attn_mask=keep, need_weights=True
        )
        return local, weights.detach()

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        text: TextEncoding,
        *,
        weak_local: bool | Tensor = False,
        local_text: TextEncoding | None = None,
        frame_mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Predict the flow velocity ``noise - data`` at ``x_t``.

        Args:
            x_t: noisy latents (B, N, C).
            t: flow times (B,), 1 = noise, 0 = data.
            text: gives the global condition (``pooled``) and, unless ``local_text`` is
                given, the tokens for local alignment.
            weak_local: True (or a (B,) bool per row) for the unconditional CFG branch: the
                local condition is weighted by ``local_weight_uncond`` instead of
                ``local_weight``.
            local_text: tokens for local alignment when they differ from ``text`` (the
                unconditional branch: null prompt globally, real prompt locally).
            frame_mask: (B, N) bool, True = real frame, for padded training batches.
            return_attention: also return the local cross-attention maps (SinkRatio).

        Returns:
            velocity (B, N, C); with ``return_attention``, (velocity, maps (B, H, N, L)).
        """
        local_text = text if local_text is None else local_text
        h = self.x_embed(x_t)  # (B, N, W)
        weight = self._local_weight(weak_local, h)  # (B, 1, 1)
        # t stays float32: rounded to bfloat16 (a reduced-precision copy) it would move by
        # up to 0.004, four of the embedding's 1000 time units.
        cond = self.t_embed(t.float()).to(h.dtype) + self.global_embed(text.pooled.to(h.dtype))
        local, attention = self.local_condition(h, t, local_text)
        cond = cond[:, None, :] + weight * local  # (B, N, W)
        rope = self.rope(h.shape[1], h)
        activated = F.silu(cond)  # every AdaLN modulation reads silu(cond): computed once
        x = self.run_blocks(self.blocks, h, activated, self.memory, frame_mask, rope)
        shift, scale = self.final_ada.project(activated)
        velocity = self.final(modulate(self.final_norm(x), shift, scale))  # (B, N, C)
        return (velocity, attention) if return_attention else velocity

    def _local_weight(self, weak_local: bool | Tensor, like: Tensor) -> Tensor:
        """Per-row local-condition weight (B, 1, 1)."""
        weak = torch.as_tensor(weak_local, device=like.device).expand(like.shape[0])
        strong = torch.full_like(weak, self.config.local_weight, dtype=like.dtype)
        soft = torch.full_like(strong, self.config.local_weight_uncond)
        return torch.where(weak, soft, strong)[:, None, None]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
