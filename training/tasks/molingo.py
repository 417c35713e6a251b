"""MoLingo task: masked autoregressive training with a per-token rectified-flow loss (SPEC 3.2).

Per clip a random share r = cos(pi/2 * u), u ~ U(0, 1), of its real latent tokens is masked
(at least one; MAR's cosine schedule, the same one ``sample_mar`` reveals tokens by); the
transformer sees the rest and the mask token, and gives each token a condition z_i. The flow
head then learns, on masked tokens only, the velocity ``eps - m_i`` at
``x_t = (1 - t) m_i + t eps`` (t = 1 noise: ``engine.sampling.path``), t drawn per token.
``cond_drop`` of the prompts are replaced by the null prompt so CFG has an unconditional
model. Latents are the frozen autoencoder's means divided by the latent scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from engine.models.molingo import MoLingo, MoLingoConfig
from engine.sampling.path import interpolate, sample_time, target_velocity
from engine.text_encoder import TextEncoder
from training.tasks import TaskContext, TaskLoss, register_task
from training.tasks.generator import GeneratorTask
from training.tasks.latent import conditions_with_drop


def random_token_mask(valid: Tensor, generator: torch.Generator) -> Tensor:
    """Masked tokens (B, N) bool: per row ceil(cos(pi/2 u) * real tokens), at least one,
    chosen uniformly among the real tokens ``valid`` (B, N)."""
    b, n = valid.shape
    u = torch.rand(b, generator=generator, device=generator.device).to(valid.device)
    real = valid.sum(1)  # (B,)
    count = torch.ceil(torch.cos(math.pi / 2 * u) * real).clamp(min=1)  # (B,)
    count = torch.minimum(count, real)
    scores = torch.rand((b, n), generator=generator, device=generator.device).to(valid.device)
    scores = scores.masked_fill(~valid, math.inf)  # padding sorts last, never masked
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, N)
    return (rank < count[:, None]) & valid


@register_task
class MoLingoTask(GeneratorTask):
    """Trains ``{"molingo": MoLingo}`` on a frozen autoencoder's latents."""

    name = "molingo"
    model_name = "molingo"
    config_class = MoLingoConfig
    model_class = MoLingo

    def derived_config(self, context: TaskContext) -> dict[str, Any]:
        tokens = self.config.max_frames // self.autoencoder.downsample
        return {**super().derived_config(context), "max_tokens": tokens}

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: Any,
        text: TextEncoder,
        generator: torch.Generator,
    ) -> TaskLoss:
        model = models[self.model_name]
        z, valid = self.latents(batch)  # (B, N, C), (B, N)
        device = z.device
        masked = random_token_mask(valid, generator)  # (B, N)
        drop = (
            torch.rand(len(z), generator=generator, device=generator.device) < self.config.cond_drop
        )
        cond = conditions_with_drop(text, list(batch.captions), drop, device)
        condition = model(z, masked | ~valid, cond, token_valid=valid)  # (B, N, W)
        target = z[masked]  # (M, C)
        t = sample_time((len(target),), self.config.time_sampling, generator).to(device)
        eps = torch.randn(target.shape, generator=generator, device=generator.device).to(device)
        x_t = interpolate(target, eps, t)  # (M, C)
        v = model.velocity(x_t, t, condition[masked]).float()  # (M, C)
        loss = (v - target_velocity(target, eps)).pow(2).mean()
        logs = {"flow": loss.detach(), "mask_ratio": (masked.sum() / valid.sum()).detach()}
        return TaskLoss(loss, logs)
