"""training/recipes/extract_models.py through its command line: the copy holds only the
models asked for, with the same weights and normaliser, and a bad name leaves nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.store.checkpoint import load_checkpoint, save_checkpoint
from engine.text_encoder import TextEncoderConfig

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "training" / "recipes" / "extract_models.py"


def save_tiny_checkpoint(folder: Path) -> Path:
    """An autoencoder and a generator, untrained, with a random normaliser."""
    torch.manual_seed(0)
    models = {"autoencoder": MotionAutoencoder(AutoencoderConfig.tiny()),
              "molingo": MoLingo(MoLingoConfig.tiny())}  # fmt: skip
    rng = np.random.default_rng(0)
    return save_checkpoint(folder, models, text_encoder=TextEncoderConfig(),
                           normalizer_mean=rng.normal(0, 0.1, 263),
                           normalizer_std=rng.uniform(0.05, 0.2, 263), fps=20,
                           license="random weights", attribution="kinetext tests")  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, check=False)  # fmt: skip


def test_the_copy_holds_only_the_autoencoder_with_its_weights(tmp_path):
    source = save_tiny_checkpoint(tmp_path / "full")
    done = _run(str(source), str(tmp_path / "sae"), "--model", "autoencoder")
    assert done.returncode == 0, done.stderr
    full, sae = load_checkpoint(source), load_checkpoint(tmp_path / "sae")
    assert set(sae.models) == {"autoencoder"}
    kept = sae.models["autoencoder"].state_dict()
    for name, tensor in full.models["autoencoder"].state_dict().items():
        assert torch.equal(tensor, kept[name]), name
    np.testing.assert_array_equal(full.mean, sae.mean)
    np.testing.assert_array_equal(full.std, sae.std)


def test_a_model_the_checkpoint_lacks_is_named_and_nothing_is_written(tmp_path):
    source = save_tiny_checkpoint(tmp_path / "full")
    done = _run(str(source), str(tmp_path / "out"), "--model", "evaluator")
    assert done.returncode != 0
    assert "no model ['evaluator']" in done.stderr and "autoencoder" in done.stderr
    assert not (tmp_path / "out").exists()
