"""Optimiser pieces: AdamW parameter groups, the warm-up + cosine schedule, and weight EMA.

The schedule is a pure function of the optimizer step, so resuming at step k restores it
exactly from k alone (nothing to pickle).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn


def parameter_groups(
    models: Iterable[nn.Module], weight_decay: float
) -> list[dict[str, list[nn.Parameter] | float]]:
    """Two AdamW groups: matrices (ndim >= 2: linear/conv weights, embedding tables) decay,
    vectors (biases, norm gains, the mask token) do not: decaying those only shrinks scales
    the network needs. Frozen parameters are left out."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for model in models:
        for param in model.parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    models: Iterable[nn.Module],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    device: torch.device,
) -> torch.optim.AdamW:
    """AdamW over ``models``' trainable parameters (fused kernels on CUDA)."""
    fused = device.type == "cuda"
    groups = parameter_groups(models, weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=fused)


def lr_at(step: int, peak: float, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Linear warm-up to ``peak`` over ``warmup`` steps ((step + 1) / warmup, so the first
    step already moves), then a half cosine down to ``peak * min_ratio`` at ``total``.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class EMA:
    """Exponential moving average of models' weights (the copies used for export).

    ``decay`` is ramped as ``min(decay, (1 + n) / (10 + n))`` over the ``n`` updates so far:
    early on the average follows the fast-changing weights instead of staying near the random
    initialisation (without it a 0.9999 EMA is useless for the first ~10k steps).
    Integer buffers are copied, not averaged.
    """

    def __init__(self, models: Mapping[str, nn.Module], decay: float):
        self.decay = decay
        self.updates = 0
        self.models = {name: _frozen_copy(model) for name, model in models.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, models: Mapping[str, nn.Module]) -> None:
        decay = self.current_decay()
        averages, values = [], []
        for name, model in models.items():
            shadow = self.models[name].state_dict()
            for key, value in model.state_dict().items():
                if shadow[key].is_floating_point():
                    averages.append(shadow[key])
                    values.append(value.detach().to(shadow[key].dtype))
                else:
                    shadow[key].copy_(value)
        if averages:  # one fused kernel per tensor group instead of one launch per tensor
            torch._foreach_lerp_(averages, values, 1.0 - decay)
        self.updates += 1

    def state_tensors(self) -> dict[str, Tensor]:
        """``<model>.<parameter>`` -> averaged tensor, for safetensors."""
        return {
            f"{name}.{key}": value
            for name, model in self.models.items()
            for key, value in model.state_dict().items()
        }

    def load_state_tensors(self, tensors: Mapping[str, Tensor], updates: int) -> None:
        for name, model in self.models.items():
            prefix = f"{name}."
            model.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        self.updates = updates


def _frozen_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval().requires_grad_(False)
