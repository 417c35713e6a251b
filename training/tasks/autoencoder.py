"""Autoencoder task: AE / VAE / SAE losses of SPEC 3.1.

- features: L2 between reconstructed and input NORMALISED features (weight 1);
- joints: L2 between joint positions (metres) recovered by ``recover_from_ric`` from the
  DENORMALISED prediction and target (weight 1): errors in the root channels integrate
  over time, which feature L2 alone does not see;
- velocity: L2 between those joints' frame-to-frame differences (weight 10): penalises
  jitter;
- KL to N(0, I) of the VAE's posterior, averaged over valid latent elements (weight 1e-5);
- semantic alignment (SAE, weight 0.001 when on): per latent step, the labels overlapping
  its window (``batch.step_labels``) are encoded by the frozen text encoder (pooled),
  averaged into a class token kappa; loss = mean over labelled steps of
  1 - cos(semantic_head(mu_i), kappa_i), where a step whose kappa has cosine > tau with the
  previous step's kappa is left out so that long runs of one label do not over-align.

Every term is a mean over real frames (``batch.frame_mask``), so padding never counts.
A plain AE is ``model.variational = false``; the SAE is ``semantic_weight > 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import MotionError
from engine.models.autoencoder import (
    AutoencoderConfig,
    LatentDistribution,
    MotionAutoencoder,
    renormalize,
)
from engine.motion.features import recover_from_ric
from engine.text_encoder import TextEncoder
from training.finetune import source_config
from training.tasks import LATENT_UNIT, Task, TaskContext, TaskLoss, register_task
from training.tasks.latent import token_valid


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` (B, T) over entries where ``mask`` (B, T) is True."""
    weight = mask.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def reconstruction_losses(
    recon: Tensor, target: Tensor, frame_mask: Tensor, mean: Tensor, std: Tensor
) -> dict[str, Tensor]:
    """Feature, joint and velocity L2 of normalised features (B, F, 263), mask (B, F)."""
    features = masked_mean((recon - target).pow(2).mean(-1), frame_mask)
    joints_pred = recover_from_ric(recon * std + mean)  # (B, F, 22, 3) metres
    joints_true = recover_from_ric(target * std + mean)
    joints = masked_mean((joints_pred - joints_true).pow(2).mean((-1, -2)), frame_mask)
    vel_pred = joints_pred[:, 1:] - joints_pred[:, :-1]  # (B, F-1, 22, 3)
    vel_true = joints_true[:, 1:] - joints_true[:, :-1]
    both = frame_mask[:, 1:] & frame_mask[:, :-1]
    velocity = masked_mean((vel_pred - vel_true).pow(2).mean((-1, -2)), both)
    return {"features": features, "joints": joints, "velocity": velocity}


def class_tokens(
    step_labels: Sequence[Sequence[set[str]]],
    steps: int,
    text: TextEncoder,
    tau: float,
) -> tuple[list[int], list[int], Tensor | None]:
    """The labelled latent steps to align and their class tokens.

    Args:
        step_labels: per clip, per latent step, the label strings overlapping the step.
        steps: latent steps N of the batch (later entries are ignored).
        text: the frozen encoder; each distinct label is encoded once (pooled).
        tau: a step whose class token has cosine > tau with the previous step's is skipped.
    Returns:
        clip indices, step indices and kappa (K, D) on the encoder's device (None if K = 0).
    """
    labels = sorted({s for clip in step_labels for step in clip for s in step if s.strip()})
    if not labels:
        return [], [], None
    pooled = text.encode(labels).pooled  # (L, D)
    row = {label: i for i, label in enumerate(labels)}
    # Which labels each step has, built on the CPU, then everything else in a few batched
    # tensor operations (a loop over B x N steps on the GPU syncs once per step).
    hot = np.zeros((len(step_labels), steps, len(labels)), dtype=np.float32)  # (B, N, L)
    for b, clip in enumerate(step_labels):
        for n, step in enumerate(list(clip)[:steps]):
            for name in step:
                if name.strip():
                    hot[b, n, row[name]] = 1.0
    hot_t = torch.from_numpy(hot).to(device=pooled.device, dtype=pooled.dtype)
    counts = hot_t.sum(-1)  # (B, N)
    labelled = counts > 0
    kappa = (hot_t @ pooled) / counts.clamp(min=1)[..., None]  # (B, N, D) mean of the labels
    similar = F.cosine_similarity(kappa[:, 1:], kappa[:, :-1], dim=-1) > tau  # (B, N - 1)
    repeat = torch.zeros_like(labelled)
    repeat[:, 1:] = labelled[:, :-1] & similar  # same as the previous labelled step
    keep = labelled & ~repeat
    clips, indices = keep.nonzero(as_tuple=True)  # clip-major order, as the steps are read
    if len(clips) == 0:
        return [], [], None
    return clips.tolist(), indices.tolist(), kappa[keep]


@register_task
class AutoencoderTask(Task):
    """Trains ``{"autoencoder": MotionAutoencoder}``."""

    name = "autoencoder"

    def model_config(self, text_dim: int | None = None) -> AutoencoderConfig:
        """``AutoencoderConfig.<preset>()`` (or, fine-tuning, the source's architecture) with
        ``config.model`` applied."""
        overrides = dict(self.config.model)
        base = source_config(self.init, "autoencoder")
        if base is not None:
            return base.replace(**overrides)
        preset = getattr(AutoencoderConfig, self.config.preset, None)
        if preset is None:
            raise MotionError(f"AutoencoderConfig has no preset {self.config.preset!r}")
        if text_dim is not None:
            overrides.setdefault("text_dim", text_dim)
        return preset().replace(**overrides)

    @property
    def semantic(self) -> bool:
        return self.config.semantic_weight > 0

    @property
    def wants_step_labels(self) -> bool:
        return self.semantic

    def check(self) -> None:
        config = self.model_config()
        if self.config.options:
            raise MotionError(
                f"task autoencoder takes no options, got {sorted(self.config.options)}"
            )
        if 2**config.down_t != LATENT_UNIT:
            raise MotionError(
                f"model.down_t must be 2: the data loader crops in latent steps of "
                f"{LATENT_UNIT} frames"
            )

    def build_models(self, context: TaskContext) -> dict[str, nn.Module]:
        config = self.model_config(text_dim=context.text.dim)
        if self.semantic and config.text_dim != context.text.dim:
            raise MotionError(
                f"SAE: model.text_dim {config.text_dim} differs from the text encoder's "
                f"{context.text.dim}"
            )
        model = MotionAutoencoder(config)
        if not self.semantic:
            # Unused without the SAE loss: frozen, so DDP does not wait for its gradients.
            model.semantic_head.requires_grad_(False)
        return {"autoencoder": model}

    def initialise(self, models: Mapping[str, nn.Module], context: TaskContext) -> None:
        """The source's weights; with ``renormalize``, remapped from the source's Mean/Std to
        this data set's (``engine.models.autoencoder.renormalize``)."""
        super().initialise(models, context)
        if self.init is not None and self.config.renormalize:
            model = models["autoencoder"]
            old = (self.init.mean, self.init.std)
            moved = renormalize(model, old, (context.mean, context.std))
            model.load_state_dict(moved.state_dict())

    def prepare(self, models: Mapping[str, nn.Module], context: TaskContext) -> None:
        self.mean = torch.as_tensor(context.mean, dtype=torch.float32, device=context.device)
        self.std = torch.as_tensor(context.std, dtype=torch.float32, device=context.device)

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: Any,
        text: TextEncoder,
        generator: torch.Generator,
    ) -> TaskLoss:
        model = models["autoencoder"]
        cfg = self.config
        x = batch.features  # (B, F, 263) normalised
        dist = model.encode(x)
        z = dist.sample(generator)  # (B, N, C); the mean for a plain AE
        recon = model.decode(z).float()  # (B, F, 263)
        # Forward kinematics integrates the root over time: bf16 would cost centimetres.
        with torch.autocast(x.device.type, enabled=False):
            parts = reconstruction_losses(recon, x.float(), batch.frame_mask, self.mean, self.std)
        total = (
            cfg.feature_weight * parts["features"]
            + cfg.joint_weight * parts["joints"]
            + cfg.velocity_weight * parts["velocity"]
        )
        if dist.logvar is not None:
            valid = token_valid(batch.frame_mask, model.downsample)  # (B, N)
            full = LatentDistribution(dist.mean.float(), dist.logvar.float())
            parts["kl"] = masked_mean(full.kl().mean(-1), valid)
            total = total + cfg.kl_weight * parts["kl"]
        if self.semantic:
            parts["semantic"] = self.semantic_loss(model, dist.mean, batch, text)
            total = total + cfg.semantic_weight * parts["semantic"]
        logs = {k: v.detach() for k, v in parts.items()}
        return TaskLoss(total, logs)

    def semantic_loss(
        self, model: MotionAutoencoder, mu: Tensor, batch: Any, text: TextEncoder
    ) -> Tensor:
        """Mean 1 - cos(semantic_head(mu_i), kappa_i) over the kept labelled steps."""
        if batch.step_labels is None:
            raise MotionError(
                "the SAE (semantic_weight > 0) needs labels per latent step: a built data set "
                "with labels.json, or babel_root for HumanML3D"
            )
        head = model.semantic_head(mu).float()  # (B, N, D)
        clips, steps, kappa = class_tokens(
            batch.step_labels, mu.shape[1], text, self.config.semantic_tau
        )
        if kappa is None:
            return head.sum() * 0.0  # keeps every parameter in the graph (DDP)
        picked = head[torch.tensor(clips), torch.tensor(steps)]  # (K, D)
        cosine = F.cosine_similarity(picked, kappa.to(picked), dim=-1)
        return (1.0 - cosine).mean()
