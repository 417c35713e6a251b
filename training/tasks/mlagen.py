"""MLA-Gen task: full-sequence flow matching over the latents (SPEC 3.3).

For each clip one flow time t (``time_sampling``: U(0, 1) by default, or logit-normal) and
noise eps give ``x_t = (1 - t) z + t eps`` (``engine.sampling.path``, the samplers' path); the
DiT predicts the velocity ``eps - z`` for all
real tokens (L2, padding left out through ``frame_mask`` as attention keys and in the mean).
``cond_drop`` of the prompts become the null prompt in both the global (pooled) and the local
(token) condition, with the weak local weight of the unconditional CFG branch
(``weak_local``). The sink-mask depends on t only and is applied inside the model, in
training as in sampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from engine.models.mlagen import MLAGen, MLAGenConfig
from engine.sampling.path import interpolate, sample_time, target_velocity
from engine.text_encoder import TextEncoder
from training.tasks import TaskLoss, register_task
from training.tasks.autoencoder import masked_mean
from training.tasks.generator import GeneratorTask
from training.tasks.latent import conditions_with_drop


@register_task
class MLAGenTask(GeneratorTask):
    """Trains ``{"mlagen": MLAGen}`` on a frozen autoencoder's latents."""

    name = "mlagen"
    model_name = "mlagen"
    config_class = MLAGenConfig
    model_class = MLAGen

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
        t = sample_time((len(z),), self.config.time_sampling, generator).to(device)  # (B,)
        eps = torch.randn(z.shape, generator=generator, device=generator.device).to(device)
        x_t = interpolate(z, eps, t)  # (B, N, C)
        draw = torch.rand(len(z), generator=generator, device=generator.device)
        drop = (draw < self.config.cond_drop).to(device)  # (B,)
        cond = conditions_with_drop(text, list(batch.captions), drop, device)
        v = model(x_t, t, cond, weak_local=drop, frame_mask=valid).float()  # (B, N, C)
        loss = masked_mean((v - target_velocity(z, eps)).pow(2).mean(-1), valid)
        return TaskLoss(loss, {"flow": loss.detach()})
