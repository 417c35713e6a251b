"""Training task of the contrastive text-motion evaluator (``task = "evaluator"``).

Each batch is a set of (motion, caption) pairs; the loss is symmetric InfoNCE with duplicate
captions masked out (``training.evaluation.evaluator.info_nce_loss``). Under DDP every rank
contrasts its own share of the global batch (no gathering across ranks), so keep the
per-rank batch near the 32 the metrics use.

``config.preset`` picks ``EvaluatorConfig.tiny/small/base/large``; ``config.model`` overrides
its fields. ``text_dim`` follows the text encoder unless given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from engine.errors import MotionError
from engine.text_encoder import TextEncoder
from training.evaluation.evaluator import (
    MODEL_NAME,
    EvaluatorConfig,
    TextMotionEvaluator,
    info_nce_loss,
)
from training.tasks import Task, TaskContext, TaskLoss, register_task


@register_task
class EvaluatorTask(Task):
    """Trains ``{"evaluator": TextMotionEvaluator}`` on the data set's captions."""

    name = "evaluator"

    def model_config(self, text_dim: int | None = None) -> EvaluatorConfig:
        """The preset with ``config.model`` applied; raises ``MotionError`` on bad keys."""
        preset = getattr(EvaluatorConfig, self.config.preset)()
        overrides = dict(self.config.model)
        if text_dim is not None:
            overrides.setdefault("text_dim", text_dim)
        overrides.setdefault("max_frames", max(preset.max_frames, self.config.max_frames))
        return preset.replace(**overrides)

    def check(self) -> None:
        config = self.model_config()
        if self.config.options:
            raise MotionError(f"task evaluator takes no options, got {sorted(self.config.options)}")
        if config.max_frames < self.config.max_frames:
            raise MotionError(
                f"evaluator max_frames {config.max_frames} is shorter than the data's "
                f"max_frames {self.config.max_frames}"
            )

    def build_models(self, context: TaskContext) -> dict[str, nn.Module]:
        config = self.model_config(text_dim=context.text.dim)
        if config.text_dim != context.text.dim:
            raise MotionError(
                f"model.text_dim {config.text_dim} differs from the text encoder's "
                f"{context.text.dim}"
            )
        return {MODEL_NAME: TextMotionEvaluator(config)}

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: Any,
        text: TextEncoder,
        generator: torch.Generator,
    ) -> TaskLoss:
        """InfoNCE of one ``MotionBatch``: features (B, F, 263) normalised, frame_mask, captions."""
        encoded = text.encode(list(batch.captions)).to(batch.features.device)
        out = models[MODEL_NAME](batch.features, batch.frame_mask, encoded)
        loss, logs = info_nce_loss(out.motion, out.text, out.logit_scale, batch.captions)
        return TaskLoss(loss, logs)
