"""What both generator tasks share: the frozen autoencoder, its latent scale, text dropout.

Generators learn on the autoencoder's posterior MEANS divided by a scale s (the root mean
square of those latents over a few training batches), so that data and flow noise have
similar size. Rather than dividing in training and multiplying in the engine's decoder, the
scale is folded into a copy of the autoencoder (``rescale_latents``): its encoder returns
mean / s and its decoder reads z * s, exactly. That copy is kept in the run folder
(``frozen_autoencoder.*``) and is the autoencoder of the exported checkpoint, so
``engine.pipeline`` decodes generated latents unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from engine.errors import MotionError
from engine.models.autoencoder import (  # noqa: F401  (rescale_latents: re-exported)
    AutoencoderConfig,
    MotionAutoencoder,
    rescale_latents,
)
from engine.store.checkpoint import CONFIG_FILE, FORMAT_NAME, load_checkpoint
from engine.text_encoder import TextEncoder, TextEncoding

FROZEN_WEIGHTS = "frozen_autoencoder.safetensors"
FROZEN_INFO = "frozen_autoencoder.json"


def token_valid(frame_mask: Tensor, unit: int) -> Tensor:
    """(B, F) real frames -> (B, F / unit) latent steps whose whole window is real."""
    b, f = frame_mask.shape
    if f % unit:
        raise MotionError(f"batch has {f} frames, not a multiple of the latent step {unit}")
    return frame_mask.reshape(b, f // unit, unit).all(-1)


@torch.no_grad()
def encode_latents(model: MotionAutoencoder, features: Tensor) -> Tensor:
    """Posterior means (B, N, C) in float32 (what the generators learn to produce); the
    small frozen encoder runs outside bf16 autocast so the targets keep full precision."""
    with torch.autocast(features.device.type, enabled=False):
        return model.encode(features.float()).mean.float()


def measure_latent_scale(model: MotionAutoencoder, batches: Any, device: torch.device) -> float:
    """Root mean square of the valid latent values over ``batches`` (MotionBatch objects).

    The spread about zero, not about the mean: the generators' noise is centred on zero and
    the latents are not centred, so this makes E[(z / s)^2] = 1 exactly."""
    values = []
    for batch in batches:
        batch = batch.to(device)
        z = encode_latents(model, batch.features)  # (B, N, C)
        values.append(z[token_valid(batch.frame_mask, model.downsample)].double().cpu())
    if not values:
        raise MotionError("no training batch to measure the latent scale on")
    scale = float(torch.cat(values).pow(2).mean().sqrt())
    if not (scale > 0 and math.isfinite(scale)):
        raise MotionError(f"measured latent scale {scale} is unusable (is the data empty?)")
    return scale


def load_autoencoder(source: str | Path) -> tuple[MotionAutoencoder, np.ndarray, np.ndarray]:
    """The autoencoder of an exported engine checkpoint or of an autoencoder training run
    (its newest EMA weights), with the normaliser mean/std (263,) it was trained with."""
    folder = Path(source)
    if not str(source):
        raise MotionError(
            "generator tasks need `autoencoder` = a trained autoencoder run or checkpoint"
        )
    header = folder / CONFIG_FILE
    if (
        header.is_file()
        and json.loads(header.read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    ):
        ckpt = load_checkpoint(folder)
        if "autoencoder" not in ckpt.models:
            raise MotionError(f"{folder}: checkpoint has no 'autoencoder' model")
        return ckpt.models["autoencoder"], ckpt.mean, ckpt.std
    from training.export import load_run_models  # export imports the tasks

    run = load_run_models(folder)
    if "autoencoder" not in run.models:
        raise MotionError(f"{folder}: run has no 'autoencoder' model (task {run.config.task!r})")
    return run.models["autoencoder"], run.mean, run.std


NORMALIZER_TOLERANCE = 0.05
"""Largest Mean/Std difference, in units of the data set's Std, still taken as "the same data
set": the Bandai set built here and its pack-dataset copy (joints kept to the millimetre),
which trained the shipped checkpoint, differ by up to 0.02 Std; another data set differs by
far more (Bandai vs HumanML3D: whole Stds)."""


def check_same_normalizer(mean: np.ndarray, std: np.ndarray, context_mean, context_std, where: str):
    """The autoencoder must have been trained with the data set's own statistics (up to the
    rounding of a packed copy of it: ``NORMALIZER_TOLERANCE``)."""
    scale = np.maximum(np.asarray(context_std, dtype=np.float64), 1e-8)
    gap = max(
        float(np.max(np.abs(np.asarray(mean) - context_mean) / scale)),
        float(np.max(np.abs(np.asarray(std) - context_std) / scale)),
    )
    if not gap <= NORMALIZER_TOLERANCE:
        raise MotionError(
            f"{where}: the autoencoder was trained with other Mean/Std than this data set's "
            f"(they differ by up to {gap:.3g} Std, more than {NORMALIZER_TOLERANCE:g}); train "
            "the generator on the autoencoder's data set"
        )


def save_frozen(run_dir: Path, model: MotionAutoencoder, info: dict[str, Any]) -> None:
    """Keep the (rescaled) frozen autoencoder in the run: resume and export read it back."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, run_dir / FROZEN_WEIGHTS)
    record = {"config": model.config.to_dict(), **info}
    (run_dir / FROZEN_INFO).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def load_frozen(run_dir: Path) -> tuple[MotionAutoencoder, dict[str, Any]]:
    """What ``save_frozen`` wrote, or ``MotionError`` if the run has none."""
    info_path, weights = run_dir / FROZEN_INFO, run_dir / FROZEN_WEIGHTS
    if not (info_path.is_file() and weights.is_file()):
        raise MotionError(f"{run_dir}: no frozen autoencoder ({FROZEN_INFO}); was it trained?")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    model = MotionAutoencoder(AutoencoderConfig.from_dict(info.pop("config"), where=str(info_path)))
    model.load_state_dict(load_file(weights))
    return model.eval().requires_grad_(False), info


def conditions_with_drop(
    text: TextEncoder, captions: list[str], drop: Tensor, device: torch.device
) -> TextEncoding:
    """Encoded captions (B rows) with the rows where ``drop`` (B,) is True replaced by the
    null prompt (tokens, mask and pooled alike): the unconditional branch of CFG."""
    encoded = TextEncoding.cat([text.encode(captions), text.null(1)]).to(device)
    rows = torch.arange(len(captions), device=device)
    return encoded.index(torch.where(drop.to(device), len(captions), rows))
