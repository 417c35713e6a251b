"""The same training code on a GPU: bf16 autocast, fused AdamW, CUDA generators and RNG in
checkpoints, resuming. Skipped without CUDA (CI has none; run it on the GPU machine)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from training_fixtures import fake_text_encoder, tiny_overrides, write_dataset

from training.config import load_train_config
from training.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_every_task_trains_and_resumes_on_cuda_in_bf16(tmp_path):
    data = write_dataset(tmp_path / "data", clips=6, val=2)
    text = fake_text_encoder().to("cuda")
    common = {"device": "cuda", "bf16": True, "max_steps": 8, "accum_steps": 2}

    def run(name, stop=None, resume=False, **extra):
        config = load_train_config(None, tiny_overrides(tmp_path / name, data, **common, **extra))
        return train(config, text_encoder=text, stop_after=stop, resume=resume)

    sae = run("sae", semantic_weight=0.01)
    assert all(math.isfinite(v) for v in sae.losses)
    assert "rank0.cuda" in load_file(sae.checkpoint / "rng.safetensors")
    for task in ("molingo", "mlagen"):
        whole = run(task, task=task, autoencoder=str(tmp_path / "sae"))
        run(f"{task}-part", stop=4, task=task, autoencoder=str(tmp_path / "sae"))
        rest = run(f"{task}-part", resume=True, task=task, autoencoder=str(tmp_path / "sae"))
        assert all(math.isfinite(v) for v in whole.losses)
        # GPU kernels may reduce in another order from run to run: close, not bitwise.
        assert rest.losses == pytest.approx(whole.losses[4:], rel=1e-2)
