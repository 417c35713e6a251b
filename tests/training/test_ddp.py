"""Two DDP processes (gloo on the CPU, NCCL on two GPUs) make the same update as one process
on the same global batch: the loader hands each rank its share and DDP averages gradients."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from training_fixtures import fake_text_encoder, tiny_overrides, write_dataset

from training.config import load_train_config
from training.distributed import shutdown
from training.trainer import train

# A plain (deterministic) autoencoder on equal-length clips: every loss term is a mean over
# equally many frames per rank, so the mean of the ranks' gradients is the global gradient.
SETTINGS = {"model.variational": False, "batch_size": 8, "accum_steps": 2, "max_steps": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, overrides: list[str]) -> None:
    """One DDP rank, as torchrun would start it (the environment names its place)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
    try:
        train(load_train_config(None, overrides), text_encoder=fake_text_encoder())
    finally:
        shutdown()


@pytest.mark.parametrize(
    "device, tolerance",
    [
        ("cpu", 1e-4),  # gloo
        pytest.param(
            "cuda", 1e-2,  # NCCL, TF32 matmuls: only ~1e-3 relative agreement
            marks=pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs"),
        ),
    ],
)  # fmt: skip
def test_two_ranks_match_one_process(tmp_path, device, tolerance):
    data = write_dataset(tmp_path / "data", clips=8, val=2)
    settings = {**SETTINGS, "device": device, "bf16": False}
    single = tiny_overrides(tmp_path / "one", data, **settings)
    double = tiny_overrides(tmp_path / "two", data, **settings)
    train(load_train_config(None, single), text_encoder=fake_text_encoder())
    mp.spawn(_rank_main, args=(2, _free_port(), double), nprocs=2, join=True)

    one = tmp_path / "one" / "checkpoints" / "step-00000002"
    two = tmp_path / "two" / "checkpoints" / "step-00000002"
    assert not (tmp_path / "two" / "checkpoints" / "step-00000001").exists()
    for name in ("model", "optimizer"):
        a, b = load_file(one / f"{name}.safetensors"), load_file(two / f"{name}.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            # Relative to each tensor's size: Adam moments range from 1e-10 to 1 and a
            # summed instead of averaged gradient would double exp_avg.
            error = (b[key].double() - a[key].double()).norm() / a[key].double().norm()
            assert error < tolerance, (name, key, float(error))
            assert a[key].abs().sum() > 0, (name, key)  # real gradients reached every tensor
    rng = load_file(two / "rng.safetensors")
    assert {"rank0.generator", "rank1.generator"} <= rng.keys()  # every rank's RNG is kept
