"""MoLingo generator: masked autoregressive transformer + per-token rectified-flow head (SPEC 3.2).

Two parts, used by ``engine.sampling.mar``:

- a decoder-only transformer over motion latent tokens (B, N, C), some of them masked
  (replaced by a learned mask token), conditioned on text by cross-attention to an adapted
  multi-token text memory ("cross_attention", the paper's choice) or, for the ablation, by
  AdaLN from the pooled text ("adaln_token"). It returns one condition vector z_i per token;
- a small AdaLN MLP ``velocity(x_t, t, z_i)`` predicting the rectified-flow velocity
  ``noise - latent`` of each token independently given its z_i.

The text adapter runs once per prompt batch (``adapt_text``) and its ``TextMemory`` can be
passed to ``forward`` directly, so the sampler does not recompute it at every step.
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
from .layers import AdaLNModulation, ContextKV, TimestepEmbedder, TransformerBlock, modulate
from .registry import register_model

if TYPE_CHECKING:
    from ..text_encoder import TextEncoding

CONDITIONINGS = ("cross_attention", "adaln_token")
# Largest AdaLN table the flow head's batched form precomputes for a whole ODE grid, in
# elements (128 MiB in float32); above it (large batches, where launches no longer
# dominate) modulations are computed per step.
ADA_TABLE_LIMIT = 2**25

HeadModulations = list[tuple[Tensor, ...]]


@dataclass
class MoLingoConfig(Config):
    """Sizes of the MoLingo generator; saved whole in the checkpoint."""

    latent_dim: int = 16  # autoencoder latent channels per token
    text_dim: int = 384  # text encoder width (MiniLM 384, T5-Large 1024)
    max_tokens: int = 49  # 196 frames / 4: length of the learned positional table
    width: int = 256  # transformer width
    depth: int = 6  # decoder blocks over motion tokens (paper large: 16)
    heads: int = 4
    mlp_ratio: float = 2.0  # FFN hidden = width * mlp_ratio (paper: 4; 2 keeps small() small)
    adapter_depth: int = 2  # transformer-encoder layers over text tokens (paper: 6)
    conditioning: str = "cross_attention"  # or "adaln_token" (pooled text via AdaLN)
    head_width: int = 256  # flow-head MLP width (paper: 1280)
    head_depth: int = 3  # flow-head residual AdaLN blocks (paper: 8)

    def __post_init__(self) -> None:
        check_sizes(
            self, positive=("latent_dim", "text_dim", "max_tokens", "width", "heads", "head_width"),
            non_negative=("depth", "adapter_depth", "head_depth"),
        )  # fmt: skip
        check_ratio(self, "mlp_ratio")
        if self.conditioning not in CONDITIONINGS:
            raise MotionError(
                f"MoLingoConfig.conditioning {self.conditioning!r} is not one of {CONDITIONINGS}"
            )
        if self.width % self.heads:
            raise MotionError(f"MoLingoConfig: width {self.width} not divisible by {self.heads}")

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)

    @classmethod
    def tiny(cls) -> MoLingoConfig:
        """For unit tests: milliseconds per call on a CPU."""
        return cls(
            text_dim=32, width=32, depth=2, heads=2, adapter_depth=1, head_width=32, head_depth=2
        )

    @classmethod
    def small(cls) -> MoLingoConfig:
        """The shipped size, about 7.2 M parameters: with the autoencoder's decoder (2.4 M)
        it is 38.5 MB in float32, inside the 40 MB checkpoint budget."""
        return cls()

    @classmethod
    def base(cls) -> MoLingoConfig:
        """A mid-size model for a longer training run."""
        return cls(
            width=512,
            depth=8,
            heads=8,
            mlp_ratio=4.0,
            adapter_depth=4,
            head_width=768,
            head_depth=4,
        )

    @classmethod
    def large(cls) -> MoLingoConfig:
        """Paper size (16 layers, width 1024, FFN 4096, head 8 x 1280, T5-Large text): 417.6 M."""
        return cls(
            text_dim=1024,
            width=1024,
            depth=16,
            heads=16,
            mlp_ratio=4.0,
            adapter_depth=6,
            head_width=1280,
            head_depth=8,
        )


@dataclass
class TextMemory:
    """Text after the adapter, ready for the motion transformer.

    tokens: (B, L, W) adapted text tokens and mask (B, L) bool (True = real) for
    cross-attention; cond: (B, W) pooled-text condition for the AdaLN variant. Fields the
    configured conditioning does not use are None.
    """

    tokens: Tensor | None = None
    mask: Tensor | None = None
    cond: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return (self.tokens if self.tokens is not None else self.cond).shape[0]

    def expand(self, batch: int) -> TextMemory:
        """Repeat a batch-1 memory (e.g. the null prompt) to ``batch`` rows."""
        if self.batch_size == batch:
            return self
        if self.batch_size != 1:
            raise MotionError(f"cannot expand a text batch of {self.batch_size} to {batch}")

        def grow(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.expand(batch, *t.shape[1:])

        return TextMemory(grow(self.tokens), grow(self.mask), grow(self.cond))

    @staticmethod
    def cat(memories: list[TextMemory]) -> TextMemory:
        """Stack along the batch, right-padding tokens (mask False) to the longest L."""
        first = memories[0]
        tokens = mask = cond = None
        if first.tokens is not None:
            length = max(m.tokens.shape[1] for m in memories)
            tokens = torch.cat([_pad_to(m.tokens, length) for m in memories])
            mask = torch.cat([_pad_to(m.mask, length) for m in memories])
        if first.cond is not None:
            cond = torch.cat([m.cond for m in memories])
        return TextMemory(tokens, mask, cond)


def _pad_to(x: Tensor, length: int) -> Tensor:
    """Right-pad dim 1 of (B, L, ...) with zeros / False to ``length``."""
    pad = length - x.shape[1]
    if pad == 0:
        return x
    return torch.cat([x, x.new_zeros((x.shape[0], pad, *x.shape[2:]))], dim=1)


class TextAdapter(nn.Module):
    """Frozen-encoder tokens (B, L, text_dim) -> memory (B, L, W): linear + encoder stack."""

    def __init__(self, cfg: MoLingoConfig):
        super().__init__()
        self.proj = nn.Linear(cfg.text_dim, cfg.width)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.width, cfg.heads, cfg.mlp_hidden) for _ in range(cfg.adapter_depth)
        )
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        h = self.proj(tokens)  # (B, L, W)
        for block in self.blocks:
            h = block(h, key_mask=mask)
        return self.norm(h)


class HeadBlock(nn.Module):
    """Residual MLP block of the flow head, AdaLN-modulated by (time + z_i)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = AdaLNModulation(width, width, 3)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale, g = self.ada(cond)
        return x + g * self.mlp(modulate(self.norm(x), shift, scale))


class FlowHead(nn.Module):
    """Per-token velocity MLP: (x_t (M, C), t (M,), z (M, W)) -> v (M, C)."""

    def __init__(self, cfg: MoLingoConfig):
        super().__init__()
        w = cfg.head_width
        self.in_proj = nn.Linear(cfg.latent_dim, w)
        self.time = TimestepEmbedder(w)
        self.cond_proj = nn.Linear(cfg.width, w)
        self.blocks = nn.ModuleList(HeadBlock(w) for _ in range(cfg.head_depth))
        self.norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_ada = AdaLNModulation(w, w, 2)
        self.out = nn.Linear(w, cfg.latent_dim)
        nn.init.zeros_(self.out.weight)  # start predicting v = 0: stable first steps
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        cond = self.time(t) + self.cond_proj(z)  # (M, w)
        h = self.in_proj(x)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_ada(cond)
        return self.out(modulate(self.norm(h), shift, scale))

    # ---- the batched form (MoLingo's static CUDA sampler) ----------------------------------
    # The same function as ``forward`` for M tokens integrated over a whole ODE grid, with
    # classifier-free guidance folded in: the condition projection runs once per AR step,
    # the time embeddings once per grid, every AdaLN modulation comes from one product (at
    # small batch once for the whole grid) and the CFG mix is part of the output layer.

    def adas(self) -> list[AdaLNModulation]:
        """Every AdaLN projection: the blocks' (shift, scale, gate), then the final one's."""
        return [*(block.ada for block in self.blocks), self.final_ada]

    def stacked_ada(self) -> tuple[Tensor, Tensor]:
        """Every AdaLN projection as one: weight ((3 depth + 2) w, w) and bias, with the
        ``1 +`` of ``1 + scale`` folded into each scale chunk's bias."""
        weights, biases = [], []
        for ada in self.adas():
            width = ada.proj.out_features // ada.chunks
            bias = ada.proj.bias
            biases.append(torch.cat([bias[:width], bias[width : 2 * width] + 1, bias[2 * width :]]))
            weights.append(ada.proj.weight)
        return torch.cat(weights), torch.cat(biases)

    def modulations(
        self, cond: Tensor, stacked: tuple[Tensor, Tensor] | None = None
    ) -> HeadModulations:
        """AdaLN tensors for conditions ``cond`` (..., w): ``(shift, 1 + scale, gate)`` per
        block, then ``(shift, 1 + scale)`` of the final layer, each (..., w), from one
        product (``stacked`` is ``stacked_ada()`` when the caller already has it)."""
        weight, bias = self.stacked_ada() if stacked is None else stacked
        chunks = F.linear(F.silu(cond), weight, bias).split(cond.shape[-1], dim=-1)
        mods, start = [], 0
        for ada in self.adas():
            mods.append(chunks[start : start + ada.chunks])
            start += ada.chunks
        return mods

    def guided_output(self, scale: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        """The output layer with CFG folded in: weight (C, k w) and bias (C,).

        The layer is linear, so ``v_uncond + s (v_cond - v_uncond)`` is one product of the
        hidden rows [cond | uncond] with [s W, (1 - s) W]: guidance costs no kernel per ODE
        step. ``scale`` is unused when k = 1 (no guidance).
        """
        weight = self.out.weight
        if k == 1:
            return weight, self.out.bias
        return torch.cat([scale * weight, (1 - scale) * weight], dim=1), self.out.bias

    def guided_velocity(
        self, x: Tensor, mods: HeadModulations, output: tuple[Tensor, Tensor]
    ) -> Tensor:
        """Velocity of M tokens under CFG, x (M, C) -> v (M, C).

        ``mods`` hold k = 1 or 2 condition rows per token ((M, k, w): conditional, then
        unconditional); the noisy input is shared by both, so it is embedded once.
        ``output`` is ``guided_output(scale, k)``.
        """
        h = self.in_proj(x)[:, None, :]  # (M, 1, w), broadcast over the k rows
        for block, (shift, scale1, g) in zip(self.blocks, mods[:-1], strict=True):
            y = block.mlp(torch.addcmul(shift, block.norm(h), scale1))  # (M, k, w)
            h = torch.addcmul(h, g, y)
        shift, scale1 = mods[-1]
        m = torch.addcmul(shift, self.norm(h), scale1)  # (M, k, w)
        weight, bias = output
        return F.linear(m.reshape(m.shape[0], -1), weight.to(m.dtype), bias.to(m.dtype))

    def grid_velocity(
        self, z: Tensor, scale: Tensor, times: Tensor
    ) -> Callable[[Tensor, int], Tensor]:
        """``v(x, i)``: the guided velocity of M tokens at grid time ``times[i]``.

        Args:
            z: transformer conditions (M, k, W), k = 1 or 2 (conditional, unconditional).
            scale: guidance scale, a 0-dim tensor.
            times: the grid times where the velocity will be evaluated.
        """
        cond = self.cond_proj(z)  # (M, k, w): constant over the ODE
        output = self.guided_output(scale.to(self.out.weight.dtype), z.shape[1])
        embed = self.time(times)  # (evals, w)
        stacked = self.stacked_ada()
        table = None
        if times.shape[0] * cond[..., 0].numel() * stacked[1].numel() <= ADA_TABLE_LIMIT:
            table = self.modulations(embed[:, None, None, :] + cond, stacked)  # (evals, M, k, w)

        def velocity(x: Tensor, i: int) -> Tensor:
            mods = (
                [tuple(t[i] for t in group) for group in table]
                if table is not None
                else self.modulations(embed[i] + cond, stacked)
            )
            return self.guided_velocity(x, mods, output)

        return velocity


@register_model(MoLingoConfig)
class MoLingo(nn.Module):
    """Masked autoregressive transformer with a rectified-flow head."""

    def __init__(self, cfg: MoLingoConfig):
        super().__init__()
        self.config = cfg
        cross = cfg.conditioning == "cross_attention"
        w = cfg.width
        self.text_adapter = TextAdapter(cfg) if cross else None
        self.text_pool = (
            None if cross else nn.Sequential(nn.Linear(cfg.text_dim, w), nn.SiLU(), nn.Linear(w, w))
        )
        self.in_proj = nn.Linear(cfg.latent_dim, w)
        self.mask_token = nn.Parameter(torch.randn(w) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(cfg.max_tokens, w) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                w,
                cfg.heads,
                cfg.mlp_hidden,
                context_dim=w if cross else None,
                cond_dim=None if cross else w,
            )
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(w, eps=1e-6)
        self.head = FlowHead(cfg)

    def adapt_text(self, text: TextEncoding) -> TextMemory:
        """Encoder output (tokens (B, L, text_dim), mask (B, L), pooled (B, text_dim)) ->
        the memory the motion blocks read. Run once per prompt batch."""
        if self.text_adapter is not None:
            mask = text.mask.bool()
            return TextMemory(tokens=self.text_adapter(text.tokens, mask), mask=mask)
        return TextMemory(cond=self.text_pool(text.pooled))

    def cross_kv(self, memory: TextMemory) -> list[ContextKV] | None:
        """Each block's cross-attention keys, values and padding bias of ``memory``.

        They depend on the text alone, so a sampler computes them once per prompt batch and
        passes them to every AR step as ``forward(..., context_kv=...)`` (None for the
        "adaln_token" variant, which has no cross-attention).
        """
        if memory.tokens is None:
            return None
        return [block.cross.context_kv(memory.tokens, memory.mask) for block in self.blocks]

    def forward(
        self,
        tokens: Tensor,
        token_mask: Tensor,
        text: TextEncoding | TextMemory,
        token_valid: Tensor | None = None,
        *,
        context_kv: list[ContextKV] | None = None,
    ) -> Tensor:
        """Condition vectors z (B, N, W) for every token.

        Args:
            tokens: (B, N, C) latents; values at masked positions are ignored.
            token_mask: (B, N) bool, True = masked/unknown (replaced by the mask token).
            text: a ``TextEncoding`` or an already adapted ``TextMemory`` (batch B or 1).
            token_valid: (B, N) bool, True = real token, False = padding past the clip's
                end (excluded as keys of self-attention); None = all real.
            context_kv: ``cross_kv(memory)`` of this (already batch-B) memory, to skip
                recomputing the text keys/values.
        """
        b, n, c = tokens.shape
        if n > self.config.max_tokens or c != self.config.latent_dim:
            raise MotionError(
                f"MoLingo takes up to {self.config.max_tokens} tokens of {self.config.latent_dim} "
                f"channels, got {tuple(tokens.shape)}"
            )
        memory = text if isinstance(text, TextMemory) else self.adapt_text(text)
        memory = memory.expand(b)
        h = self.in_proj(tokens)  # (B, N, W)
        h = torch.where(token_mask[..., None], self.mask_token.to(h.dtype), h)
        h = h + self.pos_embed[:n]
        for i, block in enumerate(self.blocks):
            h = block(
                h,
                key_mask=token_valid,
                context=memory.tokens,
                context_mask=memory.mask,
                cond=memory.cond,
                context_kv=None if context_kv is None else context_kv[i],
            )
        return self.norm(h)

    def velocity(self, x_t: Tensor, t: Tensor | float, z: Tensor) -> Tensor:
        """Flow-head velocity for each token independently.

        Args:
            x_t: (B, N, C) or (M, C) noisy latents.
            t: flow time: a scalar, one per sample (B,), or one per token (x_t.shape[:-1]).
            z: conditions with x_t's leading shape and width W.
        Returns:
            v with x_t's shape.
        """
        lead = x_t.shape[:-1]
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype)
        if t.dim() == 1 and len(lead) == 2 and t.shape[0] == lead[0]:
            t = t[:, None]  # one time per sample -> broadcast over its tokens
        t = t.expand(lead).reshape(-1)
        v = self.head(x_t.reshape(-1, x_t.shape[-1]), t, z.reshape(-1, z.shape[-1]))
        return v.reshape(x_t.shape)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "CONDITIONINGS",
    "MoLingo",
    "MoLingoConfig",
    "TextMemory",
    "count_parameters",
]
