"""The published MoLingo network (He et al., CVPR 2026), laid out as its release is.

``engine.store.molingo_release`` converts the authors' HumanML3D checkpoints into this model; it
runs the same maths as their code, so the converted weights give the paper's generator:

- text: frozen T5 tokens (B, L, 1024) -> ``cond_proj`` (Linear to the width) -> a stack of
  pre-norm ``nn.TransformerEncoderLayer`` (ReLU, FFN 4 x width) -> a final LayerNorm;
- motion tokens: the mask token replaces a masked token IN LATENT SPACE (width of the
  autoencoder's latent), padding past the clip's end is zeroed, then ``z_proj`` (Linear to
  the width) and the fixed sinusoidal table are added;
- post-norm ``nn.TransformerDecoderLayer`` blocks (GELU, FFN ``mlp_ratio`` x width) with
  self-attention over the real tokens only and cross-attention to the adapted text; no
  final norm. Their output is the condition z of each token;
- the flow head (their ``SimpleMLPAdaLN``): ``input_proj`` of x_t, time embedding (the DiT
  sinusoid of 1000 t, cos then sin, and a two-layer MLP) plus ``cond_embed(z)`` as the
  AdaLN condition y, ``head_depth`` residual blocks ``x + gate * mlp(modulate(LN(x)))``
  whose LayerNorm HAS affine weights (eps 1e-6), then an affine-free LayerNorm, AdaLN
  and ``linear``.

Flow time. The release's rectified flow runs from noise at t = 0 to data at t = 1 with
``x_t = t * data + (1 - t) * noise`` and predicts ``data - noise``. The engine's convention
(``engine.sampling.ode``) is the reverse: noise at t = 1, data at t = 0, velocity
``noise - data``. ``velocity(x_t, t, z)`` answers in the engine's convention:
``velocity(x, t, z) = -head(x, 1 - t, z)``; ``release_velocity`` is the head itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..config import Config
from ..errors import MotionError
from .layers import TimestepEmbedder, modulate
from .molingo import TextMemory
from .registry import register_model

if TYPE_CHECKING:
    from ..text_encoder import TextEncoding

NULL_PROMPT = "This is a null prompt with no semantic meaning."
# The release's MoLingo sizes by opt.txt's model_size (their factories molingo_<size>).
MODEL_SIZES: dict[str, dict[str, float]] = {
    "tiny": {"width": 256, "depth": 4, "heads": 4, "head_depth": 2, "head_width": 256,
             "mlp_ratio": 2.0},
    "base": {"width": 768, "depth": 12, "heads": 12, "head_depth": 6, "head_width": 1024,
             "mlp_ratio": 4.0},
    "large": {"width": 1024, "depth": 16, "heads": 16, "head_depth": 8, "head_width": 1280,
              "mlp_ratio": 4.0},
    "huge": {"width": 1280, "depth": 20, "heads": 16, "head_depth": 12, "head_width": 1536,
             "mlp_ratio": 4.0},
}  # fmt: skip
GUIDANCE_SCHEDULES = ("linear", "constant")


@dataclass
class MoLingoReleaseConfig(Config):
    """Sizes and sampling conventions of a converted MoLingo release; saved in config.json."""

    latent_dim: int = 16  # the SAE's latent channels (263: 16, 272: 32)
    text_dim: int = 1024  # T5-Large width, read by cond_proj
    max_tokens: int = 49  # the release's token_size: max frames / SAE downsampling
    width: int = 1024
    depth: int = 16  # post-norm decoder layers
    heads: int = 16
    mlp_ratio: float = 4.0  # decoder FFN = width * mlp_ratio
    adapter_depth: int = 6  # pre-norm encoder layers over the text (FFN 4 x width)
    head_width: int = 1280
    head_depth: int = 8
    # Sampling conventions of the release (engine.sampling.mar_release): the AR loop runs
    # max_tokens // acc steps whatever the clip's length; CFG grows linearly in the step's
    # time from 1 to the scale ("linear") or stays at the scale ("constant").
    acc: int = 3
    guidance_schedule: str = "linear"

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise MotionError(f"MoLingoReleaseConfig: width {self.width} not divisible by heads")
        if self.guidance_schedule not in GUIDANCE_SCHEDULES:
            raise MotionError(
                f"MoLingoReleaseConfig.guidance_schedule {self.guidance_schedule!r} is not one "
                f"of {GUIDANCE_SCHEDULES}"
            )
        if self.acc < 1:
            raise MotionError(f"MoLingoReleaseConfig.acc must be >= 1, got {self.acc}")

    @property
    def ar_steps(self) -> int:
        """AR steps of the release's loop: ``max_tokens // acc`` (at least one)."""
        return max(1, self.max_tokens // self.acc)


def sinusoid_table(length: int, width: int) -> Tensor:
    """(length, width) fixed positional table: sin on even channels, cos on odd ones."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, width, 2).float() * (-torch.log(torch.tensor(1e4)) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)
    return table


class ReleaseTextAdapter(nn.Module):
    """Projected T5 tokens -> pre-norm encoder stack -> LayerNorm (the release's aligner)."""

    def __init__(self, cfg: MoLingoReleaseConfig):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            cfg.width, cfg.heads, 4 * cfg.width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.adapter_depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, tokens: Tensor, padding: Tensor) -> Tensor:
        """tokens (B, L, W), padding (B, L) bool True = pad -> (B, L, W)."""
        return self.norm(self.blocks(tokens, src_key_padding_mask=padding))


class ReleaseHeadBlock(nn.Module):
    """``x + gate * mlp(modulate(LN(x), shift, scale))``, modulation from SiLU(y)."""

    def __init__(self, width: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.in_ln(x), shift, scale))


class ReleaseFinalLayer(nn.Module):
    """Affine-free LayerNorm, AdaLN from SiLU(y), then the output Linear."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(y).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class ReleaseFlowHead(nn.Module):
    """(x (M, C), t (M,) in the release's time, z (M, W)) -> its velocity ``data - noise``."""

    def __init__(self, cfg: MoLingoReleaseConfig):
        super().__init__()
        w = cfg.head_width
        self.time_embed = TimestepEmbedder(w)
        self.cond_embed = nn.Linear(cfg.width, w)
        self.input_proj = nn.Linear(cfg.latent_dim, w)
        self.res_blocks = nn.ModuleList(ReleaseHeadBlock(w) for _ in range(cfg.head_depth))
        self.final_layer = ReleaseFinalLayer(w, cfg.latent_dim)

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        h = self.input_proj(x)
        y = self.time_embed(t) + self.cond_embed(z)
        for block in self.res_blocks:
            h = block(h, y)
        return self.final_layer(h, y)


@register_model(MoLingoReleaseConfig)
class MoLingoRelease(nn.Module):
    """The published MoLingo generator with the engine's MoLingo API (see the module doc)."""

    def __init__(self, cfg: MoLingoReleaseConfig):
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.cond_proj = nn.Linear(cfg.text_dim, w)
        self.text_adapter = ReleaseTextAdapter(cfg)
        self.mask_token = nn.Parameter(torch.zeros(cfg.latent_dim))
        self.z_proj = nn.Linear(cfg.latent_dim, w)
        self.register_buffer("positions", sinusoid_table(cfg.max_tokens, w))
        layer = nn.TransformerDecoderLayer(
            w, cfg.heads, int(cfg.mlp_ratio * w), dropout=0.0, activation="gelu", batch_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, cfg.depth)
        self.head = ReleaseFlowHead(cfg)

    def adapt_text(self, text: TextEncoding) -> TextMemory:
        """T5 encoding -> the adapted text memory the decoder reads (once per prompt batch)."""
        mask = text.mask.bool()
        tokens = self.cond_proj(text.tokens.to(self.cond_proj.weight.dtype))
        return TextMemory(tokens=self.text_adapter(tokens, ~mask), mask=mask)

    def forward(
        self,
        tokens: Tensor,
        token_mask: Tensor,
        text: TextEncoding | TextMemory,
        token_valid: Tensor | None = None,
    ) -> Tensor:
        """Condition vectors z (B, N, W) for every token.

        Args:
            tokens: (B, N, C) latents; masked positions are replaced by the mask token and
                padding (``token_valid`` False) by zeros, as the release does.
            token_mask: (B, N) bool, True = masked.
            text: a ``TextEncoding`` or an adapted ``TextMemory`` (batch B or 1).
            token_valid: (B, N) bool, True = real token (None = all real); padding is never
                a key of self-attention.
        """
        b, n, c = tokens.shape
        if n > self.config.max_tokens or c != self.config.latent_dim:
            raise MotionError(
                f"MoLingo takes up to {self.config.max_tokens} tokens of {self.config.latent_dim} "
                f"channels, got {tuple(tokens.shape)}"
            )
        memory = (text if isinstance(text, TextMemory) else self.adapt_text(text)).expand(b)
        if token_valid is None:
            token_valid = torch.ones(b, n, dtype=torch.bool, device=tokens.device)
        x = torch.where(token_valid[..., None], tokens, torch.zeros_like(tokens))
        x = torch.where(token_mask[..., None], self.mask_token.to(x.dtype), x)
        h = self.z_proj(x) + self.positions[:n]
        return self.decoder(
            h,
            memory.tokens,
            tgt_key_padding_mask=~token_valid,
            memory_key_padding_mask=~memory.mask,
        )

    def release_velocity(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """The head in the release's own time (noise 0 -> data 1): x (M, C), t (M,), z (M, W)."""
        return self.head(x, t, z)

    def velocity(self, x_t: Tensor, t: Tensor | float, z: Tensor) -> Tensor:
        """Engine-convention velocity ``noise - data`` at engine time t (noise 1 -> data 0):
        ``-release_velocity(x_t, 1 - t, z)``. Shapes as ``MoLingo.velocity``."""
        lead = x_t.shape[:-1]
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype)
        if t.dim() == 1 and len(lead) == 2 and t.shape[0] == lead[0]:
            t = t[:, None]
        t = t.expand(lead).reshape(-1)
        v = self.head(x_t.reshape(-1, x_t.shape[-1]), 1.0 - t, z.reshape(-1, z.shape[-1]))
        return (-v).reshape(x_t.shape)


__all__ = ["NULL_PROMPT", "MODEL_SIZES", "MoLingoRelease", "MoLingoReleaseConfig"]
