"""Training checkpoints: everything ``--resume`` needs to continue a run exactly, never pickled.

A checkpoint is a folder ``RUN/checkpoints/step-00001000/``:

- ``model.safetensors``: the trainable models' weights, ``<model>.<parameter>``;
- ``ema.safetensors``: the EMA copies, same names (what export and evaluation use);
- ``optimizer.safetensors``: AdamW moments and step counts, ``state.<param index>.<key>``;
- ``rng.safetensors``: each rank's torch CPU / CUDA / training-generator states (uint8) and
  numpy's Mersenne-Twister keys, ``rank<r>.<what>``;
- ``state.json``: step, data position, EMA update count, optimizer param groups, numpy and
  python RNG scalars, the task's own state, and the run config.

It is written under a hidden temporary name and renamed into place when complete, so a crash
mid-write never leaves a half checkpoint that ``--resume`` would pick; the newest ``keep``
are kept.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from engine.errors import MotionError

CHECKPOINT_DIR = "checkpoints"
_STEP_NAME = re.compile(r"step-(\d{8})")


@dataclasses.dataclass
class RngState:
    """One rank's random number generators."""

    torch_cpu: Tensor  # uint8
    cuda: Tensor | None  # uint8, the rank's current CUDA device; None on CPU
    generator: Tensor  # uint8, the torch.Generator the task draws from
    numpy: dict[str, Any]  # {"keys": int64 tensor (624,), "pos", "has_gauss", "cached"}
    python: list[Any]  # random.getstate() as lists


def capture_rng(generator: torch.Generator, device: torch.device) -> RngState:
    """Snapshot every RNG that training draws from on this rank."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return RngState(
        torch_cpu=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        generator=generator.get_state(),
        numpy={
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        python=[version, list(internal), gauss_next],
    )


def restore_rng(state: RngState, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state.torch_cpu)
    if state.cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state.cuda, device)
    generator.set_state(state.generator)
    n = state.numpy
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss_next = state.python
    random.setstate((version, tuple(internal), gauss_next))


@dataclasses.dataclass
class TrainState:
    """The counters of a run."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # data epoch in progress
    position: int = 0  # micro-batches of that epoch already consumed (per rank)
    ema_updates: int = 0
    samples: int = 0  # training samples seen, all ranks together


@dataclasses.dataclass
class LoadedCheckpoint:
    path: Path
    models: dict[str, Tensor]
    ema: dict[str, Tensor]
    optimizer: dict[str, Any]  # an optimizer state_dict
    rng: list[RngState]  # one per rank of the run that wrote it
    state: TrainState
    task_state: dict[str, Any]
    config: dict[str, Any]
    entries: dict[str, Any]  # model name -> {"class", "config"}


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are hidden and skipped)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


# ---- writing -------------------------------------------------------------------------------


def _cpu(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def model_tensors(models: Mapping[str, torch.nn.Module]) -> dict[str, Tensor]:
    return {f"{n}.{k}": v for n, m in models.items() for k, v in m.state_dict().items()}


def model_entries(models: Mapping[str, torch.nn.Module]) -> dict[str, dict[str, Any]]:
    """``{name: {"class": class name, "config": {...}}}``: enough to rebuild each model from
    the engine's model registry (the layout of an engine checkpoint's ``models``)."""
    return {
        name: {"class": type(model).__name__, "config": model.config.to_dict()}
        for name, model in models.items()
    }


def optimizer_to_files(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors and plain JSON."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
        for group in state_dict["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_files(tensors: Mapping[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def _rng_to_files(states: list[RngState]) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
    tensors: dict[str, Tensor] = {}
    plain = []
    for rank, s in enumerate(states):
        tensors[f"rank{rank}.torch_cpu"] = s.torch_cpu
        tensors[f"rank{rank}.generator"] = s.generator
        tensors[f"rank{rank}.numpy_keys"] = s.numpy["keys"]
        if s.cuda is not None:
            tensors[f"rank{rank}.cuda"] = s.cuda
        numpy_plain = {k: v for k, v in s.numpy.items() if k != "keys"}
        plain.append({"numpy": numpy_plain, "python": s.python})
    return tensors, plain


def _rng_from_files(tensors: Mapping[str, Tensor], plain: list[dict[str, Any]]) -> list[RngState]:
    states = []
    for rank, p in enumerate(plain):
        numpy_state = {**p["numpy"], "keys": tensors[f"rank{rank}.numpy_keys"]}
        states.append(
            RngState(
                torch_cpu=tensors[f"rank{rank}.torch_cpu"],
                cuda=tensors.get(f"rank{rank}.cuda"),
                generator=tensors[f"rank{rank}.generator"],
                numpy=numpy_state,
                python=p["python"],
            )
        )
    return states


def save_training_checkpoint(
    run_dir: str | Path,
    *,
    models: Mapping[str, torch.nn.Module],
    ema: Mapping[str, Tensor],
    optimizer: dict[str, Any],
    rng: list[RngState],
    state: TrainState,
    task_state: dict[str, Any],
    config: dict[str, Any],
    keep: int,
) -> Path:
    """Write one checkpoint atomically and delete all but the newest ``keep``."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    partial = root / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    opt_tensors, opt_meta = optimizer_to_files(optimizer)
    rng_tensors, rng_plain = _rng_to_files(rng)
    record = {
        "models": model_entries(models),
        "state": dataclasses.asdict(state),
        "optimizer": opt_meta,
        "rng": rng_plain,
        "task_state": task_state,
        "config": config,
    }
    try:
        partial.mkdir()
        save_file(_cpu(model_tensors(models)), partial / "model.safetensors")
        save_file(_cpu(ema), partial / "ema.safetensors")
        save_file(_cpu(opt_tensors), partial / "optimizer.safetensors")
        save_file(_cpu(rng_tensors), partial / "rng.safetensors")
        text = json.dumps(record, indent=1, allow_nan=False)
        (partial / "state.json").write_text(text + "\n", encoding="utf-8")
        if final.exists():  # the same step written again (a re-run): replace it
            shutil.rmtree(final)
        partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ---- reading -------------------------------------------------------------------------------


def load_training_checkpoint(folder: str | Path) -> LoadedCheckpoint:
    """Read a checkpoint folder written by ``save_training_checkpoint``."""
    folder = Path(folder)
    names = ("model", "ema", "optimizer", "rng")
    missing = [n for n in names if not (folder / f"{n}.safetensors").is_file()]
    if missing or not (folder / "state.json").is_file():
        raise MotionError(f"{folder}: not a complete training checkpoint (missing {missing})")
    try:
        record = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise MotionError(f"{folder / 'state.json'}: cannot read: {error}") from error
    files = {n: load_file(folder / f"{n}.safetensors") for n in names}
    return LoadedCheckpoint(
        path=folder,
        models=files["model"],
        ema=files["ema"],
        optimizer=optimizer_from_files(files["optimizer"], record["optimizer"]),
        rng=_rng_from_files(files["rng"], record["rng"]),
        state=TrainState(**record["state"]),
        task_state=record.get("task_state", {}),
        config=record["config"],
        entries=record.get("models", {}),
    )


def split_models(tensors: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """``{"ae.w": t}`` -> ``{"ae": {"w": t}}``."""
    out: dict[str, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        model, key = name.split(".", 1)
        out.setdefault(model, {})[key] = value
    return out
