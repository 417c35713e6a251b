"""A tiny random checkpoint with an autoencoder and both generators, for pipeline tests.

Imported by plain name (pytest's prepend import mode puts this folder on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
from engine.models.mlagen import MLAGen, MLAGenConfig
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.store.checkpoint import save_checkpoint
from engine.text_encoder import TextEncoderConfig

TEXT_DIM = 384  # the bundled MiniLM


def save_tiny_checkpoint(folder: Path) -> Path:
    """A checkpoint folder of untrained tiny models: an autoencoder and both generators."""
    torch.manual_seed(0)
    mlagen = MLAGen(MLAGenConfig.tiny().replace(text_dim=TEXT_DIM))
    torch.nn.init.normal_(mlagen.final.weight, std=0.1)  # untrained: non-zero velocity
    models = {
        "autoencoder": MotionAutoencoder(AutoencoderConfig.tiny().replace(text_dim=TEXT_DIM)),
        "molingo": MoLingo(MoLingoConfig.tiny().replace(text_dim=TEXT_DIM)),
        "mlagen": mlagen,
    }
    rng = np.random.default_rng(0)
    return save_checkpoint(
        folder,
        models,
        text_encoder=TextEncoderConfig(),
        normalizer_mean=rng.normal(0, 0.1, 263),
        normalizer_std=rng.uniform(0.05, 0.2, 263),
        fps=20,
        license="random weights, no training data",
        attribution="kinetext tests",
    )
