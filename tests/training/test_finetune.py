"""Fine-tuning the shipped models on a studio's own clips (``init_from``), through the CLI.

The data set is the synthetic HumanML3D-layout fixture (other motions and other Mean/Std
than the shipped Bandai data); the shipped checkpoint and the bundled MiniLM are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_fixtures import ATTRIBUTION, LICENCE, write_dataset

from engine.cli import main as engine_main
from engine.errors import MotionError
from engine.motion.features import Normalizer
from engine.pipeline import DEFAULT_CHECKPOINT
from engine.store.checkpoint import load_checkpoint
from engine.text_encoder import TextEncoderConfig, load_text_encoder
from training.cli import main
from training.config import load_train_config
from training.data import collate_items
from training.distributed import DistInfo
from training.export import load_run_models
from training.run_setup import setup_task

CPU = DistInfo(0, 1, 0, torch.device("cpu"), None)
CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
pytestmark = pytest.mark.skipif(
    not (DEFAULT_CHECKPOINT / "config.json").is_file(), reason="no shipped checkpoint"
)


def short_run(out: Path, data: Path, steps: int, **extra) -> list[str]:
    """Overrides that shrink a fine-tune config to a few CPU steps on the fixture."""
    settings = {
        "data_root": str(data), "out_dir": str(out), "batch_size": 8, "max_steps": steps,
        "warmup_steps": 1, "lr": 2e-4, "min_frames": 40, "max_frames": 64, "mirror": False,
        "progress": False, "device": "cpu", "log_every": 1, "ema_decay": 0.5,
    }  # fmt: skip
    settings.update(extra)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()]


@pytest.fixture(scope="module")
def text():
    return load_text_encoder(TextEncoderConfig())


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """12 training + 2 validation clips of 64 frames (other motions than the shipped data)."""
    return write_dataset(tmp_path_factory.mktemp("studio"), clips=12, frames=64, val=2)


def fixed_loss(config, text, run: Path | None = None) -> float:
    """The task's loss on the first 8 training items (6 fixed noise draws) for the initial
    weights (``run`` None: the shipped ones) or the run's newest raw weights."""
    task, models, context = setup_task(config, CPU, text, resuming=run is not None)
    if run is not None:
        trained = load_run_models(run, ema=False).models
        for name, model in models.items():
            model.load_state_dict(trained[name].state_dict())
    batch = collate_items([context.dataset[(i, 0)] for i in range(8)])
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return sum(float(task.loss(models, batch, text, generator).loss) for _ in range(6)) / 6


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory, studio, text):
    """The shipped SAE fine-tuned 8 steps through ``python -m training train``."""
    out = tmp_path_factory.mktemp("runs") / "sae"
    argv = short_run(out, studio, 8)
    config = load_train_config(CONFIGS / "finetune-sae.toml", argv)
    before = fixed_loss(config, text)
    assert main(["train", str(CONFIGS / "finetune-sae.toml"), *argv]) == 0
    return out, config, before


def test_the_shipped_autoencoder_fine_tunes_on_other_data_and_keeps_its_normaliser(
    sae_run, studio, text
):
    out, config, before = sae_run
    after = fixed_loss(config, text, out)
    assert after < 0.9 * before, (before, after)
    shipped = load_checkpoint(DEFAULT_CHECKPOINT)
    np.testing.assert_array_equal(np.load(out / "Mean.npy"), shipped.mean)
    np.testing.assert_array_equal(np.load(out / "Std.npy"), shipped.std)
    own = Normalizer.load(studio)
    assert np.abs(own.mean - shipped.mean).max() > 0.1  # the data set's own stats differ


def test_shipped_generators_fine_tune_on_the_fine_tuned_autoencoder_and_export_generates(
    sae_run, studio, text, tmp_path
):
    sae, _, _ = sae_run
    runs = []
    for name in ("mlagen", "molingo"):
        out = tmp_path / name
        argv = short_run(out, studio, 6, autoencoder=str(sae))
        config = load_train_config(CONFIGS / f"finetune-{name}.toml", argv)
        before = fixed_loss(config, text)
        assert main(["train", str(CONFIGS / f"finetune-{name}.toml"), *argv]) == 0
        after = fixed_loss(config, text, out)
        assert after < before, (name, before, after)
        frozen = json.loads((out / "frozen_autoencoder.json").read_text())
        assert frozen["latent_scale"] == 1.0  # the shipped latent space is kept
        runs.append(str(out))
    checkpoint = tmp_path / "studio-checkpoint"
    assert main(["export", *runs, str(checkpoint)]) == 0
    ckpt = load_checkpoint(checkpoint)
    assert set(ckpt.models) == {"autoencoder", "mlagen", "molingo"}
    shipped = load_checkpoint(DEFAULT_CHECKPOINT)
    np.testing.assert_array_equal(ckpt.mean, shipped.mean)
    # the weights still derive from the shipped checkpoint's data: both terms travel
    assert ckpt.attribution.startswith(ATTRIBUTION) and shipped.attribution in ckpt.attribution
    assert ckpt.license.startswith(LICENCE) and shipped.license in ckpt.license
    for name in ("mlagen", "molingo"):
        clip = tmp_path / f"{name}.npy"
        argv = ["generate", "a person walks forward", "--checkpoint", str(checkpoint),
                "--generator", name, "--seconds", "2", "--steps", "2", "--device", "cpu",
                "--out", str(clip)]  # fmt: skip
        assert engine_main(argv) == 0
        joints = np.load(clip)
        assert joints.shape == (1, 40, 22, 3) and np.isfinite(joints).all()


def test_a_generator_takes_the_shipped_autoencoder_when_none_is_named(studio, text, tmp_path):
    argv = short_run(tmp_path / "mlagen", studio, 1, autoencoder="")
    config = load_train_config(CONFIGS / "finetune-mlagen.toml", argv)
    task, models, context = setup_task(config, CPU, text)
    shipped = load_checkpoint(DEFAULT_CHECKPOINT)
    np.testing.assert_array_equal(context.mean, shipped.mean)  # not the data set's
    for key, value in shipped.models["mlagen"].state_dict().items():
        torch.testing.assert_close(models["mlagen"].state_dict()[key], value.float())


def test_renormalize_uses_the_data_sets_statistics_and_decodes_the_same_motion(
    studio, text, tmp_path
):
    argv = short_run(tmp_path / "renorm", studio, 1, renormalize=True)
    config = load_train_config(CONFIGS / "finetune-sae.toml", argv)
    task, models, context = setup_task(config, CPU, text)
    own, shipped = Normalizer.load(studio), load_checkpoint(DEFAULT_CHECKPOINT)
    np.testing.assert_array_equal(context.mean, own.mean)
    np.testing.assert_array_equal(context.std, own.std)
    z = torch.randn(2, 12, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        new = own.denormalize(models["autoencoder"].decode(z))
        old = Normalizer(shipped.mean, shipped.std).denormalize(
            shipped.models["autoencoder"].float().decode(z)
        )
    torch.testing.assert_close(new, old, atol=1e-4, rtol=1e-4)  # same features, new units


def test_fine_tuning_errors_name_the_fix(studio, text, tmp_path):
    argv = short_run(tmp_path / "x", studio, 1, init_from=str(tmp_path / "nowhere"))
    config = load_train_config(CONFIGS / "finetune-sae.toml", argv)
    with pytest.raises(MotionError, match="init_from .*nowhere: no such folder"):
        setup_task(config, CPU, text)
    argv = short_run(tmp_path / "y", studio, 1, **{"text_encoder.max_tokens": 32})
    config = load_train_config(CONFIGS / "finetune-sae.toml", argv)
    with pytest.raises(MotionError, match="text_encoder.max_tokens=64"):
        setup_task(config, CPU, text)
    with pytest.raises(MotionError, match="renormalize needs init_from"):
        load_train_config(None, ["renormalize=true"])
