"""Transformer building blocks shared by the generators (MoLingo, MLA-Gen).

Kept apart from any one model so that both generators use the same attention maths and
the same AdaLN convention. Conventions:

- boolean masks are True where a key may be attended (``TextEncoding.mask`` is passed
  as is: True = real token);
- AdaLN modulation is ``x * (1 + scale) + shift`` with the projection zero-initialised, so a
  freshly built block starts as the plain (unconditioned) block;
- a condition is either one vector per sample ``(B, D)`` (broadcast over the sequence) or
  one per token ``(B, N, D)`` / ``(M, D)`` matching ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, scale: float = 1000.0, period: float = 1e4) -> Tensor:
    """Sinusoidal embedding of flow times ``t`` (any shape, values in [0, 1]) -> (*t.shape, dim).

    ``t`` is multiplied by ``scale`` first so that the small differences between flow times
    in [0, 1] reach the high frequencies (the DDPM/DiT embedding expects integer steps).
    """
    half = dim // 2
    exponent = -math.log(period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    angles = (t.float() * scale)[..., None] * exponent.exp()  # (..., half)
    emb = torch.cat([angles.cos(), angles.sin()], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb.to(t.dtype if t.is_floating_point() else torch.float32)


class TimestepEmbedder(nn.Module):
    """Flow time -> conditioning vector: sinusoid then a two-layer MLP."""

    def __init__(self, width: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width)
        )

    def forward(self, t: Tensor) -> Tensor:
        """t (...,) -> (..., width)."""
        emb = timestep_embedding(t, self.frequency_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """AdaLN: ``x * (1 + scale) + shift``; a (B, D) condition broadcasts over x (B, N, D).

    One ``addcmul`` instead of a multiply and an add: at large batch these passes over the
    activations are memory-bound, and each kernel saved is one read and write of them.
    """
    if shift.dim() == x.dim() - 1:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
    return torch.addcmul(shift, x, 1 + scale)


def add_gated(residual: Tensor, x: Tensor, g: Tensor) -> Tensor:
    """The gated residual of an AdaLN block, ``residual + x * g`` in one kernel; ``g``
    broadcasts like ``modulate``'s condition."""
    return torch.addcmul(residual, x, g.unsqueeze(1) if g.dim() == x.dim() - 1 else g)


class AdaLNModulation(nn.Module):
    """Condition (…, cond_dim) -> ``chunks`` tensors of (…, width) (shift, scale, gate, …).

    Zero-initialised so that every modulation starts as the identity (scale 0, shift 0,
    gate 0): a new block passes its input through unchanged, which keeps deep stacks stable.
    """

    def __init__(self, cond_dim: int, width: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.proj = nn.Linear(cond_dim, chunks * width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, cond: Tensor) -> tuple[Tensor, ...]:
        return self.project(F.silu(cond))

    def project(self, activated: Tensor) -> tuple[Tensor, ...]:
        """The chunks from ``silu(cond)``, for callers that share it between several
        modulations (MLA-Gen's blocks all read the same per-frame condition)."""
        return self.proj(activated).chunk(self.chunks, dim=-1)

    def split(self) -> SplitAdaLN:
        """The same modulation as one product per chunk (``SplitAdaLN``)."""
        return SplitAdaLN(self)


class SplitAdaLN(nn.Module):
    """``AdaLNModulation`` computed as one product per chunk, so each chunk (shift, scale,
    gate, ...) comes out contiguous: a fast form for samplers (``split_modulations``).

    Why: the chunks of one wide product are strided views, and every modulation and gate that
    reads them runs PyTorch's generic strided kernel, about twice as slow as the vectorised
    one on contiguous tensors (profile at batch 256). The products read the condition once
    per chunk instead of once, which costs less than the strided kernels did.
    """

    def __init__(self, ada: AdaLNModulation):
        super().__init__()
        weights = ada.proj.weight.detach().chunk(ada.chunks, dim=0)
        biases = ada.proj.bias.detach().chunk(ada.chunks, dim=0)
        pairs = zip(weights, biases, strict=True)
        self.parts = nn.ModuleList(frozen_linear(w, b) for w, b in pairs)

    def forward(self, cond: Tensor) -> tuple[Tensor, ...]:
        return self.project(F.silu(cond))

    def project(self, activated: Tensor) -> tuple[Tensor, ...]:
        return tuple(part(activated) for part in self.parts)


def split_modulations(model: nn.Module) -> None:
    """Replace every ``AdaLNModulation`` of ``model`` by its ``SplitAdaLN``, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, AdaLNModulation):
                setattr(parent, name, child.split())


class MLP(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Linear."""

    def __init__(self, width: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, out or width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SwiGLU(nn.Module):
    """Gated feed-forward ``W2 (silu(W1 x) * W3 x)`` (LLaMA / ACMDM style)."""

    def __init__(self, width: int, hidden: int, out: int | None = None):
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=False)
        self.w3 = nn.Linear(width, hidden, bias=False)
        self.w2 = nn.Linear(hidden, out or width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))

    def pad_hidden(self, multiple: int) -> None:
        """Zero-pad the hidden width to a multiple of ``multiple``, in place: a fast form.

        Why: an odd hidden width (the ``small`` MLA-Gen's 2/3 x 4 x 224 = 597) sends the
        three products to unaligned (align1) GEMM kernels: 37 of 160 ms of GPU time at batch
        256 (docs/benchmarks.md). The padded rows of ``w1`` and ``w3`` give
        ``silu(0) * 0 = 0`` and ``w2``'s padded columns multiply those zeros, so the layer
        computes the same function.
        """
        extra = -self.w1.out_features % multiple
        if extra:
            self.w1 = _padded(self.w1, rows=extra)
            self.w3 = _padded(self.w3, rows=extra)
            self.w2 = _padded(self.w2, columns=extra)


def pad_feedforward(model: nn.Module, multiple: int) -> None:
    """``SwiGLU.pad_hidden(multiple)`` for every SwiGLU of ``model``, in place."""
    for module in model.modules():
        if isinstance(module, SwiGLU):
            module.pad_hidden(multiple)


def frozen_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` holding copies of ``weight`` (out, in) and ``bias``, without grads."""
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                    device=weight.device, dtype=weight.dtype)  # fmt: skip
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out.requires_grad_(False)


def _padded(linear: nn.Linear, rows: int = 0, columns: int = 0) -> nn.Linear:
    """``linear`` with ``rows`` more outputs and ``columns`` more inputs, all zero weights."""
    weight = F.pad(linear.weight.detach(), (0, columns, 0, rows))
    bias = None if linear.bias is None else F.pad(linear.bias.detach(), (0, rows))
    return frozen_linear(weight, bias)


def _attend_anything(mask: Tensor) -> Tensor:
    """Let a query row with no allowed key see every key instead of producing NaN.

    Happens only for degenerate input (an empty prompt padded away entirely); the row's
    result is then the mean over its keys, which is finite and harmless.
    """
    empty = ~mask.any(dim=-1, keepdim=True)
    return mask | empty


@dataclass
class ContextKV:
    """A fixed context's keys and values (B, H, L, Dh) for one attention layer, with its
    padding as an additive mask ``bias`` (B, 1, 1, L) (0 = attend, -inf = padding; None =
    no padding). Computed once (``Attention.context_kv``) when the same text is attended at
    every sampling step."""

    k: Tensor
    v: Tensor
    bias: Tensor | None = None


class Attention(nn.Module):
    """Multi-head attention (self or cross) over ``scaled_dot_product_attention``.

    Args:
        width: query / output width.
        heads: number of heads (``width`` must divide by it).
        context_dim: key/value input width for cross-attention (default ``width``).
        qk_norm: RMSNorm on each head's queries and keys (stabilises large models).
    """

    def __init__(
        self, width: int, heads: int, context_dim: int | None = None, qk_norm: bool = False
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = width // heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_dim or width, 2 * width)
        self.out = nn.Linear(width, width)
        self.q_norm = nn.RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_dim) if qk_norm else nn.Identity()

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)

    def _keys_values(self, context: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(context).chunk(2, dim=-1)
        return self.k_norm(self._split(k)), self._split(v)

    def context_kv(self, context: Tensor, key_mask: Tensor | None = None) -> ContextKV:
        """Keys, values and padding bias of ``context`` (B, L, Dc) with ``key_mask`` (B, L).

        For a caller attending to the same context many times (MoLingo's text across AR
        steps): pass the result back as ``forward(..., kv=...)`` instead of the context.
        """
        k, v = self._keys_values(context)
        if key_mask is None:
            return ContextKV(k, v)
        allowed = _attend_anything(key_mask[:, None, None, :].bool())  # (B, 1, 1, L)
        bias = torch.zeros(allowed.shape, dtype=k.dtype, device=k.device)
        return ContextKV(k, v, bias.masked_fill(~allowed, float("-inf")))

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        need_weights: bool = False,
        kv: ContextKV | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``x`` (B, N, W) to ``context`` (B, L, Dc) (``x`` itself when None).

        Args:
            key_mask: (B, L) bool, True = key may be attended (padding False).
            attn_mask: bool broadcastable to (B, H, N, L), True = allowed; combined with
                ``key_mask`` (e.g. MLA-Gen's sink mask).
            need_weights: also return the attention map (B, H, N, L); computed explicitly
                (no fused kernel), so use it only where the map is needed.
            kv: precomputed ``context_kv(context, key_mask)``: ``context`` and ``key_mask``
                are then not read (``attn_mask`` is not supported with it).
        Returns:
            (B, N, W), or ``(out, weights)`` when ``need_weights``.
        """
        q = self.q_norm(self._split(self.q(x)))
        if kv is not None:
            return self._attend_context(x, q, kv, need_weights)
        k, v = self._keys_values(x if context is None else context)
        mask = None
        if key_mask is not None:
            mask = key_mask[:, None, None, :].bool()  # (B, 1, 1, L)
        if attn_mask is not None:
            mask = attn_mask.bool() if mask is None else mask & attn_mask.bool()
        if mask is not None:
            mask = _attend_anything(mask.expand(q.shape[0], -1, q.shape[2], -1))
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, N, L)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.out(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))  # (B, N, W)
        return (out, weights) if need_weights else out

    def _attend_context(
        self, x: Tensor, q: Tensor, kv: ContextKV, need_weights: bool
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``forward`` with precomputed keys/values: the padding bias is added, not rebuilt."""
        bias = None if kv.bias is None else kv.bias.to(q.dtype)
        if need_weights:
            scores = q @ kv.k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, N, L)
            weights = (scores if bias is None else scores + bias).softmax(dim=-1)
            out = weights @ kv.v
        else:
            out = F.scaled_dot_product_attention(q, kv.k, kv.v, attn_mask=bias)
        out = self.out(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))  # (B, N, W)
        return (out, weights) if need_weights else out


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, MLP, optional AdaLN.

    Args:
        width, heads, mlp_hidden: sizes.
        context_dim: when given, a cross-attention sub-layer (queries = ``x``, keys/values =
            ``context``) sits between self-attention and the MLP.
        cond_dim: when given, the self-attention and MLP sub-layers are AdaLN-modulated
            (shift, scale, gate each) by a condition vector of this width.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_hidden: int,
        context_dim: int | None = None,
        cond_dim: int | None = None,
    ):
        super().__init__()
        affine = cond_dim is None  # AdaLN supplies its own scale/shift
        self.norm1 = nn.LayerNorm(width, elementwise_affine=affine, eps=1e-6)
        self.attn = Attention(width, heads)
        self.cross = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(width, eps=1e-6)
            self.cross = Attention(width, heads, context_dim=context_dim)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=affine, eps=1e-6)
        self.mlp = MLP(width, mlp_hidden)
        self.ada = AdaLNModulation(cond_dim, width, 6) if cond_dim is not None else None

    def forward(
        self,
        x: Tensor,
        key_mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        cond: Tensor | None = None,
        context_kv: ContextKV | None = None,
    ) -> Tensor:
        """x (B, N, W); key_mask (B, N) for self-attention; context (B, L, Dc) with
        context_mask (B, L), or instead ``context_kv`` =
        ``self.cross.context_kv(context, context_mask)``; cond (B, cond_dim) when built
        with AdaLN -> (B, N, W)."""
        if self.ada is not None:
            if cond is None:
                raise ValueError("this block is AdaLN-conditioned: pass cond")
            sh1, sc1, g1, sh2, sc2, g2 = self.ada(cond)
            x = add_gated(x, self.attn(modulate(self.norm1(x), sh1, sc1), key_mask=key_mask), g1)
        else:
            x = x + self.attn(self.norm1(x), key_mask=key_mask)
        if self.cross is not None:
            if context is None and context_kv is None:
                raise ValueError("this block has cross-attention: pass context")
            if context_kv is not None:
                x = x + self.cross(self.norm_cross(x), kv=context_kv)
            else:
                x = x + self.cross(self.norm_cross(x), context, key_mask=context_mask)
        if self.ada is not None:
            x = add_gated(x, self.mlp(modulate(self.norm2(x), sh2, sc2)), g2)
        else:
            x = x + self.mlp(self.norm2(x))
        return x
