"""Base of the generator tasks (MoLingo, MLA-Gen): a frozen, rescaled autoencoder feeds them.

``build_models`` loads the autoencoder named by ``config.autoencoder`` (or, on resume, the
rescaled copy kept in the run folder); ``prepare`` measures the latent scale once, folds it
into the autoencoder and keeps the result in the run folder (rank 0). Subclasses set
``model_name`` / ``config_class`` / ``model_class`` and write ``loss``.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from engine.config import Config
from engine.errors import MotionError
from engine.generators import settings_class
from engine.models.autoencoder import MotionAutoencoder
from engine.motion.features import Normalizer
from training.finetune import source_config
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

log = logging.getLogger(__name__)


class GeneratorTask(Task):
    """Shared set-up of the generator tasks."""

    model_name: ClassVar[str] = ""
    config_class: ClassVar[type[Config]]
    model_class: ClassVar[type[nn.Module]]

    def model_config(self, **derived: Any) -> Config:
        """``<Config>.<preset>()``, then values derived from the data/autoencoder (text_dim,
        latent_dim...), then ``config.model`` (which wins). Fine-tuning starts from the
        source generator's architecture instead of the preset."""
        base = source_config(self.init, self.model_name)
        if base is not None:
            return base.replace(**self.config.model)
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
        if not (self.config.autoencoder or self.config.init_from):
            raise MotionError(f"task {self.name} needs autoencoder = a trained autoencoder run")
        if self.config.renormalize:
            raise MotionError(
                f"task {self.name}: renormalize is for autoencoders; a generator's data are "
                "normalised with its autoencoder's Mean/Std"
            )

    def source_autoencoder(self) -> tuple[MotionAutoencoder, np.ndarray, np.ndarray]:
        """The frozen autoencoder to train on and its Mean/Std: ``config.autoencoder``, else
        (fine-tuning) the ``init_from`` source's. Loaded once."""
        if getattr(self, "_source", None) is None:
            if self.config.autoencoder:
                self._source = load_autoencoder(self.config.autoencoder)
            elif self.init is not None:
                model = self.init.model("autoencoder")
                self._source = (model, self.init.mean, self.init.std)
            else:
                raise MotionError(f"task {self.name} needs autoencoder = an autoencoder run")
        return self._source

    def data_normalizer(self) -> Normalizer:
        """The autoencoder's own Mean/Std, whatever data set feeds it: its encoder reads
        features normalised as in its training (a new data set's statistics would shift
        every input). This is what lets the shipped autoencoder serve a studio's clips."""
        _, mean, std = self.source_autoencoder()
        return Normalizer(mean, std)

    def build_models(self, context: TaskContext) -> dict[str, nn.Module]:
        run_dir = Path(self.config.out_dir)
        self.latent_scale: float | None = None
        if context.resuming:
            self.autoencoder, info = load_frozen(run_dir)
            self.latent_scale = float(info["latent_scale"])
        else:
            model, mean, std = self.source_autoencoder()
            where = self.config.autoencoder or self.config.init_from
            check_same_normalizer(mean, std, context.mean, context.std, where)
            self.autoencoder = copy.deepcopy(model)
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
        if self.init is not None and self.model_name in self.init.models:
            scale = self._keep_source_scale(scale)
        self.latent_scale = scale
        self.autoencoder = freeze(rescale_latents(self.autoencoder, scale))
        if context.rank == 0:
            source = self.config.autoencoder or self.config.init_from
            info = {"latent_scale": scale, "source": str(source)}
            save_frozen(Path(self.config.out_dir), self.autoencoder, info)

    def _keep_source_scale(self, measured: float) -> float:
        """Fine-tuning a generator: the source's autoencoder already has its latent scale
        folded in (exported checkpoints and generator runs), so its latent space is kept
        (scale 1) unless ``latent_scale`` is set; ``measured`` far from 1 means the
        autoencoder is not the one the source generator learnt on."""
        if self.config.latent_scale:
            return self.config.latent_scale
        if not 0.5 <= measured <= 2.0:
            log.warning(
                "fine-tuning %s: the autoencoder's latents have RMS %.3g on this data (the "
                "source generator's had 1); is autoencoder the one it was trained with?",
                self.model_name, measured,
            )  # fmt: skip
        return 1.0

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
            **({"init_from": self.config.init_from} if self.config.init_from else {}),
        }
