"""Sharded safetensors weights: ``model-0000i-of-0000N.safetensors`` plus an index.

The layout transformers uses: ``model.safetensors.index.json`` maps each tensor name to the
shard file holding it. Shards stay under a size limit (16 MiB by default) so that a
checkpoint can live in a git repository or an extension package without large-file storage.
Only safetensors are read: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .errors import MotionError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
MAX_SHARD_BYTES = 16 * 2**20
_SHARD_NAME = re.compile(r"[A-Za-z0-9_.\-]+\.safetensors")


def gather_tensors(
    models: Mapping[str, nn.Module], dtype: torch.dtype | None = None
) -> dict[str, Tensor]:
    """Every model's state as CPU copies named ``<model name>.<parameter>``.

    Copies, because safetensors refuses tensors sharing storage (tied weights). ``dtype``
    casts floating-point tensors only (integer buffers keep their type).
    """
    tensors = {}
    for name, model in models.items():
        for key, value in model.state_dict().items():
            value = value.detach().to("cpu")
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{name}.{key}"] = value.contiguous().clone()
    return tensors


def _shard_cost(name: str, tensor: Tensor) -> int:
    """Bytes a tensor adds to a shard file: its data plus a generous bound on its header entry."""
    return tensor.numel() * tensor.element_size() + 160 + len(name.encode()) + 24 * tensor.ndim


def plan_shards(tensors: Mapping[str, Tensor], max_shard_bytes: int) -> list[list[str]]:
    """Group tensor names, in order, into shards whose files stay within ``max_shard_bytes``.

    A single tensor larger than the limit gets a shard of its own (it cannot be split).
    """
    budget = max_shard_bytes - 64  # the file's length prefix and metadata
    shards: list[list[str]] = [[]]
    used = 0
    for name, tensor in tensors.items():
        cost = _shard_cost(name, tensor)
        if shards[-1] and used + cost > budget:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += cost
    return shards


def write_sharded(folder: Path, tensors: Mapping[str, Tensor], max_shard_bytes: int) -> None:
    """Write ``tensors`` as shards plus the index into the existing ``folder``."""
    shards = plan_shards(tensors, max_shard_bytes)
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        shard = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, folder / shard, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, shard))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(folder / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map})


def read_weights(folder: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors of ``folder`` on the CPU and, for each, the file it came from.

    Reads the index and its shards, or a lone ``model.safetensors`` when there is no index.
    """
    index_path = folder / INDEX_FILE
    if not index_path.exists() and (folder / SINGLE_WEIGHTS_FILE).is_file():
        tensors = _load_shard(folder / SINGLE_WEIGHTS_FILE)
        return tensors, dict.fromkeys(tensors, SINGLE_WEIGHTS_FILE)
    index = read_json(index_path, "weights index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
        raise MotionError(f"{index_path}: needs a 'weight_map' of tensor name -> shard file")
    shards = sorted(set(weight_map.values()))
    for shard in shards:  # all present before reading any
        if not _SHARD_NAME.fullmatch(shard) or not (folder / shard).is_file():
            raise MotionError(f"{index_path}: points to shard {shard!r}, which is missing")
    tensors: dict[str, Tensor] = {}
    for shard in shards:
        path = folder / shard
        listed = {n for n, s in weight_map.items() if s == shard}
        found = _load_shard(path)
        if listed - found.keys():
            raise MotionError(
                f"{path}: lacks tensors the index lists: {few(listed - found.keys())}"
            )
        if found.keys() - listed:
            raise MotionError(
                f"{path}: holds tensors the index does not list: {few(found.keys() - listed)}"
            )
        tensors.update(found)
    return tensors, dict(weight_map)


def _load_shard(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise MotionError(
            f"{path}: unreadable safetensors file (truncated or corrupt): {error}"
        ) from error


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_json(path: Path, what: str) -> Any:
    """Parse ``path``; a missing file or bad JSON raises ``MotionError`` naming it."""
    if not path.is_file():
        raise MotionError(f"{path}: missing {what} ({path.name})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise MotionError(f"{path}: {what} is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise MotionError(
            f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from error


def few(names: Iterable[str], limit: int = 5) -> str:
    """Up to ``limit`` sorted names for an error message, and how many more there are."""
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
