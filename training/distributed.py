"""One code path from a single CPU process to many GPUs.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR/PORT``);
without them the run is a single process and nothing distributed is initialised. The
backend follows the device: NCCL on CUDA, gloo on the CPU. Only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from engine.errors import MotionError


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None for a single process

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as error:
        raise MotionError(f"environment variable {name}={value!r} is not a whole number") from error


def choose_device(setting: str, local_rank: int) -> torch.device:
    """``"auto"``: this rank's GPU when CUDA is present, else the CPU."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise MotionError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", local_rank)
    raise MotionError(f"device must be 'auto', 'cpu' or 'cuda', got {setting!r}")


def init_distributed(device_setting: str = "auto") -> DistInfo:
    """Read the torchrun environment, pick the device and join the process group."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    device = choose_device(device_setting, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = None
    if world_size > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            kwargs = {"device_id": device} if device.type == "cuda" else {}
            dist.init_process_group(backend, rank=rank, world_size=world_size, **kwargs)
    return DistInfo(rank, world_size, local_rank, device, backend)


def shutdown() -> None:
    """Leave the process group (a no-op for a single process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over ranks (a copy; ``value`` itself for one process)."""
    if not info.distributed:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / info.world_size


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` in rank order (RNG states, for checkpoints written by rank 0)."""
    if not info.distributed:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
