"""Base of the generator tasks (MoLingo, MLA-Gen): a frozen, rescaled autoencoder feeds them.

``build_models`` loads the autoencoder named by ``config.autoencoder`` (or, on resume, the
rescaled copy kept in the run folder); ``prepare`` measures the latent scale once, folds it
into the autoencoder and keeps the result in the run folder (rank 0). Subclasses set
``model_name`` / ``config_class`` / ``model_class`` and write ``loss``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from engine.config import Config
from engine.errors import MotionError
from engine.generators import settings_class
from training.tasks import Task, TaskContext, freeze
from training.tasks.latent import (
    check_same_normalizer,
    encode_latents,
    load_autoencoder,
    load_frozen,
    measure_latent_scale,
    rescale_latents,
    save_frozen,
    token_valid,
)


class GeneratorTask(Task):
    """Shared set-up of the generator tasks."""

    model_name: ClassVar[str] = ""
    config_class: ClassVar[type[Config]]
    model_class: ClassVar[type[nn.Module]]

    def model_config(self, **derived: Any) -> Config:
        """``<Config>.<preset>()``, then values derived from the data/autoencoder (text_dim,
        latent_dim...), then ``config.model`` (which wins)."""
        preset = getattr(self.config_class, self.config.preset, None)
        if preset is None:
            raise MotionError(f"{self.config_class.__name__} has no preset {self.config.preset!r}")
        return preset().replace(**{**derived, **self.config.model})

    def derived_config(self, context: TaskContext) -> dict[str, Any]:
        """Model settings that follow the text encoder and the autoencoder."""
        return {"text_dim": context.text.dim, "latent_dim": self.autoencoder.config.latent_dim}

    def check(self) -> None:
        self.model_config()
        if self.config.options:
            raise MotionError(
                f"task {self.name} takes no options, got {sorted(self.config.options)}"
            )
        if not self.config.autoencoder:
            raise MotionError(f"task {self.name} needs autoencoder = a trained autoencoder run")

    def build_models(self, context: TaskContext) -> dict[str, nn.Module]:
        run_dir = Path(self.config.out_dir)
        self.latent_scale: float | None = None
        if context.resuming:
            self.autoencoder, info = load_frozen(run_dir)
            self.latent_scale = float(info["latent_scale"])
        else:
            model, mean, std = load_autoencoder(self.config.autoencoder)
            check_same_normalizer(mean, std, context.mean, context.std, self.config.autoencoder)
            self.autoencoder = model
        freeze(self.autoencoder.to(context.device))
        config = self.model_config(**self.derived_config(context))
        for key in ("text_dim", "latent_dim"):
            if getattr(config, key) != self.derived_config(context)[key]:
                raise MotionError(f"model.{key} must match the text encoder / autoencoder")
        return {self.model_name: self.model_class(config)}

    def prepare(self, models: Mapping[str, nn.Module], context: TaskContext) -> None:
        if self.latent_scale is not None:  # resumed: the run folder's copy is already scaled
            return
        scale = self.config.latent_scale or self._measure(context)
        self.latent_scale = scale
        self.autoencoder = freeze(rescale_latents(self.autoencoder, scale))
        if context.rank == 0:
            info = {"latent_scale": scale, "source": str(self.config.autoencoder)}
            save_frozen(Path(self.config.out_dir), self.autoencoder, info)

    def _measure(self, context: TaskContext) -> float:
        """The latents' root mean square over the first training batches (rank 0's value is
        broadcast, so every rank agrees to the bit)."""
        from training.data import make_loader

        size = min(self.config.batch_size // self.config.accum_steps, len(context.dataset))
        loader = make_loader(context.dataset, size, shuffle=True, seed=self.config.seed)
        batches = itertools.islice(loader, self.config.latent_scale_batches)
        value = torch.tensor(measure_latent_scale(self.autoencoder, batches, context.device))
        if context.world_size > 1 and dist.is_initialized():
            value = value.to(context.device)
            dist.broadcast(value, src=0)
        return float(value)

    def latents(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Scaled latents (B, N, C) of the batch and which of them are real (B, N)."""
        z = encode_latents(self.autoencoder, batch.features)
        return z, token_valid(batch.frame_mask, self.autoencoder.downsample)

    def load_run(self, run_dir: Path) -> None:
        self.autoencoder, info = load_frozen(Path(run_dir))
        self.latent_scale = float(info["latent_scale"])

    def export_models(self, models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        return {"autoencoder": self.autoencoder, self.model_name: models[self.model_name]}

    def export_metadata(self) -> dict[str, Any]:
        return {
            "generator": self.model_name,
            "sampling": settings_class(self.model_name)().record(),
            "latent_scale": self.latent_scale,
            "max_frames": self.config.max_frames,
        }
