"""Classifier-free guidance, MLA-Gen's SinkRatio and its sink-aware guidance (sink-ctrl).

Guidance combines a conditional and an unconditional velocity; the ODE solver never sees it.
``guided`` is the one place that runs a network on the doubled batch ``[x | x]`` and mixes
the two halves: every sampler (MLA-Gen's eager and graphed loops, MoLingo's MAR loop, the
MoLingo release's loop) wraps its network with it. The guidance itself is a ``Guide``
(``CFG``, ``SinkCtrl``, or anything with their ``reset`` and call), so a schedule is just
a different ``Guide`` per step (MoLingo's linear CFG schedule builds one ``CFG`` per AR
step). MoLingo's static CUDA loop is the one exception: its flow head folds CFG into its
linear output layer (``FlowHead.guided_velocity``), the same mix computed in one product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

Branches = Callable[[Tensor, Any], "tuple[Tensor, Tensor | None]"]
"""``network(x, t) -> (velocity, attention or None)`` over the rows it is given."""


class Guide(Protocol):
    """Mixes the conditional and unconditional velocities of one velocity call."""

    def reset(self) -> None: ...

    def __call__(self, v_cond: Tensor, v_uncond: Tensor, sink: Tensor | None = None) -> Tensor: ...


def classifier_free_guidance(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """``v_uncond + scale * (v_cond - v_uncond)``: scale 1 is the conditional prediction."""
    return v_uncond + scale * (v_cond - v_uncond)


def sink_ratio(
    attn: Tensor,
    text_mask: Tensor | None = None,
    *,
    k: int = 2,
    frame_mask: Tensor | None = None,
) -> Tensor:
    """SinkRatio (MLA-Gen eq. 7): how much of each frame's text attention its top-k tokens take.

    For every motion frame (and head) sum the ``k`` largest attention weights over text
    tokens, then average over frames and heads. 1 means every frame looks at (at most) k
    tokens; ``k / L`` means attention is spread evenly. The paper uses top-2 because the
    sink moves to the next token once the start token is masked.

    Args:
        attn: cross-attention weights ``(B, heads, N, L)`` (rows sum to 1 over real tokens).
        text_mask: ``(B, L)`` bool, True = real token; padded tokens never count.
        k: tokens per frame (clamped to L).
        frame_mask: ``(B, N)`` bool, True = real frame; padded frames are left out of the mean.

    Returns:
        ``(B,)`` SinkRatio per sample, in the dtype of ``attn``.
    """
    if text_mask is not None:
        attn = attn * text_mask[:, None, None, :].to(attn.dtype)
    top = attn.topk(min(k, attn.shape[-1]), dim=-1).values.sum(-1)  # (B, H, N)
    if frame_mask is None:
        return top.mean(dim=(1, 2))
    weight = frame_mask[:, None, :].to(top.dtype).expand_as(top)  # (B, H, N)
    return (top * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp_min(1.0)


@dataclass
class CFG:
    """Plain classifier-free guidance with the same call signature as ``SinkCtrl``."""

    scale: float = 4.0

    def reset(self) -> None:
        """Plain CFG keeps no state; here so samplers can treat every guidance alike."""

    def __call__(self, v_cond: Tensor, v_uncond: Tensor, sink: Tensor | None = None) -> Tensor:
        return classifier_free_guidance(v_cond, v_uncond, self.scale)


@dataclass
class SinkCtrl:
    """Sink-aware classifier-free guidance (MLA-Gen "sink-ctrl"); stateful, reset per sample.

    The paper's copy lost its equations, so this is reconstructed from its text (section
    3.4) and from the sliding-mode CFG ("SMC-CFG") of CFG-Ctrl (Wang et al. 2026,
    arXiv 2603.03281) that it says it builds on. At every solver step, per sample:

        e_t   = v_cond - v_uncond                          raw guidance (the error signal)
        s_t   = (e_t - ê_{t-1}) + lam * ê_{t-1}             control signal; ê_{-1} := e_t
        K_t   = amp * (base ** SinkRatio_t - 1)             adaptive gain, (B,)
        ê_t   = e_t - K_t * sign(s_t)                        regulated guidance (kept as state)
        v     = v_uncond + scale * ê_t                       velocity handed to the solver

    with lam = ``temporal`` (6), base = ``base`` (2), amp = ``amplification`` (0.18),
    scale = ``scale`` (4), and SinkRatio_t the conditional branch's SinkRatio at this step.

    Why this form:
    - The paper defines the control signal from the current guidance, the previous step's
      *regulated* guidance and a temporal coupling factor, and then "rectifies" the guidance
      with a switching term whose gain is the SinkRatio coefficient; that is exactly the
      SMC-CFG sliding surface ``s = (e_t - e_prev) + lambda * e_prev`` and switching control
      ``-K * sign(s)``, with SMC-CFG's fixed K replaced by a SinkRatio-driven one.
    - "Base factor" and "amplification factor" name an exponential in SinkRatio scaled by
      a constant. We subtract 1 so that the paper's two limits hold literally: the gain grows
      with SinkRatio (sink-heavy attention -> stronger correction) and vanishes as attention
      spreads out ("when SinkRatio is small, the guidance remains largely unchanged"). With
      SinkRatio in [0, 1] the gain lies in [0, amp * (base - 1)] = [0, 0.18], the same size
      as SMC-CFG's recommended switching gain (0.2).
    - The switching term points against the previous regulated guidance (s is dominated by
      lam * ê_{t-1}), i.e. it damps over-strong global guidance, matching the paper's
      ablation (sink-ctrl lowers FID, slightly lowers R-precision vs plain CFG).

    Limit: ``amplification = 0`` (or ``base = 1``) gives K = 0, so ê_t = e_t and the result is
    plain CFG at ``scale``, bit for bit.
    """

    scale: float = 4.0
    temporal: float = 6.0
    base: float = 2.0
    amplification: float = 0.18
    previous: Tensor | None = field(default=None, repr=False)

    def reset(self) -> None:
        """Forget the previous step's regulated guidance (call before each new sample)."""
        self.previous = None

    def gain(self, sink: Tensor) -> Tensor:
        """Adaptive switching gain ``K = amp * (base ** sink - 1)``; ``sink`` ``(B,)``."""
        return self.amplification * (torch.pow(self.base, sink) - 1.0)

    def __call__(self, v_cond: Tensor, v_uncond: Tensor, sink: Tensor | None = None) -> Tensor:
        """Guided velocity from ``v_cond``/``v_uncond`` ``(B, ...)`` and SinkRatio ``(B,)``."""
        if sink is None:
            raise ValueError("SinkCtrl needs the conditional branch's SinkRatio (B,)")
        e = v_cond - v_uncond
        previous = e if self.previous is None else self.previous
        s = (e - previous) + self.temporal * previous
        k = self.gain(sink.to(e.dtype)).reshape(-1, *([1] * (e.dim() - 1)))  # (B, 1, ...)
        regulated = e - k * torch.sign(s)
        self.previous = regulated.detach()
        return v_uncond + self.scale * regulated


def guided(
    network: Branches,
    guide: Guide | None,
    observe: Callable[[Tensor | None], Tensor | None] | None = None,
) -> Callable[[Tensor, Any], Tensor]:
    """The velocity ``v(x, t)`` of ``network`` under ``guide``.

    With a guide, ``network`` runs once on the doubled batch ``[x | x]`` at ``[t | t]``
    (conditional rows first: the network chose what each half is conditioned on) and
    ``guide(v_cond, v_uncond, sink)`` mixes the halves. Without one (no guidance, or CFG
    at scale 1, which is the conditional prediction), ``network`` runs on ``x`` alone.

    ``observe`` gets the attention maps of the conditional rows at every call and returns
    what ``guide`` reads as ``sink`` (MLA-Gen: their SinkRatio, which it also records).
    """

    def velocity(x: Tensor, t: Any) -> Tensor:
        if guide is None:
            v, attention = network(x, t)
            if observe is not None:
                observe(attention)
            return v
        out, attention = network(torch.cat([x, x]), torch.cat([t, t]))
        conditional = None if attention is None else attention[: x.shape[0]]
        sink = None if observe is None else observe(conditional)
        v_cond, v_uncond = out.chunk(2)
        return guide(v_cond, v_uncond, sink)

    return velocity
